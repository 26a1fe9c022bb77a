/**
 * The main thread's side of the chunk workers: a queue of files, dispatched in batches to one
 * worker per core, and their results consumed in order. Memory is bounded twice: the walk waits
 * for `room()` before queueing more files, and each worker pauses while too much of its output
 * is still unconsumed (a shared credit counter).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { ChunkerParams } from '../../core/chunker.js';
import { AzbkError } from '../../shared/errors.js';
import type { FileStat, FileTask, FromWorker, OutItem, SealedChunk, ToWorker, WorkerInit } from './protocol.js';
import { workerUrl } from '../../shared/worker-url.js';
import { workerCount } from './cores.js';

/** A file read: `size` bytes in all, and its fstat after reading. */
export interface FileRead {
  readonly size: number;
  readonly after: FileStat;
}

/** Takes a file's chunks; a promise only when the reader must wait for it (throwing fails the job). */
export type ChunkHandler = (chunks: readonly SealedChunk[], offset: number) => Promise<void> | undefined;

interface Pending {
  readonly task: FileTask;
  readonly sizeHint: number;
  readonly onChunks: ChunkHandler;
  readonly resolve: (r: FileRead | { error: string; message: string }) => void;
  readonly reject: (e: unknown) => void;
  /** the last file of its batch: when it is done, its worker can take another batch */
  lastOfBatch?: boolean;
}

interface Slot {
  readonly worker: Worker;
  /** consumed slabs go back through here */
  readonly slabReturns: MessagePort;
  readonly credit: Int32Array;
  /** batches sent and not finished (at most MAX_BATCHES) */
  batches: number;
  /** bytes of the files sent to it and not finished (their sizes when sent) */
  bytes: number;
}

/** Batches a worker holds at once: one being read, and the next, so it never waits for the main thread. */
const MAX_BATCHES = 2;

export interface PoolOptions {
  readonly workers?: number;
  /**
   * files queued before room() waits (default: two batches per worker, at least 256): enough to
   * keep the workers fed (each takes up to two batches at a time); a longer queue only keeps more
   * files' state alive long enough to become old garbage (two workers, kernel tree: 1024 files
   * 9.2 s and 489 MiB, 256 files 8.7 s and 464 MiB)
   */
  readonly maxQueued?: number;
  readonly batchFiles?: number;
  readonly batchBytes?: number;
  readonly creditLimit?: number;
}

const WORKER_URL = workerUrl(import.meta.url, 'chunk-worker.js');

export class ChunkPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly running = new Map<number, Pending>();
  private nextId = 1;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private roomWaiters: (() => void)[] = [];
  private readonly opts: Required<PoolOptions>;

  constructor(
    private readonly init: { master: Buffer; chunker: ChunkerParams; level: number },
    opts: PoolOptions = {},
  ) {
    const workers = opts.workers ?? workerCount();
    const batchFiles = opts.batchFiles ?? 64;
    this.opts = {
      workers,
      maxQueued: opts.maxQueued ?? Math.max(256, 2 * workers * batchFiles),
      batchFiles,
      batchBytes: opts.batchBytes ?? 8 * 1024 * 1024,
      creditLimit: opts.creditLimit ?? 4 * 1024 * 1024,
    };
  }

  /** Starts the workers when the first file needs reading: a backup with nothing to read needs none. */
  private start(): void {
    if (this.slots.length > 0) return;
    const { init } = this;
    for (let i = 0; i < this.opts.workers; i++) {
      const shared = new SharedArrayBuffer(4);
      const { port1, port2 } = new MessageChannel();
      const data: WorkerInit = { master: new Uint8Array(init.master), chunker: init.chunker, level: init.level, credit: shared, creditLimit: this.opts.creditLimit, slabReturns: port2 };
      // A small young generation: the workers' garbage is short-lived buffers, and every scavenge frees the
      // ones already used (a larger one let each worker hold about 60 MiB of them).
      const worker = new Worker(WORKER_URL, { workerData: data, transferList: [port2], resourceLimits: { maxYoungGenerationSizeMb: 2 } });
      const slot: Slot = { worker, slabReturns: port1, credit: new Int32Array(shared), batches: 0, bytes: 0 };
      worker.on('message', (msg: FromWorker) => this.receive(slot, msg));
      worker.on('error', (err) => this.fail(new AzbkError('AZBK_INTERNAL', `A chunk worker failed: ${err.message}`, { cause: err })));
      this.slots.push(slot);
    }
  }

  /**
   * Reads a file of `size` bytes (as lstat gave it) in a worker, from `offset`, a chunk boundary;
   * `onChunks` gets its chunks in order. Chunks whose ids are in `stored` come back unsealed (the
   * vault must have them).
   */
  read(path: string, offset: number, size: number, onChunks: ChunkHandler, stored?: readonly string[]): Promise<FileRead | { error: string; message: string }> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const task: FileTask = stored === undefined || stored.length === 0 ? { taskId: this.nextId++, path, offset, size } : { taskId: this.nextId++, path, offset, size, stored };
      this.queue.push({ task, sizeHint: size - offset, onChunks, resolve, reject });
      this.start();
      this.pump();
    });
  }

  /** How many workers read files (started or not). */
  get workers(): number {
    return this.opts.workers;
  }

  /** Per worker (once started): the batches it holds and the bytes of their files not yet finished. */
  get inFlight(): readonly { readonly batches: number; readonly bytes: number }[] {
    return this.slots.map(({ batches, bytes }) => ({ batches, bytes }));
  }

  /** The queue has room for more files (room() would resolve at once). */
  get hasRoom(): boolean {
    return this.failure === null && this.queue.length < this.opts.maxQueued;
  }

  /** Resolves when the queue has room for more files. */
  room(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.queue.length < this.opts.maxQueued) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Stops the workers; pending reads are rejected with `reason`. */
  async close(reason: unknown = new AzbkError('AZBK_CANCELLED', 'Stopped.')): Promise<void> {
    this.fail(reason);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const s of this.slots) s.slabReturns.close();
  }

  /**
   * The next batch goes to the worker with the fewest batches, and of those the one with the fewest
   * bytes of files not yet finished: two big files go to two workers, not both to the first while the other
   * waits (two 2 GiB files were read by one worker, one after the other).
   */
  private idlest(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (s.batches >= MAX_BATCHES) continue;
      if (best === undefined || s.batches < best.batches || (s.batches === best.batches && s.bytes < best.bytes)) best = s;
    }
    return best;
  }

  private pump(): void {
    for (let slot = this.idlest(); slot !== undefined && this.queue.length > 0; slot = this.idlest()) {
      const files: FileTask[] = [];
      let bytes = 0;
      while (this.queue.length > 0 && files.length < this.opts.batchFiles && (files.length === 0 || bytes + this.queue[0]!.sizeHint <= this.opts.batchBytes)) {
        const p = this.queue.shift()!;
        this.running.set(p.task.taskId, p);
        files.push(p.task);
        bytes += p.sizeHint;
      }
      slot.batches++;
      slot.bytes += bytes;
      this.running.get(files.at(-1)!.taskId)!.lastOfBatch = true;
      slot.worker.postMessage({ type: 'batch', files } satisfies ToWorker);
    }
    if (this.queue.length < this.opts.maxQueued) {
      const waiters = this.roomWaiters;
      this.roomWaiters = [];
      for (const w of waiters) w();
    }
  }

  private receive(slot: Slot, msg: FromWorker): void {
    this.chain = this.chain.then(async () => {
      if (this.failure !== null) return;
      try {
        for (const item of msg.items) {
          const wait = this.handle(slot, item);
          if (wait !== undefined) await wait;
        }
        // No handler keeps a sealed chunk (the writer copies new ones into its open pack): the
        // slabs go back to be filled again.
        if (msg.slabs.length > 0 && this.failure === null) slot.slabReturns.postMessage(msg.slabs, msg.slabs);
      } catch (err) {
        this.fail(err);
      } finally {
        Atomics.sub(slot.credit, 0, msg.bytes);
        Atomics.notify(slot.credit, 0);
      }
    });
  }

  private handle(slot: Slot, item: OutItem): Promise<void> | undefined {
    const p = this.running.get(item.taskId);
    if (p === undefined) return undefined;
    if (item.kind === 'chunks') return p.onChunks(item.chunks, item.offset);
    this.running.delete(item.taskId);
    slot.bytes -= p.sizeHint;
    if (p.lastOfBatch === true) {
      slot.batches--;
      this.pump();
    }
    if (item.kind === 'done') p.resolve({ size: item.size, after: item.after });
    else p.resolve({ error: item.code, message: item.message });
  }

  private fail(err: unknown): void {
    if (this.failure !== null) return;
    this.failure = err;
    for (const p of [...this.queue, ...this.running.values()]) p.reject(err);
    this.queue.length = 0;
    this.running.clear();
    for (const w of this.roomWaiters) w();
    this.roomWaiters = [];
    for (const s of this.slots) {
      s.batches = 0;
      s.bytes = 0;
      Atomics.store(s.credit, 0, 0);
      Atomics.notify(s.credit, 0);
    }
  }
}
