/**
 * Stores blobs in the vault with deduplication: a blob the vault (or this job) already has is not
 * sent again. New blobs are sealed into packs of about 16 MiB, file data and folder listings in
 * packs of their own (a restore reads every listing of a point before any data, and finds them
 * together instead of scattered between file chunks); each full pack is uploaded, an index file
 * names stored packs whenever INDEX_EVERY of them wait, and `flush` uploads the open packs and
 * indexes every pack not yet named. Where the vault takes packs in pieces (the embedded vault),
 * data packs are written into it as they fill instead of held whole in memory.
 * Only after `flush` resolves may a point or checkpoint refer to those blobs.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { blobId, encodeBlob } from '../core/blob.js';
import type { BlobId, BlobType, PackId } from '../core/ids.js';
import { encodeIndexSteps, type IndexPack } from '../core/index-file.js';
import { runSliced } from '../shared/steps.js';
import type { VaultKeys } from '../core/keys.js';
import { PackBuilder, TARGET_PACK_SIZE, type PackEntry } from '../core/pack.js';
import { AzbkError } from '../shared/errors.js';
import type { VaultSession } from '../vault/api.js';
import { compactIndex, type BlobIndex, type IndexCache } from './blob-index.js';
import { spoolPack } from './spool.js';
import { StreamedPack } from './streamed-pack.js';

/**
 * Stored packs are indexed without waiting for a flush once this many wait at the front of the
 * started list: until then every blob in them is an object and a string in memory (about 250
 * bytes), after that 60 bytes in the index. Each index file then names about 128 MiB of packs.
 */
const INDEX_EVERY = 8;
/** How long `abandon` waits for packs being stored. */
const ABANDON_WAIT_MS = 5000;
/** Room in a pack's buffer beyond the target size: a last blob and the header usually fit. */
const PACK_SLACK = 2 * 1024 * 1024;

/** A pack being filled, held whole until it is full or streamed into the vault as it fills. */
interface OpenPack {
  /** bytes of sealed blobs added so far */
  readonly size: number;
  readonly count: number;
  /** Set once the pack is lost (a streamed write failed). */
  readonly failure: unknown;
  /** Adds a sealed blob (copying it); a promise when the caller should wait before adding more. */
  add(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number): Promise<void> | undefined;
  /**
   * Completes the pack at once (later blobs go elsewhere) and stores it; resolves to its id and
   * entries once stored.
   */
  store(): Promise<StoredPack>;
  /** Drops a pack that will never be stored. */
  abort(): Promise<void>;
}

export interface StoredPack {
  readonly id: PackId;
  readonly entries: readonly PackEntry[];
  /** its size in the vault */
  readonly bytes: number;
}

/** A pack built in one buffer and handed to the vault whole. */
class WholePack implements OpenPack {
  private readonly builder: PackBuilder;

  /** `room` is the buffer the pack is built in; it goes back to `spare` once the pack is stored. */
  constructor(
    keys: VaultKeys,
    private readonly session: VaultSession,
    private readonly room: Buffer,
    private readonly spare: Buffer[],
  ) {
    this.builder = new PackBuilder(keys, room);
  }

  get size(): number {
    return this.builder.size;
  }

  get count(): number {
    return this.builder.count;
  }

  readonly failure: unknown = undefined;

  add(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number): undefined {
    this.builder.add(type, id, sealed, rawLength);
    return undefined;
  }

  async store(): Promise<StoredPack> {
    const pack = this.builder.finish();
    await this.session.putPack(pack.id, pack.data);
    // Stored: no store keeps or reads the bytes it was given once the put resolved.
    this.spare.push(this.room);
    return { id: pack.id, entries: pack.entries, bytes: pack.data.length };
  }

  async abort(): Promise<void> {
    this.spare.push(this.room);
  }
}

/** A pack of this job: open, being stored, or stored (its id and blobs known). */
export interface PackSlot {
  /**
   * the pack's id and blobs, once it is stored; once indexed, its id alone (blobs empty): the
   * folders of a backup keep their packs' slots to the end, and a pack of small files' chunks
   * names tens of thousands of blobs (every blob of a backup of 500,000 files was kept so)
   */
  pack: IndexPack | null;
}

/** Where a blob is: a pack the index names, or a pack of this job not yet indexed. */
export type PackRef = PackId | PackSlot;

export interface WriterStats {
  blobs: number;
  newBlobs: number;
  rawBytes: number;
  newRawBytes: number;
  uploadedBytes: number;
  packs: number;
  indexFiles: number;
}

export class BlobWriter {
  /** the open pack of each blob type */
  private readonly open: Record<BlobType, OpenPack | null> = { data: null, tree: null };
  /** the slot of each open pack */
  private readonly openSlot: Record<BlobType, PackSlot | null> = { data: null, tree: null };
  /**
   * Buffers of stored packs, for the next packs of either type: reused at once instead of left for
   * the garbage collector to find (dead pack buffers were a fifth of the peak memory of a large
   * backup). As many are kept as were ever in use at once (the open packs and those being
   * stored), until the writer goes; a fresh buffer costs only the pages a pack fills.
   */
  private readonly spare: Buffer[] = [];
  /** Spare pieces of streamed packs, likewise. */
  private readonly pieces: Buffer[] = [];
  /** blobs added to packs and not yet in an index file, by type (their ids as they are: no new strings), and their packs */
  private readonly pending: Record<BlobType, Map<string, PackSlot>> = { data: new Map(), tree: new Map() };
  /** packs started and not yet taken into an index file, oldest first */
  private readonly started: PackSlot[] = [];
  private readonly uploads = new Set<Promise<void>>();
  /** an index file being written between flushes */
  private indexing: Promise<void> | null = null;
  private failed: unknown = undefined;
  /** every pack this writer stored and indexed, in that order */
  readonly indexedPacks: PackId[] = [];
  readonly stats: WriterStats = { blobs: 0, newBlobs: 0, rawBytes: 0, newRawBytes: 0, uploadedBytes: 0, packs: 0, indexFiles: 0 };

  constructor(
    private readonly session: VaultSession,
    private readonly keys: VaultKeys,
    private readonly index: BlobIndex,
    /** `spool`: a folder (see spool.ts) through which data packs go to a vault that takes them whole */
    private readonly opts: { packSize?: number; level?: number; uploads?: number; indexEvery?: number; indexCache?: IndexCache; spool?: string } = {},
  ) {}

  /**
   * The error of a failed upload, once one failed. The blobs of that pack are lost but counted as
   * stored, so from then on every `add` and `flush` throws it: nothing may refer to them.
   */
  get failure(): unknown {
    return this.failed;
  }

  private check(): void {
    if (this.failed !== undefined) throw this.failed;
  }

  /** Stores `plaintext` as a blob unless it is already stored; returns its id. */
  async add(type: BlobType, plaintext: Uint8Array): Promise<BlobId> {
    this.check();
    const id = blobId(this.keys, plaintext);
    if (this.isStored(type, id, plaintext.length)) return id;
    const enc = encodeBlob(this.keys, type, plaintext, { id, level: this.opts.level });
    await this.append(type, id, enc.sealed, enc.rawLength);
    return id;
  }

  /**
   * Stores a blob sealed elsewhere (by a chunk worker) unless it is already stored. Returns a
   * promise only when the caller must wait (a full pack is being handed to the vault).
   */
  addSealed(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number): Promise<void> | undefined {
    this.check();
    if (this.isStored(type, id, rawLength)) return undefined;
    return this.append(type, id, sealed, rawLength);
  }

  /**
   * Counts a blob the caller knows the vault has (a chunk of a file's previous version, still in
   * the index): it was hashed, not sealed. Throws AZBK_INTERNAL if it is not there after all.
   */
  addStored(type: BlobType, id: BlobId, rawLength: number): void {
    this.check();
    if (!this.isStored(type, id, rawLength)) throw new AzbkError('AZBK_INTERNAL', `Blob ${id} was taken as stored but the vault does not have it.`);
  }

  /**
   * The pack of a blob this writer was given (added, or counted as stored): a pack the index
   * names, or the slot of one of this job's packs, whose id is known once it is stored.
   */
  packRef(type: BlobType, id: BlobId): PackRef {
    const slot = this.pending[type].get(id);
    if (slot !== undefined) return slot;
    const pack = this.index.packOf(type, id);
    if (pack === undefined) throw new AzbkError('AZBK_INTERNAL', `Blob ${id} is neither stored nor being stored.`);
    return pack;
  }

  /** Counts a blob, and tells whether the vault or this job already has it. */
  private isStored(type: BlobType, id: BlobId, rawLength: number): boolean {
    this.stats.blobs++;
    this.stats.rawBytes += rawLength;
    return this.index.has(type, id) || this.pending[type].has(id);
  }

  /**
   * Adds a new blob to the open pack of its type; a promise when the caller should wait: the pack
   * is full and goes to the vault, or its writes into the vault are behind.
   */
  private append(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number): Promise<void> | undefined {
    const target = this.opts.packSize ?? TARGET_PACK_SIZE;
    const pack = (this.open[type] ??= this.newPack(type, target));
    const slot = (this.openSlot[type] ??= { pack: null });
    let wait: Promise<void> | undefined;
    try {
      wait = pack.add(type, id, sealed, rawLength);
    } catch (err) {
      if (pack.failure !== undefined) this.failed ??= pack.failure; // a streamed write failed: the pack is lost
      throw err;
    }
    this.pending[type].set(id, slot);
    this.stats.newBlobs++;
    this.stats.newRawBytes += rawLength;
    if (wait !== undefined) wait = wait.catch((err: unknown) => this.fail(err));
    if (pack.size < target) return wait;
    const upload = type === 'data' ? this.uploadPack('data') : this.uploadListings();
    return wait === undefined ? upload : Promise.all([wait, upload]).then(() => undefined);
  }

  /**
   * Data packs stream into a vault that takes them in pieces, or through a spool file to a vault
   * service; listings packs, open all job long, go whole.
   */
  private newPack(type: BlobType, target: number): OpenPack {
    const { spool } = this.opts;
    const stream = type !== 'data' ? null : (this.session.startPack() ?? (spool === undefined ? null : spoolPack(this.session, spool)));
    if (stream !== null) return new StreamedPack(this.keys, stream, this.pieces);
    // Room for a full pack and its header at once: most packs never grow.
    return new WholePack(this.keys, this.session, this.spare.pop() ?? Buffer.allocUnsafeSlow(target + PACK_SLACK), this.spare);
  }

  /** Keeps the first failure (nothing may refer to blobs added since) and throws it. */
  private fail(err: unknown): never {
    this.failed ??= err ?? new Error('pack upload failed');
    throw err;
  }

  /**
   * Starts the open data pack, then the open listings pack (both before either waits): packs are
   * indexed in the order they start, and a listing names chunks that may be in the open data pack.
   */
  private async uploadListings(): Promise<void> {
    const data = this.uploadPack('data');
    const listings = this.uploadPack('tree');
    await Promise.all([data, listings]); // both awaited: a failed upload rejects both
  }

  /**
   * Starts uploading the open pack of `type` (all of that before the first await); then waits only
   * while too many uploads are in flight.
   */
  private async uploadPack(type: BlobType): Promise<void> {
    const open = this.open[type];
    const entry = this.openSlot[type];
    if (open === null || entry === null) return;
    this.open[type] = null;
    this.openSlot[type] = null;
    if (open.count === 0) return open.abort(); // its first blob was refused
    // Packs are indexed in the order they were started (see flush).
    this.started.push(entry);
    const upload = open.store().then(
      (pack) => {
        this.stats.packs++;
        this.stats.uploadedBytes += pack.bytes;
        entry.pack = { id: pack.id, blobs: pack.entries };
        this.uploads.delete(upload);
        this.indexSome();
      },
      (err: unknown) => this.fail(err),
    );
    upload.catch(() => undefined); // surfaced by whoever awaits it below
    this.uploads.add(upload);
    // Two in flight by default, also into an embedded vault: with one, a backup of incompressible
    // big files took 36 s instead of 31 (a pack's write and fsync last about as long as filling
    // the next one).
    while (this.uploads.size >= (this.opts.uploads ?? 2)) await Promise.race(this.uploads);
  }

  /**
   * Drops the open packs after a failure (a streamed pack would otherwise stay in the vault's
   * temporary folder until it is swept) and waits a little for the packs being stored. The writer
   * must not be used afterwards.
   */
  async abandon(): Promise<void> {
    const open = [this.open.data, this.open.tree];
    this.open.data = this.open.tree = null;
    this.openSlot.data = this.openSlot.tree = null;
    this.failed ??= new Error('BlobWriter used after abandon');
    await Promise.allSettled(open.map((p) => p?.abort()));
    // Packs being stored finish, or fail and clean up; not for long, as a low upload limit could
    // hold their last writes back (what is not done by then is swept later).
    await Promise.race([Promise.allSettled(this.uploads), delay(ABANDON_WAIT_MS, undefined, { ref: false })]);
  }

  /**
   * Uploads the open packs and indexes uploaded packs. Afterwards every blob added before the call
   * is durable and indexed, except, with `listings` false, those in the open listings pack (a
   * checkpoint names file chunks only; a pack of its own per checkpoint would leave many small
   * ones). An index file names only packs whose every predecessor (in the order they started) is
   * stored too. A listings pack always starts after the data pack that was open when it closed,
   * so every chunk its listings name is in a pack that started before it: an index never names a
   * listing whose chunks might still be lost.
   */
  async flush(listings = true): Promise<void> {
    this.check();
    if (listings) await this.uploadListings();
    else await this.uploadPack('data');
    await Promise.all(this.uploads);
    // An index file being written may name packs added before this call (and start another as it ends).
    while (this.indexing !== null) await this.indexing;
    this.check();
    const n = this.storedFirst();
    if (n > 0) await this.startIndex(n);
  }

  /** How many packs at the front of the started list are stored. */
  private storedFirst(): number {
    let n = 0;
    while (n < this.started.length && this.started[n]!.pack !== null) n++;
    return n;
  }

  /** Indexes the stored packs at the front of the started list once there are enough of them. */
  private indexSome(): void {
    if (this.indexing !== null || this.failed !== undefined) return;
    const n = this.storedFirst();
    if (n < (this.opts.indexEvery ?? INDEX_EVERY)) return;
    this.startIndex(n).catch(() => undefined); // the failure is kept: the next add or flush throws it
  }

  /**
   * Starts the index file of the first `n` started packs. One index file is written at a time: one
   * started after a failed one could name packs that only follow packs no index names.
   */
  private startIndex(n: number): Promise<void> {
    const indexing = this.writeIndex(n).finally(() => {
      this.indexing = null;
      this.indexSome();
    });
    this.indexing = indexing;
    return indexing;
  }

  /** Writes one index file for the first `n` started packs (all stored); then their blobs are in the index. */
  private async writeIndex(n: number): Promise<void> {
    const slots = this.started.splice(0, n);
    const packs = slots.map((s) => s.pack!);
    const name = randomBytes(32).toString('hex');
    let data: Buffer;
    try {
      data = await runSliced(encodeIndexSteps(this.keys, name, packs));
      await this.session.putIndex(name, data);
    } catch (err) {
      // These packs are out of `started` and named by no index: nothing may be indexed after them.
      this.failed ??= err ?? new Error('index upload failed');
      throw err;
    }
    // The next backup finds it in the local cache instead of decrypting it again.
    this.opts.indexCache?.putIndex(name, compactIndex(packs));
    this.stats.indexFiles++;
    this.stats.uploadedBytes += data.length;
    this.index.addIndexFile(name, packs);
    for (const p of packs) {
      this.indexedPacks.push(p.id);
      for (const b of p.blobs) this.pending[b.type].delete(b.id);
    }
    for (const s of slots) s.pack = { id: s.pack!.id, blobs: [] };
  }
}
