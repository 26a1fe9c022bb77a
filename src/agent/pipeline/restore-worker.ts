/**
 * A restore worker: opens and checks each chunk of a pack range (decrypt, decompress, compare with
 * its id) and writes it into its files; finishes the files the range owns (see restore-pool.ts).
 */
import fs from 'node:fs';
import { decodeBlob } from '../../core/blob.js';
import { DEFAULT_CHUNKER } from '../../core/chunker.js';
import type { BlobId } from '../../core/ids.js';
import { isAzbkError } from '../../shared/errors.js';
import { extendTo, isHole, openTemp, putInPlace, removeTemp, settle, why, writeSparse } from '../restore-files.js';
import type { RangeTask } from './range-pool.js';
import { serveRanges, workerKeys } from './range-worker.js';
import type { RangeResult, RangeWork } from './restore-pool.js';

const keys = workerKeys();
/**
 * Where chunks are decompressed: each is written out before the next is opened (as large as the
 * chunker's default largest chunk). With it, decodeBlob also deciphers into a buffer it keeps for
 * this thread: a chunk's plaintext is valid only until the next decodeBlob here.
 */
let scratch: Buffer | undefined;

/**
 * Per file of a task: places in the range not yet handled, descriptor (-1: closed), created, the
 * end of the last chunk of zeros left as a hole (0: none), error.
 */
interface Files {
  readonly left: Int32Array;
  readonly fds: Int32Array;
  readonly created: Uint8Array;
  readonly holeEnd: Float64Array;
  readonly errors: (string | null)[];
}

function run(t: RangeTask<RangeWork>, data: Buffer): RangeResult {
  const n = t.tmps.length;
  const files: Files = { left: new Int32Array(n), fds: new Int32Array(n).fill(-1), created: new Uint8Array(n), holeEnd: new Float64Array(n), errors: new Array<string | null>(n).fill(null) };
  const { layout } = t;
  for (let p = 0; p < layout.length; p += 3 + 2 * layout[p + 2]!) {
    for (let k = 0; k < layout[p + 2]!; k++) files.left[layout[p + 3 + 2 * k]!]!++;
  }
  let packDamaged = false;
  try {
    for (let b = 0, p = 0; p < layout.length; b++, p += 3 + 2 * layout[p + 2]!) {
      const id = t.ids[b]!;
      const offset = layout[p]!;
      let plain: Buffer | null = null;
      let damaged = '';
      try {
        plain = decodeBlob(keys, 'data', id as BlobId, data.subarray(offset, offset + layout[p + 1]!), (scratch ??= Buffer.allocUnsafeSlow(DEFAULT_CHUNKER.max)));
      } catch (err) {
        packDamaged ||= isAzbkError(err);
        damaged = isAzbkError(err) ? `damaged chunk ${id.slice(0, 12)} in pack ${t.pack.slice(0, 12)}` : String(err);
      }
      // A chunk of zeros used in several places is looked at once.
      const hole = plain !== null && isHole(plain);
      for (let k = 0; k < layout[p + 2]!; k++) {
        const i = layout[p + 3 + 2 * k]!;
        files.left[i]!--;
        if (files.errors[i] === null) {
          if (plain === null) files.errors[i] = damaged;
          else {
            try {
              // A file written by several ranges was created by the main thread; an owned one is
              // created by its first chunk here.
              if (files.fds[i] === -1) {
                files.fds[i] = openTemp(t.tmps[i]!, t.owns[i] === 1 && files.created[i] === 0);
                files.created[i] = 1;
              }
              const at = layout[p + 4 + 2 * k]!;
              const end = hole ? at + plain.length : writeSparse(files.fds[i]!, plain, at);
              if (end > 0) files.holeEnd[i] = Math.max(files.holeEnd[i]!, end);
            } catch (err) {
              files.errors[i] = why(err);
            }
          }
        }
        if (files.left[i] === 0) done(t, i, files);
      }
    }
  } finally {
    for (const fd of files.fds) if (fd !== -1) closeQuietly(fd);
  }
  return { errors: files.errors, damaged: packDamaged };
}

/** The range has no more chunks for file `i`: close it; an owned file is finished or removed. */
function done(t: RangeTask<RangeWork>, i: number, files: Files): void {
  const own = t.owns[i] === 1;
  const fd = files.fds[i]!;
  if (fd !== -1) {
    files.fds[i] = -1;
    try {
      if (own && files.errors[i] === null) {
        // This range is the file's only writer: a hole at its end is there once it has the size.
        if (files.holeEnd[i]! > 0) extendTo(fd, files.holeEnd[i]!);
        settle(fd, t.modes[i]!, t.mtimes[i]!);
      }
    } catch (err) {
      files.errors[i] = why(err);
    }
    try {
      fs.closeSync(fd); // on some file systems, the write's errors show here
    } catch (err) {
      files.errors[i] ??= why(err);
    }
  }
  if (!own) return;
  if (files.errors[i] === null) {
    try {
      putInPlace(t.tmps[i]!, t.dests[i]!, t.keep[i] === 1);
    } catch (err) {
      files.errors[i] = why(err);
    }
  }
  if (files.errors[i] !== null && files.created[i] === 1) removeTemp(t.tmps[i]!);
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // the file has failed already, or the worker is stopping
  }
}

serveRanges(run);
