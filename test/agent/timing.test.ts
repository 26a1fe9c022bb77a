/** Telling a live process from a later one given the same pid, and a racy read. */
import { describe, expect, it } from 'vitest';
import { racy } from '../../src/agent/backup.js';
import { processIdentity, sameProcessAlive } from '../../src/shared/process.js';

describe('process identity', () => {
  it.skipIf(process.platform !== 'linux')('is stable for a process, and differs for another', () => {
    const me = processIdentity(process.pid);
    expect(me).toMatch(/^[0-9a-f-]+\/\d+$/);
    expect(processIdentity(process.pid)).toBe(me);
    expect(sameProcessAlive(process.pid, me)).toBe(true);
    expect(sameProcessAlive(process.pid, `${me}0`)).toBe(false);
    expect(processIdentity(process.ppid)).not.toBe(me);
  });

  it('without an identity, only asks whether the pid is alive', () => {
    expect(sameProcessAlive(process.pid, null)).toBe(true);
    expect(sameProcessAlive(2 ** 22 + 12345, null)).toBe(false);
  });
});

describe('a file read just after it changed', () => {
  it('is racy while its ctime is within two seconds before the read began', () => {
    const now = Date.parse('2026-11-30T12:00:00Z');
    const ns = (ms: number) => `${BigInt(ms) * 1_000_000n + 123n}`;
    const id = (m: number, c: number) => ({ size: 1, mtime: ns(m), ctime: ns(c), ino: '1' });
    expect(racy(id(now - 60_000, now - 60_000), now)).toBe(false);
    expect(racy(id(now - 60_000, now - 500), now)).toBe(true); // ctime: a rewrite that put mtime back
    expect(racy(id(now + 3.6e6, now - 60_000), now)).toBe(false); // an mtime set ahead: ctime tells
    expect(racy(id(now + 5000, now + 5000), now)).toBe(true); // changed after the read began
    expect(racy(id(now - 2100, now - 2100), now)).toBe(false);
  });
});
