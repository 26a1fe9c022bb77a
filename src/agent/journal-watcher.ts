/**
 * The change journal's writer: `azbk watch` sets up watches (chokidar) on the policy's folders and
 * records every path that changes in AZBK_HOME/journal/changes.log, answers a backup's request to
 * catch up (see journalSync), drops the lines backups have read, and sets its watches up anew when
 * it cannot trust them. What a backup trusts of it, and when: journal.ts.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isOwnEntry, ownFolders as ownFoldersOf, type OwnFolders } from './own-folders.js';
import { compileExcludes, excludesKey } from '../core/exclude.js';
import { AzbkError } from '../shared/errors.js';
import { errnoCode, errnoText, fileIdentity, makeFoldersSync, writeAll, writeFileAtomic } from '../shared/files.js';
import { processIdentity } from '../shared/process.js';
import { slashed } from './folder-listing.js';
import { identityOf, journalFiles, logFields, SYNC_LINE, type JournalSession } from './journal.js';

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
        writeAll(next, buf.subarray(0, n));
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

/** Errors of a watch on a folder backups cannot read either (see the watcher's error handler). */
const UNREADABLE: ReadonlySet<string> = new Set(['EACCES', 'EPERM', 'ENAMETOOLONG']);

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
  /** why the watcher stops on its own (a watched folder gone, a change it could not record): thrown once it has stopped */
  let failure: AzbkError | null = null;
  let endWatch: () => void = () => undefined;
  const failed = new Promise<void>((resolve) => (endWatch = resolve));
  const fail = (err: AzbkError) => {
    if (failure !== null) return;
    failure = err;
    endWatch();
  };
  /**
   * Appends `line` to changes.log; false once a line could not be written (a full disk, an I/O
   * error): the journal then misses a change, so the watcher stops (see fail), its session goes,
   * and backups scan everything.
   */
  const write = (line: string): boolean => {
    if (failure !== null) return false;
    try {
      const buf = Buffer.from(line);
      writeAll(log, buf);
      logSize += buf.length;
      return true;
    } catch (err) {
      const code = errnoCode(err);
      fail(
        new AzbkError('AZBK_LOCAL_IO', `A change could not be recorded in ${files.changes} (${code === undefined ? (err as Error).message : errnoText(code)}), so the change journal stopped; backups scan everything until azbk watch runs again.`, {
          hint: 'Make room on the disk that holds AZBK_HOME (or mend it), then start azbk watch again.',
        }),
      );
      return false;
    }
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
  /** an error before the first session was written (a watch that could not be set up): the session says so from the start */
  let brokenEarly: string | null = null;
  const markBroken = (why: string) => {
    if (session === null) brokenEarly ??= why;
    else if (session.broken === undefined) saveSession({ ...session, broken: why });
  };
  let rebuilding = false;
  const setRebuilding = (on: boolean) => {
    rebuilding = on;
    if (session !== null && (session.rebuilding === true) !== on) saveSession({ ...session, rebuilding: on });
  };
  // A watch follows the folder (or file) it was set on: one removed, or replaced by another at
  // the same path, leaves the journal blind there.
  const rootIds = new Map([...roots].map((r) => [r, identityOf(r)]));
  /** Whether watched path `root` is no longer what its watch is on: moved or replaced, itself or a folder above it. */
  const rootMoved = (root: string) => identityOf(root) !== rootIds.get(root);
  // A watched folder itself is gone: chokidar would go on watching its parent for it, and the
  // journal would cover nothing there. The watcher stops and says so.
  const rootGone = (root: string) =>
    fail(
      new AzbkError('AZBK_PATH_NOT_FOUND', `${root} was removed or replaced, so the change journal stopped; backups scan everything until azbk watch runs again.`, {
        hint: 'Start azbk watch again once the folder is back, or change the policy.',
      }),
    );
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
          // A file with several links once, a folder now: its watch reports the entries in it.
          watchedFiles.delete(abs);
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
    // A folder that cannot be watched misses its changes, but for one backups cannot read either:
    // they skip it, and examine its folder again every time, journal or not.
    w.on('error', (err) => {
      if (!UNREADABLE.has(errnoCode(err) ?? '')) markBroken((err as Error).message);
    });
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
  const stopping = () => signal.aborted || failure !== null;
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
    failed,
  ]);
  // Stopped while the watches are still being set up: no session, and never ready.
  await Promise.race([current.ready, aborted]);
  firstReady = true;
  if (!stopping()) {
    const ids = Object.fromEntries([...rootIds].filter((e): e is [string, string] => e[1] !== null));
    saveSession({ version: 1, pid: process.pid, run: randomBytes(16).toString('hex'), proc: processIdentity(process.pid), started: new Date().toISOString(), paths: [...paths], ...(excluded === null ? {} : { exclude: excludesKey(exclude) }), own: ownFolders.key, roots: ids, sync: true, ...logFields(fileIdentity(fs.fstatSync(log)), 0), ...(rebuilding ? { rebuilding } : {}), ...(brokenEarly === null ? {} : { broken: brokenEarly }) });
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
          if (!write(SYNC_LINE(name))) return; // no answer: the backup scans everything
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
  if (failure !== null) throw failure;
}
