/**
 * The change journal: `azbk watch` records every path that changes under the policy's folders
 * (chokidar), so a backup can examine only what changed instead of scanning everything, as the
 * MARS agent does with the NTFS change journal. A backup trusts the journal only when it covers
 * the whole time since the last backup: the same run of the watcher (a random id per run, and on
 * Linux the process's own start time, so a pid used again by another process does not pass) was
 * ready when that backup started and is still running, it watches every folder being backed up,
 * that backup covered every one of them too, the watcher has reported no error, and it is not
 * setting up its watches anew. A file with several links is watched itself, so a write through
 * any of its names is seen; one met after the watches were set up (a link made since) has the
 * watches set up anew, which watches all its names. A watcher sees no write made through a hard
 * link outside what it watches: a full scan at least once a day (see scan-mode.ts) finds those. A
 * changes.log removed or replaced is made anew by the watcher as a new run (the next backup scans
 * everything); until then, a backup finds it missing or not the watcher's own, and scans.
 *
 * Files under AZBK_HOME/journal: `session.json` (the watcher's pid, start, paths, any error, and
 * whether it is rebuilding its watches) and `changes.log`, one JSON value per line: a string is a
 * changed path; `{"tree": path}` says anything under that folder may have changed (a folder was
 * made or moved there, or the watches were set up anew). A backup remembers the log's length
 * when it starts; the next one reads from there. This module is what backups read; the watcher
 * that writes it is journal-watcher.ts.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { excludesKey, type Excluded } from '../core/exclude.js';
import { fileIdentity } from '../shared/files.js';
import { sameProcessAlive } from '../shared/process.js';
import { slashed } from './folder-listing.js';

/** The exclusions of a watcher, or a backup, that leaves nothing out. */
const NO_EXCLUDES = excludesKey([]);

export interface JournalSession {
  readonly version: 1;
  readonly pid: number;
  /** this run of the watcher (random) */
  readonly run: string;
  /** the watcher process's identity (see processIdentity), or null where it cannot be known */
  readonly proc: string | null;
  /** when the watcher had set up every watch (events from then on are recorded) */
  readonly started: string;
  readonly paths: readonly string[];
  /** why the journal misses changes (a watch that could not be set up, say): backups scan everything until the watcher is restarted */
  readonly broken?: string;
  /** the watcher is setting up its watches anew: changes may go unseen until it is done */
  readonly rebuilding?: boolean;
  /**
   * the file the watcher writes changes.log through ("<dev>:<ino>"): another one at that path is
   * not its journal. Once lines were dropped (`base` above 0) it is LOG_TRIMMED instead, which no
   * file's identity equals, and the identity is in `file`: an azbk of an earlier version, which
   * knows nothing of `base` and would take offsets for places in the file, then finds the journal
   * replaced and scans everything.
   */
  readonly log?: string;
  /** the identity of the file the watcher writes (see `log`), in sessions written since lines can be dropped */
  readonly file?: string;
  /** what each watched path was when its watch was set ("<dev>:<ino>"): another one there is not watched */
  readonly roots?: Readonly<Record<string, string>>;
  /**
   * where changes.log begins in the journal (0 when absent): the bytes of the lines the watcher
   * dropped once backups had read them (see trimTo in journal-watcher.ts). Offsets backups remember
   * count from the journal's start, so they stay right across a trim.
   */
  readonly base?: number;
  /**
   * what the watcher leaves out (excludesKey of its patterns; absent in sessions of earlier
   * versions, which left nothing out): it does not watch what they match, so it covers only
   * backups that leave out the same, or a watcher that leaves out nothing
   */
  readonly exclude?: string;
  /**
   * azbk's own folders the watcher leaves out (OwnFolders.key; absent in sessions of earlier
   * versions): a backup whose own folders differ (registered with another vault since) would
   * take the old vault's folder, now backed up, for watched
   */
  readonly own?: string;
  /** the watcher answers requests in journal/sync (see journalSync): one that cannot be asked is not trusted */
  readonly sync?: boolean;
}

export function journalFiles(home: string) {
  const dir = path.join(home, 'journal');
  return { dir, session: path.join(dir, 'session.json'), changes: path.join(dir, 'changes.log'), sync: path.join(dir, 'sync') };
}

/** How long a backup waits for the watcher to answer (see journalSync). */
const SYNC_WAIT_MS = 5000;
export const SYNC_LINE = (nonce: string) => `{"sync":"${nonce}"}\n`;

/**
 * Makes sure the watcher has recorded every change made before now: a request file goes into
 * `journal/sync`, and the watcher answers with a line in changes.log once it sees it. On Linux
 * its events come through one queue, in order: by the time it sees the request it has recorded
 * every change before it. 'answered'; 'silent' when a watcher runs but did not answer in time
 * (stopped, or far behind: its journal cannot be trusted up to now); 'none' when there is no
 * watcher to ask (or one of an earlier version, whose session does not say `sync`). `drop`: the offset
 * the last backup read from (see JournalMark), before which the watcher may drop the lines
 * (see TRIM_BYTES): this backup reads from there, and a backup that fails leaves the mark as it
 * was, so only lines no backup will read again go.
 */
export async function journalSync(home: string, waitMs = SYNC_WAIT_MS, drop?: number): Promise<'answered' | 'silent' | 'none'> {
  const files = journalFiles(home);
  const s = readSession(home);
  if (s === null || s.broken !== undefined || !sameProcessAlive(s.pid, s.proc)) return 'none';
  const nonce = randomBytes(16).toString('hex');
  const request = path.join(files.sync, nonce);
  /** where the answer is looked for from, counted from the journal's start; the log read now, and where it begins */
  let from: number;
  let log = logOf(s);
  let base = s.base ?? 0;
  try {
    const st = fs.statSync(files.changes);
    // Not the watcher's journal (removed or replaced): its answer would go elsewhere, and the
    // backup does not read that journal anyway.
    if (log !== undefined && fileIdentity(st) !== log) return 'none';
    from = base + st.size;
  } catch {
    return 'none';
  }
  try {
    // Whole when it appears under its name: the watcher reads it at once.
    fs.writeFileSync(`${request}.tmp`, drop === undefined ? '' : JSON.stringify({ drop }), { flag: 'wx', mode: 0o600 });
    fs.renameSync(`${request}.tmp`, request);
  } catch {
    // A watcher that answers requests, but cannot be asked (its request folder gone): it cannot
    // say it is up to now.
    fs.rmSync(`${request}.tmp`, { force: true });
    return s.sync === true ? 'silent' : 'none';
  }
  const answer = Buffer.from(SYNC_LINE(nonce));
  try {
    const until = Date.now() + waitMs;
    let seen = Buffer.alloc(0);
    for (;;) {
      const fd = fs.openSync(files.changes, 'r');
      try {
        const st = fs.fstatSync(fd);
        // Trimmed meanwhile (the watcher names the new log in its session before it answers).
        const found = fileIdentity(st);
        const now = log === undefined ? null : readSessionIfMoved(home, log, found);
        if (now !== null) {
          log = found;
          base = now.base ?? 0;
          seen = Buffer.alloc(0);
        }
        const at = from - base;
        if (log !== undefined && found !== log) {
          // replaced, and not (yet) named by the session: looked at again
        } else if (at < 0) return 'silent';
        else if (st.size > at) {
          const more = Buffer.alloc(st.size - at);
          fs.readSync(fd, more, 0, more.length, at);
          // The tail of what was read before, in case the answer straddles two reads.
          seen = Buffer.concat([seen.subarray(Math.max(0, seen.length - answer.length)), more]);
          from = base + st.size;
          if (seen.includes(answer)) return 'answered';
        } else if (st.size < at) return 'silent'; // cut meanwhile: a new run, which the backup sees
      } finally {
        fs.closeSync(fd);
      }
      if (Date.now() >= until) return 'silent';
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } catch {
    return 'silent';
  } finally {
    fs.rmSync(request, { force: true });
  }
}

/** The session, when it names `found` as the log where it named `known` before (the watcher trimmed it); else null. */
function readSessionIfMoved(home: string, known: string, found: string): JournalSession | null {
  if (found === known) return null;
  const s = readSession(home);
  return s !== null && logOf(s) === found ? s : null;
}

function readSession(home: string): JournalSession | null {
  try {
    const s = JSON.parse(fs.readFileSync(journalFiles(home).session, 'utf8')) as JournalSession;
    if (s.version !== 1 || typeof s.pid !== 'number' || typeof s.started !== 'string' || !Array.isArray(s.paths)) return null;
    // A watcher of an earlier version wrote neither: still a watcher (a second one must not start),
    // but with no run for a backup to remember, its journal is not trusted.
    const read = { ...s, run: typeof s.run === 'string' ? s.run : '', proc: typeof s.proc === 'string' ? s.proc : null };
    if ((s.base !== undefined && !(Number.isSafeInteger(s.base) && s.base >= 0)) || (s.file !== undefined && typeof s.file !== 'string') || (s.exclude !== undefined && typeof s.exclude !== 'string') || (s.own !== undefined && typeof s.own !== 'string')) return { ...read, base: 0, broken: read.broken ?? 'its session is damaged' };
    return read;
  } catch {
    return null;
  }
}

/** The pid of a live watcher keeping this AZBK_HOME's journal, or null. */
export function watcherRunning(home: string): number | null {
  return watcherState(home)?.pid ?? null;
}

/** A live watcher keeping this AZBK_HOME's journal (see watcherRunning), and why backups do not trust it now, if they do not; or null. */
export function watcherState(home: string): { pid: number; broken?: string; rebuilding?: boolean } | null {
  const s = readSession(home);
  if (s === null || s.pid === process.pid || !sameProcessAlive(s.pid, s.proc)) return null;
  return { pid: s.pid, ...(s.broken === undefined ? {} : { broken: s.broken }), ...(s.rebuilding === true ? { rebuilding: true } : {}) };
}

/**
 * The run of the watcher that keeps the journal now, ready and without error, or null: a backup
 * remembers it, and the next one trusts the journal only if that run is still the one keeping it.
 */
export function journalRun(home: string): string | null {
  const s = readSession(home);
  return s !== null && s.run !== '' && s.broken === undefined && sameProcessAlive(s.pid, s.proc) ? s.run : null;
}

/** What a backup remembers for the next one: when it started, the journal's length and run then, and what it covered. */
export interface JournalMark {
  readonly started: string;
  readonly offset: number;
  readonly run: string | null;
  readonly paths: readonly string[];
}

/** What `log` says once lines were dropped (see JournalSession). */
const LOG_TRIMMED = 'trimmed';

/** The session's fields that name the log: its identity, and where it begins in the journal. */
export function logFields(identity: string, base: number): Pick<JournalSession, 'log' | 'file' | 'base'> {
  return { log: base === 0 ? identity : LOG_TRIMMED, file: identity, base };
}

/** The identity of the file a session's watcher writes changes.log through, if it says. */
const logOf = (s: JournalSession): string | undefined => s.file ?? s.log;

/**
 * The journal's current length, counted from its start (lines trimmed off included): where the
 * next backup will start reading. The session is read before the log: a trim in between gives a
 * smaller offset (the next backup reads a few lines twice), never a larger one.
 */
export function journalOffset(home: string): number {
  const base = readSession(home)?.base ?? 0;
  try {
    return base + fs.statSync(journalFiles(home).changes).size;
  } catch {
    return 0;
  }
}

const within = (p: string, root: string) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/**
 * Why the change journal does not cover the included path `p` within the watched path `root`, or
 * null when it does: the watcher records changes by the paths it watches, so not where `p` is
 * reached through a symbolic link between `root` and it (the link's target changes under other
 * paths, or outside the watched ones; `p` itself may be a link, which a backup stores as one),
 * nor where the exclusions `excluded` leave out `p` or a folder on the way (never watched; a
 * backup still takes a path it is told to include).
 */
function uncoveredBelow(p: string, root: string, excluded: Excluded | null): string | null {
  for (let d = p; d !== root && path.dirname(d) !== d; d = path.dirname(d)) {
    if (d !== p) {
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(d, { throwIfNoEntry: false });
      } catch {
        st = undefined;
      }
      if (st === undefined) return `the change journal cannot tell what ${d} is`;
      if (st.isSymbolicLink()) return `${p} is reached through a symbolic link (${d}), which the change journal does not follow`;
    }
    if (excluded !== null && excluded(slashed(d), path.basename(d))) return `the change journal does not watch ${d}, which the exclusions leave out`;
  }
  return null;
}

/**
 * The paths that changed since `since` (a backup's start time and journal offset), or why the
 * journal cannot be trusted for that interval. `exclude` is the backup's exclusions (see
 * excludesKey), `excluded` the same compiled.
 */
export function changesSince(
  home: string,
  since: JournalMark | null,
  include: readonly string[],
  exclude: string = NO_EXCLUDES,
  excluded: Excluded | null = null,
  /** the backup's own folders (OwnFolders.key) */
  own?: string,
): { ok: true; changed: Set<string>; trees: Set<string> } | { ok: false; why: string } {
  if (since === null) return { ok: false, why: "no earlier backup in this machine's local cache to compare with (the first backup, or the cache was made anew)" };
  const s = readSession(home);
  if (s === null) return { ok: false, why: 'no change journal (azbk watch is not running)' };
  if (!sameProcessAlive(s.pid, s.proc)) return { ok: false, why: 'the change journal stopped (azbk watch is not running)' };
  if (s.broken !== undefined) return { ok: false, why: `the change journal reported an error: ${s.broken}` };
  if (s.rebuilding === true) return { ok: false, why: 'the change journal is setting up its watches anew' };
  if (s.run === '') return { ok: false, why: 'azbk watch was started by an earlier version of azbk: restart it' };
  if (s.run !== since.run) return { ok: false, why: 'the change journal started after the last backup' };
  const uncovered = include.find((p) => !s.paths.some((root) => within(p, root)));
  if (uncovered !== undefined) return { ok: false, why: `the change journal does not watch ${uncovered}` };
  if (s.exclude !== undefined && s.exclude !== NO_EXCLUDES && s.exclude !== exclude) {
    return { ok: false, why: 'the change journal leaves out other paths than this backup (azbk watch was started with other exclusions: restart it)' };
  }
  // A watcher of an earlier version does not say.
  if (own !== undefined && s.own !== undefined && s.own !== own) {
    return { ok: false, why: "the change journal leaves out other folders of azbk's own (AZBK_HOME, the vault) than this backup: restart azbk watch" };
  }
  const unseen = include.find((p) => !since.paths.some((root) => within(p, root)));
  if (unseen !== undefined) return { ok: false, why: `the last backup did not include ${unseen}` };
  for (const p of include) {
    const why = uncoveredBelow(p, s.paths.find((root) => within(p, root))!, excluded);
    if (why !== null) return { ok: false, why };
  }
  const moved = Object.entries(s.roots ?? {}).find(([root, id]) => identityOf(root) !== id);
  if (moved !== undefined) return { ok: false, why: `${moved[0]}, which the change journal watches, was moved or replaced (or a folder above it)` };
  let text = '';
  try {
    const fd = fs.openSync(journalFiles(home).changes, 'r');
    try {
      const st = fs.fstatSync(fd);
      const log = logOf(s);
      if (log !== undefined && log !== fileIdentity(st)) return { ok: false, why: 'the change journal was removed or replaced' };
      const base = s.base ?? 0;
      if (since.offset < base) return { ok: false, why: 'the change journal dropped changes the last backup had not read' };
      const size = base + st.size;
      if (size < since.offset) return { ok: false, why: 'the change journal was reset since the last backup' };
      const buf = Buffer.alloc(size - since.offset);
      fs.readSync(fd, buf, 0, buf.length, since.offset - base);
      text = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // A running watcher made it when it started: one that is not there was removed since.
    return { ok: false, why: 'the change journal is missing' };
  }
  const changed = new Set<string>();
  const trees = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      return { ok: false, why: 'the change journal is damaged' };
    }
    if (typeof v === 'string') changed.add(v);
    else if (typeof (v as { tree?: unknown } | null)?.tree === 'string') trees.add((v as { tree: string }).tree);
    else if (typeof (v as { sync?: unknown } | null)?.sync !== 'string') return { ok: false, why: 'the change journal is damaged' };
  }
  return { ok: true, changed, trees };
}

/** Whether `p` is one of `trees` or lies under one. */
export function underTree(p: string, trees: ReadonlySet<string>): boolean {
  if (trees.size === 0) return false;
  for (let d = p; ; d = path.dirname(d)) {
    if (trees.has(d)) return true;
    if (path.dirname(d) === d) return false;
  }
}

/** The device and inode of `p` (not following a link at the end), or null when there is nothing there (or it cannot be looked at). */
export function identityOf(p: string): string | null {
  try {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    return st === undefined ? null : fileIdentity(st);
  } catch {
    return null;
  }
}


/** Every folder a changed path makes dirty: the path itself and all its ancestors. */
export function dirtyFolders(changed: Iterable<string>): Set<string> {
  const dirty = new Set<string>();
  for (const p of changed) {
    for (let d = p; !dirty.has(d); d = path.dirname(d)) {
      dirty.add(d);
      if (path.dirname(d) === d) break;
    }
  }
  return dirty;
}
