/** azbk restore --point: brings back a recovery point, whole or in part. */
import path from 'node:path';
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { recordFailure, recordJob } from '../../agent/jobs.js';
import { readPassphraseFile } from '../../agent/passphrase.js';
import { runRestore, type ConflictRule } from '../../agent/restore.js';
import { AzbkError, ExitCode } from '../../shared/errors.js';
import { checkLimits, limitOptions, withLimits, type LimitOpts } from '../limits.js';
import { boundHeapGrowth } from '../heap.js';
import { stopOnSignals } from '../signals.js';
import { counted, printable } from '../output.js';
import { formatBytes } from '../../core/size.js';
import { action, setExitCode } from '../run.js';
import { jobProgress } from '../progress.js';
import { textPaths } from '../arg-paths.js';

interface Opts extends LimitOpts {
  point: string;
  target?: string;
  path?: string[];
  machine?: string;
  passphraseFile?: string;
  conflict: string;
  json?: boolean;
}

const RULES: readonly ConflictRule[] = ['overwrite', 'skip', 'copy'];

export function restoreCommand(program: Command): void {
  limitOptions(program.command('restore'), { upload: false })
    .description('restore a recovery point, all of it or some paths')
    .requiredOption('--point <id>', "point id, 'latest', or an ISO time (the newest point at or before it)")
    .option('--target <dir>', 'restore under this folder (TARGET/<original absolute path>) instead of the original location')
    .option('--path <path...>', 'original absolute paths of files or folders to restore (default: everything)')
    .option('--machine <name>', "restore another machine's point (needs its passphrase)")
    .option('--passphrase-file <file>', 'the passphrase of the machine that made the backup')
    .option('--conflict <rule>', 'when a file exists: overwrite, skip or copy (keep both)', 'skip')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nCtrl-C or SIGTERM stops the restore once the files being written are done; unfinished ones are removed.\n' +
        '\nExit codes: 0 restored, 1 failed (e.g. the listing of a path asked for cannot be read), 2 bad input, 3 some files\ncould not be restored (listed), 10 vault unreachable, 11 another job is running, 12 wrong passphrase, 13 credentials\ninvalid, 130 cancelled.',
    )
    .action(
      action('restore', async ({ paths, out, log }, o: Opts) => {
        checkLimits(o);
        if (!RULES.includes(o.conflict as ConflictRule)) {
          throw new AzbkError('AZBK_USAGE', `--conflict must be overwrite, skip or copy, not ${o.conflict}.`);
        }
        if (o.passphraseFile !== undefined && o.machine === undefined) {
          throw new AzbkError('AZBK_USAGE', '--passphrase-file is for restoring another machine: add --machine NAME.');
        }
        boundHeapGrowth();
        const passphrase = o.passphraseFile === undefined ? undefined : await readPassphraseFile(o.passphraseFile, out.warn);
        const started = new Date().toISOString();
        let r: Awaited<ReturnType<typeof runRestore>>;
        // How far it got, on a terminal and for status (see progress.ts): listings read, then what is written.
        const live = jobProgress(paths, o.json === true);
        // Ctrl-C once: finish the files being written, remove unfinished ones, give folders their
        // modes; twice: stop at once. Before it has begun (connecting, finding the point), once
        // stops at once.
        const cancel = stopOnSignals(
          live.erasing(out.warn),
          'stopping: finishing the files being written',
          () => recordFailure(paths, 'restore', started, new AzbkError('AZBK_CANCELLED', 'Stopped at once.'), out.warn),
          { before: 'stopped before the restore began', json: o.json === true },
        );
        try {
          // A stop request also ends the wait of ranges not read yet for their turn under --limit-download.
          const ctx = await withLimits(await openAgent(paths, { job: true, stopping: cancel.signal }), o, cancel.signal);
          r = await runRestore(ctx, {
            point: o.point,
            target: o.target === undefined ? null : path.resolve(textPaths('--target', o.target)),
            paths: textPaths('--path', o.path) ?? [],
            conflict: o.conflict as ConflictRule,
            ...(o.machine === undefined ? {} : { machine: o.machine }),
            ...(passphrase === undefined ? {} : { passphrase }),
            signal: cancel.signal,
            onEvent: (e) => {
              if (e.type === 'planning') cancel.begun();
              if (e.type === 'planning') live.follow(() => ({ kind: 'planning', listings: e.listings() }));
              if (e.type !== 'planned') return;
              const since = Date.now();
              live.follow(() => {
                const done = e.progress();
                const total = e.total();
                return { kind: 'restore', files: done.files, bytes: done.bytes, totalFiles: total.files, totalBytes: total.bytes, planning: total.complete ? 0 : 1, since };
              });
            },
          });
        } catch (err) {
          cancel.settled();
          recordFailure(paths, 'restore', started, err, out.warn);
          throw err;
        } finally {
          await live.stop();
          cancel.dispose();
        }
        const status = r.failed.length > 0 ? 'partial' : 'ok';
        cancel.settled();
        recordJob(paths, { kind: 'restore', status, started, finished: new Date().toISOString(), point: r.point.id, restored: r.restored, failed: r.failed.length }, out.warn);
        log.info({ point: r.point.id, restored: r.restored, failed: r.failed.length, conflicts: r.conflicts.length }, 'restore finished');
        const s = r.restored;
        const where = r.target === null ? ' to its original location' : ` under ${printable(r.target)}`;
        const nothing = s.files + s.dirs + s.symlinks === 0;
        // The first line says how it ended: a restore whose items failed does not read as done.
        const verb = r.failed.length === 0 ? 'Restored' : nothing ? 'Could not restore' : 'Restored part of';
        out.line(`${verb} point ${r.point.id} of ${r.machineName}${where}.`);
        out.line(`  ${counted(s.files, 'file')} (${formatBytes(s.bytes)}), ${counted(s.dirs, 'folder')}, ${counted(s.symlinks, 'link')}.`);
        for (const w of r.warnings) out.warn(w);
        if (r.leftoversRemoved > 0) out.line(`  Removed ${r.leftoversRemoved} temporary file(s) left by an earlier restore that did not finish.`);
        const skipped = r.conflicts.filter((c) => c.action === 'skipped' && c.own !== true);
        if (skipped.length > 0) out.line(`  ${skipped.length} existing item(s) left as they were (--conflict skip).`);
        for (const c of r.conflicts.filter((x) => x.own === true)) out.line(`  ${printable(c.path)}: azbk's own folder here, left as it is.`);
        for (const c of r.conflicts.filter((x) => x.action === 'copied')) out.line(`  ${printable(c.path)}: one was there already; restored beside it as ${printable(c.restoredAs ?? '')}`);
        if (r.missingPacks.length > 0) {
          out.line(`  The vault is missing ${r.missingPacks.length} pack(s) its index names. Files whose data a later backup stored again were restored from there; azbk verify lists what else needs those packs.`);
        }
        if (r.failed.length > 0) {
          out.line(`  ${r.failed.length} item(s) could not be restored:`);
          for (const f of r.failed) out.line(`    ${printable(f.path)}: ${printable(f.reason)}`);
          setExitCode(ExitCode.partial);
        }
        out.result({ status, ...r });
      }),
    );
}
