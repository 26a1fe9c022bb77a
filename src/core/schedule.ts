/**
 * When scheduled backups run: up to three times of day, on chosen days of the week, in the
 * machine's local time (as cron and Task Scheduler read them). Pure.
 */
import { formatClock, parseClock } from './week.js';

export interface Schedule {
  /** minutes after local midnight, ascending, 1 to MAX_RUNS_PER_DAY of them */
  readonly times: readonly number[];
  /** days of the week, 0 = Sunday, ascending */
  readonly days: readonly number[];
}

/** Backups a day a schedule may start, as with the MARS agent. */
export const MAX_RUNS_PER_DAY = 3;

export const EVERY_DAY: readonly number[] = [0, 1, 2, 3, 4, 5, 6];

/**
 * Parses "09:00,13:00,21:00" into ascending minutes after midnight. Null when a time is
 * malformed, repeated, or there are more than MAX_RUNS_PER_DAY of them.
 */
export function parseTimes(s: string): number[] | null {
  const times = s.split(',').map(parseClock);
  if (times.length > MAX_RUNS_PER_DAY || times.some((t) => t === null)) return null;
  const sorted = [...new Set(times as number[])].sort((a, b) => a - b);
  return sorted.length === times.length ? sorted : null;
}

const ascendingIn = (xs: unknown, lo: number, hi: number, max: number) =>
  Array.isArray(xs) && xs.length >= 1 && xs.length <= max && xs.every((x, i) => Number.isInteger(x) && x >= lo && x <= hi && (i === 0 || x > xs[i - 1]));

/** True for a well-formed schedule (a policy file is input like any other). */
export function validSchedule(v: unknown): v is Schedule {
  const s = v as Schedule;
  return typeof s === 'object' && s !== null && ascendingIn(s.times, 0, 24 * 60 - 1, MAX_RUNS_PER_DAY) && ascendingIn(s.days, 0, 6, 7);
}

/** The minute, hour and day-of-week fields of one crontab line per time of day. */
export function cronTimes(s: Schedule): string[] {
  const days = s.days.length === 7 ? '*' : s.days.join(',');
  return s.times.map((t) => `${t % 60} ${Math.floor(t / 60)} * * ${days}`);
}

/** "09:00, 13:00 and 21:00". */
export function describeTimes(s: Schedule): string {
  const t = s.times.map(formatClock);
  return t.length === 1 ? t[0]! : `${t.slice(0, -1).join(', ')} and ${t.at(-1)}`;
}

const MINUTE_MS = 60_000;
const DAY_MINUTES = 24 * 60;
const minuteOfDay = (d: Date) => d.getHours() * 60 + d.getMinutes();

/**
 * When the run at `t` minutes after midnight on `day` starts (local time). A day whose clocks
 * jump forward over that time (02:30, where they go from 02:00 to 03:00) has no such instant:
 * cron starts the run when the clocks jump, the first minute after it, where Date would place it
 * after the jump by the jump's length (03:30).
 */
function runAt(day: Date, t: number): Date {
  const at = new Date(day.getFullYear(), day.getMonth(), day.getDate(), Math.floor(t / 60), t % 60);
  if (minuteOfDay(at) === t) return at;
  let start = at.getTime();
  for (let k = 0; k < DAY_MINUTES; k++) {
    const before = new Date(start - MINUTE_MS);
    if ((minuteOfDay(new Date(start)) - minuteOfDay(before) + DAY_MINUTES) % DAY_MINUTES !== 1) break; // the jump
    start -= MINUTE_MS;
  }
  return new Date(start);
}

/** The first run after `from`, in the time zone `from`'s local fields are read in. */
export function nextRun(s: Schedule, from: Date): Date {
  for (let d = 0; d <= 7; d++) {
    const day = new Date(from.getFullYear(), from.getMonth(), from.getDate() + d);
    if (!s.days.includes(day.getDay())) continue;
    for (const t of s.times) {
      const at = runAt(day, t);
      if (at > from) return at;
    }
  }
  throw new Error('a valid schedule runs within eight days');
}

/** The last run at or before `at` (local time, as nextRun), or null when none falls in the 8 days before. */
export function lastRunBefore(s: Schedule, at: Date): Date | null {
  for (let d = 0; d <= 8; d++) {
    const day = new Date(at.getFullYear(), at.getMonth(), at.getDate() - d);
    if (!s.days.includes(day.getDay())) continue;
    for (const t of [...s.times].reverse()) {
      const run = runAt(day, t);
      if (run <= at) return run;
    }
  }
  return null;
}

/** The minute past each hour of the hourly catch-up check: as far from every time's minute as can be. */
export function catchUpMinute(s: Schedule): number {
  const taken = s.times.map((t) => t % 60);
  const distance = (m: number) => Math.min(...taken.map((t) => Math.min(Math.abs(m - t), 60 - Math.abs(m - t))));
  const start = ((taken[0] ?? 0) + 30) % 60;
  let best = start;
  for (let k = 1; k < 60; k++) {
    const m = (start + k) % 60;
    if (distance(m) > distance(best)) best = m;
  }
  return best;
}

/** The crontab time fields of the hourly check that catches up a missed run (see catchUpMinute). */
export function cronCatchUp(s: Schedule): string {
  return `${catchUpMinute(s)} * * * *`;
}

/** A run due less than this long ago is left to its own start (which may still be running). */
export const CATCH_UP_GRACE_MS = 10 * 60 * 1000;

/**
 * The scheduled run that was missed at `now`: the last run due at least CATCH_UP_GRACE_MS before
 * it, when no backup that ended well started at or after it (`lastBackup`: when the last such
 * backup started, or null for none), and the schedule was in force then (`since`: when it was
 * set, null when not known). Null when nothing was missed.
 */
export function missedRun(s: Schedule, lastBackup: Date | null, now: Date, since: Date | null = null): Date | null {
  const due = lastRunBefore(s, new Date(now.getTime() - CATCH_UP_GRACE_MS));
  if (due === null || (since !== null && due < since)) return null;
  return lastBackup === null || lastBackup < due ? due : null;
}
