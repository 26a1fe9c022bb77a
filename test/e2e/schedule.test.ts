/**
 * Scheduled backups end to end with the real `crontab` program: `azbk policy set --schedule`
 * installs one AZBK_HOME's entries, replaces them when set again and removes them with off,
 * leaving the user's own entries as they were. Where a cron daemon runs (CI starts one), cron
 * itself then runs a scheduled backup, within about two minutes. The tests touch only the lines
 * they add. The user's crontab is put back after the tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduleTag } from '../../src/agent/scheduler.js';
import { expectExit, expectNoStack, parseJson, runCli, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const hasCrontab = process.platform !== 'win32' && spawnSync('crontab', ['-l']).error === undefined;

/** Whether a cron daemon runs here: its pid file names a live process (or pgrep finds one). */
function cronDaemonRuns(): boolean {
  for (const file of ['/run/crond.pid', '/var/run/crond.pid']) {
    try {
      process.kill(Number(readFileSync(file, 'utf8').trim()), 0);
      return true;
    } catch {
      // no such file or process
    }
  }
  return spawnSync('pgrep', ['-x', 'cron|crond']).status === 0;
}
/** CI starts a cron daemon (.ci/run). */
const cronRuns = hasCrontab && cronDaemonRuns();

/** The crontab as bytes; empty when there is none. Any other failure stops the tests before they touch it. */
const readCrontab = (): Buffer => {
  const r = spawnSync('crontab', ['-l']);
  if (r.status === 0) return r.stdout;
  if (/no crontab/i.test(r.stderr.toString())) return Buffer.alloc(0);
  throw new Error(`crontab -l failed: ${r.stderr.toString()}`);
};
const writeCrontab = (bytes: Buffer) => {
  if (bytes.length === 0) spawnSync('crontab', ['-r']);
  else execFileSync('crontab', ['-'], { input: bytes });
};
/** The lines that name `home`, the markers of its block left out. */
const entriesOf = (home: string) => readCrontab().toString('utf8').split('\n').filter((l) => l.includes(`AZBK_HOME='${home}'`));
/** The crontab with `edit` applied to each line (latin1: byte for byte); null drops the line. */
const editCrontab = (edit: (line: string) => string | null) =>
  writeCrontab(Buffer.from(readCrontab().toString('latin1').split('\n').flatMap((l) => edit(l) ?? []).join('\n'), 'latin1'));
/** Whether a crontab line (latin1) belongs to `home`: its markers, or its entries. */
const ofHome = (line: string, home: string) => line.includes(`# azbk ${scheduleTag(home)} `) || line.includes(`AZBK_HOME='${Buffer.from(home).toString('latin1')}'`);

// Only this file's own lines are added, changed and removed, so that a test run elsewhere for the
// same user (or the user's own entries) is left alone.
describe.runIf(hasCrontab)('scheduled backups', () => {
  // The user's own lines, one of them not UTF-8 (a latin1 é): they must come back byte for byte.
  const mark = randomBytes(4).toString('hex');
  const USER_LINES = Buffer.concat([Buffer.from(`# the user's own ${mark}, caf`), Buffer.from([0xe9]), Buffer.from(`\n17 3 * * * echo "100%" >/dev/null # ${mark}\n`)]);
  const hasUserLines = () => readCrontab().includes(USER_LINES);
  beforeAll(() => writeCrontab(Buffer.concat([readCrontab(), USER_LINES])));
  // The user's lines go, and so do the entries of every machine here: a test that failed half
  // way must not leave backups of a removed AZBK_HOME running every hour.
  const homes: string[] = [];
  afterAll(() => editCrontab((l) => (l.includes(mark) || homes.some((h) => ofHome(l, h)) ? null : l)));
  const machineIn = async (tmp: string) => {
    const m = await setupMachine(tmp);
    homes.push(m.home);
    return m;
  };

  it('policy set --schedule installs, replaces and removes this machine\'s crontab entries only', async () => {
    const tmp = await makeTempDir('azbk-schedule-');
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    const m = await machineIn(tmp);

    const empty = await m.run(['policy', 'set', '--schedule', '09:00']);
    expectExit(empty, 2);
    expect(empty.stderr).toMatch(/needs something to back up/);
    for (const bad of [['--schedule', '1:00,2:00,3:00,4:00'], ['--schedule', '25:00'], ['--schedule', '9:00', '--schedule-days', 'someday'], ['--schedule-days', 'mon']]) {
      const r = await m.run(['policy', 'set', '--include', data, ...bad]);
      expectExit(r, 2);
      expectNoStack(r);
    }
    expect(entriesOf(m.home)).toEqual([]);

    const set = await m.run(['policy', 'set', '--include', data, '--schedule', '21:00,9:00,13:30', '--schedule-days', 'mon-fri', '--json']);
    expectExit(set, 0);
    expect(parseJson(set).schedule).toEqual({ times: [540, 810, 1260], days: [1, 2, 3, 4, 5] });
    // When it was set, so that the hourly check does not take runs due before as missed.
    const setAt = async () => JSON.parse(await fs.readFile(path.join(m.home, 'policy.json'), 'utf8')).scheduleSet as string;
    const first = await setAt();
    expect(Date.now() - Date.parse(first)).toBeLessThan(60_000);
    expectExit(await m.run(['policy', 'set', '--include', data]), 0);
    expect(await setAt()).toBe(first); // the schedule did not change
    const lines = entriesOf(m.home);
    // One line per time of day, and the hourly check that catches up a missed run.
    expect(lines.map((l) => l.split(' ').slice(0, 5).join(' '))).toEqual(['0 9 * * 1,2,3,4,5', '30 13 * * 1,2,3,4,5', '0 21 * * 1,2,3,4,5', '45 * * * *']);
    expect(lines[0]).toContain(`'${process.execPath}'`);
    expect(lines[0]).toMatch(/ backup --now >>'.*scheduled\.log' 2>&1$/);
    expect(lines[3]).toMatch(/ backup --now --catch-up >>'.*scheduled\.log' 2>&1$/);

    // Set again: replaced, not added; then off: gone. The user's lines stay throughout.
    expectExit(await m.run(['policy', 'set', '--schedule', '06:15']), 0);
    expect(entriesOf(m.home).map((l) => l.split(' ').slice(0, 5).join(' '))).toEqual(['15 6 * * 1,2,3,4,5', '45 * * * *']);
    expect(hasUserLines()).toBe(true);
    const show = await m.run(['policy', 'show', '--json']);
    expect(parseJson(show)).toMatchObject({ schedule: { times: [375] }, installed: true });
    // Installed, but without a cron daemon nothing runs it: set, show and status say so.
    expect(parseJson(show).cronDaemon).toBe(cronRuns ? undefined : false);
    const NO_DAEMON = /No cron daemon is running[^\n]*scheduled backups will not run until one is started/;
    for (const args of [['policy', 'set', '--schedule', '06:15'], ['policy', 'show'], ['status']]) {
      const r = await m.run(args);
      expectExit(r, 0);
      if (cronRuns) expect(r.stdout).not.toMatch(NO_DAEMON);
      else expect(r.stdout).toMatch(NO_DAEMON);
    }

    // Changed behind azbk's back (another time), then removed: show says so.
    editCrontab((l) => (ofHome(l, m.home) ? l.replace(/^15 6 /, '45 6 ') : l));
    const differs = await m.run(['policy', 'show', '--json']);
    expect(parseJson(differs).installed).toBe(false);
    expect((await m.run(['policy', 'show'])).stdout).toMatch(/crontab's entries for this AZBK_HOME differ from the policy/);
    editCrontab((l) => (ofHome(l, m.home) ? null : l));
    const missing = await m.run(['policy', 'show']);
    expect(missing.stdout).toMatch(/missing from crontab/);

    expectExit(await m.run(['policy', 'set', '--schedule', '06:15']), 0);
    expectExit(await m.run(['policy', 'set', '--schedule', 'off']), 0);
    expect(entriesOf(m.home)).toEqual([]);
    expect(readCrontab().toString('latin1').split('\n').some((l) => ofHome(l, m.home))).toBe(false);
    expect(hasUserLines()).toBe(true);
    expect(parseJson(await m.run(['policy', 'show', '--json'])).schedule).toBeUndefined();

    // The same AZBK_HOME named through a link has one set of entries, which name the folder it
    // really is: set through the link, they replace those set through the folder, and show
    // through either name as installed; off through the folder removes them.
    const link = `${m.home}-link`;
    await fs.symlink(m.home, link);
    expectExit(await m.run(['policy', 'set', '--schedule', '05:00']), 0);
    expectExit(await runCli(['policy', 'set', '--schedule', '04:00'], { home: link }), 0);
    expect(entriesOf(link)).toEqual([]);
    expect(entriesOf(m.home).map((l) => l.split(' ').slice(0, 5).join(' '))[0]).toBe('0 4 * * *');
    expect(entriesOf(m.home)).toHaveLength(2);
    expect(parseJson(await m.run(['policy', 'show', '--json'])).installed).toBe(true);
    expect(parseJson(await runCli(['policy', 'show', '--json'], { home: link })).installed).toBe(true);
    expectExit(await m.run(['policy', 'set', '--schedule', 'off']), 0);
    expect(entriesOf(m.home)).toEqual([]);
    expect(readCrontab().toString('latin1').split('\n').some((l) => ofHome(l, m.home))).toBe(false);
    expect(hasUserLines()).toBe(true);

    // A crontab that cannot be read: exit 1, and neither the vault's retention nor the policy
    // changes (everything is checked before the first change).
    const fake = path.join(tmp, 'fake-bin');
    await fs.mkdir(fake);
    await fs.writeFile(path.join(fake, 'crontab'), '#!/bin/sh\necho "crontab: cannot open the spool" >&2\nexit 1\n', { mode: 0o755 });
    const broken = await m.run(['policy', 'set', '--schedule', '09:00', '--keep-daily', '14'], { env: { PATH: `${fake}:${process.env.PATH}` } });
    expectExit(broken, 1);
    expect(broken.stderr).toMatch(/AZBK_SCHEDULER_FAILED: crontab -l failed: crontab: cannot open the spool/);
    expectNoStack(broken);
    expect(parseJson(await m.run(['policy', 'show', '--json']))).not.toHaveProperty('retention');
    await expect(fs.readdir(path.join(m.vault.dir, 'policies'))).rejects.toThrow();

    // Entries the policy file does not know (it was removed): show says so, and off removes them.
    expectExit(await m.run(['policy', 'set', '--schedule', '07:00']), 0);
    const policyFile = path.join(m.home, 'policy.json');
    const kept = await fs.readFile(policyFile);
    await fs.rm(policyFile);
    expect((await m.run(['policy', 'show'])).stdout).toMatch(/crontab runs backups for this AZBK_HOME that the policy does not list/);
    expectExit(await m.run(['policy', 'set', '--schedule', 'off']), 0);
    expect(entriesOf(m.home)).toEqual([]);
    await fs.writeFile(policyFile, kept);

    // A policy file with a schedule of four runs a day is damaged, not obeyed.
    const file = path.join(m.home, 'policy.json');
    const policy = JSON.parse(await fs.readFile(file, 'utf8'));
    await fs.writeFile(file, JSON.stringify({ ...policy, schedule: { times: [60, 120, 180, 240], days: [1] } }));
    const damaged = await m.run(['policy', 'show']);
    expectExit(damaged, 2);
    expect(damaged.stderr).toMatch(/policy file .* is damaged/);
    expectNoStack(damaged);
  }, 60_000);

  it.runIf(cronRuns)('cron runs the scheduled backup, which makes a point', async () => {
    // A quote, a percent sign, spaces and a letter beyond ASCII in AZBK_HOME: sh and cron must
    // both read them as written, and the crontab must hold them as UTF-8.
    const tmp = await makeTempDir("azbk-cron it's 100% café ");
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'f.txt'), 'backed up by cron\n');
    const m = await machineIn(tmp);
    // The next minute, or the one after when this one is nearly over (cron reads changed crontabs
    // when a minute starts).
    const at = new Date(Date.now() + (new Date().getSeconds() >= 50 ? 120_000 : 60_000));
    const hhmm = `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
    expectExit(await m.run(['policy', 'set', '--include', data, '--schedule', hhmm]), 0);
    try {
      // The job prints its result last (after recording the job): wait for that in its log.
      const logFile = path.join(m.home, 'logs', 'scheduled.log');
      const deadline = Date.now() + 150_000;
      let log = '';
      while (!/Recovery point \S+ created[^]*uploaded/.test(log) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2000));
        log = await fs.readFile(logFile, 'utf8').catch(() => '');
      }
      expect(log).toMatch(/Recovery point \S+ created/);
      const points = parseJson(await m.run(['points', '--json'])).points as { id: string }[];
      expect(points).toHaveLength(1);
      // The job history has the run, as for one started by hand.
      const jobs = parseJson(await m.run(['jobs', '--json'])).jobs;
      expect(jobs).toHaveLength(1);
      expect(jobs[0]).toMatchObject({ kind: 'backup', status: 'ok', point: points[0]!.id });
    } finally {
      await m.run(['policy', 'set', '--schedule', 'off']);
    }
  }, 200_000);
});
