/**
 * The agent's view of which blobs the vault holds (for one key family): loaded from the vault's
 * index files, and extended as packs are uploaded. Index files of other key families are skipped;
 * damaged ones are reported and skipped (their blobs are simply stored again).
 */
import type { BlobId, BlobType, PackId } from '../core/ids.js';
import { decodeIndex } from '../core/index-file.js';
import type { VaultKeys } from '../core/keys.js';
import type { PackEntry } from '../core/pack.js';
import { objectKeyId } from '../core/sealed-object.js';
import type { VaultSession } from '../vault/api.js';

export interface BlobLocation {
  readonly pack: PackId;
  readonly entry: PackEntry;
}

/** The key of a blob in sets and maps: its type's initial and its id. */
export function blobKey(type: BlobType, id: string): string {
  return type === 'data' ? `d${id}` : `t${id}`;
}

export class BlobIndex {
  private readonly blobs = new Map<string, BlobLocation>();
  /** names of index files that could not be read */
  readonly damaged: string[] = [];

  /**
   * A chunk and a folder listing with the same bytes have the same id but are different blobs
   * (each is sealed with its type), so blobs are known by type and id.
   */
  has(type: BlobType, id: BlobId): boolean {
    return this.blobs.has(blobKey(type, id));
  }

  get(type: BlobType, id: BlobId): BlobLocation | undefined {
    return this.blobs.get(blobKey(type, id));
  }

  get size(): number {
    return this.blobs.size;
  }

  addPack(pack: PackId, entries: readonly PackEntry[]): void {
    for (const entry of entries) this.blobs.set(blobKey(entry.type, entry.id), { pack, entry });
  }

  /** Loads every index file of `keys`' family from the vault. */
  static async load(session: VaultSession, keys: VaultKeys): Promise<BlobIndex> {
    const index = new BlobIndex();
    for (const name of await session.listIndex()) {
      const data = await session.readIndex(name);
      if (objectKeyId(data) !== keys.keyId) continue;
      try {
        for (const p of decodeIndex(keys, name, data).packs) index.addPack(p.id, p.blobs);
      } catch {
        index.damaged.push(name);
      }
    }
    return index;
  }
}
