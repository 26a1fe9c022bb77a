/** azbk backup --now: backs up the given paths, or the policy's, into a new recovery point. */
import type { Command } from 'commander';
import { runBackup } from '../../agent/backup.js';
import { openAgent } from '../../agent/context.js';
import { lastGoodBackup, recordFailure, recordJob } from '../../agent/jobs.js';
import { compileExcludes } from '../../core/exclude.js';
import { formatBytes, parseSize } from '../../core/size.js';
import { missedRun } from '../../core/schedule.js';
import { loadPolicy } from '../../agent/policy.js';
import { AzbkError, ExitCode, isAzbkError } from '../../shared/errors.js';
import { checkLimits, limitOptions, withLimits, type LimitOpts } from '../limits.js';
import { boundHeapGrowth } from '../heap.js';
import { stopOnSignals } from '../signals.js';
import { counted, printable } from '../output.js';
import { jobProgress } from '../progress.js';
import { action, setExitCode } from '../run.js';
import { textPaths } from '../arg-paths.js';

interface Opts extends LimitOpts {
  now?: boolean;
  include?: string[];
  exclude?: string[];
  checkpointInterval: string;
  checkpointBytes: string;
  catchUp?: boolean;
  json?: boolean;
}

/** Parses a positive byte count (see parseSize); AZBK_USAGE for anything else. */
function parseBytes(s: string, flag: string): number {
  const n = parseSize(s);
  if (n === null || n <= 0) throw new AzbkError('AZBK_USAGE', `${flag} must be a positive size such as 512M, not ${s}.`);
  return n;
}

function parseSeconds(s: string, flag: string): number {
  const n = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s) || !(n > 0) || n > 86_400) throw new AzbkError('AZBK_USAGE', `${flag} must be a number of seconds from 1 to 86400, not ${s}.`);
  return n;
}

/** What a first Ctrl-C says once every file is read (see the 'finishing' event). */
const FINISHING = 'stopping: every file is read, so the recovery point is made instead of a checkpoint; it waits for the same last uploads';

export function backupCommand(program: Command): void {
  limitOptions(program
    .command('backup'))
    .description('back up files and folders into a new recovery point')
    .option('--now', 'run a backup now')
    .option('--include <path...>', 'files or folders to back up (default: the policy\'s)')
    .option('--exclude <pattern...>', 'leave out what matches: a name such as *.tmp, or a path such as /home/ann/.cache (default: the policy\'s)')
    .option('--checkpoint-interval <seconds>', 'save a checkpoint at least this often', '60')
    .option('--checkpoint-bytes <size>', 'and after reading this much data, e.g. 512M or 1.5G (K, M, G, T: powers of 1024)', '512M')
    .option('--catch-up', 'back up only if a scheduled backup was missed: none ended well since the last one due (the hourly scheduled check runs this)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nA stopped backup (Ctrl-C, SIGTERM, kill, power loss, lost vault) continues from its last checkpoint\n' +
        'the next time backup runs.\n\nExit codes: 0 done, 1 failed, 2 bad input, 3 done but some items skipped (listed),\n' +
        '10 vault unreachable, 11 another job is running, 13 credentials invalid, 130 cancelled (checkpoint saved).',
    )
    .action(
      action('backup', async ({ paths, out, log }, o: Opts) => {
        if (o.now !== true) throw new AzbkError('AZBK_USAGE', 'Say when: azbk backup --now.');
        checkLimits(o);
        // What catch-up decides from is the history of the policy's backups: a backup of other
        // paths would not count as the run it makes up, and every hourly check would make it again.
        if (o.catchUp === true && (o.include !== undefined || o.exclude !== undefined)) {
          throw new AzbkError('AZBK_USAGE', `--catch-up backs up the policy's paths: it takes no ${o.include !== undefined ? '--include' : '--exclude'}.`);
        }
        boundHeapGrowth();
        const policy = await loadPolicy(paths);
        if (o.catchUp === true) {
          const now = new Date();
          const since = policy.scheduleSet === undefined ? null : new Date(policy.scheduleSet);
          const missed = policy.schedule === undefined ? null : missedRun(policy.schedule, await lastGoodBackup(paths, now), now, since);
          if (missed === null) {
            // The hourly check from cron says nothing then: its log would hold little else.
            if (policy.schedule === undefined) out.line('No backups are scheduled: nothing to catch up.');
            else if (process.stdout.isTTY) out.line('No scheduled backup was missed.');
            out.result({ status: 'nothing missed' });
            return;
          }
          out.line(`${now.toISOString()}: the backup due at ${missed.toISOString()} did not run: backing up now.`);
        }
        const include = textPaths('--include', o.include) ?? policy.include;
        const exclude = o.exclude ?? policy.exclude ?? [];
        compileExcludes(exclude); // a pattern that is not one is refused before anything starts
        if (include.length === 0) throw new AzbkError('AZBK_NOTHING_TO_BACK_UP', 'Nothing to back up: no --include and no policy.');
        const checkpointIntervalMs = parseSeconds(o.checkpointInterval, '--checkpoint-interval') * 1000;
        const checkpointBytes = parseBytes(o.checkpointBytes, '--checkpoint-bytes');
        const started = new Date().toISOString();
        // How far it got, on a terminal and for status (see progress.ts); anything printed meanwhile erases the line first.
        const live = jobProgress(paths, o.json === true);
        const line = live.erasing(out.line);
        // Ctrl-C once: stop at the next safe point after saving a checkpoint; twice: at once (the
        // previous checkpoint still counts). Before the job has begun (connecting, loading the
        // vault's index), once stops at once: the job is recorded as cancelled either way.
        const cancel = stopOnSignals(
          live.erasing(out.warn),
          'stopping: saving a checkpoint',
          () => recordFailure(paths, 'backup', started, new AzbkError('AZBK_CANCELLED', 'Stopped at once.'), out.warn),
          { before: 'stopped before the backup began', json: o.json === true },
        );
        try {
          const ctx = await withLimits(await openAgent(paths, { job: true, stopping: cancel.signal }), o);
          const r = await runBackup(ctx, {
            include,
            exclude,
            checkpointIntervalMs,
            checkpointBytes,
            signal: cancel.signal,
            onEvent: (e) => {
              if (e.type === 'start') {
                cancel.begun();
                if (e.resumed) line(`Continuing job ${e.resumed.jobId} from checkpoint ${e.resumed.seq} (${e.resumed.time}).`);
                live.follow(() => ({ kind: 'backup', ...e.progress() }));
              }
              if (e.type === 'finishing') cancel.saying(FINISHING);
              if (e.type === 'checkpoint') log.info({ seq: e.seq, final: e.final }, 'checkpoint saved');
              if (e.type === 'retry' && e.why === 'packs gone') line('The vault refused the recovery point: data it counted on was pruned while the backup ran, or lost. Backing up once more, storing that data again.');
              if (e.type === 'retry' && e.why === 'cache damaged') line('The local cache was found damaged: it was made anew. Backing up once more, reading every file.');
            },
          });
          await live.stop();
          if (cancel.signal.aborted) line('Asked to stop once every file was read: the recovery point was made instead of a checkpoint.');
          const status = r.skipped.length > 0 ? 'partial' : 'ok';
          cancel.settled();
          recordJob(paths, { jobId: r.jobId, kind: 'backup', status, policyPaths: o.include === undefined && o.exclude === undefined, started: r.started, finished: r.finished, point: r.point.id, expired: r.point.expired.length, scan: r.scan, resumedFrom: r.resumed, checkpoints: r.checkpoints, stats: r.stats, skipped: r.skipped.length }, out.warn);
          log.info({ jobId: r.jobId, point: r.point.id, stats: r.stats, skipped: r.skipped.length }, 'backup finished');
          const s = r.stats;
          out.line(`Recovery point ${r.point.id} created at ${r.point.time}.`);
          out.line(`  ${r.scan.mode === 'optimized' ? 'Optimized' : 'Full scan'}: ${printable(r.scan.reason)}.`);
          out.line(`  ${counted(s.files, 'file')} (${formatBytes(s.bytes)}), ${counted(s.dirs, 'folder')}, ${counted(s.symlinks, 'link')}; ${formatBytes(s.readBytes)} read, ${formatBytes(s.newBytes)} new, ${formatBytes(s.uploadedBytes)} uploaded.`);
          if (r.point.expired.length > 0) out.line(`  Retention: ${r.point.expired.length} older point(s) expired: ${r.point.expired.join(', ')}.`);
          for (const w of r.warnings) out.line(`  warning: ${printable(w.path)}: ${printable(w.reason)}`);
          if (r.skipped.length > 0) {
            out.line(`  ${r.skipped.length} item(s) skipped:`);
            for (const k of r.skipped) out.line(`    ${printable(k.path)}: ${printable(k.reason)}`);
            setExitCode(ExitCode.partial);
          }
          out.result({ status, ...r });
        } catch (err) {
          if (o.catchUp === true && isAzbkError(err, 'AZBK_JOB_RUNNING')) {
            // The backup due may be that job: the next check sees how it ended.
            out.line('Another job is running: nothing to catch up now.');
            out.result({ status: 'job running' });
            return;
          }
          cancel.settled();
          recordFailure(paths, 'backup', started, err, out.warn);
          throw err;
        } finally {
          await live.stop();
          cancel.dispose();
        }
      }),
    );
}
