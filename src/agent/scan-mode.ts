/**
 * How a backup finds what changed since the last one: by scanning everything ("full"), or by the
 * change journal `azbk watch` keeps ("optimized"), which it trusts only when the journal covers
 * the whole time since the last backup, of the same paths under the same exclusions, and a full
 * scan ran within a day. The job's result says which, and why. Pure: the caller reads the last
 * backup's mark from the cache, asks the watcher to catch up and reads the journal.
 */
import { excludesKey } from '../core/exclude.js';
import { dirtyFolders, underTree, type JournalMark } from './journal.js';

/** The local cache's key of the last completed backup's mark (see LastBackup). */
export const LAST_BACKUP = 'last-backup';

/**
 * A backup with the change journal still scans everything when the last full scan is older than
 * this: a watcher cannot see every change (a write through a hard link from outside the folders it
 * watches), and this bounds how long such a change can go unseen.
 */
export const FULL_SCAN_EVERY_MS = 24 * 60 * 60 * 1000;

/** What the last completed backup left for the next one (see JournalMark), and when the last full scan started. */
export interface LastBackup extends JournalMark {
  readonly lastFull: string | null;
  /** its exclusions (excludesKey): under others, the folders the journal saw no change in may not be what they were */
  readonly exclude: string;
  /** the own folders it left out (OwnFolders.key; null in a mark that does not say): the same holds of those */
  readonly own: string | null;
}

/** The last completed backup's mark, from the cache (null for none, or one this version did not write). */
export function lastBackup(v: unknown): LastBackup | null {
  const b = v as Partial<Record<keyof LastBackup, unknown>> | undefined;
  if (typeof b?.started !== 'string' || typeof b.offset !== 'number' || !Array.isArray(b.paths) || !b.paths.every((p) => typeof p === 'string')) return null;
  const run = typeof b.run === 'string' ? b.run : null;
  const lastFull = typeof b.lastFull === 'string' ? b.lastFull : null;
  // A mark written before exclusions were: none then.
  const exclude = typeof b.exclude === 'string' ? b.exclude : excludesKey([]);
  return { started: b.started, offset: b.offset, run, paths: b.paths as string[], lastFull, exclude, own: typeof b.own === 'string' ? b.own : null };
}

/** Whether a full scan that started at `lastFull` (ISO time) is too old to go without another, now. */
export function fullScanDue(lastFull: string | null, now: Date): boolean {
  const age = lastFull === null ? NaN : now.getTime() - Date.parse(lastFull);
  return !(age >= 0 && age < FULL_SCAN_EVERY_MS); // a clock set back counts as due
}

/** How the job found what to back up. */
export interface ScanMode {
  readonly mode: 'full' | 'optimized';
  readonly reason: string;
}

/** What the change journal says of the time since the last backup (see changesSince). */
export type JournalChanges = { readonly ok: true; readonly changed: ReadonlySet<string>; readonly trees: ReadonlySet<string> } | { readonly ok: false; readonly why: string };

/** Where a backup looks, and why. */
export interface ScanPlan {
  readonly scan: ScanMode;
  /** optimized: the changed paths and every folder above them, the only ones listed again; null for a full scan */
  readonly dirty: ReadonlySet<string> | null;
  /** optimized: folders moved or made since the last backup, examined whole */
  readonly movedTrees: ReadonlySet<string>;
}

export interface ScanFacts {
  /** the last completed backup's mark, null for none */
  readonly last: LastBackup | null;
  /** this backup's exclusions (excludesKey) and own folders (OwnFolders.key) */
  readonly exclude: string;
  readonly own: string;
  /** whether the watcher caught up when asked (see journalSync) */
  readonly sync: 'answered' | 'silent' | 'none';
  readonly journal: JournalChanges;
  /** the included paths, absolute */
  readonly included: readonly string[];
  readonly now: Date;
}

const FULL = (reason: string): ScanPlan => ({ scan: { mode: 'full', reason }, dirty: null, movedTrees: new Set() });

/** A full scan, unless the change journal covers everything since the last backup. */
export function planScan(f: ScanFacts): ScanPlan {
  const { last, journal } = f;
  if (last !== null && last.exclude !== f.exclude) return FULL('the exclusions changed since the last backup');
  if (last !== null && last.own !== f.own) return FULL("azbk's own folders (AZBK_HOME, the vault), which backups leave out, are not those of the last backup");
  if (!journal.ok) return FULL(journal.why);
  if (f.sync === 'silent') return FULL('the change journal did not answer in time (azbk watch is stopped or far behind)');
  if (fullScanDue(last?.lastFull ?? null, f.now)) return FULL('the last full scan is more than a day old (one a day finds what a change journal cannot see)');
  if (f.included.every((p) => underTree(p, journal.trees))) {
    return FULL('the change journal set up its watches anew since the last backup (a folder was removed or moved, or a hard link made)');
  }
  // The watcher leaves AZBK_HOME out (its own writes would be changes without end), as do backups.
  const moved = journal.trees.size > 0 ? `, ${journal.trees.size} folder(s) moved or made (examined whole)` : '';
  return {
    scan: { mode: 'optimized', reason: `the change journal covers the time since the last backup; ${journal.changed.size} path(s) changed${moved}` },
    dirty: dirtyFolders([...journal.changed, ...journal.trees]),
    movedTrees: journal.trees,
  };
}
