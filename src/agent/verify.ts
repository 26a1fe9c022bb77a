/**
 * Vault consistency check for one key family: every recovery point (of any machine) and every
 * checkpoint of this machine made with these keys must refer only to blobs that are indexed and
 * whose packs are stored. With `readData`, every blob is also read and decoded, which checks its
 * integrity; otherwise data blobs cost one `statPack` per pack. Tree blobs are always read, since
 * the walk needs their listings.
 *
 * Each distinct tree is walked once: a problem inside a subtree that several points share is
 * reported at the first place it was found. A blob or pack that is referenced but missing is
 * reported at every place that refers to it.
 */
import { decodeBlob } from '../core/blob.js';
import type { BlobId, PackId } from '../core/ids.js';
import { decodeIndex } from '../core/index-file.js';
import type { VaultKeys } from '../core/keys.js';
import { objectKeyId } from '../core/sealed-object.js';
import { decodeTree, type Tree } from '../core/tree.js';
import { isAzbkError, type ErrorCode } from '../shared/errors.js';
import type { VaultSession } from '../vault/api.js';
import { BlobIndex } from './blob-index.js';
import { openCheckpoint } from './checkpoint.js';
import { fromSegments } from './fspath.js';
import { openManifest } from './manifest.js';

export interface VerifyProblem {
  /** `<point id>:<path>`, `<checkpoint name>:<path>`, a bare point id or checkpoint name, or `index <name>` */
  readonly where: string;
  readonly what: string;
}

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
   * Indexed packs none of whose blobs any point or checkpoint refers to: leftovers of interrupted
   * jobs, which prune removes. Not a problem. (Packs no index lists are invisible to a session.)
   */
  readonly orphanPacks: number;
  /** packs that referenced blobs are in and the vault does not hold (see FileCache.addMissingPacks) */
  readonly missingPacks: readonly PackId[];
  readonly problems: readonly VerifyProblem[];
}

/** Errors that mean "could not ask the vault" (or not as this machine), not "the vault is inconsistent": never reported. */
function rethrowIfUnreachable(err: unknown): void {
  const codes: readonly ErrorCode[] = ['AZBK_VAULT_UNREACHABLE', 'AZBK_VAULT_NOT_FOUND', 'AZBK_CREDENTIALS_INVALID', 'AZBK_CREDENTIALS_EXPIRED'];
  if (isAzbkError(err) && codes.includes(err.code)) throw err;
}

const why = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The most a read of chunks reads ahead. */
const MAX_READ_AHEAD = 8 * 1024 * 1024;

/**
 * Reads chunks of packs with adaptive read-ahead: a read that starts in or at the end of what the
 * last one read doubles how far the next one reads ahead (up to MAX_READ_AHEAD), and what was read
 * ahead serves the reads that fall in it; any other read starts over at its own length. A walk
 * meets most chunks in the order a backup wrote them, so a pack is read in a few large reads, not
 * one per chunk; in any other order it reads at most about twice what it needs.
 */
function packReader(session: VaultSession): (pack: PackId, offset: number, length: number, size: number) => Promise<Buffer> {
  let window: { pack: PackId; start: number; data: Buffer } | null = null;
  let ahead = 0;
  return async (pack, offset, length, size) => {
    const w = window;
    if (w !== null && w.pack === pack && offset >= w.start && offset + length <= w.start + w.data.length) {
      return w.data.subarray(offset - w.start, offset - w.start + length);
    }
    // Past the window, or across its end: the reads go on through the pack.
    const sequential = w !== null && w.pack === pack && offset >= w.start && offset <= w.start + w.data.length;
    ahead = sequential ? Math.min(Math.max(ahead * 2, length), MAX_READ_AHEAD) : 0;
    const read = Math.min(Math.max(length, ahead), size - offset);
    const data = await session.readPack(pack, offset, read);
    window = { pack, start: offset, data };
    return data.subarray(0, length);
  };
}

/**
 * Checks the vault for `keys`' family; see the module comment. Inconsistencies are reported, not
 * thrown; it throws when the vault cannot be reached or listed.
 */
export async function verifyVault(session: VaultSession, keys: VaultKeys, opts: { readData?: boolean; missing?: readonly PackId[] } = {}): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  const index = new BlobIndex();
  const indexedPacks = new Set<PackId>();
  // Index files still name the blobs of packs the vault no longer holds (and of those a backup of
  // this machine found missing); a blob stored again is found where it is now.
  const gone = new Set([...(await session.listPrunedPacks()).gone, ...(opts.missing ?? [])]);
  for (const name of await session.listIndex()) {
    try {
      const data = await session.readIndex(name);
      if (objectKeyId(data) !== keys.keyId) continue;
      for (const p of decodeIndex(keys, name, data).packs) {
        if (gone.has(p.id)) continue;
        index.addPack(p.id, p.blobs);
        indexedPacks.add(p.id);
      }
    } catch (err) {
      rethrowIfUnreachable(err);
      problems.push({ where: `index ${name}`, what: why(err) });
    }
  }

  const packSizes = new Map<PackId, number | null>();
  /** `type:id` -> null when the blob is fine, else what is wrong with it */
  const readData = packReader(session);
  const checked = new Map<string, string | null>();
  const walked = new Set<BlobId>();
  const usedPacks = new Set<PackId>();

  /** Checks one blob once; returns its plaintext when it was read (trees, or data with readData). */
  const checkBlob = async (type: 'data' | 'tree', id: BlobId): Promise<{ problem: string | null; plain?: Buffer }> => {
    const key = `${type}:${id}`;
    const seen = checked.get(key);
    if (seen !== undefined) return { problem: seen };
    const loc = index.get(type, id);
    let problem: string | null = null;
    let plain: Buffer | undefined;
    if (loc === undefined) problem = `${type} blob ${id.slice(0, 12)} is not in the index`;
    else {
      usedPacks.add(loc.pack);
      if (!packSizes.has(loc.pack)) packSizes.set(loc.pack, await session.statPack(loc.pack));
      const size = packSizes.get(loc.pack) ?? null;
      const { offset, length } = loc.entry;
      if (size === null) problem = `pack ${loc.pack.slice(0, 12)} of ${type} blob ${id.slice(0, 12)} is missing`;
      else if (offset + length > size) problem = `pack ${loc.pack.slice(0, 12)} is shorter than its index says`;
      else if (type === 'tree' || opts.readData === true) {
        try {
          const sealed = type === 'data' ? await readData(loc.pack, offset, length, size) : await session.readPack(loc.pack, offset, length);
          plain = decodeBlob(keys, type, id, sealed);
        } catch (err) {
          rethrowIfUnreachable(err);
          problem = why(err);
        }
      }
    }
    checked.set(key, problem);
    return plain === undefined ? { problem } : { problem, plain };
  };

  /** Checks a file's chunk list; one problem per file naming how many chunks are bad. */
  const checkContent = async (where: string, content: readonly BlobId[]): Promise<void> => {
    let bad = 0;
    let first: string | null = null;
    for (const id of content) {
      const { problem } = await checkBlob('data', id);
      if (problem !== null) {
        bad++;
        first ??= problem;
      }
    }
    if (first !== null) problems.push({ where, what: `${bad} of ${content.length} chunks unreadable: ${first}` });
  };

  /** Walks the tree `id` found at `where`:`segs`; its subtrees only the first time it is met. */
  const walk = async (where: string, segs: readonly string[], id: BlobId): Promise<void> => {
    const at = `${where}:${fromSegments(segs)}`;
    if (walked.has(id)) {
      const problem = checked.get(`tree:${id}`);
      if (problem) problems.push({ where: at, what: problem });
      return;
    }
    walked.add(id);
    const { problem, plain } = await checkBlob('tree', id);
    if (problem !== null || plain === undefined) return void problems.push({ where: at, what: problem ?? 'tree not read' });
    let tree: Tree;
    try {
      tree = decodeTree(plain);
    } catch (err) {
      checked.set(`tree:${id}`, why(err));
      return void problems.push({ where: at, what: why(err) });
    }
    for (const node of tree.nodes) {
      const childSegs = [...segs, node.name];
      if (node.type === 'dir') await walk(where, childSegs, node.subtree);
      else if (node.type === 'file') await checkContent(`${where}:${fromSegments(childSegs)}`, node.content);
    }
  };

  let points = 0;
  for (const machine of await session.listMachines()) {
    for (const info of await session.listPoints(machine.id)) {
      try {
        const record = await session.readPoint(machine.id, info.id);
        if (record.keyId !== keys.keyId) continue;
        points++;
        const manifest = openManifest(keys, record.jobId, record.manifest);
        await walk(info.id, [], manifest.tree);
      } catch (err) {
        rethrowIfUnreachable(err);
        problems.push({ where: info.id, what: why(err) });
      }
    }
  }

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

  const orphanPacks = [...indexedPacks].filter((p) => !usedPacks.has(p)).length;
  const missingPacks = [...packSizes].filter(([, size]) => size === null).map(([p]) => p).sort();
  return { points, checkpoints, trees: walked.size, blobs: checked.size, packs: usedPacks.size, orphanPacks, missingPacks, problems };
}
