/**
 * What a running job says of itself, for `azbk status` in another process: a scheduled backup runs
 * with nobody watching its output. The process that holds the job lock writes how far it got to
 * a small file under AZBK_HOME every few seconds (owner-only, written whole), and removes it when
 * the job ends. Status believes it only while the process that holds the lock, and wrote it, runs.
 */
import { readFileSync, rmSync } from 'node:fs';
import { readJsonFile, writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';
import { lockHolder, type LockHolder } from './lock.js';

/** How far a job got; counts only (a path could tell others what a machine holds). */
export type ProgressRecord =
  | { readonly kind: 'backup'; readonly files: number; readonly bytes: number; readonly readBytes: number; readonly newBytes: number; readonly uploadedBytes: number }
  /**
   * `since`: when it began writing data (ms since the epoch); `planning`: 1 while a restore in parts
   * still plans more files (the totals are what it planned so far), else 0
   */
  | { readonly kind: 'restore'; readonly files: number; readonly bytes: number; readonly totalFiles: number; readonly totalBytes: number; readonly planning: number; readonly since: number }
  | { readonly kind: 'verify'; readonly bytes: number; readonly totalBytes: number; readonly since: number }
  /** a restore reading the folder listings it needs, before it writes anything */
  | { readonly kind: 'planning'; readonly listings: number };

/** How often the file is written again. */
const EVERY_MS = 5000;

/** The running job's progress file; `follow` starts writing it, `stop` removes it. */
export interface ProgressFile {
  follow(snapshot: () => ProgressRecord): void;
  stop(): Promise<void>;
}

export function progressFile(paths: HomePaths): ProgressFile {
  let timer: NodeJS.Timeout | null = null;
  let writing: Promise<void> = Promise.resolve();
  const write = (record: ProgressRecord) => {
    // One write at a time; a failed one changes nothing for the job (status shows no progress).
    writing = writing.then(() => writeFileAtomic(paths.progress, JSON.stringify({ pid: process.pid, at: Date.now(), progress: record }), { mode: 0o600 }).catch(() => undefined));
  };
  // Only its own: the job lock is released before this, and the next job may have written one.
  // Synchronous, for a process that exits at once (a second Ctrl-C) removes its own too.
  const removeOwn = () => {
    try {
      const file = JSON.parse(readFileSync(paths.progress, 'utf8')) as { pid?: unknown } | null;
      if (file?.pid === process.pid) rmSync(paths.progress, { force: true });
    } catch {
      // none, or not readable: nothing of this process's to remove
    }
  };
  return {
    follow(snapshot) {
      if (timer === null) process.once('exit', removeOwn);
      else clearInterval(timer);
      write(snapshot());
      timer = setInterval(() => write(snapshot()), EVERY_MS);
      timer.unref(); // never what keeps the process alive
    },
    async stop() {
      if (timer !== null) {
        clearInterval(timer);
        process.off('exit', removeOwn);
      }
      timer = null;
      await writing;
      removeOwn();
    },
  };
}

export interface RunningJob extends LockHolder {
  /** what it last said of its progress, and when (ms since the epoch); null before it has said anything */
  readonly progress: { readonly at: number; readonly record: ProgressRecord } | null;
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

type Kind = ProgressRecord['kind'];
/** The counts each kind of record holds (all of them, and nothing else). */
const FIELDS: { readonly [K in Kind]: readonly Exclude<keyof Extract<ProgressRecord, { kind: K }>, 'kind'>[] } = {
  backup: ['files', 'bytes', 'readBytes', 'newBytes', 'uploadedBytes'],
  restore: ['files', 'bytes', 'totalFiles', 'totalBytes', 'planning', 'since'],
  verify: ['bytes', 'totalBytes', 'since'],
  planning: ['listings'],
};

/** Counts a record written by an earlier version lacks, and what they mean there. */
const ADDED: Readonly<Record<string, number>> = { planning: 0 };

/** A progress file's record, if it reads as one (anything else is ignored: it is only a help). */
function readRecord(v: unknown): ProgressRecord | null {
  const r = v as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || typeof r.kind !== 'string' || !Object.hasOwn(FIELDS, r.kind)) return null;
  const fields: readonly string[] = FIELDS[r.kind as Kind];
  const value = (f: string) => (r[f] === undefined && Object.hasOwn(ADDED, f) ? ADDED[f] : r[f]);
  if (!fields.every((f) => count(value(f)))) return null;
  return Object.fromEntries([['kind', r.kind], ...fields.map((f) => [f, value(f)])]) as ProgressRecord;
}

/** The job running on this machine now, if any, with its progress (see the module comment). */
export async function runningJob(paths: HomePaths): Promise<RunningJob | null> {
  const holder = await lockHolder(paths.lock);
  if (holder === null) return null;
  const file = (await readJsonFile(paths.progress).catch(() => null)) as { pid?: unknown; at?: unknown; progress?: unknown } | null;
  const record = file !== null && file.pid === holder.pid && count(file.at) ? readRecord(file.progress) : null;
  return { ...holder, progress: record === null ? null : { at: file!.at as number, record } };
}
