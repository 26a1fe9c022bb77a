import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastRunBefore, missedRun, nextRun, type Schedule } from '../../src/core/schedule.js';

// Schedules are in local time, as cron reads them: these run in a zone whose clocks change.
// Berlin, 2026: 02:00 becomes 03:00 on 29 March (01:00 UTC); 03:00 becomes 02:00 again on 25 October.
const zone = process.env.TZ;
beforeAll(() => {
  process.env.TZ = 'Europe/Berlin';
});
afterAll(() => {
  if (zone === undefined) delete process.env.TZ;
  else process.env.TZ = zone;
});

const daily = (h: number, m: number): Schedule => ({ times: [h * 60 + m], days: [0, 1, 2, 3, 4, 5, 6] });

describe('schedules across a change of the clocks', () => {
  it('are in the zone the test asks for', () => {
    expect(new Date(Date.UTC(2026, 2, 29, 1, 0)).getHours()).toBe(3);
    expect(new Date(Date.UTC(2026, 2, 29, 0, 59)).getHours()).toBe(1);
  });

  it('start a time the clocks jump over when they jump, as cron does', () => {
    const s = daily(2, 30);
    const jump = new Date(Date.UTC(2026, 2, 29, 1, 0)); // 03:00 summer time, the first minute after 01:59
    expect(nextRun(s, new Date(2026, 2, 29, 0, 0))).toEqual(jump);
    expect(lastRunBefore(s, new Date(2026, 2, 29, 4, 0))).toEqual(jump);
    // The day before and after, 02:30 as usual.
    expect(lastRunBefore(s, new Date(2026, 2, 29, 0, 0))).toEqual(new Date(Date.UTC(2026, 2, 28, 1, 30)));
    expect(nextRun(s, new Date(2026, 2, 29, 12, 0))).toEqual(new Date(Date.UTC(2026, 2, 30, 0, 30)));
    // Later times that day are where they always are.
    expect(lastRunBefore(daily(3, 30), new Date(2026, 2, 29, 4, 0))).toEqual(new Date(Date.UTC(2026, 2, 29, 1, 30)));
  });

  it('count the backup cron started at the jump as that day\'s run: no second one', () => {
    const s = daily(2, 30);
    const now = new Date(2026, 2, 29, 4, 0);
    const atJump = new Date(Date.UTC(2026, 2, 29, 1, 0, 20));
    expect(missedRun(s, atJump, now)).toBeNull();
    // Without that backup the run was missed, and the catch-up runs it.
    expect(missedRun(s, new Date(Date.UTC(2026, 2, 28, 1, 30, 5)), now)).toEqual(new Date(Date.UTC(2026, 2, 29, 1, 0)));
  });

  it('run a time the clocks go through twice once, the first time', () => {
    const s = daily(2, 30);
    const first = new Date(Date.UTC(2026, 9, 25, 0, 30)); // 02:30 summer time; 01:30 UTC is 02:30 winter time
    expect(nextRun(s, new Date(2026, 9, 25, 0, 0))).toEqual(first);
    const now = new Date(Date.UTC(2026, 9, 25, 3, 0));
    expect(lastRunBefore(s, now)).toEqual(first);
    expect(missedRun(s, new Date(first.getTime() + 5_000), now)).toBeNull();
  });
});
