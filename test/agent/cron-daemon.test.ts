/** Telling whether a cron daemon runs, from a process table laid out as /proc lays it out. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cronDaemonNote, cronDaemonRunning } from '../../src/agent/cron-daemon.js';
import { makeTempDir } from '../helpers/tmp.js';

/**
 * A fake /proc with these processes (pid -> name, or name and state: S sleeping by default, Z a
 * zombie); `hidden` pids have a folder but nothing readable in it.
 */
async function procWith(processes: Record<string, string | [string, string]>, hidden: string[] = []): Promise<string> {
  const proc = await makeTempDir('azbk-proc-');
  for (const [pid, what] of Object.entries(processes)) {
    const [name, state] = typeof what === 'string' ? [what, 'S'] : what;
    await fs.mkdir(path.join(proc, pid));
    await fs.writeFile(path.join(proc, pid, 'stat'), `${pid} (${name}) ${state} 1 ${pid} ${pid} 0 -1 4194560 1277 0 0 0 5 3\n`);
  }
  for (const pid of hidden) await fs.mkdir(path.join(proc, pid));
  await fs.writeFile(path.join(proc, 'uptime'), '1.0 1.0\n');
  await fs.mkdir(path.join(proc, 'sys'));
  return proc;
}

describe.runIf(process.platform === 'linux')('cron daemon', () => {
  it('finds cron, crond or fcron among the processes', async () => {
    for (const name of ['cron', 'crond', 'fcron']) {
      expect(await cronDaemonRunning(await procWith({ 1: 'systemd', 20: 'bash', 377: name }))).toBe(true);
    }
    expect(await cronDaemonNote(await procWith({ 1: 'init', 9: 'cron' }))).toBeNull();
  });

  it('says none runs when no process has a daemon\'s name', async () => {
    const proc = await procWith({ 1: 'systemd', 20: 'crontab', 21: 'anacron', 22: 'cron-helper', 24: ['cron', 'Z'], 25: 'my (cron) job' }, ['23']);
    expect(await cronDaemonRunning(proc)).toBe(false);
    expect(await cronDaemonNote(proc)).toMatch(/^No cron daemon is running/);
  });

  it('cannot tell when other users\' processes are hidden', async () => {
    expect(await cronDaemonRunning(await procWith({ 20: 'bash' }, ['1']))).toBeNull();
    expect(await cronDaemonRunning(await procWith({ 20: 'bash' }))).toBeNull();
    expect(await cronDaemonNote(await procWith({ 20: 'bash' }))).toBeNull();
  });

  it('reads this machine\'s own processes', async () => {
    // This process is one of them: the answer is whatever runs, but never "cannot tell" here.
    expect(typeof (await cronDaemonRunning())).toBe('boolean');
  });
});
