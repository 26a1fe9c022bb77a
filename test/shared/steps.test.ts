import { describe, expect, it } from 'vitest';
import { runSliced, runSteps, type Steps } from '../../src/shared/steps.js';

/** Sums 0..n-1, a step after each number, each step busy for about `busyMs`. */
function* sum(n: number, busyMs: number, trace: string[]): Steps<number> {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const until = performance.now() + busyMs;
    while (performance.now() < until);
    total += i;
    trace.push('step');
    yield;
  }
  return total;
}

describe('work in steps', () => {
  it('run at once: nothing else runs before it ends', async () => {
    const trace: string[] = [];
    setImmediate(() => trace.push('other'));
    expect(runSteps(sum(20, 1, trace))).toBe(190);
    await new Promise((r) => setImmediate(r));
    expect(trace.indexOf('other')).toBe(20);
  });

  it('run in slices: the event loop runs between them, and the result is the same', async () => {
    const trace: string[] = [];
    const others = setInterval(() => trace.push('other'), 0);
    try {
      expect(await runSliced(sum(40, 1, trace))).toBe(780);
    } finally {
      clearInterval(others);
    }
    // other work ran between the steps, more than once, not only before or after them
    const first = trace.indexOf('other');
    expect(first).toBeGreaterThan(0);
    expect(trace.indexOf('step', first)).toBeGreaterThan(first);
    expect(trace.filter((t) => t === 'other').length).toBeGreaterThanOrEqual(2);
  });

  it('an error in a step rejects the slices', async () => {
    function* failing(): Steps<number> {
      yield;
      throw new RangeError('too big');
    }
    await expect(runSliced(failing())).rejects.toThrow('too big');
    expect(() => runSteps(failing())).toThrow('too big');
  });
});
