/**
 * A restore worker: opens and checks each chunk of a pack range (decrypt, decompress, compare with
 * its id) and writes it into its files; finishes the files the range owns (see restore-pool.ts).
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { decodeBlob } from '../../core/blob.js';
import type { BlobId } from '../../core/ids.js';
import { deriveKeys } from '../../core/keys.js';
import { isAzbkError } from '../../shared/errors.js';
import { errnoCode } from '../../shared/files.js';
import { openTemp, settle, writeAll } from '../restore-files.js';
import type { RangeResult, RangeTask } from './restore-pool.js';

const keys = deriveKeys(Buffer.from((workerData as { master: Uint8Array }).master));

interface FileState {
  /** targets of the file in this range not yet handled */
  left: number;
  created: boolean;
  error: string | null;
}

function run(t: RangeTask): RangeResult {
  const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const state: FileState[] = t.files.map(() => ({ left: 0, created: false, error: null }));
  for (const b of t.blobs) for (const target of b.targets) state[target.file]!.left++;
  for (const b of t.blobs) {
    let plain: Buffer | null = null;
    let why = '';
    try {
      plain = decodeBlob(keys, 'data', b.id as BlobId, data.subarray(b.offset, b.offset + b.length));
    } catch (err) {
      why = isAzbkError(err) ? `damaged chunk ${b.id.slice(0, 12)} in pack ${t.pack.slice(0, 12)}` : String(err);
    }
    for (const target of b.targets) {
      const f = t.files[target.file]!;
      const s = state[target.file]!;
      s.left--;
      if (s.error === null) {
        if (plain === null) s.error = why;
        else {
          try {
            // A shared file was created by the main thread; an owned one by its first chunk here.
            const fd = openTemp(f.tmp, f.own && !s.created);
            s.created = true;
            try {
              writeAll(fd, plain, target.offset);
              if (f.own && s.left === 0) settle(fd, f.mode, f.mtime);
            } finally {
              fs.closeSync(fd);
            }
            if (f.own && s.left === 0) fs.renameSync(f.tmp, f.dest);
          } catch (err) {
            s.error = errnoCode(err) ?? (err as Error).message;
          }
        }
      }
      if (f.own && s.left === 0 && s.error !== null && s.created) fs.rmSync(f.tmp, { force: true });
    }
  }
  return { taskId: t.taskId, errors: state.map((s) => s.error) };
}

parentPort!.on('message', (t: RangeTask) => parentPort!.postMessage(run(t)));
