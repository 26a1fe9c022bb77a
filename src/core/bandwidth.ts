/**
 * Bandwidth rules, as the MARS agent has them: one limit during work hours on work days, another
 * the rest of the time. Pure: the caller passes the local time.
 */
import { parseSize } from './size.js';

export interface BandwidthPolicy {
  /** days of the week that have work hours, 0 = Sunday */
  readonly workDays: readonly number[];
  /** minutes after local midnight */
  readonly workStart: number;
  readonly workEnd: number;
  /** bytes per second; null = unlimited */
  readonly work: number | null;
  readonly off: number | null;
}

/** The limit in force at `local` (bytes per second), or null for none. */
export function limitAt(p: BandwidthPolicy, local: { day: number; minutes: number }): number | null {
  const working = p.workDays.includes(local.day) && local.minutes >= p.workStart && local.minutes < p.workEnd;
  return working ? p.work : p.off;
}

/** Parses "09:00-17:30" (or "9-17") into minutes after midnight; null when malformed. */
export function parseHours(s: string): { start: number; end: number } | null {
  const m = /^(\d{1,2})(?::(\d{2}))?-(\d{1,2})(?::(\d{2}))?$/.exec(s.trim());
  if (m === null) return null;
  const start = Number(m[1]) * 60 + Number(m[2] ?? 0);
  const end = Number(m[3]) * 60 + Number(m[4] ?? 0);
  return start < end && end <= 24 * 60 && Number(m[2] ?? 0) < 60 && Number(m[4] ?? 0) < 60 ? { start, end } : null;
}

/** Parses a rate (see parseSize), bytes per second; 0 = unlimited. */
export function parseRate(s: string): number | null {
  return parseSize(s, true);
}
