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

const MAX_U32 = 0xffffffff;

/**
 * Blob locations are kept in columns (typed arrays) rather than an object per blob: a backup
 * keeps the whole index in memory, and the columns take about a third of the space.
 */
export class BlobIndex {
  /** blob key -> row */
  private readonly rows = new Map<string, number>();
  private readonly packIds: PackId[] = [];
  private readonly packRows = new Map<PackId, number>();
  private pack = new Uint32Array(1024);
  private offset = new Uint32Array(1024);
  private length = new Uint32Array(1024);
  private rawLength = new Uint32Array(1024);
  /** names of index files that could not be read */
  readonly damaged: string[] = [];

  /**
   * A chunk and a folder listing with the same bytes have the same id but are different blobs
   * (each is sealed with its type), so blobs are known by type and id.
   */
  has(type: BlobType, id: BlobId): boolean {
    return this.rows.has(blobKey(type, id));
  }

  get(type: BlobType, id: BlobId): BlobLocation | undefined {
    const row = this.rows.get(blobKey(type, id));
    if (row === undefined) return undefined;
    return { pack: this.packIds[this.pack[row]!]!, entry: { type, id, offset: this.offset[row]!, length: this.length[row]!, rawLength: this.rawLength[row]! } };
  }

  get size(): number {
    return this.rows.size;
  }

  addPack(pack: PackId, entries: readonly PackEntry[]): void {
    let p = this.packRows.get(pack);
    if (p === undefined) {
      p = this.packIds.push(pack) - 1;
      this.packRows.set(pack, p);
    }
    for (const entry of entries) {
      if (!(entry.offset <= MAX_U32 && entry.length <= MAX_U32 && entry.rawLength <= MAX_U32)) {
        throw new RangeError(`blob ${entry.id} in pack ${pack} has an impossible offset or length`);
      }
      const key = blobKey(entry.type, entry.id);
      let row = this.rows.get(key);
      if (row === undefined) {
        row = this.rows.size;
        if (row === this.pack.length) this.grow();
        this.rows.set(key, row);
      }
      this.pack[row] = p;
      this.offset[row] = entry.offset;
      this.length[row] = entry.length;
      this.rawLength[row] = entry.rawLength;
    }
  }

  private grow(): void {
    const n = this.pack.length * 2;
    for (const k of ['pack', 'offset', 'length', 'rawLength'] as const) {
      const next = new Uint32Array(n);
      next.set(this[k]);
      this[k] = next;
    }
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
