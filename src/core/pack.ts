/**
 * Packs: many sealed blobs in one vault object (~16 MiB), so the vault holds few large objects.
 * Layout: sealed blob | sealed blob | ... | header | u32 LE header length | magic "AZBKPAK1".
 * The header is a sealed object (kind 'pack-header', name '') listing every blob: type, id, offset,
 * length, raw length. A pack's id is the SHA-256 of its bytes, so the vault can verify an upload
 * and a retried upload of the same pack is the same object.
 */
import { createHash } from 'node:crypto';
import { entryProblem, MAX_PACK_SIZE, toEntry } from './entries.js';
import type { BlobId, BlobType, PackId } from './ids.js';
import type { VaultKeys } from './keys.js';
import { openObject, sealObject } from './sealed-object.js';
import { asBuffer, corrupt, isRecord } from './validate.js';

export { MAX_PACK_SIZE } from './entries.js';

export const TARGET_PACK_SIZE = 16 * 1024 * 1024;

/** Where one blob lives inside a pack. */
export interface PackEntry {
  readonly type: BlobType;
  readonly id: BlobId;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
}

export interface FinishedPack {
  readonly id: PackId;
  readonly data: Buffer;
  readonly entries: readonly PackEntry[];
}

const MAGIC = Buffer.from('AZBKPAK1', 'latin1');
const TRAILER_BYTES = 4 + MAGIC.length;
/** The smallest sealed object: its fixed header and tag. */
const MIN_HEADER_BYTES = 8 + 16 + 12 + 16;

/**
 * Collects sealed blobs into one pack. The caller decides when to finish (typically once `size`
 * reaches TARGET_PACK_SIZE); the blob area may not exceed MAX_PACK_SIZE. Sealed blobs are copied
 * into one buffer as they come, so the caller's buffers can go at once and finishing does not copy
 * the pack again. That buffer is `room` itself when a Buffer is given (the caller may reuse it once
 * the finished pack is stored), or a new one of `room` bytes; either is replaced by a larger one
 * when a blob does not fit.
 */
export class PackBuilder {
  private readonly keys: VaultKeys;
  private buf: Buffer;
  private readonly entries: PackEntry[] = [];
  private bytes = 0;
  private done = false;

  constructor(keys: VaultKeys, room: number | Buffer = 0) {
    this.keys = keys;
    this.buf = Buffer.isBuffer(room) ? room : Buffer.allocUnsafeSlow(Math.min(room, MAX_PACK_SIZE));
  }

  /**
   * Appends an already sealed blob (from encodeBlob) and returns where it lies. Throws RangeError
   * for an entry readPackHeader would refuse (bad id or type, impossible lengths, pack too big),
   * and Error after `finish`.
   */
  add(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number): PackEntry {
    if (this.done) throw new Error('PackBuilder used after finish');
    const entry = packEntry(type, id, this.bytes, sealed.length, rawLength);
    this.append(sealed);
    this.entries.push(entry);
    return entry;
  }

  private append(data: Uint8Array): void {
    const need = this.bytes + data.length;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, Math.ceil(this.buf.length * 1.5), 64 * 1024));
      this.buf.copy(grown, 0, 0, this.bytes);
      this.buf = grown;
    }
    this.buf.set(data, this.bytes);
    this.bytes = need;
  }

  /** Bytes of sealed blobs added so far (the header is not counted). */
  get size(): number {
    return this.bytes;
  }

  /** Blobs added so far. */
  get count(): number {
    return this.entries.length;
  }

  /** Writes the header and returns the pack. The builder must not be used afterwards. */
  finish(): FinishedPack {
    if (this.done) throw new Error('PackBuilder used after finish');
    this.done = true;
    this.append(packTail(this.keys, this.entries));
    const data = this.buf.subarray(0, this.bytes);
    return { id: packIdOf(data), data, entries: this.entries };
  }
}

/**
 * The entry of a blob of `length` sealed bytes at `offset`. Throws RangeError for one
 * readPackHeader would refuse (bad id or type, impossible lengths, pack too big).
 */
export function packEntry(type: BlobType, id: BlobId, offset: number, length: number, rawLength: number): PackEntry {
  const entry: PackEntry = { type, id, offset, length, rawLength };
  const problem = entryProblem(entry);
  if (problem !== null) throw new RangeError(`cannot add blob ${String(id)}: ${problem}`);
  return entry;
}

/** What follows a pack's blobs: its sealed header listing `entries`, the header's length and the magic. */
export function packTail(keys: VaultKeys, entries: readonly PackEntry[]): Buffer {
  const header = sealObject(keys, 'pack-header', '', { version: 1, blobs: entries });
  const tail = Buffer.allocUnsafe(header.length + TRAILER_BYTES);
  header.copy(tail, 0);
  tail.writeUInt32LE(header.length, header.length);
  MAGIC.copy(tail, header.length + 4);
  return tail;
}

/** The SHA-256 id of pack bytes. */
export function packIdOf(data: Uint8Array): PackId {
  return createHash('sha256').update(data).digest('hex') as PackId;
}

/**
 * Reads a pack's header (for repair and prune); throws AZBK_VAULT_CORRUPT if damaged: bad magic or
 * header length, a header that fails authentication, or entries that do not tile the blob area
 * exactly (in order, from offset 0 to the header, no gaps or overlaps).
 */
export function readPackHeader(keys: VaultKeys, data: Uint8Array): PackEntry[] {
  const buf = asBuffer(data);
  return readPackTail(keys, buf.subarray(buf.length - Math.min(buf.length, packTailLength(buf))), buf.length);
}

/** Bytes a pack's trailer takes: its last ones, which tell the header's length (see packTailLength). */
export const PACK_TRAILER_BYTES = TRAILER_BYTES;

/**
 * How long the tail (header and trailer) of a pack is, from at least its last PACK_TRAILER_BYTES
 * bytes; throws AZBK_VAULT_CORRUPT when they are not a pack's trailer.
 */
export function packTailLength(end: Uint8Array): number {
  const buf = asBuffer(end);
  if (buf.length < TRAILER_BYTES) throw corrupt('pack is too short');
  if (!buf.subarray(buf.length - MAGIC.length).equals(MAGIC)) throw corrupt('pack does not end with AZBKPAK1');
  const headerLength = buf.readUInt32LE(buf.length - TRAILER_BYTES);
  if (headerLength < MIN_HEADER_BYTES || headerLength > MAX_PACK_SIZE) throw corrupt('pack header length is impossible');
  return headerLength + TRAILER_BYTES;
}

/**
 * The entries of a pack of `packSize` bytes from its tail alone (header and trailer, as long as
 * packTailLength says): what readPackHeader checks, without the blobs.
 */
export function readPackTail(keys: VaultKeys, tail: Uint8Array, packSize: number): PackEntry[] {
  const buf = asBuffer(tail);
  if (packSize < MIN_HEADER_BYTES + TRAILER_BYTES) throw corrupt('pack is too short');
  const length = packTailLength(buf);
  if (length !== buf.length || length > packSize) throw corrupt('pack header length is impossible');
  const headerStart = packSize - length;
  if (headerStart > MAX_PACK_SIZE) throw corrupt('pack is larger than MAX_PACK_SIZE');
  const header = openObject(keys, 'pack-header', '', buf.subarray(0, buf.length - TRAILER_BYTES));
  if (!isRecord(header) || header.version !== 1 || !Array.isArray(header.blobs)) {
    throw corrupt('pack header is not a version 1 header');
  }
  const entries: PackEntry[] = [];
  let next = 0;
  for (const [i, v] of (header.blobs as unknown[]).entries()) {
    const problem = entryProblem(v);
    if (problem !== null) throw corrupt(`pack header entry ${i}: ${problem}`);
    const entry = toEntry(v);
    if (entry.offset !== next) throw corrupt(`pack header entry ${i} does not start where the previous one ends`);
    next = entry.offset + entry.length;
    entries.push(entry);
  }
  if (next !== headerStart) throw corrupt('pack header entries do not cover the blob area');
  return entries;
}
