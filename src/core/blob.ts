/**
 * Blob encoding: id = HMAC-SHA256(idKey, plaintext); body = zstd (or raw when not smaller) behind a
 * one-byte flag; sealed with AES-256-GCM under a per-blob subkey HKDF(dataKey, id), random 12-byte
 * nonce, AAD = type and id. Sealed layout: nonce(12) | ciphertext | tag(16).
 */
import { createCipheriv, createDecipheriv, randomFillSync, timingSafeEqual } from 'node:crypto';
import { hmacSha256 } from './hmac.js';
import type { BlobId, BlobType } from './ids.js';
import { isHex64 } from './ids.js';
import type { VaultKeys } from './keys.js';
import { asBuffer, corrupt } from './validate.js';
import { zstdCompress, zstdDecompress } from './zstd.js';

/** Largest plaintext a blob may have (the chunker's max, plus room for big tree listings). */
export const MAX_BLOB_SIZE = 64 * 1024 * 1024;

/** Bytes a sealed blob adds to its body: nonce, flag and tag. */
export const BLOB_OVERHEAD = 12 + 1 + 16;

export interface EncodedBlob {
  readonly id: BlobId;
  readonly sealed: Buffer;
  readonly rawLength: number;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const DEFAULT_LEVEL = 3;
const FLAG_RAW = 0;
const FLAG_ZSTD = 1;
const TYPE_BYTE: Readonly<Record<BlobType, number>> = { data: 1, tree: 2 };

/** The content id of `plaintext` under `keys`. */
export function blobId(keys: VaultKeys, plaintext: Uint8Array): BlobId {
  return hmacSha256(keys.idKey, plaintext).toString('hex') as BlobId;
}

/** Random nonces, drawn from the CSPRNG a few hundred at a time (one call per blob costs more than the blob). */
const noncePool = Buffer.alloc(NONCE_BYTES * 512);
let nonceAt = noncePool.length;

/** Writes a fresh random nonce at the start of `out` and returns that view. */
function nextNonce(out: Buffer): Buffer {
  if (nonceAt === noncePool.length) {
    randomFillSync(noncePool);
    nonceAt = 0;
  }
  noncePool.copy(out, 0, nonceAt, nonceAt + NONCE_BYTES);
  noncePool.fill(0, nonceAt, nonceAt + NONCE_BYTES);
  nonceAt += NONCE_BYTES;
  return out.subarray(0, NONCE_BYTES);
}

const BLOB_KEY_LABEL = Buffer.from('azbk blob key v1\0');

/** The blob's own key: HMAC-SHA256(dataKey, label | id), a PRF output unique to the blob. */
function blobKey(keys: VaultKeys, idBytes: Buffer): Buffer {
  return hmacSha256(keys.dataKey, BLOB_KEY_LABEL, idBytes);
}

function blobAad(type: BlobType, idBytes: Buffer): Buffer {
  const aad = Buffer.allocUnsafe(1 + idBytes.length);
  aad[0] = TYPE_BYTE[type];
  idBytes.copy(aad, 1);
  return aad;
}

/**
 * Blobs go through the cipher in pieces of this size: Node's cipher makes a new buffer for each
 * output, and the larger the outputs, the more of them are fresh pages from the kernel (page faults)
 * rather than memory handed out again. Deciphering 1 GiB in 1 MiB chunks on each of two threads
 * took 4.5-4.8 s per thread whole, 1.9-2.3 s in 64 KiB pieces and 0.6-0.75 s in 16 KiB pieces
 * (page faults: 470,000, 190,000-210,000 and 31,000-34,000); 24-48 KiB took longer, 8 KiB no less.
 */
const CIPHER_PIECE = 16 * 1024;

/**
 * Where a blob's decrypted body goes when the caller consumes the result at once (decodeBlob with
 * a scratch buffer): kept for the thread, up to BODY_ROOM_LIMIT bytes.
 */
let bodyRoom = Buffer.alloc(0);
const BODY_ROOM_LIMIT = 16 * 1024 * 1024;
const BODY_ROOM_STEP = 1024 * 1024;

/** A buffer of `length` bytes for a blob's body: the kept one when `kept` and it fits (see bodyRoom), else a new one. */
function bodyBuffer(length: number, kept: boolean): Buffer {
  if (!kept || length > BODY_ROOM_LIMIT) return Buffer.allocUnsafe(length);
  // grown in steps of 1 MiB, not doubled: the largest chunk sets its size (8 MiB at most with the default chunker)
  if (bodyRoom.length < length) bodyRoom = Buffer.allocUnsafeSlow(Math.min(BODY_ROOM_LIMIT, Math.ceil(length / BODY_ROOM_STEP) * BODY_ROOM_STEP));
  return bodyRoom.subarray(0, length);
}

/**
 * Compresses and seals one blob. `id` may be passed when already computed; it is trusted (not
 * recomputed), so it must be blobId(keys, plaintext). `level` is the zstd level (default 3).
 * `into` gives the buffer to seal into, exactly as long as asked (default: a new buffer of its
 * own, which can be handed to another thread without copying). Throws RangeError when the
 * plaintext is larger than MAX_BLOB_SIZE.
 */
export function encodeBlob(
  keys: VaultKeys,
  type: BlobType,
  plaintext: Uint8Array,
  opts?: { id?: BlobId; level?: number; into?: (length: number) => Buffer },
): EncodedBlob {
  if (plaintext.length > MAX_BLOB_SIZE) {
    throw new RangeError(`blob of ${plaintext.length} bytes exceeds MAX_BLOB_SIZE`);
  }
  if (TYPE_BYTE[type] === undefined) throw new TypeError(`unknown blob type ${String(type)}`);
  const id = opts?.id ?? blobId(keys, plaintext);
  if (!isHex64(id)) throw new TypeError('blob id must be 64 lowercase hex characters');
  const idBytes = Buffer.from(id, 'hex');
  let flag = FLAG_RAW;
  let body: Uint8Array = plaintext;
  if (plaintext.length > 0) {
    const packed = zstdCompress(plaintext, opts?.level ?? DEFAULT_LEVEL);
    if (packed.length < plaintext.length) {
      flag = FLAG_ZSTD;
      body = packed;
    }
  }
  const length = BLOB_OVERHEAD + body.length;
  const sealed = opts?.into?.(length) ?? Buffer.allocUnsafeSlow(length);
  if (sealed.length !== length) throw new RangeError(`a blob of ${length} sealed bytes was given ${sealed.length}`);
  const nonce = nextNonce(sealed);
  const cipher = createCipheriv('aes-256-gcm', blobKey(keys, idBytes), nonce);
  cipher.setAAD(blobAad(type, idBytes));
  let at = NONCE_BYTES;
  at += cipher.update(Buffer.of(flag)).copy(sealed, at);
  // In pieces (see CIPHER_PIECE)
  for (let i = 0; i < body.length; i += CIPHER_PIECE) at += cipher.update(body.subarray(i, i + CIPHER_PIECE)).copy(sealed, at);
  at += cipher.final().copy(sealed, at);
  cipher.getAuthTag().copy(sealed, at);
  return { id: id as BlobId, sealed, rawLength: plaintext.length };
}

/**
 * Opens, decompresses and checks one blob: the result's HMAC must equal `id`. Throws AzbkError
 * AZBK_VAULT_CORRUPT on any tampering (ciphertext, nonce, tag, flag, type or id swapped) and when
 * the decompressed size would exceed MAX_BLOB_SIZE (checked from the zstd frame header before
 * anything is allocated). With `scratch`, a compressed blob that fits is decompressed there, and
 * one stored as it was is deciphered into a buffer kept for the thread: the result is then a view
 * of either, valid until the next call with a scratch buffer.
 */
export function decodeBlob(keys: VaultKeys, type: BlobType, id: BlobId, sealed: Uint8Array, scratch?: Buffer): Buffer {
  if (!isHex64(id)) throw corrupt('blob id is not 64 hex characters');
  if (TYPE_BYTE[type] === undefined) throw corrupt(`unknown blob type ${String(type)}`);
  if (sealed.length < BLOB_OVERHEAD || sealed.length > BLOB_OVERHEAD + MAX_BLOB_SIZE) {
    throw corrupt(`blob ${id} has an impossible length (${sealed.length} bytes)`);
  }
  const buf = asBuffer(sealed);
  const idBytes = Buffer.from(id, 'hex');
  const decipher = createDecipheriv('aes-256-gcm', blobKey(keys, idBytes), buf.subarray(0, NONCE_BYTES));
  decipher.setAAD(blobAad(type, idBytes));
  decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
  const end = buf.length - TAG_BYTES;
  const body = bodyBuffer(end - NONCE_BYTES, scratch !== undefined);
  let deciphered: number;
  try {
    let at = 0;
    for (let i = NONCE_BYTES; i < end; i += CIPHER_PIECE) at += decipher.update(buf.subarray(i, Math.min(i + CIPHER_PIECE, end))).copy(body, at);
    at += decipher.final().copy(body, at); // GCM returns everything from update: nothing here but the tag check
    deciphered = at;
  } catch (err) {
    throw corrupt(`blob ${id} failed authentication`, err);
  }
  if (deciphered !== body.length) throw new Error(`deciphered ${deciphered} of ${body.length} bytes`);
  const flag = body[0];
  let plaintext: Buffer;
  if (flag === FLAG_RAW) plaintext = body.subarray(1);
  else if (flag === FLAG_ZSTD) plaintext = zstdDecompress(body.subarray(1), MAX_BLOB_SIZE, scratch);
  else throw corrupt(`blob ${id} has an unknown compression flag ${String(flag)}`);
  const actual = hmacSha256(keys.idKey, plaintext);
  if (!timingSafeEqual(actual, idBytes)) throw corrupt(`blob ${id} does not match its id`);
  return plaintext;
}
