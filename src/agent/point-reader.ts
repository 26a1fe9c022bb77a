/**
 * Reading points back (restore, ls, find): their folder listings, each read once while there is room to
 * keep it, read ahead a few large reads at a time, and any blob past a pack the vault lost. The
 * index comes through this machine's cache when it can.
 */
import { decodeBlob } from '../core/blob.js';
import type { BlobId, PackId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { decodeTree, type Tree, type TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { BlobIndex } from './blob-index.js';
import type { AgentContext } from './context.js';
import { FileCache, recordMissingPacks } from './file-cache.js';
import { readListings } from './listings.js';
import { packMissing } from './restore-data.js';

/** Decoded folder listings kept in memory. */
const MAX_CACHED_TREES = 10_000;

export class PointReader {
  /** packs the index names that the vault does not hold (see leaveOut) */
  readonly missing = new Set<PackId>();
  private readonly trees = new Map<string, Tree>();

  private constructor(
    private readonly ctx: AgentContext,
    readonly keys: VaultKeys,
    private current: BlobIndex,
  ) {}

  /** A reader of the points made with `keys` (a listing shared by several is read once). */
  static async open(ctx: AgentContext, keys: VaultKeys): Promise<PointReader> {
    return new PointReader(ctx, keys, await loadIndex(ctx, keys, []));
  }

  /** The vault's index, without the packs found missing. */
  get index(): BlobIndex {
    return this.current;
  }

  /** Reads and opens a blob; one in a pack the vault lost is read where it was stored again, if it was. */
  async blob(type: 'data' | 'tree', id: BlobId): Promise<Buffer> {
    let loc = this.current.get(type, id);
    if (loc === undefined) {
      throw new AzbkError('AZBK_VAULT_CORRUPT', `blob ${id.slice(0, 12)} is missing from the vault`);
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
   * The vault does not hold these packs although its index names them: loads the index again
   * without them, so a blob stored again since is found where it is now. This machine's cache
   * remembers them too, so its next backup stores their data again instead of counting on it.
   */
  async leaveOut(packs: readonly PackId[]): Promise<void> {
    for (const p of packs) this.missing.add(p);
    try {
      recordMissingPacks(this.ctx.paths.home, this.ctx.registration.vaultId, this.keys.keyId, packs);
    } catch {
      // only saves the next backup a failure: the index below leaves them out all the same
    }
    this.current = await loadIndex(this.ctx, this.keys, [...this.missing]);
  }

  /** A folder listing. */
  async tree(id: BlobId): Promise<Tree> {
    let t = this.trees.get(id);
    if (t === undefined) {
      t = decodeTree(await this.blob('tree', id));
      // Kept while there is room: clearing the cache here would drop listings read ahead that
      // the walk has yet to reach, to be read again one at a time.
      if (this.trees.size < MAX_CACHED_TREES) this.trees.set(id, t);
    }
    return t;
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
   * until the cache is full; the walk then reads the rest as it goes.
   */
  readAhead(roots: readonly BlobId[]): Promise<void> {
    return readListings(this.ctx.session, this.keys, this.current, roots, (id, _plain, tree) => {
      if (this.trees.size < MAX_CACHED_TREES) this.trees.set(id, tree);
    }, () => this.trees.size < MAX_CACHED_TREES);
  }

  /** Lets the listings read so far go. */
  forget(): void {
    this.trees.clear();
  }
}

/**
 * The vault's index, through the local cache of the key family's index files (the backups made
 * here fill it); without the cache when it cannot be opened: reading a point back must not depend on it.
 * The blobs of the packs in `missing` are left out.
 */
async function loadIndex(ctx: AgentContext, keys: VaultKeys, missing: readonly PackId[]): Promise<BlobIndex> {
  let cache: FileCache | undefined;
  try {
    cache = FileCache.forVault(ctx.paths.home, ctx.registration.vaultId, keys.keyId);
  } catch {
    cache = undefined;
  }
  const opts = { leaveOut: missing };
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
