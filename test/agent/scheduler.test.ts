import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cronBlock, cronEntries, replaceCronBlock, scheduleTag, schtasksCatchUp, schtasksCreate, type ScheduledCommand } from '../../src/agent/scheduler.js';
import { isAzbkError } from '../../src/shared/errors.js';

const CMD: ScheduledCommand = { node: '/usr/bin/node', script: "/opt/it's 100%/bin/azbk", home: '/home/u/.config/azbk', log: '/home/u/.config/azbk/logs/scheduled.log' };
const S = { times: [9 * 60, 21 * 60], days: [1, 2, 3, 4, 5] };

describe('the crontab block', () => {
  it('quotes every path for sh, and % for cron', () => {
    const block = cronBlock(S, CMD);
    expect(block).toHaveLength(5);
    // The times of day, then the hourly check that catches up a missed run.
    const mk = "umask 077; mkdir -p -m 700 '/home/u/.config/azbk/logs' 2>/dev/null;";
    expect(block[3]).toBe(`30 * * * * ${mk} AZBK_HOME='/home/u/.config/azbk' '/usr/bin/node' '/opt/it'\\''s 100\\%/bin/azbk' backup --now --catch-up >>'/home/u/.config/azbk/logs/scheduled.log' 2>&1`);
    expect(block[1]).toBe(`0 9 * * 1,2,3,4,5 ${mk} AZBK_HOME='/home/u/.config/azbk' '/usr/bin/node' '/opt/it'\\''s 100\\%/bin/azbk' backup --now >>'/home/u/.config/azbk/logs/scheduled.log' 2>&1`);
    expect(block[0]).toContain(scheduleTag(CMD.home));
    expect(cronBlock(null, CMD)).toEqual([]);
  });

  it.skipIf(process.platform === 'win32')('runs, as cron would, also when the logs folder is gone: it is made (owner-only) and the output goes there (owner-only)', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'azbk-cron-'));
    try {
      const script = path.join(dir, 'fake-azbk.js');
      await fs.writeFile(script, "console.log('ran with', process.argv.slice(2).join(' '), 'in', process.env.AZBK_HOME)");
      const home = path.join(dir, 'home');
      await fs.mkdir(home);
      const cmd: ScheduledCommand = { node: process.execPath, script, home, log: path.join(home, 'logs', 'scheduled.log') };
      const line = cronBlock(S, cmd)[1]!;
      // What cron hands sh: the line after its five time fields, with \% read as %.
      const r = spawnSync('sh', ['-c', line.split(' ').slice(5).join(' ').replace(/\\%/g, '%')], { env: { PATH: '/usr/bin:/bin', HOME: dir } });
      expect(r.status, r.stderr.toString()).toBe(0);
      expect(await fs.readFile(cmd.log, 'utf8')).toBe(`ran with backup --now in ${home}\n`);
      expect((await fs.stat(path.dirname(cmd.log))).mode & 0o777).toBe(0o700);
      expect((await fs.stat(cmd.log)).mode & 0o777).toBe(0o600);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses paths with control characters rather than splitting a line, and backslashes cron cannot keep', () => {
    for (const home of ['/tmp/a\nb', '/tmp/a\rb', '/tmp/a\\%b']) {
      try {
        cronBlock(S, { ...CMD, home });
        throw new Error('expected a refusal');
      } catch (err) {
        expect(isAzbkError(err, 'AZBK_BAD_INPUT')).toBe(true);
      }
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
    expect(cronEntries(again, scheduleTag(CMD.home))).toEqual(changed.slice(1, -1));
    expect(replaceCronBlock(replaceCronBlock(again, scheduleTag(CMD.home), []), scheduleTag('/another/home'), [])).toBe(user);
    expect(replaceCronBlock('', scheduleTag(CMD.home), [])).toBe('');
  });

  it('removes every whole block of its own, and refuses a marker without its pair rather than guess', () => {
    const mine = cronBlock(S, CMD);
    const tag = scheduleTag(CMD.home);
    const twice = `${mine.join('\n')}\n0 1 * * * echo user\n${mine.join('\n')}\n`;
    expect(replaceCronBlock(twice, tag, [])).toBe('0 1 * * * echo user\n');
    expect(cronEntries(twice, tag)).toHaveLength(6); // two times and the catch-up check, twice
    for (const broken of [`${mine[0]}\n0 1 * * * echo user\n`, `0 1 * * * echo user\n${mine.at(-1)}\n`, `${mine[0]}\n${mine[0]}\n${mine.at(-1)}\n`]) {
      for (const f of [() => replaceCronBlock(broken, tag, mine), () => cronEntries(broken, tag)]) {
        try {
          f();
          throw new Error('expected a refusal');
        } catch (err) {
          expect(isAzbkError(err, 'AZBK_SCHEDULER_FAILED')).toBe(true);
        }
      }
    }
    // Another AZBK_HOME's broken block is not this one's business.
    expect(replaceCronBlock(`${cronBlock(S, { ...CMD, home: '/x' })[0]}\n`, tag, mine)).toBe(`${cronBlock(S, { ...CMD, home: '/x' })[0]}\n${mine.join('\n')}\n`);
  });
});

describe('Task Scheduler', () => {
  it('creates one weekly task per time of day, on the schedule\'s days', () => {
    expect(schtasksCreate(S, 1, 'abc', 'C:\\Users\\ann\\AppData\\Local\\azbk\\scheduled-backup.cmd')).toEqual([
      '/Create', '/F', '/TN', 'azbk\\backup-abc-2', '/SC', 'WEEKLY', '/D', 'MON,TUE,WED,THU,FRI', '/ST', '21:00', '/TR', '"C:\\Users\\ann\\AppData\\Local\\azbk\\scheduled-backup.cmd"',
    ]);
    // The hourly check that catches up a missed run, every day, passing --catch-up on to the batch file.
    expect(schtasksCatchUp(S, 'abc', 'C:\\Users\\ann\\AppData\\Local\\azbk\\scheduled-backup.cmd')).toEqual([
      '/Create', '/F', '/TN', 'azbk\\backup-abc-catch-up', '/SC', 'HOURLY', '/ST', '00:30', '/TR', '"C:\\Users\\ann\\AppData\\Local\\azbk\\scheduled-backup.cmd" --catch-up',
    ]);
  });
});
