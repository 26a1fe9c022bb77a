/**
 * The restore's workers: each takes one read range of a pack, opens and checks its chunks, and
 * writes them into the files that use them. A file whose every chunk is in the range is "owned"
 * by it: the worker creates it, writes it, gives it its mode and time, and renames it into place
 * (or removes it on failure), so the main thread only reads packs and keeps count. The main
 * thread itself creates and finishes the few files whose chunks span several ranges.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { AzbkError } from '../../shared/errors.js';
import { workerUrl } from '../../shared/worker-url.js';

/**
 * One range's work, in flat arrays: a range of small files names hundreds of them and of chunks,
 * and an object for each cost the main thread garbage that outlived its young generation, and the
 * structured clone every object's keys.
 */
export interface RangeWork {
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
}

export interface RangeTask extends RangeWork {
  readonly taskId: number;
  /** the pack's id, for error messages */
  readonly pack: string;
  readonly data: Uint8Array;
  /** `data` is a view of a range buffer of the pool's: the worker sends that buffer back */
  readonly room: boolean;
}

/**
 * Per file of the task: null when all its chunks in the range were written, else why not; `room`:
 * the task's range buffer, back to be read into again.
 */
export type RangeResult = { readonly taskId: number; readonly errors: readonly (string | null)[]; readonly room?: ArrayBuffer };

/**
 * The size of the buffers ranges are read into: a range's buffer goes to a worker with the range
 * and comes back with its result. Left to the workers' garbage collectors, the ranges' buffers
 * were a third of a large restore's peak memory (49 MiB of them alive at once). 2 MiB rather
 * than 4: the kernel tree's restore peaked 15-20 MiB lower, as fast (also for big files, whose
 * chunks mostly fill a range of their own).
 */
export const RANGE_ROOM = 2 * 1024 * 1024;
/** Range buffers kept (as many as ranges are read at once: each reader waits for its worker). */
const SPARE_ROOMS = 8;

interface Slot {
  readonly worker: Worker;
  busy: number;
}

const WORKER_URL = workerUrl(import.meta.url, 'restore-worker.js');

export class RestorePool {
  private readonly slots: Slot[] = [];
  private readonly rooms: ArrayBuffer[] = [];
  private readonly pending = new Map<number, { resolve: (r: readonly (string | null)[]) => void; reject: (e: unknown) => void }>();
  private nextId = 1;
  private failure: unknown = null;

  constructor(master: Buffer, workers = Math.max(1, os.availableParallelism())) {
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(WORKER_URL, { workerData: { master: new Uint8Array(master) }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (r: RangeResult) => {
        slot.busy--;
        if (r.room !== undefined) this.giveBack(r.room);
        const p = this.pending.get(r.taskId);
        this.pending.delete(r.taskId);
        p?.resolve(r.errors);
      });
      worker.on('error', (err) => this.fail(new AzbkError('AZBK_INTERNAL', `A restore worker failed: ${err.message}`, { cause: err })));
      this.slots.push(slot);
    }
  }

  /** A buffer to read a range of `length` bytes into (see RANGE_ROOM); undefined for a longer range. */
  room(length: number): Buffer | undefined {
    if (length > RANGE_ROOM) return undefined;
    return Buffer.from(this.rooms.pop() ?? new ArrayBuffer(RANGE_ROOM));
  }

  /** Takes back a range buffer from `room`: one not used after all, or one a worker sent back. */
  giveBack(room: ArrayBuffer): void {
    if (this.rooms.length < SPARE_ROOMS && room.byteLength === RANGE_ROOM) this.rooms.push(room);
  }

  /**
   * Writes one range's chunks in the least busy worker. `data` is handed over (its memory moves
   * to the worker) when it is a view of a buffer from `room` (`inRoom`: it comes back for the next
   * range) or a whole buffer of its own, else copied.
   */
  run(pack: string, data: Buffer, work: RangeWork, inRoom = false): Promise<readonly (string | null)[]> {
    if (this.failure !== null) {
      if (inRoom) this.giveBack(data.buffer as ArrayBuffer);
      return Promise.reject(this.failure);
    }
    const own = inRoom || (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !(data.buffer instanceof SharedArrayBuffer));
    const bytes = own ? data : Uint8Array.prototype.slice.call(data);
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const taskId = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(taskId, { resolve, reject });
      slot.busy++;
      const task: RangeTask = { ...work, taskId, pack, data: bytes, room: inRoom };
      slot.worker.postMessage(task, [bytes.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.fail(new AzbkError('AZBK_CANCELLED', 'Stopped.'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private fail(err: unknown): void {
    if (this.failure !== null) return;
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
