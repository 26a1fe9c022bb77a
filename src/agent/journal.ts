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
 * link outside what it watches: a full scan at least once a day (see backup.ts) finds those. A
 * changes.log removed or replaced is made anew by the watcher as a new run (the next backup scans
 * everything); until then, a backup finds it missing or not the watcher's own, and scans.
 *
 * Files under AZBK_HOME/journal: `session.json` (the watcher's pid, start, paths, any error, and
 * whether it is rebuilding its watches) and `changes.log`, one JSON value per line: a string is a
 * changed path; `{"tree": path}` says anything under that folder may have changed (a folder was
 * made or moved there, or the watches were set up anew). A backup remembers the log's length
 * when it starts; the next one reads from there.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isOwnEntry, ownFolders as ownFoldersOf, type OwnFolders } from './own-folders.js';
import { compileExcludes, excludesKey, type Excluded } from '../core/exclude.js';
import { AzbkError } from '../shared/errors.js';
import { fileIdentity, makeFoldersSync, writeFileAtomic } from '../shared/files.js';
import { processIdentity, sameProcessAlive } from '../shared/process.js';
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
   * dropped once backups had read them (see trimming in runWatcher). Offsets backups remember
   * count from the journal's start, so they stay right across a trim.
   */
  readonly base?: number;
  /**
   * what the watcher leaves out (excludesKey of its patterns; absent in sessions of earlier
   * versions, which left nothing out): it does not watch what they match, so it covers only
   * backups that leave out the same, or a watcher that leaves out nothing
   */
  readonly exclude?: string;
  /** the watcher answers requests in journal/sync (see journalSync): one that cannot be asked is not trusted */
  readonly sync?: boolean;
}

export function journalFiles(home: string) {
  const dir = path.join(home, 'journal');
  return { dir, session: path.join(dir, 'session.json'), changes: path.join(dir, 'changes.log'), sync: path.join(dir, 'sync') };
}

/** How long a backup waits for the watcher to answer (see journalSync). */
const SYNC_WAIT_MS = 5000;
const SYNC_LINE = (nonce: string) => `{"sync":"${nonce}"}\n`;

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
    if ((s.base !== undefined && !(Number.isSafeInteger(s.base) && s.base >= 0)) || (s.file !== undefined && typeof s.file !== 'string') || (s.exclude !== undefined && typeof s.exclude !== 'string')) return { ...read, base: 0, broken: read.broken ?? 'its session is damaged' };
    return read;
  } catch {
    return null;
  }
}

/** The pid of a live watcher keeping this AZBK_HOME's journal, or null. */
export function watcherRunning(home: string): number | null {
  const s = readSession(home);
  return s !== null && s.pid !== process.pid && sameProcessAlive(s.pid, s.proc) ? s.pid : null;
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
function logFields(identity: string, base: number): Pick<JournalSession, 'log' | 'file' | 'base'> {
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
): { ok: true; changed: Set<string>; trees: Set<string> } | { ok: false; why: string } {
  if (since === null) return { ok: false, why: 'no earlier backup on this machine to compare with' };
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

/**
 * The read lines of changes.log (see journalSync's `drop`) are dropped once they come to this
 * much: a watcher that runs for months keeps about this much, the lines the last backup read (the
 * offset a backup sends is where the one before it read from), and what no backup has read yet.
 */
const TRIM_BYTES = 1024 * 1024;

/** The offset a sync request asks the watcher to drop the lines before (its text: `{"drop": N}`), or null. */
function dropOf(asked: string): number | null {
  try {
    const v = JSON.parse(asked) as { drop?: unknown } | null;
    return typeof v?.drop === 'number' && Number.isSafeInteger(v.drop) && v.drop >= 0 ? v.drop : null;
  } catch {
    return null;
  }
}

/**
 * Copies the bytes of the log `file` (open as `log`) from `from` to `to` into a new file, which
 * then takes its place; returns that file, open for appending, or null when nothing changed
 * (the log was replaced meanwhile, is shorter than `to`, or the copy failed).
 */
function tailCopy(file: string, log: number, from: number, to: number): number | null {
  const temp = `${file}.new`;
  let next: number | null = null;
  let done = false;
  try {
    fs.rmSync(temp, { force: true });
    next = fs.openSync(temp, 'ax', 0o600);
    const src = fs.openSync(file, 'r');
    try {
      if (fileIdentity(fs.fstatSync(src)) !== fileIdentity(fs.fstatSync(log))) return null;
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, to - from + 1));
      for (let at = from; at < to; ) {
        const n = fs.readSync(src, buf, 0, Math.min(buf.length, to - at), at);
        if (n === 0) return null;
        for (let put = 0; put < n; ) put += fs.writeSync(next, buf, put, n - put);
        at += n;
      }
    } finally {
      fs.closeSync(src);
    }
    fs.renameSync(temp, file);
    done = true;
    return next;
  } catch {
    return null;
  } finally {
    if (!done) {
      if (next !== null) fs.closeSync(next);
      fs.rmSync(temp, { force: true });
    }
  }
}

/** How often the watcher checks that changes.log is still the file it writes. */
const LOG_CHECK_MS = 2000;
/** Quiet time after a folder left its place before the watches are set up anew. */
const RESTART_QUIET_MS = 500;
/** Longest a restart of the watches may take before the journal is marked broken. */
const RESTART_LIMIT_MS = 10 * 60 * 1000;

/** How long after a folder appears its watches are checked (see checkWatchesSoon). */
const CHECK_WATCHES_MS = 1500;

/** Of `dirs`, those not inside another one of them. */
function outermostOf(dirs: Iterable<string>): string[] {
  const all = new Set(dirs);
  return [...all].filter((d) => {
    for (let p = path.dirname(d); p !== path.dirname(p); p = path.dirname(p)) if (all.has(p)) return false;
    return true;
  });
}

/** `top` and every folder beneath it (not through links), but for `skip`'s; what cannot be listed is passed over. */
function foldersUnder(top: string, skip: (abs: string) => boolean): string[] {
  const out: string[] = [];
  const todo = [top];
  for (let dir = todo.pop(); dir !== undefined; dir = todo.pop()) {
    if (skip(dir)) continue;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    out.push(dir);
    for (const e of entries) if (e.isDirectory()) todo.push(path.join(dir, e.name));
  }
  return out;
}

/** How many events the kernel queues for an inotify watcher before it drops the rest (Linux), or null. */
function inotifyQueueLimit(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    const n = Number(fs.readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_INOTIFY_QUEUE;
  } catch {
    return DEFAULT_INOTIFY_QUEUE;
  }
}

/** The kernel's default for max_queued_events. */
const DEFAULT_INOTIFY_QUEUE = 16_384;

/** The device and inode of `p` (not following a link at the end), or null when there is nothing there (or it cannot be looked at). */
function identityOf(p: string): string | null {
  try {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    return st === undefined ? null : fileIdentity(st);
  } catch {
    return null;
  }
}

/** A folder, not a link to one. */
function isRealDirectory(p: string): boolean {
  try {
    return fs.lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The paths AZBK_HOME `home` has: the one given, its real one, and the one it has below each of
 * `roots` (the folders watched or backed up, as given) whose real path holds it. A root reached
 * through a link names home by that root's path, not by either of the others.
 */
export function homeSpellings(home: string, roots: Iterable<string>): string[] {
  const out = new Set([path.resolve(home)]);
  let real: string;
  try {
    real = fs.realpathSync(home);
  } catch {
    return [...out]; // made later, under the name given
  }
  out.add(real);
  for (const root of roots) {
    try {
      const rel = path.relative(fs.realpathSync(root), real);
      if (!rel.startsWith('..') && !path.isAbsolute(rel)) out.add(path.join(path.resolve(root), rel));
    } catch {
      // a root that is not there holds nothing
    }
  }
  return [...out];
}

/** Whether a path is one of `folders` (AZBK_HOME, the embedded vault) or in one, by any of its paths (see homeSpellings). */
function ownPaths(folders: readonly string[], roots: Iterable<string>): (abs: string) => boolean {
  const list = [...roots];
  const homes = folders.flatMap((f) => homeSpellings(f, list));
  return (abs) => homes.some((h) => abs === h || abs.startsWith(h.endsWith(path.sep) ? h : h + path.sep));
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

/**
 * Watches `paths` until `signal` aborts, recording changes in the journal. Resolves when the
 * watcher has stopped; `onReady` runs once every watch is set up.
 */
export async function runWatcher(
  home: string,
  paths: readonly string[],
  exclude: readonly string[],
  signal: AbortSignal,
  onReady: () => void,
  /** azbk's own folders (AZBK_HOME, the embedded vault), left out; default AZBK_HOME alone */
  ownFolders: OwnFolders = ownFoldersOf(home, ''),
): Promise<void> {
  const files = journalFiles(home);
  // What backups leave out is neither watched nor recorded (a build or cache folder that churns
  // would cost watches and fill the log for nothing); the session says which patterns, and only
  // backups that leave out the same trust it.
  const excluded = compileExcludes(exclude);
  /** Opens changes.log for appending, made (owner-only) if it is not there. */
  const openLog = () => {
    makeFoldersSync(files.dir, 0o700);
    return fs.openSync(files.changes, 'a', 0o600);
  };
  let log = openLog();
  /** how long changes.log is, by what this watcher found and wrote: shorter means it was cut (see logCheck) */
  let logSize = fs.fstatSync(log).size;
  const write = (line: string) => {
    logSize += fs.writeSync(log, line);
  };
  // chokidar is loaded only by the watcher, not by every backup that reads the journal.
  const { watch } = await import('chokidar');
  // Folders only: a folder's watch reports every change to the entries in it (the 'raw' events),
  // so files need no watch of their own. One watch per file would take hundreds of MiB and, on a
  // big tree, more inotify watches than the system allows. Files with more than one link are the
  // exception: a write through another link shows only on a watch of the file itself.
  const roots = new Set(paths.map((p) => path.resolve(p)));
  const watchedFiles = new Set([...roots].filter((p) => !isDirectory(p)));
  let session: JournalSession | null = null;
  // AZBK_HOME's changes are azbk's own (the journal itself among them: watched, each line written
  // would be another change, without end), as are the embedded vault's. A watched folder that
  // holds them leaves them out, as backups do.
  const own = ownPaths(ownFolders.paths, roots);
  // By their paths, and as folders: a bind mount shows them by another path (its writes would
  // otherwise be recorded without end, the journal's own among them).
  const ownDir = (abs: string) => isOwnEntry(abs, ownFolders);
  /** left out by the exclusions (a watched path itself never is, as a backup's included path is not) */
  const leftOut = (abs: string) => excluded !== null && !roots.has(abs) && excluded(slashed(abs), path.basename(abs));
  const record = (p: string) => {
    const abs = path.resolve(p);
    if (!own(abs) && !leftOut(abs)) write(JSON.stringify(abs) + '\n');
  };
  const recordTree = (p: string) => write(JSON.stringify({ tree: path.resolve(p) }) + '\n');

  // session.json is rewritten in order, one write at a time.
  let sessionWrite: Promise<void> = Promise.resolve();
  /** the last write of session.json failed */
  let sessionUnsaved = false;
  /** set once the watcher stops: the session is removed then, and never written again */
  let closing = false;
  const saveSession = (next: JournalSession) => {
    if (closing) return;
    session = next;
    sessionWrite = sessionWrite.then(() => writeFileAtomic(files.session, JSON.stringify(next), { mode: 0o600 })).then(
      () => void (sessionUnsaved = false),
      () => void (sessionUnsaved = true),
    );
  };
  const markBroken = (why: string) => {
    if (session !== null && session.broken === undefined) saveSession({ ...session, broken: why });
  };
  let rebuilding = false;
  const setRebuilding = (on: boolean) => {
    rebuilding = on;
    if (session !== null && (session.rebuilding === true) !== on) saveSession({ ...session, rebuilding: on });
  };
  let removedRoot: string | null = null;
  let endWatch: () => void = () => undefined;
  const rootRemoved = new Promise<void>((resolve) => (endWatch = resolve));
  // A watch follows the folder (or file) it was set on: one removed, or replaced by another at
  // the same path, leaves the journal blind there.
  const rootIds = new Map([...roots].map((r) => [r, identityOf(r)]));
  /** Whether watched path `root` is no longer what its watch is on: moved or replaced, itself or a folder above it. */
  const rootMoved = (root: string) => identityOf(root) !== rootIds.get(root);
  // A watched folder itself is gone: chokidar would go on watching its parent for it, and the
  // journal would cover nothing there. The watcher stops and says so.
  const rootGone = (root: string) => {
    if (removedRoot !== null) return;
    removedRoot = root;
    endWatch();
  };
  /**
   * folders the watches have covered since they were set up, removed ones included: chokidar may
   * report a folder's removal before the rename that puts another in its place, and that folder
   * may still get the old one's watches
   */
  const knownDirs = new Set<string>();
  /** the watches are being set up (and report what is there as they go) */
  let settingUp = true;
  const start = () => {
    knownDirs.clear();
    settingUp = true;
    const w = watch([...paths], {
      ignoreInitial: true,
      followSymlinks: false,
      persistent: true,
      ignored: (p: string, stats?: fs.Stats) => {
        const abs = path.resolve(p);
        if (own(abs) || leftOut(abs)) return true;
        if (stats === undefined) return false;
        if (stats.isDirectory()) {
          if (ownDir(abs)) return true;
          knownDirs.add(abs);
          return false;
        }
        if (roots.has(abs) || (stats.isFile() && stats.nlink > 1)) {
          // A file with several links met once the watches are set up: a link made since, or such
          // a file moved here. Its other names were not watched, and a write through one of them
          // would go unseen: the watches are set up anew, which watches them all (see newLink).
          if (!settingUp && !watchedFiles.has(abs) && !roots.has(abs)) newLink(abs);
          watchedFiles.add(abs);
          return false;
        }
        return true;
      },
    });
    w.on('all', (event, p) => {
      record(p);
      const abs = path.resolve(p);
      if (event === 'addDir') {
        knownDirs.add(abs);
        checkWatchesSoon(abs);
      }
      if ((event === 'unlinkDir' || event === 'unlink') && roots.has(abs)) rootGone(abs);
    });
    w.on('raw', (event: unknown, name: unknown, details: unknown) => {
      countBurst();
      const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
      if (typeof watched !== 'string') return;
      // The entry that changed in the watched folder; the watched path itself when it is a file, or
      // when the platform does not say which entry changed.
      const inFolder = typeof name === 'string' && name !== '' && !watchedFiles.has(path.resolve(watched));
      const p = inFolder ? path.join(watched, name) : watched;
      record(p);
      const watchedAbs = path.resolve(watched);
      if (roots.has(watchedAbs) && rootMoved(watchedAbs)) rootGone(watchedAbs);
      // A folder made or moved here: the next backup examines all of it, whatever the watches
      // inside it saw while they were being set up. If the place was taken by a folder with
      // watches until now, those may be taken for the newcomer's (see restartSoon).
      if (inFolder && event === 'rename' && !leftOut(path.resolve(p)) && isRealDirectory(p)) {
        recordTree(p);
        checkWatchesSoon(p);
        if (knownDirs.has(p)) restartSoon();
      }
    });
    w.on('error', (err) => markBroken((err as Error).message));
    const ready = new Promise<void>((resolve) =>
      w.once('ready', () => {
        settingUp = false;
        // A folder made while chokidar set up (between its listing of a folder and that folder's
        // watch) is in no listing and has no watch: the whole tree is looked through once.
        for (const r of roots) if (isDirectory(r)) checkWatchesSoon(r);
        resolve();
      }),
    );
    return { w, ready };
  };

  // chokidar lists a new folder before it sets its watch: a subfolder made in between (a tree
  // copied in, folders made in quick succession) is never listed, never watched, and changes in it
  // go unseen for good. So each new folder is looked through once things have settled (chokidar
  // lists a folder again at most once a second): a folder in it that has no watch gets one, and
  // the next backup examines it whole (what changed in it until now was not seen).
  const unchecked = new Set<string>();
  let checkTimer: NodeJS.Timeout | null = null;
  const checkWatchesSoon = (dir: string) => {
    unchecked.add(path.resolve(dir));
    checkTimer ??= setTimeout(checkWatches, CHECK_WATCHES_MS);
  };
  const checkWatches = () => {
    checkTimer = null;
    if (stopping()) return;
    if (settingUp) {
      // all set up anew meanwhile: looked at once that is done
      checkTimer = setTimeout(checkWatches, CHECK_WATCHES_MS);
      return;
    }
    const tops = outermostOf(unchecked);
    unchecked.clear();
    const watched = current.w.getWatched();
    for (const top of tops) {
      for (const dir of foldersUnder(top, (p) => own(p) || ownDir(p) || leftOut(p))) {
        if (Object.hasOwn(watched, dir)) continue;
        current.w.add(dir);
        recordTree(dir);
        checkWatchesSoon(dir);
      }
    }
  };

  // The kernel holds at most so many events for the watcher to read; past that it drops the rest,
  // and neither Node nor chokidar says so. The events queued are all read in one turn of the event
  // loop: a turn that brings that many means some were dropped. The watches are then set up anew
  // (which also watches any folder made meanwhile), and the next backup examines everything. Not
  // every event of the queue is counted (those of watches closed meanwhile, the overflow's own),
  // so a turn that comes within a sixteenth of the limit counts as full.
  const queueLimit = inotifyQueueLimit();
  let burst = 0;
  const countBurst = () => {
    if (queueLimit === null || burst++ > 0) return;
    setImmediate(() => {
      const full = burst >= queueLimit - Math.floor(queueLimit / 16);
      burst = 0;
      if (full && !stopping()) restartSoon();
    });
  };

  // When a folder takes the place of another (a swap by renames, or a folder removed and made
  // again at once), chokidar can keep the old folder's watches for that path: they report the
  // old folder's changes under the new path, and the newcomer's subfolders go unwatched. So the
  // watches are set up anew, once things are quiet for a moment; from before that until it is
  // done the journal says to examine everything (the next backup is a full scan).
  let current = start();
  let restartTimer: NodeJS.Timeout | null = null;
  let restarting: Promise<void> | null = null;
  /** restarts whose quiet time is over, not yet done */
  let queued = 0;
  /** set once the first watcher is ready; a restart asked for before then waits for it */
  let firstReady = false;
  let restartAfterReady = false;
  const restartSoon = () => {
    // Backups scan everything from now until the new watches are in place.
    setRebuilding(true);
    if (!firstReady) {
      restartAfterReady = true;
      return;
    }
    if (restartTimer !== null) clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = null;
      queued++;
      restarting = (restarting ?? Promise.resolve()).then(restart);
    }, RESTART_QUIET_MS);
  };
  // A link that lasts, that is: a file written under a temporary name and linked into place (a
  // vault folder in a watched tree does that for every pack) has one link again once that name
  // is removed, a moment later, and needs no new watches.
  const newLinks = new Set<string>();
  let linkTimer: NodeJS.Timeout | null = null;
  const newLink = (abs: string) => {
    newLinks.add(abs);
    linkTimer ??= setTimeout(() => {
      linkTimer = null;
      // A path that cannot be looked at now (its folder replaced, or made unreadable) may still
      // hold the link somewhere: taken as lasting.
      const lasting = [...newLinks].some((p) => {
        try {
          return (fs.lstatSync(p, { throwIfNoEntry: false })?.nlink ?? 0) > 1;
        } catch {
          return true;
        }
      });
      newLinks.clear();
      if (lasting) restartSoon();
    }, RESTART_QUIET_MS);
  };
  const stopping = () => signal.aborted || removedRoot !== null;
  const restart = async () => {
    queued--;
    if (stopping()) return;
    for (const r of roots) recordTree(r);
    // Should it never finish, the journal is marked broken: backups then scan everything.
    const stuck = setTimeout(() => markBroken('the watches could not be set up anew'), RESTART_LIMIT_MS);
    try {
      // The old watches are closed first: chokidar shares one watch per path between its watchers,
      // so a new watcher would take over the stale ones.
      await current.w.close();
      if (stopping()) return;
      current = start();
      await Promise.race([current.ready, aborted]);
      if (stopping()) return;
    } catch (err) {
      markBroken(`the watches could not be set up anew: ${(err as Error).message}`);
      return;
    } finally {
      clearTimeout(stuck);
    }
    for (const r of roots) recordTree(r);
    if (queued === 0 && restartTimer === null) setRebuilding(false);
  };

  const aborted = Promise.race([
    new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    }),
    rootRemoved,
  ]);
  // Stopped while the watches are still being set up: no session, and never ready.
  await Promise.race([current.ready, aborted]);
  firstReady = true;
  if (!stopping()) {
    const ids = Object.fromEntries([...rootIds].filter((e): e is [string, string] => e[1] !== null));
    saveSession({ version: 1, pid: process.pid, run: randomBytes(16).toString('hex'), proc: processIdentity(process.pid), started: new Date().toISOString(), paths: [...paths], ...(excluded === null ? {} : { exclude: excludesKey(exclude) }), roots: ids, sync: true, ...logFields(fileIdentity(fs.fstatSync(log)), 0), ...(rebuilding ? { rebuilding } : {}) });
    await sessionWrite;
    onReady();
    if (restartAfterReady) restartSoon();
  }
  /** Makes `next` the file this watcher writes changes.log through (the one before closed); returns its identity. */
  const useLog = (next: number): string => {
    fs.closeSync(log);
    log = next;
    const st = fs.fstatSync(log);
    logSize = st.size;
    return fileIdentity(st);
  };
  /**
   * Drops the lines of changes.log before `drop` (counted from the journal's start), which a
   * backup has read, once they come to TRIM_BYTES or more: the lines from there on are copied to a
   * new file, which takes changes.log's place and this watcher's writes from then on, and the
   * session names it and where it begins. False when nothing was dropped (also when the copy
   * failed: the journal stays as it was).
   */
  const trimTo = (drop: number | null): boolean => {
    if (session === null || drop === null) return false;
    const cut = drop - (session.base ?? 0);
    const size = fs.fstatSync(log).size;
    if (!(cut >= TRIM_BYTES && cut <= size)) return false;
    const next = tailCopy(files.changes, log, cut, size);
    if (next === null) return false;
    saveSession({ ...session, ...logFields(useLog(next), drop) });
    return true;
  };
  /**
   * Cut in place (truncated, as by a log rotation that copies and truncates) to `size`: what a
   * backup read up to may now hold other lines, so this starts a new run, as with a new file. True
   * when it did.
   */
  const newRunIfCut = (size: number): boolean => {
    if (session === null || size >= logSize) return false;
    logSize = size;
    saveSession({ ...session, run: randomBytes(16).toString('hex') });
    return true;
  };
  // A backup about to read the journal asks whether every change before it is recorded (see
  // journalSync): the answer goes into the journal after everything seen before the request.
  let syncWatch: fs.FSWatcher | null = null;
  if (!stopping()) {
    try {
      makeFoldersSync(files.sync, 0o700);
      for (const old of fs.readdirSync(files.sync)) fs.rmSync(path.join(files.sync, old), { force: true });
      const answering = new Set<string>();
      syncWatch = fs.watch(files.sync, (_event, name) => {
        countBurst(); // its events come through the same queue
        if (typeof name !== 'string' || !/^[0-9a-f]{32}$/.test(name) || answering.has(name)) return;
        const request = path.join(files.sync, name);
        let asked: string;
        try {
          asked = fs.readFileSync(request, 'utf8');
        } catch {
          return; // answered already, or given up on
        }
        const answer = () => {
          write(SYNC_LINE(name));
          fs.rmSync(request, { force: true });
          answering.delete(name);
        };
        answering.add(name);
        // With the offset the last backup read from: the lines before it are read, and may go.
        // A log cut since logCheck last looked is a new run before the answer: the backup must
        // not read the new lines at the offset where the old ones were.
        let trimmed = false;
        try {
          trimmed = newRunIfCut(fs.fstatSync(log).size) || trimTo(dropOf(asked));
        } catch {
          // the log could not be looked at: left as it is, as logCheck finds it
        }
        // The answer waits for the end of this turn, which reads every event queued before the
        // request (see countBurst: a queue that overflowed sets the watches up anew, and the
        // session says so), and for the session to be written: a backup reads the session once
        // answered. One that could not be written gets no answer, so the backup scans everything.
        setImmediate(() => {
          void sessionWrite.then(() => {
            if (!sessionUnsaved) answer();
            else if (trimmed) markBroken('its session could not be written after changes.log was trimmed or found cut');
          });
        });
      });
      syncWatch.on('error', () => undefined); // backups then get no answer, and scan everything
    } catch {
      // likewise
    }
  }
  // changes.log removed or replaced (by hand, or by a cleaner): the watcher starts a new one, as
  // a new run, so the next backup scans everything and the one after can trust the journal again.
  const logCheck = setInterval(() => {
    if (session === null) return;
    // A folder above a watched one renamed, or a link on the way retargeted: no event of the
    // watched folder's own says so, and its watch now follows a folder elsewhere.
    const moved = [...roots].find(rootMoved);
    if (moved !== undefined) {
      rootGone(moved);
      return;
    }
    try {
      const here = fs.statSync(files.changes, { throwIfNoEntry: false });
      const mine = fs.fstatSync(log);
      if (newRunIfCut(mine.size)) return;
      if (here !== undefined && fileIdentity(here) === fileIdentity(mine)) return;
    } catch {
      // not to be looked at (AZBK_HOME made unreadable?): made anew below, or the journal is marked broken
    }
    let made: string;
    try {
      made = useLog(openLog());
    } catch (err) {
      markBroken(`the change journal could not be made anew: ${(err as Error).message}`);
      return;
    }
    saveSession({ ...session, run: randomBytes(16).toString('hex'), ...logFields(made, 0) });
  }, LOG_CHECK_MS);
  await aborted;
  // Events still coming in while the watches close (a large folder being removed) must not write
  // the session again once it is removed: it would name this process as a watcher that runs.
  closing = true;
  clearInterval(logCheck);
  syncWatch?.close();
  if (checkTimer !== null) clearTimeout(checkTimer);
  if (linkTimer !== null) clearTimeout(linkTimer);
  if (restartTimer !== null) clearTimeout(restartTimer);
  await restarting;
  await current.w.close().catch(() => undefined);
  await sessionWrite;
  fs.closeSync(log);
  fs.rmSync(files.session, { force: true });
  if (removedRoot !== null) {
    throw new AzbkError('AZBK_PATH_NOT_FOUND', `${removedRoot} was removed or replaced, so the change journal stopped; backups scan everything until azbk watch runs again.`, {
      hint: 'Start azbk watch again once the folder is back, or change the policy.',
    });
  }
}
