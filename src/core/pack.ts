/**
 * Packs: many sealed blobs in one vault object (~16 MiB), so the vault holds few large objects.
 * Layout: sealed blob | sealed blob | ... | header | u32 LE header length | magic "AZBKPAK1".
 * The header is a sealed object (kind 'pack-header', name '') listing every blob: type, id, offset,
 * length, raw length. A pack's id is the SHA-256 of its bytes, so the vault can verify an upload
 * and a retried upload of the same pack is the same object.
 */
import type { BlobId, BlobType, PackId } from './ids.js';
import type { VaultKeys } from './keys.js';

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

/** Collects sealed blobs into one pack. */
export class PackBuilder {
  constructor(keys: VaultKeys) {
    void keys;
    throw new Error('not implemented');
  }
  /** Appends an already sealed blob (from encodeBlob). */
  add(type: BlobType, id: BlobId, sealed: Buffer, rawLength: number): PackEntry {
    void type;
    void id;
    void sealed;
    void rawLength;
    throw new Error('not implemented');
  }
  get size(): number {
    throw new Error('not implemented');
  }
  get count(): number {
    throw new Error('not implemented');
  }
  /** Writes the header and returns the pack. The builder must not be used afterwards. */
  finish(): FinishedPack {
    throw new Error('not implemented');
  }
}

/** The SHA-256 id of pack bytes. */
export function packIdOf(data: Uint8Array): PackId {
  void data;
  throw new Error('not implemented');
}

/** Reads a pack's header (for repair and prune); throws AZBK_VAULT_CORRUPT if damaged. */
export function readPackHeader(keys: VaultKeys, data: Uint8Array): PackEntry[] {
  void keys;
  void data;
  throw new Error('not implemented');
}
