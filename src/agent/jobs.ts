/** Job history: one JSON line per finished or failed job in AZBK_HOME/jobs.jsonl. */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import fs from 'node:fs/promises';
import { POINT_ID } from '../core/ids.js';
import { AzbkError, localIoError } from '../shared/errors.js';
import { errnoCode, makeFoldersSync } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';

export interface JobRecord {
  readonly jobId?: string;
  readonly kind: 'backup' | 'restore';
  readonly status: 'ok' | 'partial' | 'failed' | 'cancelled';
  readonly started: string;
  readonly finished: string;
  readonly point?: string;
  readonly error?: string;
  readonly [k: string]: unknown;
}

/**
 * Appends a job record (owner-only file), on a line of its own also after a line a crash cut
 * short. The history is bookkeeping: a failure to write it is reported to `warn` and does not fail
 * the job it records. Synchronous: a record is one small append, and a process about to exit (a
 * second Ctrl-C), where nothing asynchronous runs any more, records its job too.
 */
export function recordJob(paths: HomePaths, rec: JobRecord, warn: (text: string) => void): void {
  try {
    makeFoldersSync(paths.home, 0o700);
    const fd = openSync(paths.jobs, 'a+', 0o600);
    try {
      const { size } = fstatSync(fd);
      const last = Buffer.alloc(1);
      const cut = size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
      writeSync(fd, `${cut ? '\n' : ''}${JSON.stringify(rec)}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    warn(`the job history ${paths.jobs} could not be written (${errnoCode(err) ?? String(err)})`);
  }
}

/** Records a job that ended with `err`: cancelled for AZBK_CANCELLED, otherwise failed, with its code. */
export function recordFailure(paths: HomePaths, kind: JobRecord['kind'], started: string, err: unknown, warn: (text: string) => void): void {
  const code = err instanceof AzbkError ? err.code : (localIoError(err)?.code ?? 'AZBK_INTERNAL');
  recordJob(paths, { kind, status: code === 'AZBK_CANCELLED' ? 'cancelled' : 'failed', started, finished: new Date().toISOString(), error: code }, warn);
}

const KINDS = new Set(['backup', 'restore']);
const STATUSES = new Set(['ok', 'partial', 'failed', 'cancelled']);
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const ERROR_CODE = /^AZBK_[A-Z_]{1,40}$/;

/** True for a line that reads as a job record (the file is input like any other: what is printed is checked). */
function isJobRecord(v: unknown): v is JobRecord {
  const r = v as JobRecord;
  return (
    typeof r === 'object' && r !== null && KINDS.has(r.kind) && STATUSES.has(r.status) && TIME.test(String(r.started)) && TIME.test(String(r.finished)) &&
    (r.point === undefined || POINT_ID.test(String(r.point))) && (r.error === undefined || ERROR_CODE.test(String(r.error)))
  );
}

/** A job record is a few hundred bytes; a longer line is not one, and is not held whole. */
const MAX_LINE = 64 * 1024;

/**
 * The last `last` recorded jobs, oldest first, with how many there are and how many lines could
 * not be read (cut short by a crash, edited, or too long). The file is read in pieces, so its
 * size does not matter. No history yet is an empty one.
 */
export async function readJobs(paths: HomePaths, last: number): Promise<{ jobs: JobRecord[]; total: number; unreadable: number }> {
  const unreadableFile = (err: unknown) => new AzbkError('AZBK_LOCAL_IO', `The job history ${paths.jobs} cannot be read (${errnoCode(err) ?? 'error'}).`, { cause: err });
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(paths.jobs, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { jobs: [], total: 0, unreadable: 0 };
    throw unreadableFile(err);
  }
  let jobs: JobRecord[] = [];
  let total = 0;
  let unreadable = 0;
  const take = (line: Buffer) => {
    const text = line.toString('utf8');
    if (text.trim() === '') return;
    try {
      const v: unknown = JSON.parse(text);
      if (!isJobRecord(v)) throw new Error('not a job record');
      total++;
      jobs.push(v);
      if (jobs.length >= 2 * last) jobs = jobs.slice(-last);
    } catch {
      unreadable++;
    }
  };
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    let carry = Buffer.alloc(0);
    let tooLong = false;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        if (tooLong) unreadable++;
        else take(Buffer.concat([carry, chunk.subarray(start, nl)]));
        carry = Buffer.alloc(0);
        tooLong = false;
        start = nl + 1;
      }
      if (!tooLong) carry = Buffer.concat([carry, chunk.subarray(start)]);
      if (carry.length > MAX_LINE) {
        tooLong = true;
        carry = Buffer.alloc(0);
      }
    }
    if (tooLong) unreadable++;
    else take(carry);
  } catch (err) {
    throw unreadableFile(err);
  } finally {
    await fh.close();
  }
  return { jobs: jobs.slice(-last), total, unreadable };
}

/** Jobs looked back through for the last backup that ended well. */
export const LOOK_BACK = 100;

/** A backup that made a point: ok, or partial (some items skipped). */
export const backupEndedWell = (j: JobRecord): boolean => j.kind === 'backup' && (j.status === 'ok' || j.status === 'partial');

/**
 * When the last backup of the policy's paths that ended well started, no later than `now`, or
 * null when the history has none. A backup of other paths (--include) is not one of the policy's.
 */
export async function lastGoodBackup(paths: HomePaths, now: Date): Promise<Date | null> {
  const { jobs } = await readJobs(paths, LOOK_BACK);
  let latest = -Infinity;
  for (const j of jobs) {
    if (!backupEndedWell(j) || j.policyPaths === false) continue;
    // One that started later than now ran while the clock was ahead: it covers no run due since
    // (taken as the last, catch-up would find nothing missed until the clock got there).
    const t = Date.parse(j.started);
    if (t <= now.getTime()) latest = Math.max(latest, t);
  }
  return latest === -Infinity ? null : new Date(latest);
}
