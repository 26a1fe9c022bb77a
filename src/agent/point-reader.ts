/**
 * Reading points back (restore, ls, find): their folder listings, each read once while there is room to
 * keep it, read ahead a few large reads at a time, and any blob past a pack the vault lost. The
 * index comes through this machine's cache when it can.
 */
import { decodeBlob } from '../core/blob.js';
import type { BlobId, PackId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { decodeTree, wholeTree, type Tree, type TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { BlobIndex } from './blob-index.js';
import type { AgentContext } from './context.js';
import { FileCache, recordDamagedPacks, recordMissingPacks } from './file-cache.js';
import { readListings } from './listings.js';
import { packMissing } from './restore-data.js';

/**
 * Decoded folder listings kept in memory at most (by default), each counting one plus its entries
 * (an entry takes about half a KiB): a point of a million files in a few thousand folders would
 * otherwise be held whole. A kernel source tree's 5,100 listings of 84,000 entries fit.
 */
const MAX_KEPT = 100_000;
/**
 * Past what was read ahead, a listing a walk misses is read with those beneath it, up to this
 * share of the cache (as many as there is room for, counting that of listings the walk has
 * finished with).
 */
const MISS_SHARE = 0.25;

export interface ReaderOptions {
  /** listings kept at most, each counting one plus its entries (default 100,000; tests set fewer) */
  readonly maxKept?: number;
}

/** What a kept listing counts against the cache's room. */
const weight = (t: Tree) => 1 + t.nodes.length;

export class PointReader {
  /** packs the index names that the vault does not hold (see leaveOut) */
  readonly missing = new Set<PackId>();
  /** packs the vault holds in which a blob failed its checks (see leaveOut) */
  private readonly damaged = new Set<PackId>();
  private readonly trees = new Map<string, Tree>();
  /** what the kept listings count (see weight) */
  private held = 0;
  /** listings a read-ahead could not read: the walk reads each itself, and reports it */
  private readonly unreadable = new Set<BlobId>();
  /** listings found stored in parts while reading ahead: the walk reads each whole itself, once */
  private readonly inParts = new Set<BlobId>();
  /** not read ahead again: unreadable, or in parts */
  private readonly passed = (id: BlobId) => this.unreadable.has(id) || this.inParts.has(id);
  /** kept listings the walk has finished with (see done), the one finished longest ago first */
  private readonly finished = new Set<BlobId>();
  private readonly max: number;
  /** folder listings read so far (for progress) */
  private read = 0;
  /** a walk has read ahead (and not forgotten since): a listing it misses is read with those beneath it */
  private walking = false;

  private constructor(
    private readonly ctx: AgentContext,
    readonly keys: VaultKeys,
    private current: BlobIndex,
    opts: ReaderOptions,
  ) {
    this.max = Math.max(1, opts.maxKept ?? MAX_KEPT);
  }

  /** A reader of the points made with `keys` (a listing shared by several is read once). */
  static async open(ctx: AgentContext, keys: VaultKeys, opts: ReaderOptions = {}): Promise<PointReader> {
    return new PointReader(ctx, keys, await loadIndex(ctx, keys, [], []), opts);
  }

  /** The vault's index, without the packs found missing. */
  get index(): BlobIndex {
    return this.current;
  }

  /** Reads and opens a blob; one in a pack the vault lost is read where it was stored again, if it was. */
  async blob(type: 'data' | 'tree', id: BlobId): Promise<Buffer> {
    let loc = this.current.get(type, id);
    if (loc === undefined) {
      throw new AzbkError('AZBK_VAULT_CORRUPT', this.current.unindexed(`blob ${id.slice(0, 12)}`));
    }
    for (;;) {
      let sealed: Buffer;
      try {
        sealed = await this.ctx.session.readPack(loc.pack, loc.entry.offset, loc.entry.length);
      } catch (err) {
        // A pack the vault lost: the blob may have been stored again since, in another pack (the
        // index leaves each lost pack out, so this ends).
        if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT') || !(await packMissing(this.ctx.session, loc.pack))) throw err;
        await this.leaveOut([loc.pack]);
        loc = this.current.get(type, id);
        if (loc === undefined) throw err;
        continue;
      }
      return decodeBlob(this.keys, type, id, sealed);
    }
  }

  /**
   * The vault does not hold these packs although its index names them (`packs`), or holds them
   * damaged (`damaged`): loads the index again without the first, and with the blobs of the
   * others last, so a blob stored again since is found where it is now (and a whole one of a
   * damaged pack stored nowhere else, still there). This machine's cache remembers them too, so
   * its next backup stores their data again instead of counting on it.
   */
  async leaveOut(packs: readonly PackId[], damaged: readonly PackId[] = []): Promise<void> {
    for (const p of packs) this.missing.add(p);
    for (const p of damaged) this.damaged.add(p);
    try {
      if (packs.length > 0) recordMissingPacks(this.ctx.paths.home, this.ctx.registration.vaultId, this.keys.keyId, packs);
      if (damaged.length > 0) recordDamagedPacks(this.ctx.paths.home, this.ctx.registration.vaultId, this.keys.keyId, damaged);
    } catch {
      // only saves the next backup a failure: the index below leaves them out all the same
    }
    this.current = await loadIndex(this.ctx, this.keys, [...this.missing], [...this.damaged]);
  }

  /** The packs this reader found missing (its index leaves them out) or damaged (it loads them last). */
  get badPacks(): ReadonlySet<PackId> {
    return new Set([...this.missing, ...this.damaged]);
  }

  /**
   * A folder listing. Once a walk has read ahead (readAhead), one it misses is read together with
   * listings beneath it (see readMissed), so a walk past what was read ahead does not go on with
   * one request per folder; what that cannot read is read alone, and reported from there.
   */
  async tree(id: BlobId): Promise<Tree> {
    let t = this.trees.get(id);
    if (t === undefined && this.walking && !this.passed(id)) {
      await this.readMissed([id]);
      t = this.trees.get(id);
    }
    if (t === undefined) {
      // (A listing in parts is never read ahead: see listings.ts.)
      t = await wholeTree(id, decodeTree(await this.blob('tree', id)), async (part) => decodeTree(await this.blob('tree', part)));
      this.read++;
      // Kept while there is room: a listing read ahead that the walk has yet to reach is never
      // let go for another.
      if (this.held < this.max) this.keep(id, t);
    }
    return t;
  }

  /**
   * A walk enters a folder whose subfolders have these listings: those not kept are read now, with
   * those beneath them (see readMissed), rather than one at a time as the walk reaches them. A
   * promise only when there is something to read.
   */
  ahead(ids: readonly BlobId[]): Promise<void> | undefined {
    if (!this.walking) return undefined;
    const wanted = ids.filter((id) => !this.trees.has(id) && !this.passed(id));
    return wanted.length === 0 ? undefined : this.readMissed(wanted);
  }

  /**
   * The walk is past what was read ahead: reads the listings `ids` and those beneath them, up to
   * a quarter of the cache's worth, into the room there is and the room of listings the walk has
   * finished with (the one finished longest ago first). A listing read ahead that the walk has
   * yet to reach is never let go for another, so it is read once.
   */
  private readMissed(ids: readonly BlobId[]): Promise<void> | undefined {
    const batch = Math.max(1, Math.floor(this.max * MISS_SHARE));
    for (const id of this.finished) {
      if (this.held <= this.max - batch) break;
      this.finished.delete(id);
      this.drop(id);
    }
    const upTo = Math.min(this.max, this.held + batch);
    return upTo > this.held ? this.fill(ids, upTo) : undefined;
  }

  private keep(id: BlobId, t: Tree): void {
    this.trees.set(id, t);
    this.held += weight(t);
  }

  private drop(id: BlobId): void {
    const t = this.trees.get(id);
    if (t === undefined) return;
    this.trees.delete(id);
    this.held -= weight(t);
  }

  /**
   * The walk has finished with the listing `id`: it stays while there is room (a folder the same
   * as one walked already shares its listing), and makes room for the listings the walk has yet
   * to reach when there is not.
   */
  done(id: BlobId): void {
    if (!this.trees.has(id)) return;
    this.finished.delete(id);
    this.finished.add(id);
  }

  /** The item at `segs` (original path segments, at least one) in the point whose root listing is `root`, or undefined. */
  async nodeAt(root: BlobId, segs: readonly string[]): Promise<TreeNode | undefined> {
    let tree = await this.tree(root);
    for (let i = 0; ; i++) {
      const node = tree.nodes.find((n) => n.name === segs[i]);
      if (i === segs.length - 1 || node === undefined) return node;
      if (node.type !== 'dir') return undefined;
      tree = await this.tree(node.subtree);
    }
  }

  /**
   * Reads the folder listings under `roots` into the cache ahead of the walk (see listings.ts),
   * until it is full; past that, a listing the walk misses is read with those beneath it (see
   * tree and ahead).
   */
  readAhead(roots: readonly BlobId[]): Promise<void> {
    this.walking = true;
    return this.fill(roots, this.max);
  }

  /** Reads the listings under `roots` (theirs included) not kept yet, until `upTo` are kept. */
  private fill(roots: readonly BlobId[], upTo: number): Promise<void> {
    const room = () => this.held < upTo;
    return readListings(this.ctx.session, this.keys, this.current, roots, (id, _plain, tree) => {
      this.read++;
      if (room()) this.keep(id, tree);
    }, room, { have: (id) => this.trees.get(id), unreadable: this.passed, failed: (id) => this.unreadable.add(id), inParts: (id) => this.inParts.add(id) });
  }

  /** How many folder listings this reader has read from the vault. */
  get listingsRead(): number {
    return this.read;
  }

  /** Lets the listings read so far go. */
  forget(): void {
    this.trees.clear();
    this.held = 0;
    this.unreadable.clear();
    this.inParts.clear();
    this.finished.clear();
    this.walking = false;
  }
}

/**
 * The vault's index, through the local cache of the key family's index files (the backups made
 * here fill it); without the cache when it cannot be opened: reading a point back must not depend on it.
 * The blobs of the packs in `missing` are left out, those of `damaged` come last (see BlobIndex.load).
 */
async function loadIndex(ctx: AgentContext, keys: VaultKeys, missing: readonly PackId[], damaged: readonly PackId[]): Promise<BlobIndex> {
  let cache: FileCache | undefined;
  try {
    cache = FileCache.forVault(ctx.paths.home, ctx.registration.vaultId, keys.keyId);
  } catch {
    cache = undefined;
  }
  const opts = { leaveOut: missing, last: damaged };
  if (cache === undefined) return BlobIndex.load(ctx.session, keys, undefined, opts);
  try {
    const index = await BlobIndex.load(ctx.session, keys, cache, opts);
    index.saveSnapshot(cache); // the next command loads it as it is
    return index;
  } catch (err) {
    if (isAzbkError(err)) throw err;
    return BlobIndex.load(ctx.session, keys, undefined, opts); // the cache failed (read-only, damaged)
  } finally {
    try {
      cache.close();
    } catch {
      // nothing to keep
    }
  }
}

/** The listings of a folder's subfolders. */
export function subfolders(tree: Tree): BlobId[] {
  return tree.nodes.flatMap((n) => (n.type === 'dir' ? [n.subtree] : []));
}
