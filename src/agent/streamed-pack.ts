/**
 * A pack streamed into the vault as it fills, for a vault that takes packs in pieces (the embedded
 * vault): its bytes are gathered into PIECE-sized buffers, each written out as soon as it is full,
 * so a pack costs a few pieces of memory instead of a whole pack's buffer until it is stored.
 */
import type { BlobId, BlobType } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { packEntry, packTail, type PackEntry } from '../core/pack.js';
import { InFlight } from '../shared/in-flight.js';
import type { PackStream } from '../vault/api.js';
import type { StoredPack } from './blob-writer.js';

/** Bytes of one write into the vault. */
export const PIECE = 1024 * 1024;
/** Writes in flight before `add` asks its caller to wait (a large blob may start more at once). */
const MAX_WRITES_IN_FLIGHT = 4;

export class StreamedPack {
  private readonly entries: PackEntry[] = [];
  private bytes = 0;
  private piece: Buffer | null = null;
  private used = 0;
  private readonly writes = new InFlight();
  private done = false;

  /**
   * `pieces` holds spare pieces, shared by the packs of one writer: a piece goes back there once
   * its write settles.
   */
  constructor(
    private readonly keys: VaultKeys,
    private readonly stream: PackStream,
    private readonly pieces: Buffer[],
  ) {}

  /** Bytes of sealed blobs added so far. */
  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.length;
  }

  /** The error of a failed write: the pack is lost, and `add` and `store` throw it. */
  get failure(): unknown {
    return this.writes.failure;
  }

  /**
   * Appends a sealed blob; its bytes are copied at once, so the caller may reuse `sealed` when
   * this returns. Returns a promise when the caller should wait for writes to drain (it rejects
   * if a write fails meanwhile). Throws the failure once a write has failed, and RangeError for
   * an entry the pack format refuses.
   */
  add(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number): Promise<void> | undefined {
    if (this.done) throw new Error('StreamedPack used after store');
    if (this.failure !== undefined) throw this.failure;
    this.entries.push(packEntry(type, id, this.bytes, sealed.length, rawLength));
    this.bytes += sealed.length;
    this.copy(sealed);
    return this.writes.size >= MAX_WRITES_IN_FLIGHT ? this.drain() : undefined;
  }

  /**
   * Writes the header and ends the pack; resolves once the pack is stored. The pack is complete
   * when this returns: a blob added to another pack afterwards is not in it.
   */
  async store(): Promise<StoredPack> {
    if (this.done) throw new Error('StreamedPack used after store');
    this.done = true;
    let tail: Buffer;
    try {
      if (this.failure !== undefined) throw this.failure;
      tail = packTail(this.keys, this.entries);
      this.copy(tail);
      this.send();
      await this.writes.settled();
      if (this.failure !== undefined) throw this.failure;
    } catch (err) {
      await this.stream.abort();
      throw err;
    }
    const id = await this.stream.end();
    return { id, entries: this.entries, bytes: this.bytes + tail.length };
  }

  /** Drops the pack (after a failure elsewhere: it will never be named). */
  async abort(): Promise<void> {
    this.done = true;
    await this.stream.abort();
  }

  private copy(data: Uint8Array): void {
    for (let at = 0; at < data.length; ) {
      if (this.piece === null) {
        this.piece = this.pieces.pop() ?? Buffer.allocUnsafeSlow(PIECE);
        this.used = 0;
      }
      const n = Math.min(data.length - at, PIECE - this.used);
      this.piece.set(data.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === PIECE) this.send();
    }
  }

  /** Writes the current piece, if it holds anything. */
  private send(): void {
    const piece = this.piece;
    if (piece === null) return;
    this.piece = null;
    // A piece goes back once written; a failed write is kept as the pack's failure.
    this.writes.track(this.stream.write(piece.subarray(0, this.used)).then(() => void this.pieces.push(piece)));
  }

  private async drain(): Promise<void> {
    while (this.writes.size >= MAX_WRITES_IN_FLIGHT) await this.writes.one();
    if (this.failure !== undefined) throw this.failure;
  }
}
