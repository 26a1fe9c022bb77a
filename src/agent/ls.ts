/**
 * Listing what a recovery point holds, to choose what to restore: its backed-up paths, a folder's
 * entries, or everything under a path. Only the point's folder listings are read (read ahead, a
 * few large reads at a time, when listing everything under a folder); no file data. A listing
 * that cannot be read is reported and the rest is still listed.
 */
import { decodeBlob } from '../core/blob.js';
import type { BlobId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { decodeTree, type Tree, type TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import type { PointInfo } from '../vault/api.js';
import type { BlobIndex } from './blob-index.js';
import type { AgentContext } from './context.js';
import { displayPath, toSegments } from './fspath.js';
import { readListings } from './listings.js';
import type { SkippedItem } from './manifest.js';
import type { PassphraseInput } from './passphrase.js';
import { entryAt, findMachine, keysFor, openPoint, pickPoint } from './points.js';
import { loadIndex } from './read-index.js';

/** Decoded folder listings kept in memory while listing. */
const MAX_CACHED_TREES = 10_000;

export interface ListOptions {
  readonly point: string;
  /** original absolute paths; none: the point's backed-up paths */
  readonly paths: readonly string[];
  /** everything under each folder, not only its entries */
  readonly recursive: boolean;
  readonly machine?: string;
  readonly passphrase?: PassphraseInput;
  /** each entry, in order: a folder before what it holds, names sorted */
  readonly onEntry: (e: ListedEntry) => void;
}

export interface ListedEntry {
  /** the original absolute path */
  readonly path: string;
  readonly type: 'file' | 'dir' | 'symlink';
  /** permission bits */
  readonly mode: number;
  /** modification time, ISO 8601 (UTC, to the millisecond) */
  readonly mtime: string;
  /** bytes, for a file */
  readonly size?: number;
  /** what a symbolic link points to */
  readonly target?: string;
}

export interface ListResult {
  readonly point: PointInfo;
  readonly machineName: string;
  readonly entries: number;
  /** folders whose listing could not be read: what they hold is not listed */
  readonly unreadable: readonly SkippedItem[];
}

/** Lists what a point of this or another machine holds (see ListOptions). */
export async function listPoint(ctx: AgentContext, o: ListOptions): Promise<ListResult> {
  const machine = await findMachine(ctx, o.machine);
  const families = await keysFor(ctx, machine.id, machine.id === ctx.registration.machineId ? undefined : o.passphrase);
  const info = pickPoint(await ctx.session.listPoints(machine.id), o.point);
  const { manifest, keys } = await openPoint(ctx, families, info);
  const reader = new Listings(ctx, keys, await loadIndex(ctx, keys, []), manifest.tree);
  // Every path asked for is found before anything is listed.
  const wanted = o.paths.length > 0 ? o.paths.map((p) => toSegments(p)) : manifest.paths.map((p) => [...p]);
  const found: { segs: readonly string[]; node: TreeNode }[] = [];
  for (const segs of wanted) found.push({ segs, node: await entryAt(manifest, segs, (x) => reader.nodeAt(x), 'list') });

  let entries = 0;
  const unreadable: SkippedItem[] = [];
  const emit = (segs: readonly string[], node: TreeNode) => {
    entries++;
    o.onEntry(entryOf(segs, node));
  };
  /** The entries of the folder `node` at `segs` (and, recursively, under them). */
  const under = async (segs: readonly string[], node: TreeNode): Promise<void> => {
    if (node.type !== 'dir') return;
    let tree: Tree;
    try {
      tree = await reader.tree(node.subtree);
    } catch (err) {
      if (!isAzbkError(err) || err.code !== 'AZBK_VAULT_CORRUPT') throw err;
      unreadable.push({ path: displayPath(segs), reason: err.message });
      return;
    }
    for (const child of tree.nodes) {
      const at = [...segs, child.name];
      emit(at, child);
      if (o.recursive) await under(at, child);
    }
  };
  if (o.recursive) await reader.readAhead(found.flatMap((f) => (f.node.type === 'dir' ? [f.node.subtree] : [])));
  for (const { segs, node } of found) {
    // A path asked for: a folder's entries, a file or link itself; the backed-up paths: themselves.
    if (o.paths.length === 0 || node.type !== 'dir') emit(segs, node);
    if (o.paths.length > 0 || o.recursive) await under(segs, node);
  }
  return { point: info, machineName: machine.name, entries, unreadable };
}

function entryOf(segs: readonly string[], node: TreeNode): ListedEntry {
  const base = { path: displayPath(segs), type: node.type, mode: node.mode, mtime: isoTime(node.mtime) };
  if (node.type === 'file') return { ...base, size: node.size };
  if (node.type === 'symlink') return { ...base, target: node.target };
  return base;
}

/** An entry's time (nanoseconds since the epoch, as a decimal string) as ISO 8601. */
function isoTime(ns: string): string {
  const ms = Number(BigInt(ns) / 1_000_000n);
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? new Date(0).toISOString() : d.toISOString();
}

/** A point's folder listings, read from the vault once each while there is room to keep them. */
class Listings {
  private readonly trees = new Map<string, Tree>();

  constructor(
    private readonly ctx: AgentContext,
    private readonly keys: VaultKeys,
    private readonly index: BlobIndex,
    private readonly root: BlobId,
  ) {}

  async tree(id: BlobId): Promise<Tree> {
    let t = this.trees.get(id);
    if (t === undefined) {
      const loc = this.index.get('tree', id);
      if (loc === undefined) throw new AzbkError('AZBK_VAULT_CORRUPT', `listing ${id.slice(0, 12)} is missing from the vault`);
      t = decodeTree(decodeBlob(this.keys, 'tree', id, await this.ctx.session.readPack(loc.pack, loc.entry.offset, loc.entry.length)));
      if (this.trees.size < MAX_CACHED_TREES) this.trees.set(id, t);
    }
    return t;
  }

  /** The entry at `segs` under the point's root, if any. */
  async nodeAt(segs: readonly string[]): Promise<TreeNode | undefined> {
    let tree = await this.tree(this.root);
    for (let i = 0; ; i++) {
      const node = tree.nodes.find((n) => n.name === segs[i]);
      if (i === segs.length - 1 || node === undefined) return node;
      if (node.type !== 'dir') return undefined;
      tree = await this.tree(node.subtree);
    }
  }

  /** Reads the listings under `roots` ahead of the walk, until there is no room to keep them (see listings.ts). */
  readAhead(roots: readonly BlobId[]): Promise<void> {
    return readListings(this.ctx.session, this.keys, this.index, roots, (id, _plain, tree) => {
      if (this.trees.size < MAX_CACHED_TREES) this.trees.set(id, tree);
    }, () => this.trees.size < MAX_CACHED_TREES);
  }
}
