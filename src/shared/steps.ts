/**
 * Work done in steps: a generator that yields between steps and returns its result. Run at once,
 * or in slices between which the event loop runs, so that long work on the main thread (sealing
 * an index file of tens of thousands of blobs) does not hold back the messages of the backup's
 * workers, which wait for their next files meanwhile.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

export type Steps<T> = Generator<void, T>;

/** Runs all the steps at once. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/** A slice of the event loop's time: long enough that the turns between cost little. */
const SLICE_MS = 4;

/** Runs the steps, letting the event loop run whenever a slice of steps took SLICE_MS or more. */
export async function runSliced<T>(steps: Steps<T>): Promise<T> {
  let start = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    if (performance.now() - start >= SLICE_MS) {
      await nextTurn();
      start = performance.now();
    }
  }
}
