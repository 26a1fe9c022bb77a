/**
 * Private: validation of pack entries read from pack headers and index files.
 */
import { BLOB_OVERHEAD, MAX_BLOB_SIZE } from './blob.js';
import type { BlobId } from './ids.js';
import { isHex64 } from './ids.js';
import type { PackEntry } from './pack.js';
import { isRecord, isSafeNat } from './validate.js';

/** Largest pack the formats describe: room for packs cut late around one maximal blob. */
export const MAX_PACK_SIZE = 256 * 1024 * 1024;

/**
 * Why `v` is not a valid pack entry, or null when it is: type 'data' or 'tree', a hex id, safe
 * non-negative integers, a sealed length that fits the blob format (at most the raw length plus
 * the blob overhead, since a blob is stored raw when compression does not help) and a byte range
 * that ends within MAX_PACK_SIZE.
 */
export function entryProblem(v: unknown): string | null {
  if (!isRecord(v)) return 'entry is not an object';
  if (v.type !== 'data' && v.type !== 'tree') return 'entry type is not data or tree';
  if (!isHex64(v.id)) return 'entry id is not 64 hex characters';
  const { offset, length, rawLength } = v;
  if (!isSafeNat(offset) || !isSafeNat(length) || !isSafeNat(rawLength)) {
    return 'entry offset, length and rawLength must be non-negative integers';
  }
  if (rawLength > MAX_BLOB_SIZE) return 'entry rawLength exceeds MAX_BLOB_SIZE';
  if (length < BLOB_OVERHEAD || length > rawLength + BLOB_OVERHEAD) return 'entry length does not fit its rawLength';
  if (offset + length > MAX_PACK_SIZE) return 'entry ends beyond MAX_PACK_SIZE';
  return null;
}

/** A fresh PackEntry from a value `entryProblem` accepted. */
export function toEntry(v: unknown): PackEntry {
  const e = v as PackEntry;
  return { type: e.type, id: e.id as BlobId, offset: e.offset, length: e.length, rawLength: e.rawLength };
}
