/** Job history: one JSON line per finished or failed job in AZBK_HOME/jobs.jsonl. */
import fs from 'node:fs/promises';
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

/** Appends a job record (owner-only file). */
export async function recordJob(paths: HomePaths, rec: JobRecord): Promise<void> {
  await fs.mkdir(paths.home, { recursive: true, mode: 0o700 });
  await fs.appendFile(paths.jobs, JSON.stringify(rec) + '\n', { mode: 0o600 });
}
