/** Messages between the backup's main thread and its chunk workers. */
import type { BigIntStats } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import type { ChunkerParams } from '../../core/chunker.js';

export interface WorkerInit {
  /** the 32-byte master key; the worker derives the working keys itself */
  readonly master: Uint8Array;
  readonly chunker: ChunkerParams;
  readonly level: number;
  /** Int32Array(1) over a SharedArrayBuffer: bytes posted by the worker, not yet consumed */
  readonly credit: SharedArrayBuffer;
  /** the worker pauses while more than this many bytes are outstanding */
  readonly creditLimit: number;
  /**
   * where the main thread sends back the slabs of consumed results (ArrayBuffer[] per message);
   * the worker takes them with receiveMessageOnPort while it reads, also in the middle of a file
   */
  readonly slabReturns: MessagePort;
}

/**
 * One file to read from `offset` (a chunk boundary; 0 for a whole file) to the end; `size` is its
 * size as the walk's lstat gave it. `stored`: ids of chunks the vault is known to have (the file's
 * previous version): such chunks are hashed, not sealed.
 */
export interface FileTask {
  readonly taskId: number;
  readonly path: string;
  readonly offset: number;
  readonly size: number;
  readonly stored?: readonly string[];
}

export type ToWorker = { readonly type: 'batch'; readonly files: readonly FileTask[] };

/** A chunk read: sealed, or (`sealed` absent) one the task said the vault already has. */
export interface SealedChunk {
  readonly id: string;
  readonly sealed?: Uint8Array;
  readonly rawLength: number;
}

/** The error code of a file that was replaced by something other than a regular file while it was read. */
export const NOT_REGULAR = 'ENOTREG';

/**
 * The error code of a file or folder that its path no longer names when it is read: another one
 * was put in its place, or a folder above it was (by a link to a folder outside, say).
 */
export const REPLACED = 'EREPLACED';

/** File metadata as the worker saw them, in decimal strings where they can exceed 2^53. */
export interface FileStat {
  readonly size: number;
  readonly mtime: string;
  readonly ctime: string;
  readonly ino: string;
  readonly mode: number;
  /** the device it is on and its number of hard links: names with both equal are one file */
  readonly dev: string;
  readonly nlink: number;
}

/** The FileStat of an fstat or lstat result. */
export function fileStat(st: BigIntStats): FileStat {
  return { size: Number(st.size), mtime: st.mtimeNs.toString(), ctime: st.ctimeNs.toString(), ino: st.ino.toString(), mode: Number(st.mode & 0o7777n), dev: devText(st.dev), nlink: Number(st.nlink) };
}

let lastDev = -1n;
let lastDevText = '';

/** A device number as text: the last one's string again while it repeats (a folder's entries are on one device). */
export function devText(dev: bigint): string {
  if (dev !== lastDev) {
    lastDev = dev;
    lastDevText = dev.toString();
  }
  return lastDevText;
}

export type OutItem =
  /** chunks of a file in order; `offset` is where the file stands after the last one */
  | { readonly kind: 'chunks'; readonly taskId: number; readonly chunks: readonly SealedChunk[]; readonly offset: number }
  /** the file is read, `size` bytes in all: `after` is its fstat after reading */
  | { readonly kind: 'done'; readonly taskId: number; readonly size: number; readonly after: FileStat }
  | { readonly kind: 'error'; readonly taskId: number; readonly code: string; readonly message: string };

/**
 * Results of a worker. Sealed chunks may be views of `slabs`, which go back to the worker once the
 * items are consumed: nothing may keep such a view (the main thread copies chunks into packs).
 */
export type FromWorker = { readonly type: 'out'; readonly items: readonly OutItem[]; readonly bytes: number; readonly slabs: readonly ArrayBuffer[] };
