/**
 * Vault consistency check for one key family: every recovery point (of any machine) and every
 * checkpoint of this machine made with these keys must refer only to blobs that are indexed and
 * whose packs are stored. With `readData`, every blob is also read and decoded, which checks its
 * integrity, and every pack they are in is read whole and checked against its id; otherwise data
 * blobs cost one `statPack` per pack. Tree blobs are always read, since the walk needs their
 * listings.
 *
 * Each distinct tree is walked once; a problem inside a subtree that several points share is
 * reported for each of them, at its path in each. A blob or pack that is referenced but missing
 * is reported at every place that refers to it.
 */
import { createHash, type Hash } from 'node:crypto';
import { decodeBlob } from '../core/blob.js';
import type { BlobId, KeyId, PackId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { objectKeyId } from '../core/sealed-object.js';
import { decodeTree, wholeTree, type Tree } from '../core/tree.js';
import { eachAtOnce } from '../shared/each-at-once.js';
import { isAzbkError, type ErrorCode } from '../shared/errors.js';
import type { VaultSession } from '../vault/api.js';
import { BlobIndex, readOwnIndex, stillMissing } from './blob-index.js';
import { openCheckpoint } from './checkpoint.js';
import { fromSegments } from './fspath.js';
import { readListings } from './listings.js';
import { openManifest, pointKeyId } from './manifest.js';
import { checkPool } from './pipeline/check-pool.js';
import { RANGE_ROOM } from './pipeline/range-pool.js';
import { readRanges } from './restore-data.js';

export interface VerifyProblem {
  /** `<point id>:<path>`, `<checkpoint name>:<path>`, a bare point id or checkpoint name, or `index <name>` */
  readonly where: string;
  readonly what: string;
}

/**
 * Called once verify --read-data knows how much it will read: `total` bytes of packs, and
 * `progress` tells how many of them were read and checked, whenever asked.
 */
export type DataReading = (total: number, progress: () => number) => void;

export interface VerifyReport {
  /** recovery points of this key family that were checked */
  readonly points: number;
  /** checkpoints of this machine and key family that were checked */
  readonly checkpoints: number;
  /** distinct trees walked */
  readonly trees: number;
  /** distinct blobs (trees and data chunks) checked */
  readonly blobs: number;
  /** distinct packs that referenced blobs live in */
  readonly packs: number;
  /**
   * Indexed packs from which this key's points and checkpoints read nothing: data of expired
   * points, leftovers of stopped jobs (of any machine), or a second copy of data two machines of
   * the key stored at once (the index reads one copy; the point that stored the other still names
   * it, so prune keeps it). Not a problem. (Packs no index lists are invisible to a session.)
   */
  readonly orphanPacks: number;
  /** packs that referenced blobs are in and the vault does not hold (see FileCache.addMissingPacks) */
  readonly missingPacks: readonly PackId[];
  /** packs the vault holds in which a blob failed its checks or that are shorter than indexed (see FileCache.addDamagedPacks) */
  readonly damagedPacks: readonly PackId[];
  /** index files that are damaged (see FileCache.getDamagedIndex) */
  readonly damagedIndex: readonly string[];
  /** of those, the ones whose packs a repair named again (`repaired`): not problems */
  readonly repairedIndex: readonly string[];
  /**
   * of those, the others when every blob the points and checkpoints use is found whole without
   * them: not problems either (they named nothing a restore needs, or were never azbk's: any
   * machine registered with the vault may add an index file)
   */
  readonly unneededIndex: readonly string[];
  readonly problems: readonly VerifyProblem[];
}

/** Errors that mean "could not ask the vault" (or not as this machine), not "the vault is inconsistent": never reported. */
function rethrowIfUnreachable(err: unknown): void {
  const codes: readonly ErrorCode[] = ['AZBK_VAULT_UNREACHABLE', 'AZBK_VAULT_NOT_FOUND', 'AZBK_CREDENTIALS_INVALID', 'AZBK_CREDENTIALS_EXPIRED'];
  if (isAzbkError(err) && codes.includes(err.code)) throw err;
}

const why = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Chunks of a pack at most this far apart are read together (the bytes between are read too). */
const MAX_GAP = 1024 * 1024;
/** ranges read at a time */
const READERS = 4;
/** Folder listings read ahead, and by the first of two sweeps for the second, are kept up to about this many bytes. */
const TREE_CACHE_BYTES = 64 * 1024 * 1024;
/** What a kept listing costs beyond twice its plaintext (its id, the map's entry). */
const TREE_ENTRY_BYTES = 256;

/** A data chunk to check: its row in the index, and where it lies in its pack. */
interface Chunk {
  readonly row: number;
  readonly offset: number;
  readonly length: number;
}

/** Chunks of one pack read together. */
interface ChunkRange {
  readonly pack: PackId;
  readonly start: number;
  readonly end: number;
  readonly items: Chunk[];
}

/** The size of a pack (null: the vault does not hold it), asked once per pack. */
type PackSizes = (pack: PackId) => Promise<number | null>;

/**
 * Checks the vault for `keys`' family; see the module comment. Inconsistencies are reported, not
 * thrown; it throws when the vault cannot be reached or listed.
 *
 * With `readData`, a first sweep through the points and checkpoints notes every chunk they use
 * (a bit per indexed blob), and those chunks are read pack by pack in ranges and checked on every
 * core. When neither found anything wrong, the first sweep's report is the report; else a second
 * sweep reports, finding what the check said of each file's chunks.
 */
export async function verifyVault(session: VaultSession, keys: VaultKeys, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const first = await verifyOnce(session, keys, opts);
  const known = new Set([...(opts.missing ?? []), ...(opts.damaged ?? [])]);
  const found = [...first.missingPacks, ...first.damagedPacks].filter((p) => !known.has(p));
  if (found.length === 0) return first;
  // Packs found missing or damaged that this machine did not know of: the index names one place
  // for each blob (the index file read last), and a later backup may have stored a blob of them
  // again elsewhere, where restores find it (they leave such a pack out and look again). Checked
  // again with those packs last, only what has no other copy is a problem.
  const again = await verifyOnce(session, keys, { ...opts, damaged: [...(opts.damaged ?? []), ...found] });
  const union = <T>(a: readonly T[], b: readonly T[]): T[] => [...new Set([...a, ...b])].sort();
  // (unneededIndex is the second check's, as its problems are)
  return { ...again, missingPacks: union(first.missingPacks, again.missingPacks), damagedPacks: union(first.damagedPacks, again.damagedPacks), damagedIndex: union(first.damagedIndex, again.damagedIndex), repairedIndex: union(first.repairedIndex, again.repairedIndex) };
}

export interface VerifyOptions {
  readonly readData?: boolean;
  /** packs a backup of this machine found missing (those still missing are left out) */
  readonly missing?: readonly PackId[];
  /** packs found damaged: their blobs count only where no other pack holds them */
  readonly damaged?: readonly PackId[];
  /** damaged index files whose packs a repair named again (see repairIndex): not problems */
  readonly repaired?: readonly string[];
  readonly onReading?: DataReading;
}

/** One check of the vault (see verifyVault). */
async function verifyOnce(session: VaultSession, keys: VaultKeys, opts: VerifyOptions): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  const index = new BlobIndex();
  const indexedPacks = new Set<PackId>();
  // Index files still name the blobs of packs the vault no longer holds (and of those a backup of
  // this machine found missing, and still is: see stillMissing); a blob stored again is found where it is now.
  const pruned = await session.listPrunedPacks();
  const gone = new Set([...pruned.gone, ...(await stillMissing(session, opts.missing ?? []))]);
  // Packs a check found damaged, or prune condemned, come last: what a backup stored again since
  // is found where it is now.
  const condemned = new Set(pruned.condemned);
  index.deferPacks([...(opts.damaged ?? []), ...condemned]);
  const damagedIndex: string[] = [];
  const repaired = new Set(opts.repaired ?? []);
  const repairedIndex: string[] = [];
  /** damaged index files neither repaired nor known to be unneeded yet: problems once a blob is found unindexed */
  const indexProblems: VerifyProblem[] = [];
  for (const name of await session.listIndex()) {
    try {
      for (const p of (await readOwnIndex(session, keys, name)) ?? []) {
        if (gone.has(p.id)) continue;
        index.addPack(p.id, p.blobs);
        indexedPacks.add(p.id);
      }
    } catch (err) {
      rethrowIfUnreachable(err);
      const damaged = isAzbkError(err, 'AZBK_VAULT_CORRUPT');
      if (damaged) damagedIndex.push(name);
      if (damaged && repaired.has(name)) repairedIndex.push(name);
      else (damaged ? indexProblems : problems).push({ where: `index ${name}`, what: `${why(err)}${damaged ? ' (azbk verify --repair-index names its packs again from their own headers)' : ''}` });
    }
  }
  index.addDeferred();

  const packSizes = new Map<PackId, number | null>();
  const sizeOf: PackSizes = async (pack) => {
    if (!packSizes.has(pack)) packSizes.set(pack, await session.statPack(pack));
    return packSizes.get(pack) ?? null;
  };
  const trees = new TreeCache();
  let r: Awaited<ReturnType<typeof sweep>>;
  let damagedByHash: ReadonlySet<PackId> = new Set();
  if (opts.readData === true) {
    const used = new Uint8Array(index.size);
    const first = await sweep(session, keys, index, sizeOf, trees, { mark: used, condemned });
    // Every pack a point or checkpoint needs, read whole (packSizes knows the size of each).
    const held = new Map<PackId, number>();
    for (const p of first.usedPacks) {
      const size = packSizes.get(p);
      if (typeof size === 'number') held.set(p, size);
    }
    const { damaged, failed, mismatched } = await checkChunks(session, keys, index, used, held, opts.onReading);
    // With nothing wrong, the first sweep's report is the whole of it; else a second one names
    // the files damaged chunks break, and reads what the first could not reach.
    r = damaged.size === 0 && first.problems.length === 0 ? first : await sweep(session, keys, index, sizeOf, trees, { checked: { used, damaged, failed }, condemned });
    // A pack that does not hash to its id, with no chunk or listing in it found damaged: the
    // damage is where no point reads (its header, or data of expired points). Restores still
    // work; its header could not rebuild an index.
    for (const pack of mismatched) {
      if (!r.damagedPacks.has(pack)) problems.push({ where: `pack ${pack}`, what: 'its bytes do not match its id: damaged where no point reads (its header, or data no point needs)' });
    }
    damagedByHash = mismatched;
  } else r = await sweep(session, keys, index, sizeOf, trees, { condemned });
  // (a pack known damaged, read last, is not one prune frees: points may still name it)
  const known = new Set(opts.damaged ?? []);
  const orphanPacks = [...indexedPacks].filter((p) => !r.usedPacks.has(p) && !known.has(p)).length;
  const missingPacks = [...packSizes].filter(([, size]) => size === null).map(([p]) => p).sort();
  // A damaged index file matters only while the points miss something: a blob named by no other
  // index file, or one whose named copy is missing or damaged (the damaged file may name another).
  const needed = r.unindexed > 0 || r.problems.length > 0;
  const unneededIndex = needed ? [] : indexProblems.map((p) => p.where.slice('index '.length));
  if (needed) problems.push(...indexProblems);
  return { points: r.points, checkpoints: r.checkpoints, trees: r.trees, blobs: r.blobs, packs: r.usedPacks.size, orphanPacks, missingPacks, damagedPacks: [...new Set([...r.damagedPacks, ...damagedByHash])].sort(), damagedIndex, repairedIndex, unneededIndex, problems: [...problems, ...r.problems] };
}

/**
 * What a sweep found of each blob it checked: for an indexed blob a byte by its index row (a
 * problem's text beside it), for another one its type and id. A vault of millions of blobs costs
 * a byte each, not a string and a map entry.
 */
class Checked {
  private readonly state: Uint8Array;
  private readonly problems = new Map<number, string>();
  private readonly others = new Map<string, string | null>();
  /** blobs checked */
  count = 0;

  constructor(index: BlobIndex) {
    this.state = new Uint8Array(index.size);
  }

  /** undefined: not checked yet; null: fine; else what is wrong with it. `row`: its index row, or -1. */
  get(type: 'data' | 'tree', id: BlobId, row: number): string | null | undefined {
    if (row < 0) return this.others.get(`${type}:${id}`);
    const s = this.state[row];
    return s === UNSEEN ? undefined : s === FINE ? null : this.problems.get(row)!;
  }

  set(type: 'data' | 'tree', id: BlobId, row: number, problem: string | null): void {
    if (this.get(type, id, row) === undefined) this.count++;
    if (row < 0) this.others.set(`${type}:${id}`, problem);
    else {
      this.state[row] = problem === null ? FINE : BAD;
      if (problem !== null) this.problems.set(row, problem);
    }
  }
}

/** A problem under a tree: the path below it, and what is wrong. */
interface Below {
  readonly rel: readonly string[];
  readonly what: string;
}

const UNSEEN = 0;
const FINE = 1;
const BAD = 2;

/** The data chunks checked ahead of the sweep that reports: those `used` marks (by index row), and those of them that did not check out. */
interface CheckedData {
  readonly used: Uint8Array;
  readonly damaged: ReadonlyMap<BlobId, string>;
  /** those of `damaged` that were read and failed their checks (not those that could not be read) */
  readonly failed: ReadonlySet<BlobId>;
}

/**
 * Decoded folder listings, read ahead of a sweep and kept for the next, up to about
 * TREE_CACHE_BYTES (twice a listing's plaintext, as a guess at its decoded size). The last sweep
 * takes each one out (it walks a listing once), so the cache empties as it goes.
 */
class TreeCache {
  private readonly trees = new Map<BlobId, { readonly tree: Tree; readonly cost: number }>();
  private bytes = 0;
  /** a listing did not fit: reading ahead stops there */
  private full = false;

  get room(): boolean {
    return !this.full;
  }

  /** The listing `id`, if kept; `take`: no longer kept. */
  get(id: BlobId, take: boolean): Tree | undefined {
    const kept = this.trees.get(id);
    if (kept !== undefined && take) {
      this.trees.delete(id);
      this.bytes -= kept.cost;
    }
    return kept?.tree;
  }

  keep(id: BlobId, plain: Buffer, tree: Tree): void {
    const cost = 2 * plain.length + TREE_ENTRY_BYTES;
    if (this.trees.has(id)) return;
    if (this.bytes + cost > TREE_CACHE_BYTES) {
      this.full = true;
      return;
    }
    this.trees.set(id, { tree, cost });
    this.bytes += cost;
  }
}

/**
 * One sweep through every point and checkpoint of the family: the trees are read, and each file's
 * chunks are looked up. With `mark`, a chunk found in a pack the vault holds sets its row's byte
 * and is not read, and the trees are kept in `trees` for the next sweep; with `checked`, a chunk
 * checked ahead has the problem that check found, if any, and one it did not check (a point
 * written since, say) is read and checked here. A first sweep reads the listings ahead of its
 * walk (see listings.ts). Problems are reported as in the module comment.
 *
 * A blob whose only copy is in a pack prune `condemned` is a problem too: prune condemns a pack
 * no recovery point or checkpoint names, so a point that needs it names its packs wrongly (its
 * plain list, which is all the vault can read, is damaged), and loses that data once the pack's
 * grace period is over.
 */
async function sweep(
  session: VaultSession,
  keys: VaultKeys,
  index: BlobIndex,
  sizeOf: PackSizes,
  trees: TreeCache,
  o: { mark?: Uint8Array; checked?: CheckedData; condemned: ReadonlySet<PackId> },
): Promise<{ points: number; checkpoints: number; trees: number; blobs: number; unindexed: number; usedPacks: ReadonlySet<PackId>; damagedPacks: ReadonlySet<PackId>; problems: VerifyProblem[] }> {
  const problems: VerifyProblem[] = [];
  /** blobs used that no index file names */
  let unindexed = 0;
  /** packs a blob in was found damaged: shorter than indexed, or a blob read from it failed its checks */
  const damagedPacks = new Set<PackId>();
  const checked = new Checked(index);
  const walked = new Set<BlobId>();
  const usedPacks = new Set<PackId>();

  const last = o.mark === undefined;
  /** Checks one blob once; returns the listing when it is a tree. */
  const checkBlob = async (type: 'data' | 'tree', id: BlobId): Promise<{ problem: string | null; tree?: Tree }> => {
    const row = index.row(type, id);
    const seen = checked.get(type, id, row);
    if (seen !== undefined) return { problem: seen };
    let problem: string | null = null;
    let tree: Tree | undefined;
    if (row < 0) {
      problem = `${type} blob ${id.slice(0, 12)} is not in the index`;
      unindexed++;
    } else {
      const { pack, offset, length } = index.at(row);
      usedPacks.add(pack);
      const size = await sizeOf(pack);
      if (size === null) problem = `pack ${pack.slice(0, 12)} of ${type} blob ${id.slice(0, 12)} is missing`;
      else if (offset + length > size) {
        problem = `pack ${pack.slice(0, 12)} is shorter than its index says`;
        damagedPacks.add(pack);
      } else if (type === 'data' && o.mark !== undefined) o.mark[row] = 1;
      else if (type === 'data' && o.checked !== undefined && o.checked.used[row] === 1) {
        problem = o.checked.damaged.get(id) ?? null;
        if (o.checked.failed.has(id)) damagedPacks.add(pack);
      } else if (type === 'tree' || o.checked !== undefined) {
        // A read that fails says nothing of the pack (the vault may refuse it for a while); a
        // blob read that fails its checks does.
        let sealed: Buffer | undefined;
        try {
          tree = type === 'tree' ? trees.get(id, last) : undefined;
          if (tree === undefined) sealed = await session.readPack(pack, offset, length);
        } catch (err) {
          rethrowIfUnreachable(err);
          problem = why(err);
        }
        if (sealed !== undefined) {
          try {
            const plain = decodeBlob(keys, type, id, sealed);
            if (type === 'tree') {
              tree = decodeTree(plain);
              if (!last) trees.keep(id, plain, tree);
            }
          } catch (err) {
            problem = why(err);
            damagedPacks.add(pack);
          }
        }
      }
      if (problem === null && o.condemned.has(pack)) {
        problem = `pack ${pack.slice(0, 12)} of ${type} blob ${id.slice(0, 12)} is condemned: no recovery point names it to the vault, whose prune deletes it after a grace period`;
      }
    }
    checked.set(type, id, row, problem);
    return tree === undefined ? { problem } : { problem, tree };
  };

  /** Checks a file's chunk list; one problem per file naming how many chunks are bad (reported at `where`), returned too. */
  const checkContent = async (where: string, content: readonly BlobId[]): Promise<string | null> => {
    let bad = 0;
    let first: string | null = null;
    for (const id of content) {
      const { problem } = await checkBlob('data', id);
      if (problem !== null) {
        bad++;
        first ??= problem;
      }
    }
    if (first === null) return null;
    const what = `${bad} of ${content.length} chunks unreadable: ${first}`;
    problems.push({ where, what });
    return what;
  };

  /**
   * The problems under each tree walked that has any, by their paths below it: a tree met again
   * (a folder several points share) is not walked again, but each of its problems is reported for
   * this place too, so every point a problem breaks is named.
   */
  const under = new Map<BlobId, readonly Below[]>();
  /** Walks the tree `id` found at `where`:`segs` (its subtrees only the first time it is met); returns the problems under it. */
  const walk = async (where: string, segs: readonly string[], id: BlobId): Promise<readonly Below[]> => {
    if (walked.has(id)) {
      const found = under.get(id) ?? [];
      for (const b of found) problems.push({ where: `${where}:${fromSegments([...segs, ...b.rel])}`, what: b.what });
      return found;
    }
    walked.add(id);
    let { problem, tree } = await checkBlob('tree', id);
    if (problem === null && tree !== undefined) {
      // A listing in parts: each part is a blob checked as any other (one checked already, in
      // another listing that ends as this one does, is read again).
      try {
        tree = await wholeTree(id, tree, async (part) => {
          const got = await checkBlob('tree', part);
          if (got.problem !== null) throw new Error(`a part of it, tree blob ${part.slice(0, 12)}: ${got.problem}`);
          if (got.tree !== undefined) return got.tree;
          const { pack, offset, length } = index.at(index.row('tree', part));
          return decodeTree(decodeBlob(keys, 'tree', part, await session.readPack(pack, offset, length)));
        });
      } catch (err) {
        rethrowIfUnreachable(err);
        problem = why(err);
      }
    }
    if (problem !== null || tree === undefined) {
      const what = problem ?? 'tree not read';
      problems.push({ where: `${where}:${fromSegments(segs)}`, what });
      const found = [{ rel: [], what }];
      under.set(id, found);
      return found;
    }
    const found: Below[] = [];
    for (const node of tree.nodes) {
      const childSegs = [...segs, node.name];
      if (node.type === 'dir') for (const b of await walk(where, childSegs, node.subtree)) found.push({ rel: [node.name, ...b.rel], what: b.what });
      else if (node.type === 'file') {
        const what = await checkContent(`${where}:${fromSegments(childSegs)}`, node.content);
        if (what !== null) found.push({ rel: [node.name], what });
      }
    }
    if (found.length > 0) under.set(id, found);
    return found;
  };

  // The points first, so that their listings can be read ahead of the walk.
  const roots: { readonly id: string; readonly tree: BlobId | null }[] = [];
  for (const machine of await session.listMachines()) {
    // A record that cannot be read says no key: it is this key's problem unless the machine's
    // other points are all of another key (a machine keeps its key: registering it again with
    // another is refused).
    const unreadable: VerifyProblem[] = [];
    let ours = 0;
    let theirs = 0;
    for (const info of await session.listPoints(machine.id)) {
      let record: Awaited<ReturnType<VaultSession['readPoint']>>;
      let keyId: KeyId;
      try {
        record = await session.readPoint(machine.id, info.id);
        keyId = pointKeyId(record);
      } catch (err) {
        rethrowIfUnreachable(err);
        // Removed since it was listed (retention, by a backup of its machine): not a problem.
        if (!isAzbkError(err, 'AZBK_POINT_NOT_FOUND')) unreadable.push({ where: info.id, what: why(err) });
        continue;
      }
      if (keyId !== keys.keyId) {
        theirs++;
        continue;
      }
      ours++;
      try {
        roots.push({ id: info.id, tree: openManifest(keys, record.jobId, record.manifest, machine).tree });
      } catch (err) {
        problems.push({ where: info.id, what: why(err) });
        roots.push({ id: info.id, tree: null }); // counted, not walked
      }
    }
    if (!(theirs > 0 && ours === 0)) problems.push(...unreadable);
  }
  if (o.checked === undefined) {
    const ids = roots.flatMap((r) => (r.tree === null ? [] : [r.tree]));
    await readListings(session, keys, index, ids, (id, plain, tree) => trees.keep(id, plain, tree), () => trees.room);
  }
  for (const root of roots) {
    if (root.tree === null) continue;
    try {
      await walk(root.id, [], root.tree);
    } catch (err) {
      rethrowIfUnreachable(err);
      problems.push({ where: root.id, what: why(err) });
    }
  }
  const points = roots.length;

  let checkpoints = 0;
  for (const info of await session.listCheckpoints()) {
    let raw: Buffer;
    try {
      raw = await session.readCheckpoint(info.name);
    } catch (err) {
      rethrowIfUnreachable(err);
      problems.push({ where: info.name, what: why(err) });
      continue;
    }
    if (objectKeyId(raw) !== keys.keyId) continue;
    checkpoints++;
    const c = openCheckpoint(keys, info.jobId, info.seq, raw);
    if (c === null) {
      problems.push({ where: info.name, what: 'checkpoint is damaged or malformed' });
      continue;
    }
    for (const [p, f] of c.files) await checkContent(`${info.name}:${p}`, f.content);
    for (const p of c.partials) await checkContent(`${info.name}:${p.path} (partial)`, p.content);
  }
  return { points, checkpoints, trees: walked.size, blobs: checked.count, unindexed, usedPacks, damagedPacks, problems };
}

/**
 * Reads each pack of `packs` whole (it is read once, in ranges, one range after another) and checks
 * that its bytes hash to its id, which also covers its header and what no point needs; the data
 * chunks whose rows `used` marks are checked in workers on every core as their ranges come.
 * Returns the chunks that did not check out, with why, which of them were read and failed their
 * checks, and the packs whose bytes do not match their id.
 */
async function checkChunks(
  session: VaultSession,
  keys: VaultKeys,
  index: BlobIndex,
  used: Uint8Array,
  packs: ReadonlyMap<PackId, number>,
  onReading?: DataReading,
): Promise<{ damaged: Map<BlobId, string>; failed: Set<BlobId>; mismatched: Set<PackId> }> {
  const byPack = new Map<PackId, Chunk[]>([...packs.keys()].map((p) => [p, []]));
  for (let row = 0; row < used.length; row++) {
    if (used[row] === 0) continue;
    const { pack, offset, length } = index.at(row);
    byPack.get(pack)?.push({ row, offset, length });
  }
  const plans: (ChunkRange[] | undefined)[] = [];
  let total = 0;
  for (const [pack, list] of byPack) {
    const size = packs.get(pack)!;
    plans.push(wholePack(pack, size, readRanges(list, (x) => x, MAX_GAP, RANGE_ROOM)));
    total += size;
  }
  byPack.clear();

  const damaged = new Map<BlobId, string>();
  const failed = new Set<BlobId>();
  const mismatched = new Set<PackId>();
  let done = 0;
  onReading?.(total, () => done);
  if (plans.length === 0) return { damaged, failed, mismatched };
  const pool = checkPool(keys.master);
  /** Checks one range's chunks; false when it could not be read. */
  const check = async (r: ChunkRange, hash: Hash): Promise<boolean> => {
    const ids = r.items.map((c) => index.idAt(c.row));
    let read: { data: Buffer; inRoom: boolean };
    try {
      read = await pool.read(session, r.pack, r.start, r.end - r.start);
    } catch (err) {
      rethrowIfUnreachable(err);
      for (const id of ids) damaged.set(id, why(err));
      return false;
    }
    const { data, inRoom } = read;
    hash.update(data);
    if (ids.length === 0) {
      if (inRoom) pool.giveBack(data.buffer as ArrayBuffer);
      return true;
    }
    const layout = new Float64Array(2 * r.items.length);
    r.items.forEach((c, i) => {
      layout[2 * i] = c.offset - r.start;
      layout[2 * i + 1] = c.length;
    });
    for (const [i, what] of await pool.run(data, { ids, layout }, inRoom)) {
      damaged.set(ids[i]!, what);
      failed.add(ids[i]!);
    }
    return true;
  };
  try {
    // Each reader takes a pack and waits for each range's check before it reads the next: as many
    // readers as workers keep every core busy.
    await eachAtOnce(plans, Math.max(READERS, pool.workers), async (ranges) => {
      const hash = createHash('sha256');
      let whole = true;
      for (const r of ranges) {
        // A range that could not be read leaves the pack's hash unknown, not wrong; the ranges after it are still checked.
        whole = (await check(r, hash)) && whole;
        done += r.end - r.start;
      }
      const pack = ranges[0]!.pack;
      if (whole && hash.digest('hex') !== pack) mismatched.add(pack);
    });
  } finally {
    await pool.close();
  }
  return { damaged, failed, mismatched };
}

/**
 * `ranges` (of `pack`, in order) with ranges of no chunks between them and around them, so that
 * together they cover the pack's `size` bytes, none longer than a range buffer unless a chunk is.
 */
function wholePack(pack: PackId, size: number, ranges: readonly { start: number; end: number; items: Chunk[] }[]): ChunkRange[] {
  const out: ChunkRange[] = [];
  let at = 0;
  const fill = (to: number) => {
    for (; at < to; at = Math.min(to, at + RANGE_ROOM)) out.push({ pack, start: at, end: Math.min(to, at + RANGE_ROOM), items: [] });
  };
  for (const r of ranges) {
    fill(r.start);
    out.push({ pack, ...r });
    at = r.end;
  }
  fill(size);
  if (out.length === 0) out.push({ pack, start: 0, end: 0, items: [] }); // an empty pack: its hash is still checked
  return out;
}
