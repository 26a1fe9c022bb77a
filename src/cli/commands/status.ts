/**
 * azbk status: this machine at a glance, from its local state only (no vault is contacted): its
 * registration and vault, where its secrets are kept, its policy and schedule, whether a watcher
 * keeps the change journal, and its last jobs. A local file a job would fail on (damaged, or
 * readable by others) is reported, with the rest of what can be read, and status exits 1.
 */
import type { Command } from 'commander';
import { backupEndedWell, LOOK_BACK, readJobs, type JobRecord } from '../../agent/jobs.js';
import { watcherState } from '../../agent/journal.js';
import { runningJob } from '../../agent/running.js';
import { loadPolicy, type Policy } from '../../agent/policy.js';
import { KEYCHAIN_REACHES_SCHEDULED_JOBS } from '../../agent/scheduler.js';
import { loadRegistration, loadSecrets, secretsLocation, straySecretsFile, type LocalRegistration } from '../../agent/state.js';
import { ExitCode, isAzbkError } from '../../shared/errors.js';
import { crontabNotes, describePolicy, policyResult } from '../policy-text.js';
import { printable } from '../output.js';
import { progressText } from '../progress.js';
import { action, setExitCode } from '../run.js';
import { STRAY, secretsPlace, secretsResult } from '../secrets-text.js';

const jobLine = (j: JobRecord) => `${j.kind} ${j.status} at ${j.started}${j.point === undefined ? '' : `, point ${String(j.point)}`}${j.error === undefined ? '' : ` (${String(j.error)})`}`;

export function statusCommand(program: Command): void {
  program
    .command('status')
    .description('this machine at a glance: registration, vault, secrets, policy, schedule, change journal, last jobs')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nNo vault is contacted. Exit codes: 0 shown (also for an AZBK_HOME not registered yet), 1 a local file\nevery job would fail on (named, with what to do).')
    .action(
      action('status', async ({ paths, out }) => {
        /** what a job would fail on, as it would say it */
        const problems: { where: string; code: string; message: string; hint: string }[] = [];
        const read = async <T>(where: string, f: () => Promise<T>): Promise<T | undefined> => {
          try {
            return await f();
          } catch (err) {
            if (!isAzbkError(err)) throw err;
            problems.push({ where, code: err.code, message: err.message, hint: err.hint });
            out.line(`${where}: ${printable(err.message)} ${printable(err.hint)}`);
            return undefined;
          }
        };
        const ended = (result: Record<string, unknown>) => {
          out.result(problems.length === 0 ? result : { ...result, problems });
          if (problems.length > 0) {
            out.warn(`${problems.length} problem(s) found in this machine's local state: jobs fail until they are mended.`);
            setExitCode(ExitCode.failed);
          }
        };
        const registration: LocalRegistration | null | undefined = await read('Registration', () => loadRegistration(paths));
        if (registration === undefined) return ended({ home: paths.home, registered: null });
        if (registration === null) {
          out.line(`Not registered (AZBK_HOME ${paths.home}): azbk register --vault-credentials FILE.`);
          out.result({ home: paths.home, registered: false });
          return;
        }
        const policy: Policy | undefined = await read('Policy', () => loadPolicy(paths));
        const notes = policy === undefined ? null : await crontabNotes(paths, policy);
        const note = notes?.note ?? null;
        const watcher = watcherState(paths.home);
        const history = await read('Job history', () => readJobs(paths, LOOK_BACK));
        const { jobs, unreadable } = history ?? { jobs: [], unreadable: 0 };
        const last = jobs.at(-1);
        const lastBackup = jobs.filter(backupEndedWell).at(-1);
        const running = await runningJob(paths);

        out.line(`Machine ${registration.machineName} (${registration.machineId}), registered ${registration.registered}`);
        out.line(`Vault ${registration.vaultName} (${registration.vaultId}) at ${registration.endpoint}`);
        const secrets = secretsLocation(registration);
        // A secrets file is read as a job reads it (the keychain is left alone: it may ask to be unlocked).
        const secretsOk = secrets.store !== 'file' || (await read('Secrets', () => loadSecrets(paths, registration))) !== undefined;
        if (secretsOk) out.line(`Secrets: in ${secretsPlace(paths, secrets)}, so jobs need no passphrase${secrets.store === 'keychain' && !KEYCHAIN_REACHES_SCHEDULED_JOBS ? ' (scheduled jobs cannot reach it)' : ''}`);
        const stray = await straySecretsFile(paths, registration);
        if (stray) out.warn(STRAY(paths));
        if (policy !== undefined) for (const line of describePolicy(policy)) out.line(line);
        if (note !== null) out.line(note);
        out.line(
          watcher === null
            ? 'Change journal: no watcher runs (backups scan everything)'
            : watcher.broken !== undefined
              ? `Change journal: azbk watch (pid ${watcher.pid}) reported an error, so backups scan everything until it is started again: ${printable(watcher.broken)}`
              : watcher.rebuilding === true
                ? `Change journal: azbk watch (pid ${watcher.pid}) is setting up its watches anew (the next backup scans everything)`
                : `Change journal: kept by azbk watch (pid ${watcher.pid})`,
        );
        if (running !== null) {
          out.line(`Running now: ${printable(running.kind)} ${printable(running.jobId)} (process ${running.pid})${running.started === null ? '' : `, since ${printable(running.started)}`}`);
          const p = running.progress;
          if (p !== null) {
            const elapsed = running.started === null ? 0 : p.at - Date.parse(running.started);
            out.line(`  ${progressText(p.record, elapsed, p.at)} (${Math.max(0, Math.round((Date.now() - p.at) / 1000))} s ago)`);
          }
        }
        out.line(history === undefined ? 'Last job: not known (the job history cannot be read)' : last === undefined ? 'Last job: none yet' : `Last job: ${jobLine(last)}`);
        if (lastBackup !== undefined && lastBackup !== last) out.line(`Last backup: ${jobLine(lastBackup)}`);
        if (unreadable > 0) out.line(`${unreadable} line(s) of ${paths.jobs} could not be read.`);
        ended({
          home: paths.home,
          registered: true,
          machine: { id: registration.machineId, name: registration.machineName, registered: registration.registered },
          vault: { id: registration.vaultId, name: registration.vaultName, endpoint: registration.endpoint },
          secrets: { ...secretsResult(paths, secrets), ...(stray ? { stray: paths.secrets } : {}) },
          policy: policy === undefined ? null : policyResult(policy, notes),
          watcher,
          running: running === null ? null : { kind: running.kind, jobId: running.jobId, pid: running.pid, started: running.started, progress: running.progress === null ? null : { at: new Date(running.progress.at).toISOString(), ...running.progress.record } },
          lastJob: last ?? null,
          lastBackup: lastBackup ?? null,
        });
      }),
    );
}
