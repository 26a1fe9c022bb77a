/** azbk jobs: the history of this machine's backups and restores, as jobs.jsonl records it. */
import type { Command } from 'commander';
import { readJobs, type JobRecord } from '../../agent/jobs.js';
import { AzbkError } from '../../shared/errors.js';
import { counted } from '../output.js';
import { formatBytes } from '../../core/size.js';
import { action } from '../run.js';

interface Opts {
  last: string;
  json?: boolean;
}

const seconds = (j: JobRecord) => {
  const ms = Date.parse(j.finished) - Date.parse(j.started);
  return Number.isFinite(ms) && ms >= 0 ? `${(ms / 1000).toFixed(1)} s` : '?';
};

/** One line of what a job did, from the fields its kind records. */
function summary(j: JobRecord): string {
  const parts: string[] = [];
  if (j.error !== undefined) parts.push(String(j.error));
  if (j.point !== undefined) parts.push(`point ${String(j.point)}`);
  const s = j.stats as { files?: unknown; bytes?: unknown; readBytes?: unknown; uploadedBytes?: unknown } | undefined;
  if (typeof s?.files === 'number' && typeof s.bytes === 'number' && typeof s.uploadedBytes === 'number') {
    // A job recorded before what it read was counted says only the point's size.
    const read = typeof s.readBytes === 'number' ? `, ${formatBytes(s.readBytes)} read` : '';
    parts.push(`${counted(s.files, 'file')} (${formatBytes(s.bytes)})${read}, ${formatBytes(s.uploadedBytes)} uploaded`);
  }
  const r = j.restored as { files?: unknown; bytes?: unknown } | undefined;
  if (typeof r?.files === 'number' && typeof r.bytes === 'number') parts.push(`${counted(r.files, 'file')}, ${formatBytes(r.bytes)} restored`);
  if (typeof j.skipped === 'number' && j.skipped > 0) parts.push(`${j.skipped} skipped`);
  if (typeof j.failed === 'number' && j.failed > 0) parts.push(`${j.failed} failed`);
  if (typeof j.expired === 'number' && j.expired > 0) parts.push(`${j.expired} older point(s) expired`);
  return parts.join('; ');
}

export function jobsCommand(program: Command): void {
  program
    .command('jobs')
    .description("this machine's backups and restores: when, how they ended, what they did (oldest first, by start)")
    .option('--last <n>', 'show the last n jobs', '20')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 listed (lines that cannot be read are counted and left out), 1 the job history cannot\nbe read, 2 --last is not a number from 1 to 999999.')
    .action(
      action('jobs', async ({ paths, out }, o: Opts) => {
        const n = /^\d{1,6}$/.test(o.last.trim()) ? Number(o.last) : NaN;
        if (!(n >= 1)) throw new AzbkError('AZBK_USAGE', `--last takes a number of jobs from 1 to 999999, not ${o.last}.`);
        const { jobs: last, total, unreadable } = await readJobs(paths, n);
        // Recorded as each ends, shown by when each started (the time on each line): a restore
        // run during a long backup comes after it.
        const shown = last.sort((a, b) => Date.parse(a.started) - Date.parse(b.started));
        if (total === 0) out.line('No jobs recorded yet.');
        for (const j of shown) out.line(`${j.started}  ${j.kind.padEnd(7)}  ${j.status.padEnd(9)}  ${seconds(j).padStart(8)}  ${summary(j)}`);
        if (unreadable > 0) out.line(`${unreadable} line(s) of ${paths.jobs} could not be read and are left out.`);
        out.result({ jobs: shown, total, unreadable });
      }),
    );
}
