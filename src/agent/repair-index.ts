/**
 * Names again the packs no intact index file names (one was damaged or lost): from each pack's
 * own header, which lists its blobs, into new index files. Only the packs of this key family can
 * be named so (a header opens only with its keys); those of other key families are left to their
 * machines, and packs prune condemned or deleted are left alone.
 */
import { randomBytes } from 'node:crypto';
import type { PackId } from '../core/ids.js';
import { encodeIndex, type IndexPack } from '../core/index-file.js';
import type { VaultKeys } from '../core/keys.js';
import { PACK_TRAILER_BYTES, packTailLength, readPackTail } from '../core/pack.js';
import { objectKeyId } from '../core/sealed-object.js';
import { eachAtOnce } from '../shared/each-at-once.js';
import { isAzbkError } from '../shared/errors.js';
import type { VaultSession } from '../vault/api.js';
import { readOwnIndex } from './blob-index.js';

export interface IndexRepair {
  /** packs the vault holds that no index file of this key family names whole */
  readonly unnamed: number;
  /** of those, this key family's, named now in `indexFiles` */
  readonly named: number;
  /** the blobs they hold */
  readonly blobs: number;
  /** of those, packs of another key family (left to its machines) */
  readonly foreign: number;
  /** of those, packs whose header could not be read (damaged or cut short): not named */
  readonly damaged: readonly PackId[];
  /** the index files written */
  readonly indexFiles: readonly string[];
  /** the vault's index files that are damaged (not sealed, or of this key family and failing their checks): what they named is named again */
  readonly damagedIndex: readonly string[];
}

/** The end of a pack read first: its header is most often shorter, so one read gets it whole. */
const FIRST_READ = 64 * 1024;
/** packs whose header is read at a time */
const READERS = 4;
/** An index file written names at most about this many blobs (a pack's are never split). */
const BLOBS_PER_FILE = 100_000;

/** Names again, in new index files, the packs of `keys`' family that no intact index file names; see the module comment. */
export async function repairIndex(session: VaultSession, keys: VaultKeys): Promise<IndexRepair> {
  const named = new Set<PackId>();
  const damagedIndex: string[] = [];
  for (const name of new Set(await session.listIndex())) {
    let packs: readonly IndexPack[] | null;
    try {
      packs = await readOwnIndex(session, keys, name);
    } catch (err) {
      // damaged, or gone since it was listed: what it named is named here again
      if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT')) throw err;
      damagedIndex.push(name);
      continue;
    }
    for (const p of packs ?? []) named.add(p.id);
  }
  const pruned = await session.listPrunedPacks();
  const left = new Set([...pruned.condemned, ...pruned.gone]);
  const unnamed = [...new Set(await session.listPacks())].filter((p) => !named.has(p) && !left.has(p));

  const found: IndexPack[] = [];
  const damaged: PackId[] = [];
  let foreign = 0;
  await eachAtOnce([...unnamed], READERS, async (pack) => {
    const size = await session.statPack(pack);
    if (size === null) return; // deleted since it was listed
    try {
      const end = await session.readPack(pack, Math.max(0, size - FIRST_READ), Math.min(size, FIRST_READ));
      const length = packTailLength(end);
      const tail = length <= end.length ? end.subarray(end.length - length) : await session.readPack(pack, Math.max(0, size - length), Math.min(size, length));
      const family = objectKeyId(tail.subarray(0, tail.length - PACK_TRAILER_BYTES));
      if (family !== null && family !== keys.keyId) {
        foreign++;
        return;
      }
      found.push({ id: pack, blobs: readPackTail(keys, tail, size) });
    } catch (err) {
      if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT')) throw err;
      damaged.push(pack);
    }
  });

  found.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const indexFiles: string[] = [];
  for (let i = 0; i < found.length; ) {
    const group: IndexPack[] = [];
    let blobs = 0;
    while (i < found.length && (group.length === 0 || blobs + found[i]!.blobs.length <= BLOBS_PER_FILE)) {
      blobs += found[i]!.blobs.length;
      group.push(found[i++]!);
    }
    const name = randomBytes(32).toString('hex');
    await session.putIndex(name, encodeIndex(keys, name, group));
    indexFiles.push(name);
  }
  return {
    unnamed: unnamed.length,
    named: found.length,
    blobs: found.reduce((n, p) => n + p.blobs.length, 0),
    foreign,
    damaged: damaged.sort(),
    indexFiles,
    damagedIndex,
  };
}
