/** azbk backup --now: backs up the given paths, or the policy's, into a new recovery point. */
import type { Command } from 'commander';
import { runBackup } from '../../agent/backup.js';
import { openAgent } from '../../agent/context.js';
import { recordJob } from '../../agent/jobs.js';
import { loadPolicy } from '../../agent/policy.js';
import { AzbkError, ExitCode } from '../../shared/errors.js';
import { formatBytes } from '../output.js';
import { action, setExitCode } from '../run.js';

interface Opts {
  now?: boolean;
  include?: string[];
  json?: boolean;
}

export function backupCommand(program: Command): void {
  program
    .command('backup')
    .description('back up files and folders into a new recovery point')
    .option('--now', 'run a backup now')
    .option('--include <path...>', 'files or folders to back up (default: the policy\'s)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 done, 1 failed, 2 bad input, 3 done but some items skipped (listed),\n10 vault unreachable, 11 another job is running.')
    .action(
      action('backup', async ({ paths, out, log }, o: Opts) => {
        if (o.now !== true) throw new AzbkError('AZBK_USAGE', 'Say when: azbk backup --now.');
        const include = o.include ?? (await loadPolicy(paths)).include;
        if (include.length === 0) throw new AzbkError('AZBK_NOTHING_TO_BACK_UP', 'Nothing to back up: no --include and no policy.');
        const ctx = await openAgent(paths);
        const started = new Date().toISOString();
        try {
          const r = await runBackup(ctx, { include });
          const status = r.skipped.length > 0 ? 'partial' : 'ok';
          await recordJob(paths, { jobId: r.jobId, kind: 'backup', status, started: r.started, finished: r.finished, point: r.point.id, stats: r.stats, skipped: r.skipped.length });
          log.info({ jobId: r.jobId, point: r.point.id, stats: r.stats, skipped: r.skipped.length }, 'backup finished');
          const s = r.stats;
          out.line(`Recovery point ${r.point.id} created at ${r.point.time}.`);
          out.line(`  ${s.files} files, ${s.dirs} folders, ${s.symlinks} links; ${formatBytes(s.bytes)} read, ${formatBytes(s.newBytes)} new, ${formatBytes(s.uploadedBytes)} uploaded.`);
          for (const w of r.warnings) out.line(`  warning: ${w.path}: ${w.reason}`);
          if (r.skipped.length > 0) {
            out.line(`  ${r.skipped.length} item(s) skipped:`);
            for (const k of r.skipped) out.line(`    ${k.path}: ${k.reason}`);
            setExitCode(ExitCode.partial);
          }
          out.result({ status, ...r });
        } catch (err) {
          await recordJob(paths, { kind: 'backup', status: 'failed', started, finished: new Date().toISOString(), error: err instanceof AzbkError ? err.code : 'AZBK_INTERNAL' });
          throw err;
        }
      }),
    );
}
