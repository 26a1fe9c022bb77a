/**
 * A chunk worker: reads files with synchronous I/O (fast for many small files, and this thread
 * has nothing else to do), cuts them into content-defined chunks, and hashes, compresses and
 * seals each chunk. Results go back in batches; the worker pauses while the main thread has more
 * than `creditLimit` bytes of its output still to consume, so memory stays bounded.
 */
import fs from 'node:fs';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { blobId, encodeBlob } from '../../core/blob.js';
import { Chunker } from '../../core/chunker.js';
import { deriveKeys } from '../../core/keys.js';
import { fileStat, NOT_REGULAR, type FileTask, type FromWorker, type OutItem, type SealedChunk, type ToWorker, type WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const keys = deriveKeys(Buffer.from(init.master));
const credit = new Int32Array(init.credit);
const READ_SIZE = 1024 * 1024;
const FLUSH_BYTES = 2 * 1024 * 1024;
/**
 * Sealed chunks are written into slabs of this size, which go to the main thread with the results
 * and come back once it has copied the chunks into packs. A blob too big for one gets a buffer of
 * its own. Without slabs every sealed chunk was a buffer of its own, freed whenever the main
 * thread's garbage collector got to it; the C allocator kept the memory they had held. A message
 * takes its last slab partly filled, so the slabs out can hold up to twice the bytes credited.
 */
const SLAB_BYTES = 2 * 1024 * 1024;
/** Slabs kept for reuse (more come back only after a burst). */
const SPARE_SLABS = 4;
const buf = Buffer.allocUnsafe(READ_SIZE);
/** One chunker for every file: its buffer (up to the largest chunk) is kept. */
const chunker = new Chunker(init.chunker, keys.chunkerSeed);

let items: OutItem[] = [];
/** buffers to transfer with the next message: its slabs, then blobs that had a buffer of their own */
let slabs: ArrayBuffer[] = [];
let own: ArrayBuffer[] = [];
let pendingBytes = 0;
const spare: ArrayBuffer[] = [];
/** the slab being filled (the last of `slabs`), and how much of it is used */
let slab: Buffer | null = null;
let slabUsed = 0;

function flush(): void {
  if (items.length === 0) return;
  Atomics.add(credit, 0, pendingBytes);
  const msg: FromWorker = { type: 'out', items, bytes: pendingBytes, slabs };
  parentPort!.postMessage(msg, [...slabs, ...own]);
  items = [];
  slabs = [];
  own = [];
  slab = null;
  pendingBytes = 0;
  // Back-pressure: wait while the main thread is behind.
  while (Atomics.load(credit, 0) > init.creditLimit) Atomics.wait(credit, 0, Atomics.load(credit, 0), 50);
}

function push(item: OutItem, bytes: number): void {
  items.push(item);
  pendingBytes += bytes;
  if (pendingBytes >= FLUSH_BYTES) flush();
}

/** Room for one sealed blob of `length` bytes, in the current slab if it fits. */
function room(length: number): Buffer {
  if (length > SLAB_BYTES) {
    const b = Buffer.allocUnsafeSlow(length);
    own.push(b.buffer as ArrayBuffer);
    return b;
  }
  if (slab === null || slabUsed + length > slab.length) {
    const ab = spareSlab() ?? new ArrayBuffer(SLAB_BYTES);
    slabs.push(ab);
    slab = Buffer.from(ab);
    slabUsed = 0;
  }
  slabUsed += length;
  return slab.subarray(slabUsed - length, slabUsed);
}

/** A slab the main thread has sent back, if any. */
function spareSlab(): ArrayBuffer | undefined {
  for (;;) {
    const back = receiveMessageOnPort(init.slabReturns)?.message as ArrayBuffer[] | undefined;
    if (back === undefined) break;
    for (const ab of back) if (spare.length < SPARE_SLABS) spare.push(ab);
  }
  return spare.pop();
}

function emitChunks(taskId: number, chunks: SealedChunk[], offset: number): void {
  let bytes = 0;
  for (const c of chunks) bytes += c.sealed?.byteLength ?? 0;
  push({ kind: 'chunks', taskId, chunks, offset }, bytes);
}

/** Seals a chunk, unless the vault has it already (then only its id is needed). */
function seal(chunk: Buffer, stored: ReadonlySet<string> | null): SealedChunk {
  const id = blobId(keys, chunk);
  if (stored?.has(id) === true) return { id, rawLength: chunk.length };
  const enc = encodeBlob(keys, 'data', chunk, { id, level: init.level, into: room });
  return { id, sealed: enc.sealed, rawLength: enc.rawLength };
}

/**
 * The walk saw a regular file; by the time it is opened, its path may name something else. Never
 * through a symbolic link put in its place (its target is not what was listed), and never
 * blocking on a pipe: what is not a regular file is found by the fstat after reading, and only
 * the walk's size is read, so a device put in its place cannot stream for ever.
 */
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

function readFile(task: FileTask): void {
  let fd: number;
  try {
    fd = fs.openSync(task.path, OPEN_FLAGS);
  } catch (err) {
    push({ kind: 'error', taskId: task.taskId, code: (err as NodeJS.ErrnoException).code ?? 'EIO', message: (err as Error).message }, 0);
    return;
  }
  try {
    chunker.reset();
    const stored = task.stored === undefined || task.stored.length === 0 ? null : new Set(task.stored);
    let position = task.offset;
    let offset = task.offset;
    let pending: SealedChunk[] = [];
    let pendingSize = 0;
    // Up to the size lstat gave: if the file grew meanwhile, the fstat after reading says so, and
    // the main thread reads it again.
    while (position < task.size) {
      const n = fs.readSync(fd, buf, 0, Math.min(READ_SIZE, task.size - position), position);
      if (n === 0) break;
      position += n;
      const end = position >= task.size;
      if (end && task.offset === 0 && position === n && n < init.chunker.min) {
        // The whole file, in this first read, is one chunk (none is cut before the minimum size):
        // sealed in place.
        pending.push(seal(buf.subarray(0, n), stored));
        offset += n;
        break;
      }
      for (const chunk of chunker.cut(buf.subarray(0, n))) {
        const s = seal(chunk, stored);
        offset += chunk.length;
        pending.push(s);
        pendingSize += s.sealed?.byteLength ?? 0;
        if (pendingSize >= FLUSH_BYTES || pending.length >= 256) {
          emitChunks(task.taskId, pending, offset);
          pending = [];
          pendingSize = 0;
        }
      }
      if (end) break;
    }
    for (const chunk of chunker.end()) {
      pending.push(seal(chunk, stored));
      offset += chunk.length;
    }
    if (pending.length > 0) emitChunks(task.taskId, pending, offset);
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile()) {
      push({ kind: 'error', taskId: task.taskId, code: NOT_REGULAR, message: 'not a regular file' }, 0);
      return;
    }
    push({ kind: 'done', taskId: task.taskId, size: position, after: fileStat(st) }, 0);
  } catch (err) {
    push({ kind: 'error', taskId: task.taskId, code: (err as NodeJS.ErrnoException).code ?? 'EIO', message: (err as Error).message }, 0);
  } finally {
    fs.closeSync(fd);
  }
}

parentPort!.on('message', (msg: ToWorker) => {
  for (const task of msg.files) readFile(task);
  flush();
});
