/**
 * The agent's view of which blobs the vault holds (for one key family): loaded from the vault's
 * index files, and extended as packs are uploaded. Index files of other key families are skipped;
 * damaged ones are reported and skipped (their blobs are simply stored again). With the local
 * cache, the whole index is also kept as one snapshot, which the next command loads as it is
 * instead of building the table again (see snapshot).
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { ID_BYTES, type BlobId, type BlobType, type PackId } from '../core/ids.js';
import { decodeIndex, type IndexPack } from '../core/index-file.js';
import type { VaultKeys } from '../core/keys.js';
import type { PackEntry } from '../core/pack.js';
import { objectKeyId } from '../core/sealed-object.js';
import type { VaultSession } from '../vault/api.js';
import { eachAtOnce } from '../shared/each-at-once.js';
import { AzbkError } from '../shared/errors.js';

export interface BlobLocation {
  readonly pack: PackId;
  readonly entry: PackEntry;
}

const MAX_U32 = 0xffffffff;
const DATA = 1;
const TREE = 2;
const typeCode = (type: BlobType): number => (type === 'tree' ? TREE : DATA);

/**
 * A backup keeps the whole index in memory, so it holds no object or string per blob: ids sit
 * in one buffer (32 bytes each), locations in typed-array columns, and an open-addressing hash
 * table over the ids (HMAC outputs, so their first bytes are already uniform) finds a row. About
 * 60 bytes per blob.
 */
export class BlobIndex {
  private count = 0;
  private types: Uint8Array = new Uint8Array(1024);
  private ids: Buffer = Buffer.alloc(1024 * ID_BYTES);
  private pack: Uint32Array = new Uint32Array(1024);
  private offset: Uint32Array = new Uint32Array(1024);
  private length: Uint32Array = new Uint32Array(1024);
  private rawLength: Uint32Array = new Uint32Array(1024);
  /** row + 1 for each slot; 0 = empty. At most half full. */
  private table: Int32Array = new Int32Array(4096);
  private readonly packIds: PackId[] = [];
  private readonly packRows = new Map<PackId, number>();
  /** a looked-up id as bytes */
  private readonly scratch = Buffer.alloc(ID_BYTES);
  /** names of the vault's index files that are damaged (found so now, or by an earlier command) */
  damaged: readonly string[] = [];
  /** the index files whose packs are all in here (see addIndexFile) */
  private covered: string[] = [];
  /** whether the index holds exactly the packs of `covered` (no pack added on its own) */
  private exact = true;
  /** index files added since the snapshot was loaded or saved */
  private unsaved = false;
  /** blobs and index files the snapshot loaded or saved last holds (0 without one) */
  private snapshotBlobs = 0;
  private snapshotFiles = 0;
  /** packs whose blobs were left out (see load), and their digest (see sumOf) */
  private skip: ReadonlySet<PackId> = new Set();
  private skipSum = sumOf(new Set());
  /** packs whose blobs come last (see load), with their entries once met */
  private deferred = new Map<PackId, PackEntry[]>();

  /**
   * A chunk and a folder listing with the same bytes have the same id but are different blobs
   * (each is sealed with its type), so blobs are known by type and id.
   */
  has(type: BlobType, id: BlobId): boolean {
    return this.rowOf(type, id) >= 0;
  }

  /**
   * The row of a blob: a number below `size` that stays its own while the index lives (a blob
   * added again keeps its row), for keeping a bit or a number per blob; -1 when not indexed.
   */
  row(type: BlobType, id: BlobId): number {
    return this.rowOf(type, id);
  }

  /** The pack and place of the blob in `row` (see row). */
  at(row: number): { readonly pack: PackId; readonly offset: number; readonly length: number } {
    return { pack: this.packIds[this.pack[row]!]!, offset: this.offset[row]!, length: this.length[row]! };
  }

  /** The id of the blob in `row` (see row). */
  idAt(row: number): BlobId {
    return this.ids.toString('hex', row * ID_BYTES, (row + 1) * ID_BYTES) as BlobId;
  }

  /** The pack holding a blob, or undefined (as `get(...).pack`, without making a location). */
  packOf(type: BlobType, id: BlobId): PackId | undefined {
    const row = this.rowOf(type, id);
    return row < 0 ? undefined : this.packIds[this.pack[row]!];
  }

  /** The packs whose blobs the index leaves out, as if no index file named them (see load). */
  get leftOut(): ReadonlySet<PackId> {
    return this.skip;
  }

  get(type: BlobType, id: BlobId): BlobLocation | undefined {
    const row = this.rowOf(type, id);
    if (row < 0) return undefined;
    return { pack: this.packIds[this.pack[row]!]!, entry: { type, id, offset: this.offset[row]!, length: this.length[row]!, rawLength: this.rawLength[row]! } };
  }

  get size(): number {
    return this.count;
  }

  /** Adds a pack on its own: the index then has no snapshot to save (it names no index file). */
  addPack(pack: PackId, entries: readonly PackEntry[]): void {
    this.exact = false;
    this.addEntries(pack, entries);
  }

  /**
   * The blobs of `packs` come last (packs found damaged): added from now on, they are held back
   * until addDeferred, which adds each one no other pack holds. A blob stored again elsewhere is
   * then found there, and one stored nowhere else still in the damaged pack.
   */
  deferPacks(packs: Iterable<PackId>): void {
    for (const p of packs) if (!this.skip.has(p)) this.deferred.set(p, []);
  }

  /** Adds the packs of the index file `name` (decoded, or just written). */
  addIndexFile(name: string, packs: readonly IndexPack[]): void {
    for (const p of packs) this.addEntries(p.id, p.blobs);
    this.cover(name);
  }

  /** The packs of the index file `name` are all in here now. */
  private cover(name: string): void {
    this.covered.push(name);
    this.unsaved = true;
  }

  private addEntries(pack: PackId, entries: readonly PackEntry[]): void {
    if (this.skip.has(pack)) return;
    const later = this.deferred.get(pack);
    if (later !== undefined) {
      for (const e of entries) later.push(e); // not push(...entries): a pack may hold more blobs than a call takes arguments
      return;
    }
    const p = this.packRow(pack);
    for (const entry of entries) {
      if (!(entry.offset <= MAX_U32 && entry.length <= MAX_U32 && entry.rawLength <= MAX_U32)) {
        throw new RangeError(`blob ${entry.id} in pack ${pack} has an impossible offset or length`);
      }
      if (this.scratch.write(entry.id, 'hex') !== ID_BYTES || entry.id.length !== 2 * ID_BYTES) throw new RangeError(`blob id ${entry.id} is not 64 hex digits`);
      this.set(typeCode(entry.type), this.scratch, 0, p, entry.offset, entry.length, entry.rawLength);
    }
  }

  private packRow(pack: PackId): number {
    let p = this.packRows.get(pack);
    if (p === undefined) {
      p = this.packIds.push(pack) - 1;
      this.packRows.set(pack, p);
    }
    return p;
  }

  /** The row of a blob, or -1. */
  private rowOf(type: BlobType, id: string): number {
    if (id.length !== 2 * ID_BYTES || this.scratch.write(id, 'hex') !== ID_BYTES) return -1;
    return this.find(typeCode(type), this.scratch, 0);
  }

  private find(type: number, id: Buffer, at: number): number {
    const mask = this.table.length - 1;
    const head = id.readUInt32LE(at);
    for (let i = (head ^ type) & mask; ; i = (i + 1) & mask) {
      const slot = this.table[i]!;
      if (slot === 0) return -1;
      const row = slot - 1;
      // The first four bytes rule out almost every other blob without a call to compare.
      if (this.types[row] === type && this.ids.readUInt32LE(row * ID_BYTES) === head && id.compare(this.ids, row * ID_BYTES, (row + 1) * ID_BYTES, at, at + ID_BYTES) === 0) return row;
    }
  }

  /** Adds or updates the blob whose id is `id[at, at + 32)`. */
  private set(type: number, id: Buffer, at: number, pack: number, offset: number, length: number, rawLength: number): void {
    let row = this.find(type, id, at);
    if (row < 0) {
      row = this.count++;
      if (row === this.types.length) this.grow(row + 1);
      this.types[row] = type;
      id.copy(this.ids, row * ID_BYTES, at, at + ID_BYTES);
      if (this.count * 2 > this.table.length) this.rehash(this.table.length * 2);
      else this.insert(row);
    }
    this.pack[row] = pack;
    this.offset[row] = offset;
    this.length[row] = length;
    this.rawLength[row] = rawLength;
  }

  private insert(row: number): void {
    const mask = this.table.length - 1;
    let i = (this.ids.readUInt32LE(row * ID_BYTES) ^ this.types[row]!) & mask;
    while (this.table[i] !== 0) i = (i + 1) & mask;
    this.table[i] = row + 1;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size);
    for (let row = 0; row < this.count; row++) this.insert(row);
  }

  /** Makes room for `more` blobs, so adding them neither grows the columns nor rehashes the table. */
  private reserve(more: number): void {
    const rows = this.count + more;
    if (rows > this.types.length) this.grow(rows, true);
    let size = this.table.length;
    while (rows * 2 > size) size *= 2;
    if (size !== this.table.length) this.rehash(size);
  }

  /** Grows the columns to hold at least `rows` blobs (`exact`: just that many, as for a load that knows how many it adds). */
  private grow(rows: number, exact = false): void {
    const n = exact ? rows : Math.max(this.types.length * 2, rows);
    const ids = Buffer.alloc(n * ID_BYTES);
    this.ids.copy(ids);
    this.ids = ids;
    for (const k of ['types', 'pack', 'offset', 'length', 'rawLength'] as const) {
      const next = k === 'types' ? new Uint8Array(n) : new Uint32Array(n);
      next.set(this[k]);
      (this as unknown as Record<string, Uint8Array | Uint32Array>)[k] = next;
    }
  }

  /**
   * Loads every index file of `keys`' family from the vault. With a local `cache`, the index starts
   * from the snapshot the last command saved, and an index file read once is kept there in a
   * compact binary form and not read from the vault again (index files never change once written).
   * The blobs of packs the vault no longer holds (gone, or found missing: see the cache) are left
   * out, and with `forBackup` those of packs prune condemned or a check found damaged too (a
   * backup must not count on them), and those of `leaveOut`: a blob stored again elsewhere is then found where it is, not
   * where it was. Without `forBackup`, the blobs of the packs found damaged (the cache's, and
   * `last`) come last: each one stored again elsewhere is found there, and one stored nowhere else
   * still where it is (whole blobs of a damaged pack restore).
   */
  static async load(session: VaultSession, keys: VaultKeys, cache?: IndexCache, opts: { forBackup?: boolean; leaveOut?: Iterable<PackId>; last?: Iterable<PackId> } = {}): Promise<BlobIndex> {
    const [names, pruned] = await Promise.all([session.listIndex(), session.listPrunedPacks({ forBackup: opts.forBackup === true })]);
    const damaged = [...(cache?.getDamagedPacks?.() ?? []), ...(opts.last ?? [])];
    const forBackup = opts.forBackup === true ? [...pruned.condemned, ...damaged] : [];
    const skip = new Set([...forBackup, ...pruned.gone, ...(await rememberedMissing(session, cache)), ...(opts.leaveOut ?? [])]);
    // Local copies of index files the vault holds damaged are left out (see FileCache.getDamagedIndex).
    const damagedIndex = new Set(cache?.getDamagedIndex?.() ?? []);
    // Index files damaged: those found so before (by a check, or when loaded), and now.
    const unreadable = new Set([...damagedIndex, ...(cache?.getUnreadableIndex?.() ?? [])]);
    const skipSum = sumOf(new Set([...skip, ...[...damagedIndex].map((n) => `index ${n}`)]));
    const last = opts.forBackup === true ? [] : damaged.filter((p) => !skip.has(p));
    // The snapshot, when it left out the same packs and every index file it covers is still in the
    // vault (none is ever changed); not with packs to load last, which a snapshot does not order.
    const listed = new Set(names);
    let snap = last.length > 0 ? undefined : cache?.getIndexSnapshot();
    const usable = snap !== undefined && snap.skip === skipSum && snap.names.every((n) => listed.has(n));
    const fromSnap = usable ? BlobIndex.fromSnapshot(snap!.data, snap!.names) : undefined;
    const index = fromSnap ?? new BlobIndex();
    index.skip = skip;
    index.skipSum = skipSum;
    index.deferPacks(last);
    // A snapshot left alone is replaced at the next save.
    if (snap !== undefined && fromSnap === undefined) index.unsaved = true;
    snap = undefined; // its copy goes while index files are read
    const covered = new Set(index.covered);
    const rest = names.filter((n) => !covered.has(n));
    // The local copies first, so the table is sized once instead of doubled again and again. A
    // damaged copy (its layout does not add up) adds nothing: the vault's is read instead.
    const copies = rest.map((name) => (damagedIndex.has(name) ? undefined : cache?.getIndex(name)));
    const sizes = copies.map((c) => (c === undefined ? -1 : compactBlobs(c)));
    index.reserve(sizes.reduce((n, b) => n + Math.max(0, b), 0));
    for (const [i, name] of rest.entries()) {
      const local = copies[i];
      copies[i] = undefined;
      if (local !== undefined && sizes[i]! >= 0) {
        index.addCompact(local);
        index.cover(name);
        continue;
      }
      const data = await session.readIndex(name);
      let packs: readonly IndexPack[] = [];
      let damaged = false;
      const family = objectKeyId(data);
      if (family === null) damaged = true; // not a sealed object at all
      else if (family === keys.keyId) {
        try {
          packs = decodeIndex(keys, name, data).packs;
        } catch {
          damaged = true;
        }
      }
      // One of another key family, or damaged (a vault or a machine may write any bytes there),
      // gives this key nothing, and is remembered as such: read once, not by every command.
      index.addIndexFile(name, packs);
      cache?.putIndex(name, compactIndex(packs));
      if (damaged) {
        unreadable.add(name);
        cache?.addUnreadableIndex?.([name]);
      }
    }
    // ... and named when a blob is not found (see unindexed), but those a repair named around
    const repaired = new Set(cache?.getRepairedIndex?.() ?? []);
    index.damaged = names.filter((n) => unreadable.has(n) && !repaired.has(n));
    index.addDeferred();
    return index;
  }

  /**
   * Why the blob `what` names (e.g. "chunk 1a2b3c4d5e6f") is not in here: missing from the vault,
   * or, with index files of the vault damaged, perhaps named only by one of them.
   */
  unindexed(what: string): string {
    if (this.damaged.length === 0) return `${what} is missing from the vault`;
    const more = this.damaged.length > 1 ? ` and ${this.damaged.length - 1} more` : '';
    return `${what} is named by no intact index file of the vault (index file ${this.damaged[0]!.slice(0, 12)}${more} ${this.damaged.length > 1 ? 'are' : 'is'} damaged: azbk verify --repair-index names its packs again from their own headers)`;
  }

  /** Adds the blobs held back by deferPacks that no other pack holds; no snapshot is saved then. */
  addDeferred(): void {
    const deferred = [...this.deferred];
    this.deferred = new Map();
    for (const [pack, entries] of deferred) {
      this.addPack(
        pack,
        entries.filter((e) => !this.has(e.type, e.id)),
      );
    }
  }

  /**
   * Keeps the whole index in `cache` as one snapshot, for the next command to load, when index
   * files were added since it was loaded (and it holds exactly the packs of its index files). A
   * snapshot only saves time: one that cannot be made or stored is left out.
   *
   * A snapshot is written whole (about 60 bytes per blob), so a few index files added to a large
   * index are not worth a new one: the next load reads them from their local copies after the
   * snapshot. It is written again once those hold an eighth of the blobs, or number 64.
   */
  saveSnapshot(cache: IndexCache): void {
    if (!this.exact || !this.unsaved) return;
    const files = this.covered.length - this.snapshotFiles;
    if (this.snapshotFiles > 0 && files < SNAPSHOT_AFTER_FILES && (this.count - this.snapshotBlobs) * SNAPSHOT_AFTER_SHARE < this.count) return;
    try {
      cache.putIndexSnapshot(this.covered, this.snapshot(), this.skipSum);
      this.unsaved = false;
      this.snapshotBlobs = this.count;
      this.snapshotFiles = this.covered.length;
    } catch {
      // the next load builds the index from the index files, as without a snapshot
    }
  }

  /**
   * The index as one buffer (little-endian): magic, version, blob count, row count (the blobs and
   * spare rows: see snapshotSpare), table size and pack count (4 bytes each), then the pack ids (32
   * bytes each), and per row the blob ids (32 bytes each), the types (1 byte each, padded to 4),
   * the pack rows, offsets, lengths and raw lengths (4 bytes each), then the hash table (4 bytes
   * per slot).
   */
  private snapshot(): Buffer {
    const n = this.count;
    const rows = n + snapshotSpare(n);
    const size = snapshotSize(rows, this.table.length, this.packIds.length);
    const buf = Buffer.alloc(size);
    let at = 0;
    for (const v of [SNAPSHOT_MAGIC, SNAPSHOT_VERSION, n, rows, this.table.length, this.packIds.length]) at = buf.writeUInt32LE(v, at);
    for (const p of this.packIds) {
      if (buf.write(p, at, 'hex') !== ID_BYTES) throw new RangeError(`pack id ${p} is not 64 hex digits`);
      at += ID_BYTES;
    }
    this.ids.copy(buf, at, 0, n * ID_BYTES);
    at += rows * ID_BYTES;
    buf.set(this.types.subarray(0, n), at);
    at += pad4(rows);
    for (const col of [this.pack, this.offset, this.length, this.rawLength]) {
      copyUint32s(col.subarray(0, n), buf, at);
      at += 4 * rows;
    }
    at += copyUint32s(this.table, buf, at);
    return buf;
  }

  /**
   * The index in a snapshot covering the index files `names`; undefined when the snapshot is
   * malformed. The index's columns are views of `buf` where they can be (no copy): a large buffer
   * copied and let go at once made the C allocator keep later buffers of up to its size instead of
   * giving them back, and a restore's peak memory rose by 5-10 MiB.
   */
  private static fromSnapshot(buf: Buffer, names: readonly string[]): BlobIndex | undefined {
    if (buf.length < INDEX_HEAD || buf.readUInt32LE(0) !== SNAPSHOT_MAGIC || buf.readUInt32LE(4) !== SNAPSHOT_VERSION) return undefined;
    const n = buf.readUInt32LE(8);
    const rows = buf.readUInt32LE(12);
    const slots = buf.readUInt32LE(16);
    const packs = buf.readUInt32LE(20);
    // The table must be a power of two at most half full, and every size must add up.
    if (rows < n || slots < 2 || (slots & (slots - 1)) !== 0 || n * 2 > slots || buf.length !== snapshotSize(rows, slots, packs)) return undefined;
    const index = new BlobIndex();
    let at = INDEX_HEAD;
    for (let i = 0; i < packs; i++, at += ID_BYTES) index.packRow(buf.toString('hex', at, at + ID_BYTES) as PackId);
    if (index.packIds.length !== packs) return undefined; // a pack named twice
    // The columns have room for `rows` blobs, the first `n` used: blobs added after loading go
    // in the spare rows, without copying the columns.
    index.ids = buf.subarray(at, at + rows * ID_BYTES);
    at += rows * ID_BYTES;
    index.types = buf.subarray(at, at + rows);
    at += pad4(rows);
    const column = () => {
      const c = readUint32s(buf, at, rows);
      at += 4 * rows;
      return c;
    };
    [index.pack, index.offset, index.length, index.rawLength] = [column(), column(), column(), column()];
    const table = readUint32s(buf, at, slots);
    index.table = new Int32Array(table.buffer, table.byteOffset, table.length);
    // Every row must be of a known type and pack, and be in the table exactly once.
    const seen = new Uint8Array(n);
    let used = 0;
    for (let i = 0; i < slots; i++) {
      const slot = index.table[i]!;
      if (slot === 0) continue;
      if (slot < 0 || slot > n || seen[slot - 1] === 1) return undefined;
      seen[slot - 1] = 1;
      used++;
    }
    if (used !== n) return undefined;
    for (let row = 0; row < n; row++) {
      if ((index.types[row] !== DATA && index.types[row] !== TREE) || index.pack[row]! >= packs) return undefined;
    }
    index.count = n;
    index.covered = [...names];
    index.snapshotBlobs = n;
    index.snapshotFiles = names.length;
    return index;
  }

  /** Adds the packs of a compact index (see compactIndex) whose layout compactBlobs found sound. */
  private addCompact(buf: Buffer): void {
    const packs = buf.readUInt32LE(0);
    let at = 4;
    for (let i = 0; i < packs; i++) {
      const pack = buf.toString('hex', at, at + ID_BYTES) as PackId;
      const blobs = buf.readUInt32LE(at + ID_BYTES);
      at += ID_BYTES + 4;
      if (this.skip.has(pack)) {
        at += blobs * COMPACT_BLOB;
        continue;
      }
      const later = this.deferred.get(pack);
      if (later !== undefined) {
        for (let j = 0; j < blobs; j++, at += COMPACT_BLOB) {
          later.push({ type: buf[at] === TREE ? 'tree' : 'data', id: buf.toString('hex', at + 1, at + 33) as BlobId, offset: buf.readUInt32LE(at + 33), length: buf.readUInt32LE(at + 37), rawLength: buf.readUInt32LE(at + 41) });
        }
        continue;
      }
      const p = this.packRow(pack);
      for (let j = 0; j < blobs; j++, at += COMPACT_BLOB) {
        this.set(buf[at] === TREE ? TREE : DATA, buf, at + 1, p, buf.readUInt32LE(at + 33), buf.readUInt32LE(at + 37), buf.readUInt32LE(at + 41));
      }
    }
  }
}

/**
 * The packs the vault's index file `name` names, when it is of `keys`' family; null when it is of
 * another. Throws AZBK_VAULT_CORRUPT when it is damaged (not a sealed object, or failing its
 * checks) or gone since it was listed, and whatever reading it throws.
 */
export async function readOwnIndex(session: Pick<VaultSession, 'readIndex'>, keys: VaultKeys, name: string): Promise<readonly IndexPack[] | null> {
  const data = await session.readIndex(name);
  const family = objectKeyId(data);
  if (family === null) throw new AzbkError('AZBK_VAULT_CORRUPT', 'the index file is not a sealed object (damaged)');
  return family === keys.keyId ? decodeIndex(keys, name, data).packs : null;
}

/**
 * Of `packs`, found missing from the vault once, those it still does not hold: a pack that is
 * back (a disk mounted again, a folder restored from a copy) is read again rather than left out
 * for good. A pack the vault cannot be asked about counts as missing.
 */
export async function stillMissing(session: Pick<VaultSession, 'statPack'>, packs: readonly PackId[]): Promise<PackId[]> {
  const missing: PackId[] = [];
  await eachAtOnce([...packs], STAT_WIDTH, async (p) => {
    if ((await session.statPack(p).catch(() => null)) === null) missing.push(p);
  });
  return missing.sort();
}

/** Packs asked about at once by stillMissing. */
const STAT_WIDTH = 16;

/** The packs `cache` remembers missing that still are (see stillMissing); those back are forgotten. */
async function rememberedMissing(session: VaultSession, cache: IndexCache | undefined): Promise<PackId[]> {
  const remembered = cache?.getMissingPacks?.() ?? [];
  if (remembered.length === 0) return [];
  const missing = await stillMissing(session, remembered);
  if (missing.length < remembered.length) {
    const still = new Set(missing);
    try {
      cache?.forgetMissingPacks?.(remembered.filter((p) => !still.has(p)));
    } catch {
      // asked again next time
    }
  }
  return missing;
}

/** Where the agent keeps index files it has read, and the index's snapshot (the local metadata cache). */
export interface IndexCache {
  getIndex(name: string): Buffer | undefined;
  putIndex(name: string, data: Buffer): void;
  /** packs found missing from the vault although index files name them: left out like gone ones */
  getMissingPacks?(): readonly PackId[];
  /** the vault holds these again: no longer missing */
  forgetMissingPacks?(packs: readonly PackId[]): void;
  /** index files the vault holds damaged: their local copies are left out (see FileCache.getDamagedIndex) */
  getDamagedIndex?(): readonly string[];
  /** index files found damaged when loaded, which the cache holds as giving nothing (see FileCache.getUnreadableIndex) */
  getUnreadableIndex?(): readonly string[];
  addUnreadableIndex?(names: readonly string[]): void;
  /** damaged index files whose packs a repair named again (see FileCache.getRepairedIndex) */
  getRepairedIndex?(): readonly string[];
  /** packs a check found damaged: a backup leaves them out (see FileCache.getDamagedPacks) */
  getDamagedPacks?(): readonly PackId[];
  /** the snapshot, the index files it covers and the digest of the packs it left out, or undefined (none, or damaged) */
  getIndexSnapshot(): { readonly names: readonly string[]; readonly data: Buffer; readonly skip: string } | undefined;
  putIndexSnapshot(names: readonly string[], data: Buffer, skip: string): void;
}

/** A digest of a set of pack ids, to tell whether a snapshot left out the same packs. */
function sumOf(packs: ReadonlySet<string>): string {
  return createHash('sha256').update([...packs].sort().join(',')).digest('hex');
}

const SNAPSHOT_MAGIC = 0x49425a41; // "AZBI"
/** A snapshot is saved again once index files not in it hold this share of the blobs (1/8), or number this many (see saveSnapshot). */
const SNAPSHOT_AFTER_SHARE = 8;
const SNAPSHOT_AFTER_FILES = 64;
const SNAPSHOT_VERSION = 2;
/** magic, version, blobs, rows, table slots and packs: 4 bytes each */
const INDEX_HEAD = 24;

/**
 * Spare rows a snapshot's columns keep for blobs added after it is loaded: room for the blobs of
 * the index files it does not cover until a new one is saved (up to an eighth of all: a seventh of
 * its own; see saveSnapshot), and at least 1,024 for a backup's new ones. Without them the first
 * blob added copied every column (4 MiB for the kernel tree's 83,000 blobs, 8-10 ms here).
 */
const snapshotSpare = (blobs: number) => Math.max(1024, Math.ceil(blobs / (SNAPSHOT_AFTER_SHARE - 1)));

const pad4 = (n: number) => (n + 3) & ~3;

function snapshotSize(rows: number, slots: number, packs: number): number {
  return INDEX_HEAD + packs * ID_BYTES + rows * ID_BYTES + pad4(rows) + 16 * rows + 4 * slots;
}

/** Copies 32-bit values into `buf` at `at`, little-endian; the bytes written. */
function copyUint32s(values: Uint32Array | Int32Array, buf: Buffer, at: number): number {
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  if (os.endianness() === 'LE') return bytes.copy(buf, at);
  for (let i = 0; i < values.length; i++) buf.writeUInt32LE(values[i]! >>> 0, at + 4 * i);
  return 4 * values.length;
}

/** `count` little-endian 32-bit values of `buf` from `at`: a view of `buf` where the byte order and alignment allow, else a copy. */
function readUint32s(buf: Buffer, at: number, count: number): Uint32Array {
  if (os.endianness() === 'LE' && (buf.byteOffset + at) % 4 === 0) return new Uint32Array(buf.buffer, buf.byteOffset + at, count);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readUInt32LE(at + 4 * i);
  return out;
}

/** type (1), id (32), offset, length and raw length (4 each) */
const COMPACT_BLOB = 1 + ID_BYTES + 12;

/** The number of blobs in a compact index (see compactIndex), or -1 when its layout is malformed. */
function compactBlobs(buf: Buffer): number {
  if (buf.length < 4) return -1;
  const packs = buf.readUInt32LE(0);
  let at = 4;
  let blobs = 0;
  for (let i = 0; i < packs; i++) {
    if (at + ID_BYTES + 4 > buf.length) return -1;
    const n = buf.readUInt32LE(at + ID_BYTES);
    blobs += n;
    at += ID_BYTES + 4 + n * COMPACT_BLOB;
  }
  return at === buf.length ? blobs : -1;
}

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
      buf[at] = typeCode(b.type);
      buf.write(b.id, at + 1, 'hex');
      buf.writeUInt32LE(b.offset, at + 33);
      buf.writeUInt32LE(b.length, at + 37);
      buf.writeUInt32LE(b.rawLength, at + 41);
      at += COMPACT_BLOB;
    }
  }
  return buf;
}
