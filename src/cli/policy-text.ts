/** The policy in words, for `azbk policy` and `azbk status`. */
import type { Retention } from '../core/retention.js';
import { describeTimes, nextRun } from '../core/schedule.js';
import { dayNames, formatClock } from '../core/week.js';
import type { Policy } from '../agent/policy.js';
import { cronDaemonNote } from '../agent/cron-daemon.js';
import { installedSchedule, scheduledCommand } from '../agent/scheduler.js';
import type { HomePaths } from '../shared/paths.js';
import { formatBytes } from '../core/size.js';
import { printable } from './output.js';

const rateText = (r: number | null) => (r === null ? 'unlimited' : `${formatBytes(r)}/s`);
const plural = (n: number, unit: string) => `${n} ${n === 1 ? unit.replace(/s$/, '') : unit}`;

function describeRetention(r: Retention): string {
  const longer = [
    r.weekly > 0 ? `each week for ${plural(r.weekly, 'weeks')}` : null,
    r.monthly > 0 ? `each month for ${plural(r.monthly, 'months')}` : null,
    r.yearly > 0 ? `each year for ${plural(r.yearly, 'years')}` : null,
  ].filter((x) => x !== null);
  return `Retention: every point for ${plural(r.daily, 'days')}${longer.length === 0 ? '' : `; the newest point of ${longer.join(', ')}`} (applied by the vault after each backup; one that keeps fewer points than before takes effect 14 days after it is set)`;
}

const localTime = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')} ${formatClock(d.getHours() * 60 + d.getMinutes())}`;

/** The policy as lines of text. */
export function describePolicy(p: Policy): string[] {
  const lines = [p.include.length === 0 ? 'Include: (nothing yet)' : `Include: ${p.include.map(printable).join(', ')}`];
  if (p.exclude !== undefined && p.exclude.length > 0) lines.push(`Exclude: ${p.exclude.map(printable).join(', ')}`);
  const b = p.bandwidth;
  if (b !== undefined) {
    lines.push(`Bandwidth: ${rateText(b.work)} during work hours (${dayNames(b.workDays)} ${formatClock(b.workStart)}-${formatClock(b.workEnd)}), ${rateText(b.off)} otherwise`);
  }
  const s = p.schedule;
  lines.push(
    s === undefined
      ? 'Schedule: none (backups run when started)'
      : `Schedule: ${describeTimes(s)} ${s.days.length === 7 ? 'every day' : `on ${dayNames(s.days)}`} (local time); next ${localTime(nextRun(s, new Date()))}`,
  );
  lines.push(p.retention === undefined ? 'Retention: none recorded here' : describeRetention(p.retention));
  return lines;
}

/**
 * The policy as a command's JSON result shows it: with its next run, whether crontab has it when
 * known, and `cronDaemon: false` when it does but no cron daemon runs to run it.
 */
export function policyResult(p: Policy, notes: CrontabNotes | null = null): Policy & { nextRun?: string; installed?: boolean; cronDaemon?: false } {
  return {
    ...p,
    ...(p.schedule ? { nextRun: nextRun(p.schedule, new Date()).toISOString() } : {}),
    ...(notes === null || notes.installed === null ? {} : { installed: notes.installed }),
    ...(notes?.noDaemon === true ? { cronDaemon: false as const } : {}),
  };
}

export interface CrontabNotes {
  readonly installed: boolean | null;
  readonly note: string | null;
  /** the crontab has the schedule, and no cron daemon runs it */
  readonly noDaemon?: boolean;
}

/**
 * What `policy show` says of the crontab, beside the policy: whether it holds the policy's
 * schedule as set, and a note when it does not, or when it does and no cron daemon runs (Linux).
 * Nothing on Windows.
 */
export async function crontabNotes(paths: HomePaths, p: Policy): Promise<CrontabNotes> {
  let state: Awaited<ReturnType<typeof installedSchedule>>;
  try {
    state = await installedSchedule(p.schedule ?? null, scheduledCommand(paths));
  } catch (err) {
    return { installed: null, note: `The crontab could not be checked: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (state === null || (state === 'none' && p.schedule === undefined)) return { installed: null, note: null };
  if (state === 'same') {
    const note = await cronDaemonNote();
    return { installed: true, note, noDaemon: note !== null };
  }
  if (state === 'none') return { installed: false, note: 'The schedule is missing from crontab: set it again with azbk policy set --schedule TIMES.' };
  return {
    installed: false,
    note:
      p.schedule === undefined
        ? 'crontab runs backups for this AZBK_HOME that the policy does not list: remove them with azbk policy set --schedule off.'
        : "crontab's entries for this AZBK_HOME differ from the policy (other times, another Node.js or azbk, or an earlier azbk without the hourly check that makes up missed runs): set the schedule again with azbk policy set --schedule TIMES.",
  };
}
