/** azbk watch: records changed paths between backups, so backups examine only what changed. */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { compileExcludes } from '../../core/exclude.js';
import { journalFiles, watcherRunning } from '../../agent/journal.js';
import { runWatcher } from '../../agent/journal-watcher.js';
import { loadPolicy, refuseWholeRoot } from '../../agent/policy.js';
import { ownFolders } from '../../agent/own-folders.js';
import { loadRegistration } from '../../agent/state.js';
import { acquireJobLock, lockHolder, type JobLock } from '../../agent/lock.js';
import { AzbkError, isAzbkError } from '../../shared/errors.js';
import { errnoCode, makeFoldersSync } from '../../shared/files.js';
import { action, currentExitCode } from '../run.js';
import { textPaths } from '../arg-paths.js';
import { onStopSignals } from '../signals.js';

/** How long a stopped watcher waits for the process to end by itself before it ends it (see the action's end). */
const LINGER_MS = 2000;

interface Opts {
  include?: string[];
  exclude?: string[];
  json?: boolean;
}

export function watchCommand(program: Command): void {
  program
    .command('watch')
    .description('keep a change journal of the backed-up folders (runs until stopped)')
    .option('--include <path...>', "folders to watch (default: the policy's)")
    .option('--exclude <pattern...>', "what not to watch, as backups leave it out (default: the policy's exclusions)")
    .option('--json', 'print events as JSON Lines: ready, then stopped')
    .addHelpText(
      'after',
      '\nWhile it runs, and has been running since the last backup, `azbk backup --now` examines only\n' +
        'the paths that changed ("optimized") instead of scanning everything ("full scan"). What the\n' +
        'exclusions match is not watched; backups with other exclusions scan everything.\n' +
        'Stop it with Ctrl-C or SIGTERM (exit 0). Exit codes: 0 stopped, 2 nothing to watch or a watched folder\n' +
        'was removed or replaced (the journal stops; backups scan everything), 1 a change could not be written\n' +
        'to the journal (a full disk: it stops, and backups scan everything), 11 already running.',
    )
    .action(
      action('watch', async ({ paths, out, log }, o: Opts) => {
        const policy = o.include === undefined || o.exclude === undefined ? await loadPolicy(paths) : null;
        const include = (textPaths('--include', o.include) ?? policy!.include).map((p) => path.resolve(p));
        const exclude = o.exclude ?? policy!.exclude ?? [];
        compileExcludes(exclude); // a pattern that is not one is refused before anything starts
        if (include.length === 0) throw new AzbkError('AZBK_NOTHING_TO_BACK_UP', 'Nothing to watch: no --include and no policy.');
        refuseWholeRoot(include); // as backup does: a journal of it would serve no backup
        // A path that is not there has nothing to watch: chokidar would wait for it in its parent,
        // and the watcher would stop (exit 2) only once it appeared.
        for (const p of include) {
          let code: string | null = null;
          try {
            fs.lstatSync(p);
          } catch (err) {
            code = errnoCode(err) ?? 'EIO';
          }
          if (code === null) continue;
          const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'it does not exist' : `it cannot be examined (${code})`;
          throw new AzbkError('AZBK_PATH_NOT_FOUND', `Nothing to watch at ${p}: ${why}.`, {
            hint: 'Start azbk watch once the folder is there, or take it out of the policy (azbk policy set --include ...).',
          });
        }
        const alreadyRunning = (pid: number | string) =>
          new AzbkError('AZBK_JOB_RUNNING', `A watcher (process ${pid}) already keeps this machine's change journal.`, {
            hint: 'One watcher is enough; to watch other folders, stop that one first.',
          });
        const running = watcherRunning(paths.home);
        if (running !== null) throw alreadyRunning(running);
        // Two started at once both found none running (the session is written once the watches
        // are set up): the lock lets one through, and only the one that holds it writes the session.
        const dir = journalFiles(paths.home).dir;
        makeFoldersSync(dir, 0o700);
        const lockFile = path.join(dir, 'watch.lock');
        let lock: JobLock;
        try {
          lock = await acquireJobLock(lockFile, { jobId: 'watch', kind: 'watch' });
        } catch (err) {
          if (isAzbkError(err, 'AZBK_JOB_RUNNING')) throw alreadyRunning((await lockHolder(lockFile))?.pid ?? '?');
          throw err;
        }
        const controller = new AbortController();
        const stop = () => controller.abort();
        const ignoreSignals = onStopSignals(stop);
        try {
          await runWatcher(
            paths.home,
            include,
            exclude,
            controller.signal,
            () => {
              log.info({ paths: include.length }, 'watching');
              out.line(`Watching ${include.join(', ')}; changes go to ${journalFiles(paths.home).changes}.`);
              out.event({ event: 'ready', paths: include });
            },
            ownFolders(paths.home, (await loadRegistration(paths).catch(() => null))?.endpoint ?? ''),
          );
        } finally {
          ignoreSignals();
          await lock.release();
          // Its journal is closed and its session removed (also when it stopped on an error): a
          // watch the file-watching library left open must not keep the process, and its inotify
          // watches, alive.
          setTimeout(() => process.exit(currentExitCode()), LINGER_MS).unref();
        }
        out.line('Stopped watching.');
        out.event({ event: 'stopped' });
      }),
    );
}

