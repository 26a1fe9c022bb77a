/** Job history: one JSON line per finished or failed job in AZBK_HOME/jobs.jsonl. */
import fs from 'node:fs/promises';
import { AzbkError } from '../shared/errors.js';
import { errnoCode } from '../shared/files.js';
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
 * short.
 */
export async function recordJob(paths: HomePaths, rec: JobRecord): Promise<void> {
  await fs.mkdir(paths.home, { recursive: true, mode: 0o700 });
  const fh = await fs.open(paths.jobs, 'a+', 0o600);
  try {
    const { size } = await fh.stat();
    const last = Buffer.alloc(1);
    const cut = size > 0 && (await fh.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] !== 0x0a;
    await fh.appendFile(`${cut ? '\n' : ''}${JSON.stringify(rec)}\n`);
  } finally {
    await fh.close();
  }
}

const KINDS = new Set(['backup', 'restore']);
const STATUSES = new Set(['ok', 'partial', 'failed', 'cancelled']);

/** True for a line that reads as a job record (the file is input like any other). */
function isJobRecord(v: unknown): v is JobRecord {
  const r = v as JobRecord;
  return typeof r === 'object' && r !== null && KINDS.has(r.kind) && STATUSES.has(r.status) && typeof r.started === 'string' && typeof r.finished === 'string';
}

/**
 * The recorded jobs, oldest first, and how many lines could not be read (a line cut short by a
 * crash, or edited). No history yet is an empty one.
 */
export async function readJobs(paths: HomePaths): Promise<{ jobs: JobRecord[]; unreadable: number }> {
  let text: string;
  try {
    text = await fs.readFile(paths.jobs, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { jobs: [], unreadable: 0 };
    throw new AzbkError('AZBK_LOCAL_IO', `The job history ${paths.jobs} cannot be read (${errnoCode(err) ?? 'error'}).`, { cause: err });
  }
  const jobs: JobRecord[] = [];
  let unreadable = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const v: unknown = JSON.parse(line);
      if (isJobRecord(v)) jobs.push(v);
      else unreadable++;
    } catch {
      unreadable++;
    }
  }
  return { jobs, unreadable };
}
