/**
 * Encrypted vault objects that are not blobs: index files, recovery point manifests, checkpoints.
 * Layout: magic "AZBKOBJ1"(8) | keyId(16 raw bytes) | nonce(12) | ciphertext | tag(16).
 * Plaintext is zstd-compressed JSON. AAD = magic | keyId | kind | name, so an object cannot be
 * replayed under another name or kind. keyId is readable without keys, so an agent can skip the
 * objects of other envelope families without trying to decrypt them.
 */
import type { KeyId } from './ids.js';
import type { VaultKeys } from './keys.js';

export type ObjectKind = 'index' | 'point' | 'checkpoint' | 'pack-header';

export function sealObject(keys: VaultKeys, kind: ObjectKind, name: string, value: unknown): Buffer {
  void keys;
  void kind;
  void name;
  void value;
  throw new Error('not implemented');
}

/** Decrypts and parses; throws AzbkError AZBK_VAULT_CORRUPT on any tampering or bad JSON. */
export function openObject(keys: VaultKeys, kind: ObjectKind, name: string, data: Uint8Array): unknown {
  void keys;
  void kind;
  void name;
  void data;
  throw new Error('not implemented');
}

/** The key family of a sealed object, or null when `data` is not one. */
export function objectKeyId(data: Uint8Array): KeyId | null {
  void data;
  throw new Error('not implemented');
}
