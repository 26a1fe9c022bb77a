/** The workers' side of a RangePool (range-pool.ts): one task at a time, its result sent back with the range buffer it came in. */
import { parentPort, workerData } from 'node:worker_threads';
import { deriveKeys, type VaultKeys } from '../../core/keys.js';
import type { RangeReply, RangeTask } from './range-pool.js';

/** The keys this worker's pool gave it (derived from the master key). */
export function workerKeys(): VaultKeys {
  return deriveKeys(Buffer.from((workerData as { master: Uint8Array }).master));
}

/** Answers every task with what `handle` returns for it. */
export function serveRanges<W, R>(handle: (task: RangeTask<W>, data: Buffer) => R): void {
  parentPort!.on('message', (t: RangeTask<W>) => {
    const result = handle(t, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    if (!t.room) parentPort!.postMessage({ taskId: t.taskId, result } satisfies RangeReply<R>);
    else parentPort!.postMessage({ taskId: t.taskId, result, room: t.data.buffer as ArrayBuffer } satisfies RangeReply<R>, [t.data.buffer as ArrayBuffer]);
  });
}
