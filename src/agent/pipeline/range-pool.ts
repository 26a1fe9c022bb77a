/**
 * Worker threads that each take one read range of a pack at a time, with the work to do on its
 * chunks, and send back a result. The range's bytes move to the worker rather than being copied
 * when they fill a buffer of their own, or one of the pool's range buffers (RANGE_ROOM bytes),
 * which the worker sends back to be read into again. The restore (restore-worker.js) and verify
 * (check-worker.js) run their workers through it; range-worker.ts is the workers' side.
 */
import { Worker } from 'node:worker_threads';
import type { PackId } from '../../core/ids.js';
import type { VaultSession } from '../../vault/api.js';
import { AzbkError } from '../../shared/errors.js';
import { workerUrl } from '../../shared/worker-url.js';
import { workerCount } from './cores.js';

/**
 * The size of the buffers ranges are read into: a range's buffer goes to a worker with the range
 * and comes back with its result. Left to the workers' garbage collectors, the ranges' buffers
 * were a third of a large restore's peak memory (49 MiB of them alive at once). 2 MiB rather
 * than 4: the kernel tree's restore peaked 15-20 MiB lower, as fast (also for big files, whose
 * chunks mostly fill a range of their own).
 */
export const RANGE_ROOM = 2 * 1024 * 1024;
/** Range buffers kept, at least (as many as ranges are read at once: each reader waits for its worker). */
const SPARE_ROOMS = 8;

/** What a worker is sent: the work, the range's bytes, and whether they are a view of a range buffer of the pool's (to send back). */
export type RangeTask<W> = W & { readonly taskId: number; readonly data: Uint8Array; readonly room: boolean };

/** What a worker sends back: the task's result, and the task's range buffer when it had one of the pool's. */
export interface RangeReply<R> {
  readonly taskId: number;
  readonly result: R;
  readonly room?: ArrayBuffer;
}

interface Slot {
  readonly worker: Worker;
  busy: number;
}

export class RangePool<W extends object, R> {
  private readonly slots: Slot[] = [];
  private readonly rooms: ArrayBuffer[] = [];
  private readonly pending = new Map<number, { resolve: (r: R) => void; reject: (e: unknown) => void }>();
  private nextId = 1;
  private failure: unknown = null;
  /** range buffers kept for reuse */
  private readonly spare: number;

  /** Starts `workers` workers of the module `file` (in this folder), each given `master`, the key they derive theirs from; `what` names them in errors. */
  constructor(file: string, master: Buffer, what: string, workers = workerCount()) {
    const url = workerUrl(import.meta.url, file);
    this.spare = Math.max(SPARE_ROOMS, workers);
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(url, { workerData: { master: new Uint8Array(master) }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (r: RangeReply<R>) => {
        slot.busy--;
        if (r.room !== undefined) this.giveBack(r.room);
        const p = this.pending.get(r.taskId);
        this.pending.delete(r.taskId);
        p?.resolve(r.result);
      });
      worker.on('error', (err) => this.fail(new AzbkError('AZBK_INTERNAL', `A ${what} worker failed: ${err.message}`, { cause: err })));
      this.slots.push(slot);
    }
  }

  /** How many workers the pool runs. */
  get workers(): number {
    return this.slots.length;
  }

  /** A buffer to read a range of `length` bytes into (see RANGE_ROOM); undefined for a longer range. */
  room(length: number): Buffer | undefined {
    if (length > RANGE_ROOM) return undefined;
    return Buffer.from(this.rooms.pop() ?? new ArrayBuffer(RANGE_ROOM));
  }

  /**
   * Reads a range of a pack, into one of the pool's range buffers when it fits; `inRoom`: `data`
   * is a view of that buffer, to hand to `run`. A buffer the read did not end up in (or that
   * failed) is taken back at once.
   */
  async read(session: VaultSession, pack: PackId, start: number, length: number): Promise<{ data: Buffer; inRoom: boolean }> {
    const room = this.room(length);
    let data: Buffer;
    try {
      data = await session.readPack(pack, start, length, room);
    } catch (err) {
      if (room !== undefined) this.giveBack(room.buffer as ArrayBuffer);
      throw err;
    }
    const inRoom = room !== undefined && data.buffer === room.buffer;
    if (room !== undefined && !inRoom) this.giveBack(room.buffer as ArrayBuffer);
    return { data, inRoom };
  }

  /** Takes back a range buffer from `room`: one not used after all, or one a worker sent back. */
  giveBack(room: ArrayBuffer): void {
    if (this.rooms.length < this.spare && room.byteLength === RANGE_ROOM) this.rooms.push(room);
  }

  /**
   * Runs one range's work in the least busy worker. `data` is handed over (its memory moves to the
   * worker) when it is a view of a buffer from `room` (`inRoom`: it comes back for the next range)
   * or a whole buffer of its own, else copied.
   */
  run(data: Buffer, work: W, inRoom = false): Promise<R> {
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
      const task: RangeTask<W> = { ...work, taskId, data: bytes, room: inRoom };
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
