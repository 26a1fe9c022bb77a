/**
 * Stores blobs in the vault with deduplication: a blob the vault (or this job) already has is not
 * sent again. New blobs are sealed into packs of about 16 MiB; each full pack is uploaded, and
 * `flush` uploads the open pack and writes one index file for every pack uploaded since the last
 * flush. Only after `flush` resolves may a point or checkpoint refer to those blobs.
 */
import { randomBytes } from 'node:crypto';
import { blobId, encodeBlob } from '../core/blob.js';
import type { BlobId, BlobType } from '../core/ids.js';
import { encodeIndex, type IndexPack } from '../core/index-file.js';
import type { VaultKeys } from '../core/keys.js';
import { PackBuilder, TARGET_PACK_SIZE } from '../core/pack.js';
import type { VaultSession } from '../vault/api.js';
import type { BlobIndex } from './blob-index.js';

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
  private pack: PackBuilder | null = null;
  private readonly pending = new Set<string>();
  private unindexed: IndexPack[] = [];
  readonly stats: WriterStats = { blobs: 0, newBlobs: 0, rawBytes: 0, newRawBytes: 0, uploadedBytes: 0, packs: 0, indexFiles: 0 };

  constructor(
    private readonly session: VaultSession,
    private readonly keys: VaultKeys,
    private readonly index: BlobIndex,
    private readonly opts: { packSize?: number; level?: number } = {},
  ) {}

  /** Stores `plaintext` as a blob unless it is already stored; returns its id. */
  async add(type: BlobType, plaintext: Uint8Array): Promise<BlobId> {
    const id = blobId(this.keys, plaintext);
    this.stats.blobs++;
    this.stats.rawBytes += plaintext.length;
    if (this.index.has(id) || this.pending.has(id)) return id;
    const enc = encodeBlob(this.keys, type, plaintext, { id, level: this.opts.level });
    this.pack ??= new PackBuilder(this.keys);
    this.pack.add(type, id, enc.sealed, enc.rawLength);
    this.pending.add(id);
    this.stats.newBlobs++;
    this.stats.newRawBytes += plaintext.length;
    if (this.pack.size >= (this.opts.packSize ?? TARGET_PACK_SIZE)) await this.uploadPack();
    return id;
  }

  private async uploadPack(): Promise<void> {
    const builder = this.pack;
    if (builder === null || builder.count === 0) return;
    this.pack = null;
    const pack = builder.finish();
    await this.session.putPack(pack.id, pack.data);
    this.stats.packs++;
    this.stats.uploadedBytes += pack.data.length;
    this.unindexed.push({ id: pack.id, blobs: pack.entries });
  }

  /** Uploads the open pack and indexes every uploaded pack. Afterwards all added blobs are durable. */
  async flush(): Promise<void> {
    await this.uploadPack();
    if (this.unindexed.length === 0) return;
    const name = randomBytes(32).toString('hex');
    const data = encodeIndex(this.keys, name, this.unindexed);
    await this.session.putIndex(name, data);
    this.stats.indexFiles++;
    this.stats.uploadedBytes += data.length;
    for (const p of this.unindexed) {
      this.index.addPack(p.id, p.blobs);
      for (const b of p.blobs) this.pending.delete(b.id);
    }
    this.unindexed = [];
  }
}
