/**
 * How many worker threads a pool starts: one per core, up to MAX_WORKERS. Each chunk worker holds
 * about 30 MiB at its peak (its heap, the read and chunk buffers, zstd's context and output, the
 * slabs in flight); backing up the Linux kernel source peaked at 240-250 MiB with 2 workers, 318
 * MiB with 4 and 442 MiB with 8. Past a few workers the main thread, which walks, packs and
 * writes listings, is what a source tree waits for; big files keep more workers busy. A machine
 * with 64 cores would otherwise start 64 of them for nothing but memory.
 */
import os from 'node:os';

export const MAX_WORKERS = 8;

/** One worker per core, at least one and at most MAX_WORKERS. */
export function workerCount(): number {
  return Math.min(MAX_WORKERS, Math.max(1, os.availableParallelism()));
}
