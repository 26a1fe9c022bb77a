/** Ctrl-C handling of long commands: once stops at a safe point, twice exits at once. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stopOnSignals } from '../../src/cli/signals.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** process.exit, stopped from exiting: the code it was called with. */
function catchExit(): { code: () => unknown } {
  let code: unknown;
  vi.spyOn(process, 'exit').mockImplementation(((c?: number) => {
    code = c;
    throw new Error('exit');
  }) as never);
  return { code: () => code };
}

describe('stopOnSignals', () => {
  it('stops at a safe point on the first signal; on the second does what must still be recorded and exits 130', () => {
    const exit = catchExit();
    const warned: string[] = [];
    let recorded = 0;
    const cancel = stopOnSignals((s) => warned.push(s), 'stopping', () => recorded++);
    try {
      process.emit('SIGINT');
      expect(cancel.signal.aborted).toBe(true);
      expect(warned).toEqual(['stopping (press Ctrl-C again to stop at once)']);
      expect(recorded).toBe(0);
      expect(() => process.emit('SIGTERM')).toThrow('exit');
      expect(exit.code()).toBe(130);
      expect(recorded).toBe(1);
    } finally {
      cancel.dispose();
    }
  });

  it('records nothing more on the second signal once the command has recorded how it ended', () => {
    const exit = catchExit();
    let recorded = 0;
    const cancel = stopOnSignals(() => undefined, 'stopping', () => recorded++);
    try {
      process.emit('SIGINT');
      cancel.settled();
      expect(() => process.emit('SIGINT')).toThrow('exit');
      expect(exit.code()).toBe(130);
      expect(recorded).toBe(0);
    } finally {
      cancel.dispose();
    }
  });

  it('with `before`, exits at once on the first signal until the job has begun, recording it', () => {
    const exit = catchExit();
    const warned: string[] = [];
    let recorded = 0;
    const early = stopOnSignals((s) => warned.push(s), 'stopping', () => recorded++, { before: 'stopped before it began' });
    try {
      expect(() => process.emit('SIGINT')).toThrow('exit');
      expect(exit.code()).toBe(130);
      expect(warned).toEqual(['stopped before it began']);
      expect(recorded).toBe(1);
    } finally {
      early.dispose();
    }
    const begun = stopOnSignals((s) => warned.push(s), 'stopping', () => recorded++, { before: 'stopped before it began' });
    try {
      begun.begun();
      process.emit('SIGTERM');
      expect(begun.signal.aborted).toBe(true);
      // A SIGTERM (a service manager's stop) is not told to press Ctrl-C.
      expect(warned.at(-1)).toBe('stopping (a second SIGTERM stops it at once)');
      expect(recorded).toBe(1);
    } finally {
      begun.dispose();
    }
  });

  it('takes SIGHUP (its terminal closed) as a stop at a safe point, not as a kill, and lets go of it on dispose', () => {
    const warned: string[] = [];
    const cancel = stopOnSignals((s) => warned.push(s), 'stopping');
    try {
      expect(process.listenerCount('SIGHUP')).toBeGreaterThan(0);
      process.emit('SIGHUP');
      expect(cancel.signal.aborted).toBe(true);
      expect(warned).toEqual(['stopping (a second SIGHUP stops it at once)']);
    } finally {
      cancel.dispose();
    }
    expect(process.listenerCount('SIGHUP')).toBe(0);
  });
});
