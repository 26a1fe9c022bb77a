/**
 * A restore worker: opens and checks each chunk of a pack range (decrypt, decompress, compare with
 * its id) and writes it into its files; finishes the files the range owns (see restore-pool.ts).
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { decodeBlob } from '../../core/blob.js';
import { DEFAULT_CHUNKER } from '../../core/chunker.js';
import type { BlobId } from '../../core/ids.js';
import { deriveKeys } from '../../core/keys.js';
import { isAzbkError } from '../../shared/errors.js';
import { openTemp, removeTemp, settle, why, writeAll } from '../restore-files.js';
import type { RangeResult, RangeTask } from './restore-pool.js';

const keys = deriveKeys(Buffer.from((workerData as { master: Uint8Array }).master));
/** Where chunks are decompressed: each is written out before the next is opened (as large as the chunker's default largest chunk). */
let scratch: Buffer | undefined;

interface FileState {
  /** targets of the file in this range not yet handled */
  left: number;
  /** open while the range still has chunks for the file */
  fd: number | null;
  created: boolean;
  error: string | null;
}

function run(t: RangeTask): RangeResult {
  const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const state: FileState[] = t.files.map(() => ({ left: 0, fd: null, created: false, error: null }));
  for (const b of t.blobs) for (const target of b.targets) state[target.file]!.left++;
  try {
    for (const b of t.blobs) {
      let plain: Buffer | null = null;
      let damaged = '';
      try {
        plain = decodeBlob(keys, 'data', b.id as BlobId, data.subarray(b.offset, b.offset + b.length), (scratch ??= Buffer.allocUnsafeSlow(DEFAULT_CHUNKER.max)));
      } catch (err) {
        damaged = isAzbkError(err) ? `damaged chunk ${b.id.slice(0, 12)} in pack ${t.pack.slice(0, 12)}` : String(err);
      }
      for (const target of b.targets) {
        const s = state[target.file]!;
        s.left--;
        if (s.error === null) {
          if (plain === null) s.error = damaged;
          else {
            try {
              // A file written by several ranges was created by the main thread; an owned one is
              // created by its first chunk here.
              if (s.fd === null) {
                const f = t.files[target.file]!;
                s.fd = openTemp(f.tmp, f.own && !s.created);
                s.created = true;
              }
              writeAll(s.fd, plain, target.offset);
            } catch (err) {
              s.error = why(err);
            }
          }
        }
        if (s.left === 0) done(t, target.file, s);
      }
    }
  } finally {
    for (const s of state) if (s.fd !== null) closeQuietly(s.fd);
  }
  return { taskId: t.taskId, errors: state.map((s) => s.error) };
}

/** The range has no more chunks for the file: close it; an owned file is finished or removed. */
function done(t: RangeTask, i: number, s: FileState): void {
  const f = t.files[i]!;
  if (s.fd !== null) {
    const fd = s.fd;
    s.fd = null;
    try {
      if (f.own && s.error === null) settle(fd, f.mode, f.mtime);
    } catch (err) {
      s.error = why(err);
    }
    try {
      fs.closeSync(fd); // on some file systems, the write's errors show here
    } catch (err) {
      s.error ??= why(err);
    }
  }
  if (!f.own) return;
  if (s.error === null) {
    try {
      fs.renameSync(f.tmp, f.dest);
    } catch (err) {
      s.error = why(err);
    }
  }
  if (s.error !== null && s.created) removeTemp(f.tmp);
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // the file has failed already, or the worker is stopping
  }
}

parentPort!.on('message', (t: RangeTask) => {
  const r = run(t);
  if (!t.room) parentPort!.postMessage(r);
  else parentPort!.postMessage({ taskId: r.taskId, errors: r.errors, room: t.data.buffer as ArrayBuffer } satisfies RangeResult, [t.data.buffer as ArrayBuffer]);
});
