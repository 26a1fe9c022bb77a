/**
 * The restore's workers: each takes one read range of a pack, opens and checks its chunks, and
 * writes them into the files that use them. A file whose every chunk is in the range is "owned"
 * by it: the worker creates it, writes it, gives it its mode and time, and renames it into place
 * (or removes it on failure), so the main thread only reads packs and keeps count. The main
 * thread itself creates and finishes the few files whose chunks span several ranges.
 */
import { RangePool } from './range-pool.js';

/**
 * One range's work, in flat arrays: a range of small files names hundreds of them and of chunks,
 * and an object for each cost the main thread garbage that outlived its young generation, and the
 * structured clone every object's keys.
 */
export interface RangeWork {
  /** the pack's id, for error messages */
  readonly pack: string;
  /** per chunk, its id */
  readonly ids: readonly string[];
  /**
   * per chunk, in order: its offset and length in the range's bytes, the number n of places it
   * goes, then n pairs (file number in this task, offset in that file)
   */
  readonly layout: Float64Array;
  /** per file: its temporary path, final path, mode and time */
  readonly tmps: readonly string[];
  readonly dests: readonly string[];
  readonly modes: Int32Array;
  readonly mtimes: readonly string[];
  /** per file, 1 when every chunk of it is in this range: the worker creates and finishes it */
  readonly owns: Uint8Array;
  /** per file, 1 when what appears at its name meanwhile is kept (see putInPlace) */
  readonly keep: Uint8Array;
}

/**
 * What a task did: per file, null when all its chunks in the range were written, else why not;
 * and whether a chunk failed its checks (the pack is damaged there).
 */
export interface RangeResult {
  readonly errors: readonly (string | null)[];
  readonly damaged: boolean;
}

export type RestorePool = RangePool<RangeWork, RangeResult>;

/** Starts the restore's workers, one per core. */
export function restorePool(master: Buffer): RestorePool {
  return new RangePool<RangeWork, RangeResult>('restore-worker.js', master, 'restore');
}
