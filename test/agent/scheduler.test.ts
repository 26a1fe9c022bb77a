import { describe, expect, it } from 'vitest';
import { cronBlock, cronEntries, replaceCronBlock, scheduleTag, schtasksCreate, type ScheduledCommand } from '../../src/agent/scheduler.js';
import { isAzbkError } from '../../src/shared/errors.js';

const CMD: ScheduledCommand = { node: '/usr/bin/node', script: "/opt/it's 100%/bin/azbk", home: '/home/u/.config/azbk', log: '/home/u/.config/azbk/logs/scheduled.log' };
const S = { times: [9 * 60, 21 * 60], days: [1, 2, 3, 4, 5] };

describe('the crontab block', () => {
  it('quotes every path for sh, and % for cron', () => {
    const block = cronBlock(S, CMD);
    expect(block).toHaveLength(4);
    expect(block[1]).toBe(`0 9 * * 1,2,3,4,5 AZBK_HOME='/home/u/.config/azbk' '/usr/bin/node' '/opt/it'\\''s 100\\%/bin/azbk' backup --now >>'/home/u/.config/azbk/logs/scheduled.log' 2>&1`);
    expect(block[0]).toContain(scheduleTag(CMD.home));
    expect(cronBlock(null, CMD)).toEqual([]);
  });

  it('refuses paths with control characters rather than splitting a line', () => {
    try {
      cronBlock(S, { ...CMD, home: '/tmp/a\nb' });
      throw new Error('expected a refusal');
    } catch (err) {
      expect(isAzbkError(err, 'AZBK_BAD_INPUT')).toBe(true);
    }
  });

  it('replaces only its own block, appends a new one, and removes it whole', () => {
    const mine = cronBlock(S, CMD);
    const other = cronBlock(S, { ...CMD, home: '/another/home' });
    const user = '# mine\n5 4 * * * echo hi\n';
    const once = replaceCronBlock(user, scheduleTag(CMD.home), mine);
    expect(once).toBe(user + mine.join('\n') + '\n');
    const both = replaceCronBlock(once, scheduleTag('/another/home'), other);
    const changed = cronBlock({ times: [60], days: [0] }, CMD);
    const again = replaceCronBlock(both, scheduleTag(CMD.home), changed);
    expect(again).toBe(user + other.join('\n') + '\n' + changed.join('\n') + '\n');
    expect(cronEntries(again, scheduleTag(CMD.home))).toEqual([changed[1]]);
    expect(replaceCronBlock(replaceCronBlock(again, scheduleTag(CMD.home), []), scheduleTag('/another/home'), [])).toBe(user);
    expect(replaceCronBlock('', scheduleTag(CMD.home), [])).toBe('');
  });

  it('leaves a begin marker without its end, and what follows it, alone', () => {
    const broken = `${cronBlock(S, CMD)[0]}\n0 1 * * * echo user\n`;
    expect(replaceCronBlock(broken, scheduleTag(CMD.home), [])).toBe(broken);
  });
});

describe('Task Scheduler', () => {
  it('creates one weekly task per time of day, on the schedule\'s days', () => {
    expect(schtasksCreate(S, 1, 'abc', 'C:\\ProgramData\\azbk\\scheduled-backup.cmd')).toEqual([
      '/Create', '/F', '/TN', 'azbk\\backup-abc-2', '/SC', 'WEEKLY', '/D', 'MON,TUE,WED,THU,FRI', '/ST', '21:00', '/TR', '"C:\\ProgramData\\azbk\\scheduled-backup.cmd"',
    ]);
  });
});
