/**
 * Finding files and folders by name or path in recovery points: every point of a machine (or one),
 * oldest first, to see which points hold a file and in which version. Only folder listings are
 * read; a listing shared by several points is read once, and a folder found to hold no match is
 * not walked again in a later point.
 */
import type { BlobId, KeyId, PackId } from '../core/ids.js';
import { compileGlob } from '../core/glob.js';
import type { TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import type { PointInfo } from '../vault/api.js';
import type { AgentContext } from './context.js';
import { displayPath } from './fspath.js';
import { entryOf, type ListedEntry } from './ls.js';
import type { SkippedItem } from './manifest.js';
import type { PassphraseInput } from './passphrase.js';
import { PointReader } from './point-reader.js';
import { choosePoint } from './point-history.js';
import { findMachine, keysFor, openPoint } from './points.js';
import { byText } from '../shared/text-order.js';

export interface FindOptions {
  /** shell patterns (see core/glob.ts): one with a `/` is matched against the whole original path, another against the name */
  readonly patterns: readonly string[];
  readonly ignoreCase?: boolean;
  /** one point (as restore takes it); default: every point */
  readonly point?: string;
  readonly machine?: string;
  readonly passphrase?: PassphraseInput;
  /** each match, point by point (oldest first), a folder before what it holds */
  readonly onMatch: (point: PointInfo, e: ListedEntry) => void;
  /** folder listings kept in memory at most, each counting one plus its entries (see PointReader; tests set fewer) */
  readonly maxKept?: number;
}

/** Why a point is passed over (and named) rather than the search failed. */
const PASSED_OVER = new Set(['AZBK_POINT_NOT_FOUND', 'AZBK_VAULT_CORRUPT', 'AZBK_WRONG_PASSPHRASE']);

export interface FindResult {
  readonly machineName: string;
  /** points searched (not those passed over: see `failed`) */
  readonly points: number;
  readonly matches: number;
  /** points that could not be opened, and folders whose listing could not be read (`<point>:<path>`) */
  readonly failed: readonly SkippedItem[];
  readonly missingPacks: readonly PackId[];
  /** what to know about the point chosen (see choosePoint) */
  readonly warnings: readonly string[];
}

/** Searches the points of this or another machine (see FindOptions). */
export async function findInPoints(ctx: AgentContext, o: FindOptions): Promise<FindResult> {
  if (o.patterns.length === 0) throw new AzbkError('AZBK_USAGE', 'Give at least one pattern to find.');
  const windows = process.platform === 'win32';
  const matchers = o.patterns.map((p) => {
    // No name or path is empty: an empty pattern (a shell variable that was not set?) is a mistake.
    if (p === '') throw new AzbkError('AZBK_BAD_INPUT', 'An empty pattern matches no name or path.', { hint: "Give a name or a shell pattern such as '*.conf'." });
    const byPath = p.includes('/');
    // Original paths start with / (here): a path pattern that does not, nor with a star, matches nothing.
    if (byPath && !windows && !/^[/*]/.test(p)) {
      throw new AzbkError('AZBK_BAD_INPUT', `${p} names a path but does not start with / or *: it would match nothing.`, {
        hint: 'Original paths are absolute: start the pattern with / (a whole path) or **/ (anywhere).',
      });
    }
    return { test: compileGlob(p, o.ignoreCase === true), byPath };
  });
  const byPath = matchers.some((m) => m.byPath);
  const matches = (segs: readonly string[]): boolean => {
    const name = segs.at(-1)!;
    // On Windows the separator is \ (which POSIX names may hold, as a character like any other).
    const full = !byPath ? '' : windows ? displayPath(segs).replaceAll('\\', '/') : displayPath(segs);
    return matchers.some((m) => m.test(m.byPath ? full : name));
  };

  const machine = await findMachine(ctx, o.machine);
  const families = await keysFor(ctx, machine.id, o.passphrase);
  const listed = [...(await ctx.session.listPoints(machine.id))].sort((a, b) => byText(a.id, b.id));
  const chosen = o.point === undefined ? null : await choosePoint(ctx.paths, machine.id === ctx.registration.machineId, listed, o.point);
  const points = chosen === null ? listed : [chosen.point];

  const readers = new Map<KeyId, PointReader>();
  /** listings (by id, and by where they are when a pattern names a path) that hold no match */
  const barren = new Set<string>();
  const barrenKey = (id: BlobId, segs: readonly string[]) => (byPath ? `${id}\0${segs.join('\0')}` : id);
  const failed: SkippedItem[] = [];
  let found = 0;
  let searched = 0;
  let locked: unknown = null;
  for (const info of points) {
    let opened: Awaited<ReturnType<typeof openPoint>>;
    try {
      opened = await openPoint(ctx, families, machine, info);
    } catch (err) {
      // Removed since it was listed, damaged, or made with a key the passphrase does not open:
      // the others are still searched.
      if (!isAzbkError(err) || !PASSED_OVER.has(err.code)) throw err;
      if (err.code === 'AZBK_WRONG_PASSPHRASE') locked ??= err;
      failed.push({ path: info.id, reason: err.message });
      continue;
    }
    searched++;
    const { manifest, keys } = opened;
    let reader = readers.get(keys.keyId);
    if (reader === undefined) {
      readers.set(keys.keyId, (reader = await PointReader.open(ctx, keys, { maxKept: o.maxKept })));
      await reader.readAhead([manifest.tree]); // later points mostly share these listings
    }
    const r = reader;
    const emit = (segs: readonly string[], node: TreeNode) => {
      found++;
      o.onMatch(info, entryOf(segs, node));
    };
    /** Walks the listing `id` of the folder at `segs`; true when something in it matched. */
    const walk = async (id: BlobId, segs: readonly string[]): Promise<boolean> => {
      const key = barrenKey(id, segs);
      if (barren.has(key)) return false;
      let nodes: readonly TreeNode[];
      try {
        nodes = (await r.tree(id)).nodes;
      } catch (err) {
        if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT')) throw err;
        failed.push({ path: `${info.id}:${displayPath(segs)}`, reason: err.message });
        return true; // not known to be barren
      }
      // The subfolders still to walk: their listings not kept are read now, together.
      await r.ahead(nodes.flatMap((n) => (n.type === 'dir' && !barren.has(barrenKey(n.subtree, [...segs, n.name])) ? [n.subtree] : [])));
      let any = false;
      for (const node of nodes) {
        const at = [...segs, node.name];
        if (matches(at)) {
          emit(at, node);
          any = true;
        }
        if (node.type === 'dir' && (await walk(node.subtree, at))) any = true;
      }
      if (!any) barren.add(key);
      r.done(id);
      return any;
    };
    // From each backed-up path: the folders above them are only the way there.
    for (const segs of manifest.paths) {
      let node: TreeNode | undefined;
      try {
        node = await r.nodeAt(manifest.tree, segs);
      } catch (err) {
        if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT')) throw err;
        failed.push({ path: `${info.id}:${displayPath(segs)}`, reason: err.message });
        continue;
      }
      if (node === undefined) continue;
      if (matches(segs)) emit(segs, node);
      if (node.type === 'dir') await walk(node.subtree, segs);
    }
  }
  // A passphrase that opens none of them is wrong, not a partial search.
  if (searched === 0 && locked !== null) throw locked;
  const missing = new Set([...readers.values()].flatMap((r) => [...r.missing]));
  return { machineName: machine.name, points: searched, matches: found, failed, missingPacks: [...missing].sort(), warnings: chosen?.warnings ?? [] };
}
