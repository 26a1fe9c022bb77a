import { describe, expect, it } from 'vitest';
import { retain, retainUnder, validRetention, type Retention } from '../../src/core/retention.js';

const NOW = new Date('2026-11-30T12:00:00.000Z'); // a Monday
const R = (daily: number, weekly = 0, monthly = 0, yearly = 0): Retention => ({ daily, weekly, monthly, yearly });

/** Points at the given ISO times, as the vault lists them; the verdict in terms of those times. */
function verdict(times: string[], r: Retention, now = NOW) {
  const v = retain(times, (t) => t, r, now);
  return { keep: Object.fromEntries([...v.keep].map(([t, why]) => [t, why])), remove: v.remove };
}

/** Three points a day (09:00, 13:00, 21:00 UTC) from `first` to `last` (YYYY-MM-DD), oldest first. */
function threeADay(first: string, last: string): string[] {
  const out: string[] = [];
  for (let d = new Date(`${first}T00:00:00Z`); d <= new Date(`${last}T00:00:00Z`); d = new Date(d.getTime() + 86_400_000)) {
    for (const h of ['09', '13', '21']) out.push(`${d.toISOString().slice(0, 10)}T${h}:00:00.000Z`);
  }
  return out;
}

describe('retention', () => {
  it('keeps every point younger than the daily days and removes older ones, oldest first', () => {
    const times = ['2026-11-22T11:59:59.000Z', '2026-11-23T12:00:00.000Z', '2026-11-23T12:00:01.000Z', '2026-11-30T09:00:00.000Z'];
    const v = verdict(times, R(7));
    expect(v.remove).toEqual(['2026-11-22T11:59:59.000Z', '2026-11-23T12:00:00.000Z']);
    expect(v.keep['2026-11-23T12:00:01.000Z']).toEqual(['daily']);
    expect(v.keep['2026-11-30T09:00:00.000Z']).toEqual(['newest', 'daily']);
  });

  it('keeps the newest point of each calendar week (Monday to Sunday, UTC), this week included', () => {
    // Sunday 2026-11-29 23:59 is the last moment of the week before NOW's.
    const times = ['2026-11-15T10:00:00.000Z', '2026-11-16T00:00:00.000Z', '2026-11-22T23:59:00.000Z', '2026-11-23T00:00:00.000Z', '2026-11-29T23:59:00.000Z', '2026-11-30T09:00:00.000Z'];
    const v = verdict(times, R(7, 3));
    // Weeks: of 11-30 (this one), of 11-23, of 11-16; the one of 11-09 is out.
    expect(v.keep['2026-11-30T09:00:00.000Z']).toContain('weekly');
    expect(v.keep['2026-11-29T23:59:00.000Z']).toEqual(['daily', 'weekly']);
    expect(v.keep['2026-11-22T23:59:00.000Z']).toEqual(['weekly']);
    // 11-23 00:00 is older than seven days and not its week's newest.
    expect(v.remove).toEqual(['2026-11-15T10:00:00.000Z', '2026-11-16T00:00:00.000Z', '2026-11-23T00:00:00.000Z']);
  });

  it('keeps the newest point of each month and of each year for their counts', () => {
    const times = ['2023-12-31T21:00:00.000Z', '2024-06-01T09:00:00.000Z', '2024-12-31T21:00:00.000Z', '2025-12-31T21:00:00.000Z', '2026-09-30T21:00:00.000Z', '2026-10-01T09:00:00.000Z', '2026-10-31T21:00:00.000Z', '2026-11-29T09:00:00.000Z'];
    const v = verdict(times, R(7, 0, 2, 3));
    expect(v.keep['2026-11-29T09:00:00.000Z']).toEqual(['newest', 'daily', 'monthly', 'yearly']);
    expect(v.keep['2026-10-31T21:00:00.000Z']).toEqual(['monthly']);
    expect(v.keep['2025-12-31T21:00:00.000Z']).toEqual(['yearly']);
    expect(v.keep['2024-12-31T21:00:00.000Z']).toEqual(['yearly']);
    expect(v.remove).toEqual(['2023-12-31T21:00:00.000Z', '2024-06-01T09:00:00.000Z', '2026-09-30T21:00:00.000Z', '2026-10-01T09:00:00.000Z']);
  });

  it('on a year of three points a day keeps 3 per day for the daily days plus one per older week', () => {
    const times = threeADay('2025-12-01', '2026-11-30').filter((t) => t < NOW.toISOString());
    const v = verdict(times, R(14, 8));
    // 14 days of three points (the last day has two before noon: 41 in all), and weeks 3 to 8 back once each.
    expect(times.length - v.remove.length).toBe(41 + 6);
    for (const t of v.remove) expect(t < '2026-11-16T12:00:00.000Z').toBe(true);
  });

  it('always keeps the newest point, points dated after the clock and points it cannot date', () => {
    const v = verdict(['2020-01-01T00:00:00.000Z', '2021-01-01T00:00:00.000Z'], R(7));
    expect(v.keep).toEqual({ '2021-01-01T00:00:00.000Z': ['newest'] });
    expect(v.remove).toEqual(['2020-01-01T00:00:00.000Z']);
    const w = verdict(['2026-12-30T00:00:00.000Z', 'not a time', '2020-01-01T00:00:00.000Z'], R(7));
    expect(w.keep['2026-12-30T00:00:00.000Z']).toContain('future');
    expect(w.keep['not a time']).toEqual(['undated']);
    expect(w.remove).toEqual(['2020-01-01T00:00:00.000Z']);
  });

  it('under several policies keeps what any keeps, for every reason any has', () => {
    const times = ['2026-10-20T21:00:00.000Z', '2026-11-20T12:00:00.000Z', '2026-11-29T09:00:00.000Z'];
    const kept = retainUnder(times, (t) => t, [R(7), R(30), R(7, 0, 2)], NOW);
    expect(Object.fromEntries(kept)).toEqual({
      '2026-11-29T09:00:00.000Z': ['newest', 'daily', 'monthly'],
      '2026-11-20T12:00:00.000Z': ['daily'],
      '2026-10-20T21:00:00.000Z': ['monthly'],
    });
    expect(retainUnder(times, (t) => t, [R(7)], NOW).has('2026-11-20T12:00:00.000Z')).toBe(false);
  });

  it('accepts only whole counts in range, at least a week of daily points', () => {
    expect(validRetention(R(7))).toBe(true);
    expect(validRetention(R(9999, 5163, 1188, 99))).toBe(true);
    for (const bad of [R(6), R(7, -1), R(7, 0, 1189), R(7, 0, 0, 100), R(7.5), { daily: 30 }, null, 'x', { ...R(7), weekly: '4' }]) {
      expect(validRetention(bad)).toBe(false);
    }
  });
});
