/**
 * Index files: which pack holds which blob. Stored sealed (kind 'index') under index/<id>.
 * Validated on read: every id hex, every offset/length a safe non-negative integer.
 */
import type { PackId } from './ids.js';
import type { PackEntry } from './pack.js';
import type { VaultKeys } from './keys.js';

export interface IndexPack {
  readonly id: PackId;
  readonly blobs: readonly PackEntry[];
}

export interface IndexFile {
  readonly version: 1;
  readonly packs: readonly IndexPack[];
}

export function encodeIndex(keys: VaultKeys, name: string, packs: readonly IndexPack[]): Buffer {
  void keys;
  void name;
  void packs;
  throw new Error('not implemented');
}

/** Opens and validates; throws AZBK_VAULT_CORRUPT when tampered or malformed. */
export function decodeIndex(keys: VaultKeys, name: string, data: Uint8Array): IndexFile {
  void keys;
  void name;
  void data;
  throw new Error('not implemented');
}
