/** A verify worker: opens and checks each chunk of a pack range (see check-pool.ts). */
import { decodeBlob } from '../../core/blob.js';
import { DEFAULT_CHUNKER } from '../../core/chunker.js';
import type { BlobId } from '../../core/ids.js';
import type { CheckResult, CheckWork } from './check-pool.js';
import { serveRanges, workerKeys } from './range-worker.js';

const keys = workerKeys();
/** Where chunks are decompressed: each is checked before the next is opened (decodeBlob also deciphers into a buffer of its own for this thread). */
let scratch: Buffer | undefined;

serveRanges<CheckWork, CheckResult>((t, data) => {
  const bad: [number, string][] = [];
  for (let i = 0; i < t.ids.length; i++) {
    const at = t.layout[2 * i]!;
    try {
      decodeBlob(keys, 'data', t.ids[i] as BlobId, data.subarray(at, at + t.layout[2 * i + 1]!), (scratch ??= Buffer.allocUnsafeSlow(DEFAULT_CHUNKER.max)));
    } catch (err) {
      bad.push([i, err instanceof Error ? err.message : String(err)]);
    }
  }
  return bad;
});
