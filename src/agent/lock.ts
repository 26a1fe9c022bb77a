/**
 * One job at a time per machine: a lock file under AZBK_HOME, created exclusively, naming the job
 * and its process. A lock whose process is gone (killed, crashed, rebooted) is taken over.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { errnoCode, naming, readJsonFile, writeFileAtomic } from '../shared/files.js';
import { processIdentity, sameProcessAlive } from '../shared/process.js';

export interface JobLock {
  /** Names another job as the holder (a backup knows its id, or the job it continues, only once it holds the lock). */
  relabel(jobId: string): Promise<void>;
  release(): Promise<void>;
}

interface LockBody {
  pid?: unknown;
  /** what tells the holder apart from a later process given its pid (see processIdentity) */
  process?: unknown;
  jobId?: unknown;
  kind?: unknown;
  started?: unknown;
}

async function readLock(file: string): Promise<LockBody | null> {
  try {
    return (await readJsonFile(file)) as LockBody | null;
  } catch {
    return null; // a torn lock file: its writer died mid-write
  }
}

/**
 * Whether the process a lock names still runs: its pid alone can be another process's by now (after
 * a reboot, or once pids wrap), so the identity the lock recorded must match too, where there is one.
 */
function holderAlive(held: LockBody): held is LockBody & { pid: number } {
  if (typeof held.pid !== 'number' || !Number.isSafeInteger(held.pid) || held.pid <= 0) return false;
  return sameProcessAlive(held.pid, typeof held.process === 'string' ? held.process : null);
}

/**
 * Lock files this process holds. A lock file naming this process's pid is stale (left by an
 * earlier process that had the same pid) unless it is in here: then a job of this very process,
 * e.g. one started from a test or a future scheduler, holds it.
 */
const heldHere = new Set<string>();

/** A temporary file of an atomic write (see writeFileAtomic, and the lock's own above), by its name. */
const TEMP = /^\.?[^/]+\.[0-9a-f]{12}\.tmp$/;
/** One older than this is not being written: its writer died (killed during a job). */
const TEMP_STALE_MS = 60 * 60_000;

/**
 * Removes the temporary files killed jobs left in AZBK_HOME (a progress file written every few
 * seconds, a lock being taken): nothing else removes them. Best effort.
 */
function removeStaleTemps(home: string): void {
  try {
    const old = Date.now() - TEMP_STALE_MS;
    for (const name of readdirSync(home)) {
      if (!TEMP.test(name)) continue;
      const p = path.join(home, name);
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (st?.isFile() === true && st.mtimeMs < old) rmSync(p, { force: true });
    }
  } catch {
    // left for the next job
  }
}

/**
 * Removes a stale lock: moved aside first (only one process can move a given file), then checked
 * again, so a fresh lock another process took meanwhile is put back rather than lost.
 */
async function takeOverStale(file: string): Promise<void> {
  const aside = `${file}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await fs.rename(file, aside);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  const moved = await readLock(aside);
  if (moved !== null && moved.pid !== process.pid && holderAlive(moved)) {
    await fs.link(aside, file).catch(() => undefined);
  }
  await fs.rm(aside, { force: true });
}

/** The job that holds a machine's lock: its process, id, kind and when it started. */
export interface LockHolder {
  readonly pid: number;
  readonly jobId: string;
  readonly kind: string;
  /** ISO 8601, or null when the lock does not say */
  readonly started: string | null;
}

/** Who holds the lock `file`, when a live process does (for status: a lock nobody holds any more is not a job running). */
export async function lockHolder(file: string): Promise<LockHolder | null> {
  const held = await readLock(file);
  if (held === null || !holderAlive(held)) return null;
  const { started } = held;
  return {
    pid: held.pid,
    jobId: typeof held.jobId === 'string' ? held.jobId : '?',
    kind: typeof held.kind === 'string' ? held.kind : 'azbk',
    started: typeof started === 'string' && !Number.isNaN(Date.parse(started)) ? started : null,
  };
}

/**
 * Takes the lock `file` as acquireJobLock does, waiting while another process holds it, for up to
 * `waitMs`: for short steps that must not interleave (policy set), which then take turns.
 */
export async function acquireLockWaiting(file: string, job: { jobId: string; kind: string }, waitMs: number): Promise<JobLock> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await acquireJobLock(file, job);
    } catch (err) {
      if (!isAzbkError(err, 'AZBK_JOB_RUNNING') || Date.now() >= until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    }
  }
}

/** Takes the machine's job lock; AZBK_JOB_RUNNING when a live process (this one included) holds it. */
export async function acquireJobLock(file: string, job: { jobId: string; kind: string }): Promise<JobLock> {
  const started = new Date().toISOString();
  const identity = processIdentity(process.pid);
  const bodyOf = (jobId: string) => JSON.stringify({ pid: process.pid, ...(identity === null ? {} : { process: identity }), jobId, kind: job.kind, started });
  const key = path.resolve(file);
  const running = (held: LockBody | null) =>
    new AzbkError('AZBK_JOB_RUNNING', `Another ${String(held?.kind ?? 'azbk')} job (${String(held?.jobId ?? '?')}, process ${String(held?.pid ?? process.pid)}) is running on this machine.`);
  for (let attempt = 0; attempt < 3; attempt++) {
    if (heldHere.has(key)) throw running(await readLock(file));
    heldHere.add(key); // taken synchronously, so two jobs of this process cannot both get here
    try {
      // Written whole under a temporary name, then linked into place: nobody ever reads a lock
      // file that exists but is still empty.
      const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await fs.writeFile(tmp, bodyOf(job.jobId), { flag: 'wx', mode: 0o600 }).catch((err: unknown) => Promise.reject(naming(err, file)));
        await fs.link(tmp, file);
      } finally {
        // also when the write failed (a full disk): no empty temporary file stays behind
        await fs.rm(tmp, { force: true });
      }
      // A process that exits at once (a second Ctrl-C) still gives the lock up.
      const atExit = () => {
        try {
          if (heldHere.delete(key)) rmSync(file, { force: true });
        } catch {
          // left for the next job, which takes over a lock whose process is gone
        }
      };
      process.once('exit', atExit);
      removeStaleTemps(path.dirname(file));
      return {
        // Written whole under a temporary name, then renamed over the lock: it never stops existing.
        relabel: (jobId) => writeFileAtomic(file, bodyOf(jobId), { mode: 0o600 }),
        release: async () => {
          process.off('exit', atExit);
          heldHere.delete(key);
          await fs.rm(file, { force: true });
        },
      };
    } catch (err) {
      heldHere.delete(key);
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    const held = await readLock(file);
    if (held !== null && held.pid !== process.pid && holderAlive(held)) throw running(held);
    if (heldHere.has(key)) throw running(held);
    // Only a lock file is taken over: a folder (or anything else) of that name is not azbk's to remove.
    const st = await fs.lstat(file).catch(() => undefined);
    if (st !== undefined && !st.isFile()) {
      throw new AzbkError('AZBK_LOCAL_IO', `${file} is not a file, so the job lock cannot be taken: something else is at its name.`, {
        hint: `Move ${file} away (azbk makes it as a file while a job runs), then run the job again.`,
      });
    }
    await takeOverStale(file);
  }
  throw new AzbkError('AZBK_JOB_RUNNING', 'Could not take the job lock; another job keeps taking it.');
}
