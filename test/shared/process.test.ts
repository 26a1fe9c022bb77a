/** Whether another process is alive: a zombie (ended, not yet waited for) is not. */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { processAlive, processIdentity, sameProcessAlive } from '../../src/shared/process.js';

describe('processAlive', () => {
  it('is true for a running process and false for one that does not exist', () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(sameProcessAlive(process.pid, processIdentity(process.pid))).toBe(true);
    expect(processAlive(2 ** 22 + 12345)).toBe(false);
  });

  it.runIf(process.platform === 'linux')('is false for a process that ended and that its parent has not waited for', async () => {
    // sh starts a short child, then becomes a sleep that never waits for it: the child stays a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))));
      expect(Number.isSafeInteger(pid)).toBe(true);
      const identity = processIdentity(pid);
      expect(processAlive(pid)).toBe(true);
      for (let i = 0; i < 100 && processAlive(pid); i++) await sleep(50);
      expect(processAlive(pid)).toBe(false);
      expect(sameProcessAlive(pid, identity)).toBe(false);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
