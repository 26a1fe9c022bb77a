/**
 * The paths a backup was told to include, as a trie of path segments: nested ones merged, and
 * those it cannot keep left out with the reason (not found, azbk's own folders, below an included
 * link or a link in an included folder, left out by the exclusions in an included folder).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Excluded } from '../core/exclude.js';
import { errnoCode } from '../shared/files.js';
import { slashed } from './folder-listing.js';
import { toSegments } from './fspath.js';
import { ownFolderOf, type OwnFolders } from './own-folders.js';
import { refuseWholeRoot } from './policy.js';
import { skipReason } from './skip-reason.js';

/** A folder on the way down to the included paths; `included` where one of them is. */
export interface Trie {
  included: boolean;
  readonly children: Map<string, Trie>;
}

/** Where includedTrie says what it leaves out (`skip`) and what it keeps with a word (`warn`). */
export interface IncludedNotes {
  skip(path: string, reason: string): void;
  warn(path: string, reason: string): void;
}

/**
 * The trie of `include` (paths as given, made absolute). AZBK_BAD_INPUT when one is the root
 * folder whole (see refuseWholeRoot).
 */
export function includedTrie(include: readonly string[], own: OwnFolders, excluded: Excluded | null, notes: IncludedNotes): Trie {
  const root: Trie = { included: false, children: new Map() };
  const paths: string[] = [];
  const links: string[] = [];
  for (const p of include) {
    const abs = path.resolve(p);
    refuseWholeRoot([abs]);
    try {
      if (fs.lstatSync(abs).isSymbolicLink()) {
        notes.warn(abs, 'a link: the link itself is backed up, not what it points to (include its target for that)');
        links.push(abs);
      }
    } catch (err) {
      notes.skip(abs, errnoCode(err) === 'ENOENT' ? 'not found' : skipReason(err));
      continue;
    }
    paths.push(abs);
  }
  for (const abs of paths) {
    // An included link is stored as a link, whatever it points to.
    const ownFolder = links.includes(abs) ? undefined : ownFolderOf(abs, own);
    if (ownFolder !== undefined) {
      notes.skip(abs, `${ownFolder === abs ? 'it is' : `it is in ${ownFolder}, which is`} azbk's own folder (AZBK_HOME or the vault), which backups leave out`);
      continue;
    }
    // Below an included link, which is stored as a link, nothing can be kept: said, not dropped.
    const link = links.find((l) => isBelow(abs, l));
    if (link !== undefined) {
      notes.skip(abs, `below ${link}, an included link that is backed up as a link (include the folder it points to instead)`);
      continue;
    }
    // Nor below a link inside another included folder (its walk stores the link as a link), nor
    // what that walk leaves out.
    const outer = paths.find((o) => isBelow(abs, o));
    const inner = outer === undefined ? undefined : linkBetween(outer, abs);
    if (inner !== undefined) {
      notes.skip(abs, `below ${inner}, a link in the included ${outer} that is backed up as a link (include the folder it points to instead)`);
      continue;
    }
    const left = outer === undefined || excluded === null ? undefined : excludedBetween(excluded, outer, abs);
    if (left !== undefined) {
      notes.skip(abs, `${left === abs ? 'it is' : `below ${left}, which is`} left out by the exclusions, in the included ${outer}`);
      continue;
    }
    let node = root;
    for (const seg of toSegments(abs)) {
      let next = node.children.get(seg);
      if (next === undefined) {
        next = { included: false, children: new Map() };
        node.children.set(seg, next);
      }
      node = next;
    }
    node.included = true;
  }
  return root;
}

/** The included paths of `trie` below `segs`, as segments, outermost only. */
export function collectIncluded(trie: Trie, segs: readonly string[] = []): string[][] {
  const out: string[][] = [];
  for (const [name, child] of trie.children) {
    if (child.included) out.push([...segs, name]);
    else out.push(...collectIncluded(child, [...segs, name]));
  }
  return out;
}

/** The paths from below `outer` down to `abs` (`abs` last), top first. */
function pathsBetween(outer: string, abs: string): string[] {
  const down: string[] = [];
  for (let d = abs; d !== outer && isBelow(d, outer); d = path.dirname(d)) down.unshift(d);
  return down;
}

/** The first folder on the way from `outer` down to `abs` (both left out) that is a link, if any. */
function linkBetween(outer: string, abs: string): string | undefined {
  return pathsBetween(outer, abs).slice(0, -1).find((d) => {
    try {
      return fs.lstatSync(d).isSymbolicLink();
    } catch {
      return false; // gone meanwhile: the walk says so
    }
  });
}

/** The first path on the way from `outer` down to `abs` (`abs` included) that `excluded` leaves out, if any. */
function excludedBetween(excluded: Excluded, outer: string, abs: string): string | undefined {
  return pathsBetween(outer, abs).find((d) => excluded(slashed(d), path.basename(d)));
}

/** Whether `p` is inside the folder `dir` (not `dir` itself). */
function isBelow(p: string, dir: string): boolean {
  const a = toSegments(p);
  const d = toSegments(dir);
  return a.length > d.length && d.every((seg, i) => a[i] === seg);
}
