/**
 * Verify's workers: each takes one read range of a pack and opens and checks its chunks (decrypt,
 * decompress, compare with the id), as a restore does, without writing them anywhere.
 */
import { RangePool } from './range-pool.js';

/** One range's chunks: per chunk its id, and its offset and length in the range's bytes (two numbers each). */
export interface CheckWork {
  readonly ids: readonly string[];
  readonly layout: Float64Array;
}

/** The chunks of a task that did not check out: their numbers in the task, and why. */
export type CheckResult = readonly (readonly [number, string])[];

export type CheckPool = RangePool<CheckWork, CheckResult>;

/** Starts verify's workers, one per core. */
export function checkPool(master: Buffer): CheckPool {
  return new RangePool<CheckWork, CheckResult>('check-worker.js', master, 'verify');
}
