/**
 * Listing what a recovery point holds, to choose what to restore: its backed-up paths, a folder's
 * entries, or everything under a path. Only the point's folder listings are read (read ahead, a
 * few large reads at a time, when listing everything under a folder); no file data. A listing
 * that cannot be read is reported and the rest is still listed.
 */
import type { PackId } from '../core/ids.js';
import type { Tree, TreeNode } from '../core/tree.js';
import { isAzbkError } from '../shared/errors.js';
import type { PointInfo } from '../vault/api.js';
import type { AgentContext } from './context.js';
import { displayPath, toSegments } from './fspath.js';
import type { SkippedItem } from './manifest.js';
import type { PassphraseInput } from './passphrase.js';
import { PointReader, subfolders } from './point-reader.js';
import { choosePoint } from './point-history.js';
import { entryAt, findMachine, keysFor, openPoint, outermost } from './points.js';

export interface ListOptions {
  readonly point: string;
  /** original absolute paths; none: the point's backed-up paths */
  readonly paths: readonly string[];
  /** everything under each folder, not only its entries */
  readonly recursive: boolean;
  readonly machine?: string;
  readonly passphrase?: PassphraseInput;
  /** the point, once found (before any entry) */
  readonly onPoint?: (point: PointInfo, machineName: string) => void;
  /** each entry, in order: a folder before what it holds, names sorted */
  readonly onEntry: (e: ListedEntry) => void;
  /** folder listings kept in memory at most, each counting one plus its entries (see PointReader; tests set fewer) */
  readonly maxKept?: number;
}

export interface ListedEntry {
  /** the original absolute path */
  readonly path: string;
  readonly type: 'file' | 'dir' | 'symlink';
  /** permission bits */
  readonly mode: number;
  /** modification time, ISO 8601 (UTC, to the millisecond); null when out of that form's range */
  readonly mtime: string | null;
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
  readonly failed: readonly SkippedItem[];
  /** packs the index names that the vault does not hold, found on the way (their listings were read where a later backup stored them again) */
  readonly missingPacks: readonly PackId[];
  /** what to know about the point chosen (see choosePoint) */
  readonly warnings: readonly string[];
}

/** Lists what a point of this or another machine holds (see ListOptions). */
export async function listPoint(ctx: AgentContext, o: ListOptions): Promise<ListResult> {
  const machine = await findMachine(ctx, o.machine);
  const families = await keysFor(ctx, machine.id, o.passphrase);
  const listed = await ctx.session.listPoints(machine.id);
  const { point: info, warnings } = await choosePoint(ctx.paths, machine.id === ctx.registration.machineId, listed, o.point);
  const { manifest, keys } = await openPoint(ctx, families, machine, info, listed);
  const reader = await PointReader.open(ctx, keys, { maxKept: o.maxKept });
  // Every path asked for is found before anything is listed; one given twice, or inside another
  // one given, is listed once.
  const wanted = o.paths.length > 0 ? o.paths.map((p) => toSegments(p)) : manifest.paths.map((p) => [...p]);
  const asked: { segs: readonly string[]; node: TreeNode }[] = [];
  for (const segs of wanted) asked.push({ segs, node: await entryAt(info.id, manifest, segs, (x) => reader.nodeAt(manifest.tree, x), 'list') });
  const found = o.recursive ? outermost(asked) : asked.filter((a, i) => asked.findIndex((b) => sameSegs(a.segs, b.segs)) === i);
  o.onPoint?.(info, machine.name);

  let entries = 0;
  const failed: SkippedItem[] = [];
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
      failed.push({ path: displayPath(segs), reason: err.message });
      return;
    }
    if (o.recursive) await reader.ahead(subfolders(tree));
    for (const child of tree.nodes) {
      const at = [...segs, child.name];
      emit(at, child);
      if (o.recursive) await under(at, child);
    }
    reader.done(node.subtree);
  };
  if (o.recursive) await reader.readAhead(found.flatMap((f) => (f.node.type === 'dir' ? [f.node.subtree] : [])));
  for (const { segs, node } of found) {
    // A path asked for: a folder's entries, a file or link itself; the backed-up paths: themselves.
    if (o.paths.length === 0 || node.type !== 'dir') emit(segs, node);
    if (o.paths.length > 0 || o.recursive) await under(segs, node);
  }
  return { point: info, machineName: machine.name, entries, failed, missingPacks: [...reader.missing].sort(), warnings };
}

function sameSegs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/** What `ls` shows of the item `node` at `segs`. */
export function entryOf(segs: readonly string[], node: TreeNode): ListedEntry {
  const base = { path: displayPath(segs), type: node.type, mode: node.mode, mtime: isoTime(node.mtime) };
  if (node.type === 'file') return { ...base, size: node.size };
  if (node.type === 'symlink') return { ...base, target: node.target };
  return base;
}

/**
 * An entry's time (nanoseconds since the epoch, as a decimal string) as ISO 8601 (to the
 * millisecond, rounded down: before 1970 too), if its years have four digits.
 */
export function isoTime(ns: string): string | null {
  const n = BigInt(ns);
  const ms = n / 1_000_000n - (n < 0n && n % 1_000_000n !== 0n ? 1n : 0n);
  const d = new Date(Number(ms));
  const iso = Number.isNaN(d.getTime()) ? '' : d.toISOString();
  return /^\d{4}-/.test(iso) ? iso : null;
}
