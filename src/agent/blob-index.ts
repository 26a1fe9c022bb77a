/**
 * The agent's view of which blobs the vault holds (for one key family): loaded from the vault's
 * index files, and extended as packs are uploaded. Index files of other key families are skipped;
 * damaged ones are reported and skipped (their blobs are simply stored again).
 */
import type { BlobId, BlobType, PackId } from '../core/ids.js';
import { decodeIndex, type IndexPack } from '../core/index-file.js';
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
      this.setRow(blobKey(entry.type, entry.id), p, entry.offset, entry.length, entry.rawLength);
    }
  }

  private setRow(key: string, pack: number, offset: number, length: number, rawLength: number): void {
    let row = this.rows.get(key);
    if (row === undefined) {
      row = this.rows.size;
      if (row === this.pack.length) this.grow();
      this.rows.set(key, row);
    }
    this.pack[row] = pack;
    this.offset[row] = offset;
    this.length[row] = length;
    this.rawLength[row] = rawLength;
  }

  private grow(): void {
    const n = this.pack.length * 2;
    for (const k of ['pack', 'offset', 'length', 'rawLength'] as const) {
      const next = new Uint32Array(n);
      next.set(this[k]);
      this[k] = next;
    }
  }

  /**
   * Loads every index file of `keys`' family from the vault. With a local `cache`, an index file
   * read once is kept there in a compact binary form and not read from the vault again (index
   * files never change once written).
   */
  static async load(session: VaultSession, keys: VaultKeys, cache?: IndexCache): Promise<BlobIndex> {
    const index = new BlobIndex();
    for (const name of await session.listIndex()) {
      const local = cache?.getIndex(name);
      if (local !== undefined && index.addCompact(local)) continue;
      const data = await session.readIndex(name);
      if (objectKeyId(data) !== keys.keyId) continue;
      let packs: readonly IndexPack[];
      try {
        packs = decodeIndex(keys, name, data).packs;
      } catch {
        index.damaged.push(name);
        continue;
      }
      for (const p of packs) index.addPack(p.id, p.blobs);
      cache?.putIndex(name, compactIndex(packs));
    }
    return index;
  }

  /** Adds the packs of a compact index (see compactIndex); false, adding nothing, if it is malformed. */
  private addCompact(buf: Buffer): boolean {
    // Check the whole layout first, so a damaged copy adds nothing (the vault's is read instead).
    if (buf.length < 4) return false;
    const packs = buf.readUInt32LE(0);
    let at = 4;
    for (let i = 0; i < packs; i++) {
      if (at + ID_BYTES + 4 > buf.length) return false;
      at += ID_BYTES + 4 + buf.readUInt32LE(at + ID_BYTES) * COMPACT_BLOB;
    }
    if (at !== buf.length) return false;
    at = 4;
    for (let i = 0; i < packs; i++) {
      const pack = buf.toString('hex', at, at + ID_BYTES) as PackId;
      const blobs = buf.readUInt32LE(at + ID_BYTES);
      at += ID_BYTES + 4;
      let p = this.packRows.get(pack);
      if (p === undefined) {
        p = this.packIds.push(pack) - 1;
        this.packRows.set(pack, p);
      }
      for (let j = 0; j < blobs; j++, at += COMPACT_BLOB) {
        const key = (buf[at] === TREE ? 't' : 'd') + buf.toString('hex', at + 1, at + 1 + ID_BYTES);
        this.setRow(key, p, buf.readUInt32LE(at + 33), buf.readUInt32LE(at + 37), buf.readUInt32LE(at + 41));
      }
    }
    return true;
  }
}

/** Where the agent keeps index files it has read (the local metadata cache). */
export interface IndexCache {
  getIndex(name: string): Buffer | undefined;
  putIndex(name: string, data: Buffer): void;
}

const ID_BYTES = 32;
const TREE = 2;
/** type (1), id (32), offset, length and raw length (4 each) */
const COMPACT_BLOB = 1 + ID_BYTES + 12;

/**
 * An index file's packs in a compact binary form for the local cache: pack count, then per pack
 * its id, its blob count and per blob type, id, offset, length and raw length (little-endian).
 */
export function compactIndex(packs: readonly IndexPack[]): Buffer {
  let size = 4;
  for (const p of packs) size += ID_BYTES + 4 + p.blobs.length * COMPACT_BLOB;
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(packs.length, 0);
  let at = 4;
  for (const p of packs) {
    buf.write(p.id, at, 'hex');
    buf.writeUInt32LE(p.blobs.length, at + ID_BYTES);
    at += ID_BYTES + 4;
    for (const b of p.blobs) {
      buf[at] = b.type === 'tree' ? TREE : 1;
      buf.write(b.id, at + 1, 'hex');
      buf.writeUInt32LE(b.offset, at + 33);
      buf.writeUInt32LE(b.length, at + 37);
      buf.writeUInt32LE(b.rawLength, at + 41);
      at += COMPACT_BLOB;
    }
  }
  return buf;
}
