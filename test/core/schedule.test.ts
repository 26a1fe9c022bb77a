import { describe, expect, it } from 'vitest';
import { cronCatchUp, cronTimes, describeTimes, lastRunBefore, missedRun, nextRun, parseTimes, validSchedule } from '../../src/core/schedule.js';
import { parseClock, parseDays } from '../../src/core/week.js';

describe('schedules', () => {
  it('parse up to three different times of day, sorted', () => {
    expect(parseTimes('21:00,9:05,13:30')).toEqual([9 * 60 + 5, 13 * 60 + 30, 21 * 60]);
    expect(parseTimes('00:00')).toEqual([0]);
    for (const bad of ['', '9', '24:00', '12:60', '1:00,2:00,3:00,4:00', '9:00,09:00', '9:00;10:00', '9:00,', 'noon']) expect(parseTimes(bad), bad).toBeNull();
    expect(parseClock(' 23:59 ')).toBe(23 * 60 + 59);
  });

  it('parse days of the week as ranges and lists', () => {
    expect(parseDays('mon-fri')).toEqual([1, 2, 3, 4, 5]);
    expect(parseDays('fri-mon')).toEqual([0, 1, 5, 6]);
    expect(parseDays('sat,Sunday,wed')).toEqual([0, 3, 6]);
    expect(parseDays('Monday-Friday')).toEqual([1, 2, 3, 4, 5]);
    for (const bad of ['', 'funday', 'mon-tue-wed', 'mon,,fri', 'monkey,fridge', 'sunshine', 'fr', 'tues']) expect(parseDays(bad), bad).toBeNull();
  });

  it('give one crontab line per time of day, every day as *', () => {
    expect(cronTimes({ times: [9 * 60, 13 * 60 + 30], days: [1, 2, 3, 4, 5] })).toEqual(['0 9 * * 1,2,3,4,5', '30 13 * * 1,2,3,4,5']);
    expect(cronTimes({ times: [5], days: [0, 1, 2, 3, 4, 5, 6] })).toEqual(['5 0 * * *']);
    expect(describeTimes({ times: [540, 780, 1260], days: [0] })).toBe('09:00, 13:00 and 21:00');
  });

  it('find the next run in local time, skipping days off', () => {
    const s = { times: [9 * 60, 21 * 60], days: [1, 2, 3, 4, 5] }; // weekdays
    const friEvening = new Date(2026, 10, 27, 21, 0, 0); // Friday 21:00, exactly a run: the next one is after it
    expect(nextRun(s, friEvening)).toEqual(new Date(2026, 10, 30, 9, 0));
    expect(nextRun(s, new Date(2026, 10, 30, 8, 59))).toEqual(new Date(2026, 10, 30, 9, 0));
    expect(nextRun({ times: [600], days: [3] }, new Date(2026, 10, 25, 10, 1))).toEqual(new Date(2026, 11, 2, 10, 0));
  });

  it('find the last run due, in local time, skipping days off', () => {
    const s = { times: [9 * 60, 21 * 60], days: [1, 2, 3, 4, 5] }; // weekdays at 09:00 and 21:00
    const at = (y: number, mo: number, d: number, h: number, mi = 0) => new Date(y, mo - 1, d, h, mi);
    expect(lastRunBefore(s, at(2026, 12, 2, 10))).toEqual(at(2026, 12, 2, 9)); // a Wednesday
    expect(lastRunBefore(s, at(2026, 12, 2, 9))).toEqual(at(2026, 12, 2, 9)); // due at that minute
    expect(lastRunBefore(s, at(2026, 12, 2, 8, 59))).toEqual(at(2026, 12, 1, 21));
    expect(lastRunBefore(s, at(2026, 12, 6, 12))).toEqual(at(2026, 12, 4, 21)); // Sunday: Friday evening's
    expect(lastRunBefore({ times: [0], days: [3] }, at(2026, 12, 2, 0))).toEqual(at(2026, 12, 2, 0));
  });

  it('call a run missed when no backup that ended well started since it was due', () => {
    const s = { times: [9 * 60], days: [0, 1, 2, 3, 4, 5, 6] };
    const now = new Date(2026, 11, 2, 11, 30);
    const due = new Date(2026, 11, 2, 9);
    expect(missedRun(s, null, now)).toEqual(due);
    expect(missedRun(s, new Date(2026, 11, 1, 9, 0, 5), now)).toEqual(due); // yesterday's
    expect(missedRun(s, due, now)).toBeNull();
    expect(missedRun(s, new Date(2026, 11, 2, 10, 17), now)).toBeNull(); // caught up already
    // A run due under ten minutes ago is left to its own start, which may still be running.
    expect(missedRun(s, new Date(2026, 11, 1, 9, 0, 5), new Date(2026, 11, 2, 9, 5))).toBeNull();
    expect(missedRun(s, new Date(2026, 11, 1, 9, 0, 5), new Date(2026, 11, 2, 9, 10))).toEqual(due);
    // A run due before the schedule was set was never missed.
    expect(missedRun(s, null, now, new Date(2026, 11, 2, 10))).toBeNull();
    expect(missedRun(s, null, now, new Date(2026, 11, 2, 8))).toEqual(due);
    // The hourly check runs as far from every scheduled minute as it can.
    expect(cronCatchUp(s)).toBe('30 * * * *');
    expect(cronCatchUp({ times: [9 * 60, 13 * 60 + 30, 21 * 60], days: [1] })).toBe('45 * * * *');
    expect(cronCatchUp({ times: [9 * 60 + 45, 20 * 60], days: [1] })).toBe('22 * * * *');
  });

  it('accept only well-formed schedules from a policy file', () => {
    expect(validSchedule({ times: [0, 1439], days: [0, 6] })).toBe(true);
    for (const bad of [{ times: [], days: [1] }, { times: [1, 2, 3, 4], days: [1] }, { times: [5, 5], days: [1] }, { times: [1440], days: [1] }, { times: [1], days: [7] }, { times: [2, 1], days: [1] }, { times: [1], days: [] }, null]) {
      expect(validSchedule(bad)).toBe(false);
    }
  });
});
