/**
 * A long job's progress: on a terminal, one status line on stderr, drawn again every second and
 * erased when the job ends, or before anything else is printed; nothing on the terminal when
 * stderr is not one (cron, a pipe, a log file) or with --json, where the result says it all. And
 * always, for `azbk status` in another process, the progress file (see agent/running.ts).
 */
import type { BackupProgress } from '../agent/backup.js';
import type { RestoreCounts } from '../agent/restore.js';
import { progressFile, type ProgressRecord } from '../agent/running.js';
import type { HomePaths } from '../shared/paths.js';
import { formatBytes } from '../core/size.js';
import { counted } from './output.js';

/** How often the line is drawn again. */
const EVERY_MS = 1000;
/** A restore or verify says how long it has left only after this long (the first seconds' rate says little). */
const ETA_AFTER_MS = 5000;

/** Elapsed or remaining time as m:ss, or h:mm:ss from an hour on. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** A backup's status line. */
export function backupProgressText(p: BackupProgress, elapsedMs: number): string {
  return (
    `${formatDuration(elapsedMs)}  ${counted(p.files, 'file')} (${formatBytes(p.bytes)}) examined, ` +
    `${formatBytes(p.readBytes)} read, ${formatBytes(p.newBytes)} new, ${formatBytes(p.uploadedBytes)} uploaded`
  );
}

/**
 * A restore's status line: `done` of `total` after `elapsedMs`, of which `dataMs` since the
 * restore began to write (the time left is estimated from the bytes written since then). While a
 * restore in parts still plans (`complete` false), `total` is only what it planned so far: no
 * share, and no time left.
 */
export function restoreProgressText(done: RestoreCounts, total: RestoreCounts, elapsedMs: number, dataMs: number, complete = true): string {
  if (!complete) {
    return `${formatDuration(elapsedMs)}  ${done.files} of ${counted(total.files, 'file')} planned so far, ${formatBytes(done.bytes)} of ${formatBytes(total.bytes)} (planning more)`;
  }
  // (files restored again after a lost pack write more than was planned: never over 100%)
  const share = Math.min(1, total.bytes > 0 ? done.bytes / total.bytes : total.files > 0 ? done.files / total.files : 1);
  return `${formatDuration(elapsedMs)}  ${Math.floor(share * 100)}%  ${done.files} of ${counted(total.files, 'file')}, ${formatBytes(done.bytes)} of ${formatBytes(total.bytes)}${timeLeft(share, dataMs)}`;
}

/** verify --read-data's status line: `done` of `total` bytes of packs read and checked, `dataMs` since it began reading them. */
export function verifyProgressText(done: number, total: number, elapsedMs: number, dataMs: number): string {
  const share = total > 0 ? Math.min(1, done / total) : 1;
  return `${formatDuration(elapsedMs)}  ${Math.floor(share * 100)}%  ${formatBytes(done)} of ${formatBytes(total)} of stored data read and checked${timeLeft(share, dataMs)}`;
}

/** ", about m:ss left" at the rate so far, once `share` of the work took `ms` (at least ETA_AFTER_MS); else nothing. */
function timeLeft(share: number, ms: number): string {
  return ms >= ETA_AFTER_MS && share > 0 && share < 1 ? `, about ${formatDuration((ms * (1 - share)) / share)} left` : '';
}

/** The status line of one job (see the module's comment). */
export interface LiveLine {
  /** draws `text()` every second from now on (until stop) */
  follow(text: () => string): void;
  /** erases the line, for other output to follow: it is drawn again at the next second */
  clear(): void;
  /** erases the line for good */
  stop(): void;
}

/** A status line on `stream` (stderr), or one that draws nothing when `enabled` is false or the stream is no terminal. */
export function liveLine(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): LiveLine {
  if (!enabled || stream.isTTY !== true) return { follow: () => undefined, clear: () => undefined, stop: () => undefined };
  let shown = false;
  let timer: NodeJS.Timeout | null = null;
  const clear = () => {
    if (shown) stream.write('\r\x1b[K');
    shown = false;
  };
  return {
    follow(text) {
      if (timer !== null) clearInterval(timer);
      timer = setInterval(() => {
        // One line: cut to the terminal's width, so that it never wraps and can be erased.
        const columns = stream.columns > 0 ? stream.columns : 80; // 0: a terminal that does not say
        const width = Math.max(20, columns - 1);
        const t = text();
        stream.write(`\r${t.length > width ? t.slice(0, width) : t}\x1b[K`);
        shown = true;
      }, EVERY_MS);
      timer.unref(); // never what keeps the process alive
    },
    clear,
    stop() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      clear();
    },
  };
}

/** The status line of any job's progress, `elapsedMs` into the job, at `now` (ms since the epoch). */
export function progressText(r: ProgressRecord, elapsedMs: number, now: number): string {
  switch (r.kind) {
    case 'backup':
      return backupProgressText(r, elapsedMs);
    case 'restore':
      return restoreProgressText({ files: r.files, bytes: r.bytes }, { files: r.totalFiles, bytes: r.totalBytes }, elapsedMs, now - r.since, r.planning === 0);
    case 'verify':
      return verifyProgressText(r.bytes, r.totalBytes, elapsedMs, now - r.since);
    case 'planning':
      return `${formatDuration(elapsedMs)}  planning: ${r.listings} folder listings read`;
  }
}

/** A job's progress on the terminal (see liveLine) and in the progress file. */
export interface JobProgress {
  /** shows and records `snapshot()` from now on */
  follow(snapshot: () => ProgressRecord): void;
  /** `print` that erases the status line first, for output while the job runs */
  erasing(print: (text: string) => void): (text: string) => void;
  /** erases the status line and removes the progress file */
  stop(): Promise<void>;
}

export function jobProgress(paths: HomePaths, json: boolean): JobProgress {
  const live = liveLine(!json);
  const file = progressFile(paths);
  const t0 = Date.now();
  return {
    follow(snapshot) {
      live.follow(() => progressText(snapshot(), Date.now() - t0, Date.now()));
      file.follow(snapshot);
    },
    erasing: (print) => (text) => {
      live.clear();
      print(text);
    },
    async stop() {
      live.stop();
      await file.stop();
    },
  };
}
