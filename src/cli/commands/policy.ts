/**
 * azbk policy: what `azbk backup --now` backs up when it names nothing, bandwidth limits, when
 * scheduled backups run (installed in crontab or Task Scheduler) and how long the vault keeps
 * this machine's points.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { parseHours, type BandwidthPolicy } from '../../core/bandwidth.js';
import type { MachineId } from '../../core/ids.js';
import { RETENTION_RANGE, type Retention } from '../../core/retention.js';
import { EVERY_DAY, MAX_RUNS_PER_DAY, parseTimes, type Schedule } from '../../core/schedule.js';
import { parseDays } from '../../core/week.js';
import { openAgent } from '../../agent/context.js';
import { acquireLockWaiting } from '../../agent/lock.js';
import { loadPolicy, refuseWholeRoot, updatePolicy, vaultRetention } from '../../agent/policy.js';
import { KEYCHAIN_REACHES_SCHEDULED_JOBS, planSchedule, scheduledCommand } from '../../agent/scheduler.js';
import { ownFolderOf, ownFolders } from '../../agent/own-folders.js';
import { checkHome, loadRegistration, requireRegistration, secretsLocation } from '../../agent/state.js';
import { AzbkError } from '../../shared/errors.js';
import { makeFoldersSync } from '../../shared/files.js';
import type { HomePaths } from '../../shared/paths.js';
import type { VaultSession } from '../../vault/api.js';
import { cronDaemonNote } from '../../agent/cron-daemon.js';
import { compileExcludes } from '../../core/exclude.js';
import { crontabNotes, describePolicy, policyResult } from '../policy-text.js';
import { printable, type Output } from '../output.js';
import { action } from '../run.js';
import { parseRateOption } from '../limits.js';
import { textPaths } from '../arg-paths.js';

interface SetOpts {
  include?: string[];
  /** false: --no-exclude */
  exclude?: string[] | false;
  workHours?: string;
  workDays?: string;
  workBandwidth?: string;
  offBandwidth?: string;
  schedule?: string;
  scheduleDays?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  json?: boolean;
}

function usage(message: string): AzbkError {
  return new AzbkError('AZBK_USAGE', message);
}

function bandwidthFrom(o: SetOpts, old: BandwidthPolicy | undefined): BandwidthPolicy | undefined {
  if (o.workHours === undefined && o.workDays === undefined && o.workBandwidth === undefined && o.offBandwidth === undefined) return undefined;
  const base: BandwidthPolicy = old ?? { workDays: [1, 2, 3, 4, 5], workStart: 9 * 60, workEnd: 17 * 60, work: null, off: null };
  const hours = o.workHours === undefined ? { start: base.workStart, end: base.workEnd } : parseHours(o.workHours);
  if (hours === null) throw usage(`--work-hours must look like 09:00-17:00, not ${o.workHours}.`);
  const days = o.workDays === undefined ? [...base.workDays] : parseDays(o.workDays);
  if (days === null) throw usage(`--work-days must look like mon-fri or mon,wed,fri, not ${o.workDays}.`);
  return {
    workDays: days,
    workStart: hours.start,
    workEnd: hours.end,
    work: o.workBandwidth === undefined ? base.work : parseRateOption(o.workBandwidth, '--work-bandwidth'),
    off: o.offBandwidth === undefined ? base.off : parseRateOption(o.offBandwidth, '--off-bandwidth'),
  };
}

/** The schedule the options ask for: undefined when they leave it as it is, null for off. */
function scheduleFrom(o: SetOpts, old: Schedule | undefined): Schedule | null | undefined {
  if (o.schedule === undefined && o.scheduleDays === undefined) return undefined;
  if (o.schedule?.trim().toLowerCase() === 'off') {
    if (o.scheduleDays !== undefined) throw usage('--schedule-days has no meaning with --schedule off.');
    return null;
  }
  const times = o.schedule === undefined ? old?.times : parseTimes(o.schedule);
  if (times === null) throw usage(`--schedule takes 1 to ${MAX_RUNS_PER_DAY} different times of day such as 09:00,13:00,21:00, or off; not ${o.schedule}.`);
  if (times === undefined) throw usage('--schedule-days needs times of day: give --schedule too.');
  const days = o.scheduleDays === undefined ? (old?.days ?? EVERY_DAY) : parseDays(o.scheduleDays);
  if (days === null) throw usage(`--schedule-days must look like mon-fri or mon,wed,fri, not ${o.scheduleDays}.`);
  return { times, days };
}

/** Until a count is given: every point of the last 30 days, as the MARS agent's default. */
const DEFAULT_RETENTION: Retention = { daily: 30, weekly: 0, monthly: 0, yearly: 0 };
const KEEP_FLAGS = { daily: ['keepDaily', '--keep-daily', 'days'], weekly: ['keepWeekly', '--keep-weekly', 'weeks'], monthly: ['keepMonthly', '--keep-monthly', 'months'], yearly: ['keepYearly', '--keep-yearly', 'years'] } as const;

/** The --keep counts given (checked), or undefined when none is. */
function keepCounts(o: SetOpts): Partial<Retention> | undefined {
  const keys = Object.keys(KEEP_FLAGS) as (keyof Retention)[];
  if (keys.every((k) => o[KEEP_FLAGS[k][0]] === undefined)) return undefined;
  const r: Partial<Record<keyof Retention, number>> = {};
  for (const k of keys) {
    const [field, flag, unit] = KEEP_FLAGS[k];
    const given = o[field];
    if (given === undefined) continue;
    const [lo, hi] = RETENTION_RANGE[k];
    const n = /^\d{1,5}$/.test(given.trim()) ? Number(given) : NaN;
    if (!(n >= lo && n <= hi)) throw usage(`${flag} takes a number of ${unit} from ${lo} to ${hi}, not ${given}.`);
    r[k] = n;
  }
  return r;
}

/**
 * The retention to set: the counts given, the others as the vault has them. The vault's is the
 * policy in force; this machine's copy may be missing (a policy file made anew) or behind, and
 * starting from it (or from the defaults) would change counts nobody asked to change.
 */
async function retentionFrom(session: VaultSession, machine: MachineId, given: Partial<Retention>, local: Retention | undefined): Promise<Retention> {
  // From a vault service of an earlier version, none: this machine's copy is all there is.
  const inVault = (await vaultRetention(session, machine))?.newest;
  return { ...(inVault ?? local ?? DEFAULT_RETENTION), ...given };
}

export function policyCommand(program: Command): void {
  const policy = program.command('policy').description("show or set this machine's backup policy");
  // Both given: which one was meant? (commander keeps the last without a word)
  const excludeGiven = new Set<'exclude' | 'no-exclude'>();
  policy
    .command('set')
    .on('option:exclude', () => excludeGiven.add('exclude'))
    .on('option:no-exclude', () => excludeGiven.add('no-exclude'))
    .description('set what to back up, bandwidth limits, the schedule and retention; options not given keep their value')
    .option('--include <path...>', 'files or folders to back up')
    .option('--exclude <pattern...>', 'what backups leave out, replacing the patterns set before: a name such as *.tmp or node_modules, or a path such as /home/ann/.cache')
    .option('--no-exclude', 'leave nothing out any more')
    .option('--work-hours <from-to>', 'work hours, e.g. 09:00-17:00 (local time)')
    .option('--work-days <days>', 'work days, e.g. mon-fri')
    .option('--work-bandwidth <rate>', 'limit during work hours, e.g. 1M (bytes/s; 0 = none)')
    .option('--off-bandwidth <rate>', 'limit outside work hours (bytes/s; 0 = none)')
    .option('--schedule <times>', `run backups at up to ${MAX_RUNS_PER_DAY} times of day, e.g. 09:00,13:00,21:00 (local time); off to stop`)
    .option('--schedule-days <days>', 'days scheduled backups run, e.g. mon-fri or mon-sun (default: the days set before, or every day)')
    .option('--keep-daily <days>', `keep every point for this many days (${RETENTION_RANGE.daily.join('-')}; default 30)`)
    .option('--keep-weekly <weeks>', `keep the newest point of each week for this many weeks (${RETENTION_RANGE.weekly.join('-')})`)
    .option('--keep-monthly <months>', `keep the newest point of each month for this many months (${RETENTION_RANGE.monthly.join('-')})`)
    .option('--keep-yearly <years>', `keep the newest point of each year for this many years (${RETENTION_RANGE.yearly.join('-')})`)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nScheduled backups run `azbk backup --now` from crontab (Linux, macOS) or Task Scheduler (Windows) as\n' +
        'this user, with this AZBK_HOME; their output goes to AZBK_HOME/logs/scheduled.log.\n' +
        'Retention is applied by the vault after each backup: points it no longer keeps wait 14 days in the\n' +
        "vault's expired/ folder before they are removed. The newest point is always kept, and a policy that\n" +
        'keeps fewer points than the one before takes effect 14 days after it is set.\n' +
        '\nExit codes: 0 set, 1 the schedule or AZBK_HOME could not be written (or AZBK_HOME is not private), 2 bad input (nothing changes),\n' +
        '10 vault unreachable when retention is set (nothing changes), 11 another policy set still runs after\n' +
        '30 seconds (two take turns), 13 credentials invalid.',
    )
    .action(
      action('policy set', async ({ paths, out }, o: SetOpts) => {
        // A policy others could have written is no policy to change, nor to show.
        await checkHome(paths);
        // Two at once would each write back what it read, and the last one's would stand.
        makeFoldersSync(paths.home, 0o700);
        const lock = await acquireLockWaiting(paths.policyLock, { jobId: randomBytes(16).toString('hex'), kind: 'policy set' }, POLICY_WAIT_MS);
        try {
          await setPolicy(paths, out, o, excludeGiven.size === 2);
        } finally {
          await lock.release();
        }
      }),
    );
  policy
    .command('show')
    .description('show the policy')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 shown, 1 AZBK_HOME is not private, 2 the policy file is damaged (with what to do).')
    .action(
      action('policy show', async ({ paths, out }) => {
        await checkHome(paths);
        const p = await loadPolicy(paths);
        for (const line of describePolicy(p)) out.line(line);
        const notes = await crontabNotes(paths, p);
        if (notes.note !== null) out.line(notes.note);
        out.result(policyResult(p, notes));
      }),
    );
}

/** How long policy set waits for another one to finish before it gives up (exit 11). */
const POLICY_WAIT_MS = 30_000;

/** policy set's work, under the policy lock: everything checked first, then the vault, then here. */
async function setPolicy(paths: HomePaths, out: Output, o: SetOpts, excludeBoth: boolean): Promise<void> {
  const old = await loadPolicy(paths);
  const bandwidth = bandwidthFrom(o, old.bandwidth);
  const schedule = scheduleFrom(o, old.schedule);
  const keep = keepCounts(o);
  if (excludeBoth) {
    throw usage('--exclude and --no-exclude contradict each other: give one of them.');
  }
  const exclude = o.exclude === false ? [] : o.exclude;
  if (o.include === undefined && exclude === undefined && bandwidth === undefined && schedule === undefined && keep === undefined) {
    throw usage('Nothing to set: give --include, --exclude, a bandwidth option, --schedule or a --keep option.');
  }
  if (exclude !== undefined) compileExcludes(exclude);
  textPaths('--include', o.include);
  // Paths scheduled backups would all refuse: refused here, before anything changes.
  if (o.include !== undefined || schedule) refuseWholeRoot(o.include ?? old.include);
  const own = o.include === undefined ? [] : await ownIncluded(paths, o.include);
  if (own.length > 0 && own.length === o.include!.length) {
    const one = own.length === 1;
    throw new AzbkError('AZBK_BAD_INPUT', `${own.map((p) => printable(p)).join(', ')} ${one ? 'is' : 'are'} azbk's own folder${one ? '' : 's'} (AZBK_HOME or the vault) or in ${one ? 'it' : 'them'}, which backups leave out, and nothing else is included; nothing was changed.`, {
      hint: 'Include the folders to back up.',
    });
  }
  if (schedule) {
    const reg = await requireRegistration(paths);
    if (secretsLocation(reg).store === 'keychain' && !KEYCHAIN_REACHES_SCHEDULED_JOBS) {
      throw new AzbkError('AZBK_SECRETS_IN_KEYCHAIN', "This machine's secret and key are in the keychain, which cron jobs cannot reach.");
    }
    if ((o.include ?? old.include).length === 0) throw usage('A schedule needs something to back up: give --include PATH too.');
  }
  // Everything is checked before anything changes; then the vault first (when it cannot be
  // reached, nothing changes here either), and each change is recorded here once made.
  const applySchedule = schedule === undefined ? null : await planSchedule(schedule, scheduledCommand(paths));
  if (keep !== undefined) {
    const ctx = await openAgent(paths);
    const retention = await retentionFrom(ctx.session, ctx.registration.machineId, keep, old.retention);
    await ctx.session.putPolicy(retention);
    await updatePolicy(paths, { retention });
  }
  try {
    await applySchedule?.();
  } catch (err) {
    // Task Scheduler's tasks are replaced one by one: a failure leaves none of the old ones.
    if (process.platform === 'win32') await updatePolicy(paths, { schedule: null });
    if (keep !== undefined && err instanceof AzbkError) throw new AzbkError(err.code, `${err.message} The retention policy was set.`, { hint: err.hint, cause: err });
    throw err;
  }
  // Kept (a disk mounted later, say), but said: until they are there, backups skip them.
  for (const inc of o.include ?? []) if (!there(inc)) out.warn(`${printable(path.resolve(inc))} does not exist now: backups skip it (exit 3) until it does.`);
  for (const p of own) out.warn(`${printable(p)} is azbk's own folder (AZBK_HOME or the vault) or in it: backups leave it out (exit 3).`);
  const p = await updatePolicy(paths, {
    ...(o.include ? { include: o.include } : {}),
    ...(exclude !== undefined ? { exclude } : {}),
    ...(bandwidth ? { bandwidth } : {}),
    ...(schedule !== undefined ? { schedule } : {}),
  });
  for (const line of describePolicy(p)) out.line(line);
  const daemon = schedule ? await cronDaemonNote() : null;
  if (daemon !== null) out.line(daemon);
  out.result(policyResult(p, daemon === null ? null : { installed: true, note: daemon, noDaemon: true }));
}

/** The paths of `include` (resolved) that are azbk's own folders or in one (see own-folders.ts); an included link is backed up as a link, so is none. */
async function ownIncluded(paths: HomePaths, include: readonly string[]): Promise<string[]> {
  const own = ownFolders(paths.home, (await loadRegistration(paths).catch(() => null))?.endpoint ?? '');
  return include.map((p) => path.resolve(p)).filter((p) => !isLink(p) && ownFolderOf(p, own) !== undefined);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Whether something (a link too, dangling or not) is at `p`: not when a part of the way is missing, a file, or out of reach. */
function there(p: string): boolean {
  try {
    return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}
