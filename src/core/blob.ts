/**
 * Blob encoding: id = HMAC-SHA256(idKey, plaintext); body = zstd (or raw when not smaller) behind a
 * one-byte flag; sealed with AES-256-GCM under a per-blob subkey HKDF(dataKey, id), random 12-byte
 * nonce, AAD = type and id. Sealed layout: nonce(12) | ciphertext | tag(16).
 */
import type { BlobId, BlobType } from './ids.js';
import type { VaultKeys } from './keys.js';

/** Largest plaintext a blob may have (the chunker's max, plus room for big tree listings). */
export const MAX_BLOB_SIZE = 64 * 1024 * 1024;

export interface EncodedBlob {
  readonly id: BlobId;
  readonly sealed: Buffer;
  readonly rawLength: number;
}

/** The content id of `plaintext` under `keys`. */
export function blobId(keys: VaultKeys, plaintext: Uint8Array): BlobId {
  void keys;
  void plaintext;
  throw new Error('not implemented');
}

/** Compresses and seals one blob. `id` may be passed when already computed. */
export function encodeBlob(
  keys: VaultKeys,
  type: BlobType,
  plaintext: Uint8Array,
  opts?: { id?: BlobId; level?: number },
): EncodedBlob {
  void keys;
  void type;
  void plaintext;
  void opts;
  throw new Error('not implemented');
}

/**
 * Opens, decompresses and checks one blob: the result's HMAC must equal `id`. Throws AzbkError
 * AZBK_VAULT_CORRUPT on any tampering (ciphertext, nonce, tag, flag, type or id swapped) and when
 * the decompressed size would exceed MAX_BLOB_SIZE.
 */
export function decodeBlob(keys: VaultKeys, type: BlobType, id: BlobId, sealed: Uint8Array): Buffer {
  void keys;
  void type;
  void id;
  void sealed;
  throw new Error('not implemented');
}
