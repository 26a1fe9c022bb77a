/**
 * A backup job: walk the included paths, store file content as deduplicated chunks and every
 * directory as a tree blob, then write the recovery point. The point is written last, after every
 * blob it refers to is in the vault and indexed, so a failed job never leaves a half-written point.
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Chunker } from '../core/chunker.js';
import type { BlobId } from '../core/ids.js';
import { encodeTree, type FileNode, type TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { errnoCode } from '../shared/files.js';
import type { PointInfo } from '../vault/api.js';
import { BlobIndex } from './blob-index.js';
import { BlobWriter } from './blob-writer.js';
import type { AgentContext } from './context.js';
import { fromSegments, toSegments } from './fspath.js';
import { findResumable, sealCheckpoint, unchanged, type KnownFile, type PartialFile, type ResumeState } from './checkpoint.js';
import { acquireJobLock } from './lock.js';
import { sealManifest, type BackupStats, type PointManifest, type SkippedItem } from './manifest.js';

const READ_SIZE = 4 * 1024 * 1024;

export type BackupEvent =
  | { readonly type: 'start'; readonly jobId: string; readonly paths: readonly string[]; readonly resumed: ResumedFrom | null }
  | { readonly type: 'checkpoint'; readonly seq: number; readonly final: boolean }
  | { readonly type: 'file'; readonly path: string; readonly size: number }
  | { readonly type: 'skipped'; readonly path: string; readonly reason: string };

export interface BackupOptions {
  readonly include: readonly string[];
  readonly onEvent?: (e: BackupEvent) => void;
  /** write a checkpoint at least this often (default 60 s) */
  readonly checkpointIntervalMs?: number;
  /** and after reading this many bytes since the last one (default 512 MiB) */
  readonly checkpointBytes?: number;
  /** aborting saves a last checkpoint and ends the job with AZBK_CANCELLED */
  readonly signal?: AbortSignal;
}

/** The checkpoint a job continued from. */
export interface ResumedFrom {
  readonly jobId: string;
  readonly seq: number;
  readonly time: string;
}

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 60_000;
export const DEFAULT_CHECKPOINT_BYTES = 512 * 1024 * 1024;

export interface BackupResult {
  readonly jobId: string;
  readonly resumed: ResumedFrom | null;
  readonly checkpoints: number;
  readonly point: PointInfo;
  readonly paths: readonly string[];
  readonly stats: BackupStats;
  readonly skipped: readonly SkippedItem[];
  readonly warnings: readonly SkippedItem[];
  readonly started: string;
  readonly finished: string;
}

interface Trie {
  included: boolean;
  readonly children: Map<string, Trie>;
}

/** Runs one backup job for the registered machine in `ctx`. */
export async function runBackup(ctx: AgentContext, opts: BackupOptions): Promise<BackupResult> {
  if (opts.include.length === 0) throw new AzbkError('AZBK_NOTHING_TO_BACK_UP', 'No folders or files to back up were given.');
  const lock = await acquireJobLock(ctx.paths.lock, { jobId: randomBytes(16).toString('hex'), kind: 'backup' });
  try {
    const resume = await findResumable(ctx.session, ctx.keys);
    const job = new BackupJob(ctx, resume, opts);
    try {
      return await job.run();
    } catch (err) {
      if (isAzbkError(err, 'AZBK_VAULT_UNREACHABLE') || isAzbkError(err, 'AZBK_VAULT_NOT_FOUND')) {
        const saved = job.lastSeq > 0 ? `checkpoint ${job.lastSeq} of job ${job.id}` : null;
        throw new AzbkError(err.code, `${err.message} The backup stopped${saved ? `; the next one continues from ${saved}` : ''}.`, {
          hint: err.hint,
          cause: err,
        });
      }
      throw err;
    }
  } finally {
    await lock.release();
  }
}

class BackupJob {
  private readonly skipped: SkippedItem[] = [];
  private readonly warnings: SkippedItem[] = [];
  private readonly stats: BackupStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, newBytes: 0, uploadedBytes: 0, blobs: 0, newBlobs: 0, packs: 0 };
  private writer!: BlobWriter;
  private chunkerParams!: { min: number; avg: number; max: number };
  private readonly jobId: string;
  private readonly known: Map<string, KnownFile>;
  private readonly partial: PartialFile | null;
  private seq: number;
  private checkpoints = 0;
  private finishedSince: [string, KnownFile][] = [];
  private bytesSince = 0;
  private lastCheckpoint = Date.now();

  constructor(
    private readonly ctx: AgentContext,
    private readonly resume: ResumeState | null,
    private readonly opts: BackupOptions,
  ) {
    this.jobId = resume?.jobId ?? randomBytes(16).toString('hex');
    this.seq = resume?.seq ?? 0;
    this.known = resume?.files ?? new Map();
    this.partial = resume?.partial ?? null;
  }

  get id(): string {
    return this.jobId;
  }

  get lastSeq(): number {
    return this.seq;
  }

  private get resumedFrom(): ResumedFrom | null {
    return this.resume === null ? null : { jobId: this.resume.jobId, seq: this.resume.seq, time: this.resume.time };
  }

  /**
   * Called between chunks and between files: writes a checkpoint when one is due, and a last one
   * followed by AZBK_CANCELLED when the job was asked to stop.
   */
  private async tick(partial: PartialFile | null): Promise<void> {
    const cancelled = this.opts.signal?.aborted === true;
    const due =
      this.bytesSince >= (this.opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES) ||
      Date.now() - this.lastCheckpoint >= (this.opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS);
    if (!cancelled && !due) return;
    await this.checkpoint(partial, cancelled);
    if (cancelled) {
      throw new AzbkError('AZBK_CANCELLED', `Backup cancelled; checkpoint ${this.seq} of job ${this.jobId} saved.`, {
        hint: 'Run azbk backup --now again: it continues from the checkpoint.',
      });
    }
  }

  private async checkpoint(partial: PartialFile | null, final: boolean): Promise<void> {
    await this.writer.flush();
    this.seq++;
    const data = sealCheckpoint(this.ctx.keys, { version: 1, jobId: this.jobId, seq: this.seq, files: this.finishedSince, partial });
    await this.ctx.session.putCheckpoint({ jobId: this.jobId, seq: this.seq, data });
    this.checkpoints++;
    this.finishedSince = [];
    this.bytesSince = 0;
    this.lastCheckpoint = Date.now();
    this.opts.onEvent?.({ type: 'checkpoint', seq: this.seq, final });
  }

  private skip(p: string, reason: string): void {
    this.skipped.push({ path: p, reason });
    this.opts.onEvent?.({ type: 'skipped', path: p, reason });
  }

  async run(): Promise<BackupResult> {
    const started = new Date();
    const { session, keys } = this.ctx;
    const cfg = await session.config();
    this.chunkerParams = { min: cfg.chunker.min, avg: cfg.chunker.avg, max: cfg.chunker.max };
    const index = await BlobIndex.load(session, keys);
    this.writer = new BlobWriter(session, keys, index, { packSize: cfg.packSize, level: cfg.compression.level });

    const trie = await this.buildTrie();
    const includedPaths = collectIncluded(trie, []);
    this.opts.onEvent?.({ type: 'start', jobId: this.jobId, paths: includedPaths.map(fromSegments), resumed: this.resumedFrom });
    if (includedPaths.length === 0) {
      throw new AzbkError('AZBK_PATH_NOT_FOUND', `None of the paths to back up exist: ${this.skipped.map((s) => s.path).join(', ')}.`);
    }
    const root = await this.ancestorTree([], trie);
    await this.writer.flush();

    const w = this.writer.stats;
    Object.assign(this.stats, { blobs: w.blobs, newBlobs: w.newBlobs, newBytes: w.newRawBytes, packs: w.packs });
    const manifest: PointManifest = {
      version: 1,
      jobId: this.jobId,
      keyId: keys.keyId,
      machineName: this.ctx.registration.machineName,
      hostname: os.hostname(),
      platform: process.platform,
      started: started.toISOString(),
      finished: new Date().toISOString(),
      tree: root,
      paths: includedPaths,
      stats: this.stats,
      skipped: this.skipped,
      warnings: this.warnings,
    };
    const sealed = sealManifest(keys, manifest);
    this.stats.uploadedBytes = w.uploadedBytes + sealed.length;
    const point = await session.putPoint({ keyId: keys.keyId, jobId: this.jobId, manifest: sealed });
    return {
      jobId: this.jobId,
      resumed: this.resumedFrom,
      checkpoints: this.checkpoints,
      point,
      paths: includedPaths.map(fromSegments),
      stats: this.stats,
      skipped: this.skipped,
      warnings: this.warnings,
      started: manifest.started,
      finished: manifest.finished,
    };
  }

  /** The included paths as a trie of segments; missing ones are skipped, nested ones merged. */
  private async buildTrie(): Promise<Trie> {
    const root: Trie = { included: false, children: new Map() };
    for (const p of this.opts.include) {
      const abs = path.resolve(p);
      try {
        await fs.lstat(abs);
      } catch (err) {
        this.skip(abs, errnoCode(err) === 'ENOENT' ? 'not found' : `cannot read (${errnoCode(err) ?? 'error'})`);
        continue;
      }
      let node = root;
      for (const seg of toSegments(abs)) {
        let next = node.children.get(seg);
        if (next === undefined) {
          next = { included: false, children: new Map() };
          node.children.set(seg, next);
        }
        node = next;
      }
      node.included = true;
    }
    return root;
  }

  /** A tree for a directory above the included paths: only the children on the way down. */
  private async ancestorTree(segs: string[], trie: Trie): Promise<BlobId> {
    const nodes: TreeNode[] = [];
    for (const [name, child] of trie.children) {
      const childSegs = [...segs, name];
      const abs = fromSegments(childSegs);
      if (child.included) {
        const node = await this.entry(abs, name);
        if (node !== null) nodes.push(node);
        continue;
      }
      const st = await fs.lstat(abs, { bigint: true });
      nodes.push({ type: 'dir', name, ...meta(st), subtree: await this.ancestorTree(childSegs, child) });
    }
    return this.writer.add('tree', encodeTree(nodes));
  }

  /** Backs up one filesystem entry; null (and listed as skipped) when it cannot be read. */
  private async entry(abs: string, name: string): Promise<TreeNode | null> {
    let st: BigIntStats;
    try {
      st = await fs.lstat(abs, { bigint: true });
    } catch (err) {
      this.skip(abs, describe(err));
      return null;
    }
    try {
      if (st.isFile()) return await this.file(abs, name, st);
      if (st.isDirectory()) {
        const subtree = await this.dir(abs);
        if (subtree === null) return null;
        this.stats.dirs++;
        return { type: 'dir', name, ...meta(st), subtree };
      }
      if (st.isSymbolicLink()) {
        const target = await fs.readlink(abs);
        this.stats.symlinks++;
        return { type: 'symlink', name, ...meta(st), target };
      }
      this.warnings.push({ path: abs, reason: 'special file (device, socket or pipe) not backed up' });
      return null;
    } catch (err) {
      if (err instanceof AzbkError) throw err;
      this.skip(abs, describe(err));
      return null;
    }
  }

  private async dir(abs: string): Promise<BlobId | null> {
    let names: string[];
    try {
      names = await fs.readdir(abs);
    } catch (err) {
      this.skip(abs, describe(err));
      return null;
    }
    names.sort();
    const nodes: TreeNode[] = [];
    for (const name of names) {
      const node = await this.entry(path.join(abs, name), name);
      if (node !== null) nodes.push(node);
    }
    return this.writer.add('tree', encodeTree(nodes));
  }

  private async file(abs: string, name: string, before: BigIntStats): Promise<FileNode> {
    const known = this.known.get(abs);
    if (known !== undefined && unchanged(known, identity(before))) {
      // Finished before the checkpoint this job resumed from: not read again.
      return this.finishFile(abs, name, before, known.content, known.size, false);
    }
    // A file that changes while it is read is read once more; if it changes again, what was read
    // is kept and the file is listed as changed during backup.
    let st = before;
    for (let attempt = 0; ; attempt++) {
      const { content, size, after } = await this.readFile(abs, st);
      const changed = after.size !== st.size || after.mtimeNs !== st.mtimeNs || size !== Number(after.size);
      if (!changed || attempt === 1) {
        if (changed) this.warnings.push({ path: abs, reason: 'changed during backup' });
        return this.finishFile(abs, name, after, content, size, true);
      }
      st = after;
    }
  }

  private async finishFile(abs: string, name: string, st: BigIntStats, content: readonly BlobId[], size: number, record: boolean): Promise<FileNode> {
    this.stats.files++;
    this.stats.bytes += size;
    this.opts.onEvent?.({ type: 'file', path: abs, size });
    if (record) this.finishedSince.push([abs, { ...identity(st), size, content }]);
    await this.tick(null);
    return { type: 'file', name, ...meta(st), size, content: [...content] };
  }

  private async readFile(abs: string, st: BigIntStats): Promise<{ content: BlobId[]; size: number; after: BigIntStats }> {
    const fh = await fs.open(abs, 'r');
    try {
      const chunker = new Chunker(this.chunkerParams, this.ctx.keys.chunkerSeed);
      const id = identity(st);
      let content: BlobId[] = [];
      let offset = 0;
      // A file this job was half-way through when it stopped continues from its last chunk boundary.
      const p = this.partial;
      if (p !== null && p.path === abs && unchanged(p, id)) {
        content = [...p.content];
        offset = p.offset;
      }
      let size = offset;
      let position = offset;
      for (;;) {
        const buf = Buffer.allocUnsafe(READ_SIZE);
        const { bytesRead } = await fh.read(buf, 0, READ_SIZE, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        size += bytesRead;
        this.bytesSince += bytesRead;
        for (const chunk of chunker.push(buf.subarray(0, bytesRead))) {
          content.push(await this.writer.add('data', chunk));
          offset += chunk.length;
          await this.tick({ path: abs, ...id, offset, content });
        }
      }
      for (const chunk of chunker.finish()) content.push(await this.writer.add('data', chunk));
      return { content, size, after: await fh.stat({ bigint: true }) };
    } finally {
      await fh.close();
    }
  }
}

/** The metadata that tell whether a file changed since it was last read. */
function identity(st: BigIntStats): { size: number; mtime: string; ctime: string; ino: string } {
  return { size: Number(st.size), mtime: st.mtimeNs.toString(), ctime: st.ctimeNs.toString(), ino: st.ino.toString() };
}

function meta(st: BigIntStats): { mode: number; mtime: string } {
  return { mode: Number(st.mode & 0o7777n), mtime: st.mtimeNs.toString() };
}

function describe(err: unknown): string {
  switch (errnoCode(err)) {
    case 'ENOENT':
      return 'vanished during backup';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EBUSY':
      return 'locked by another process';
    default:
      return `cannot read (${errnoCode(err) ?? (err as Error).message})`;
  }
}

function collectIncluded(trie: Trie, segs: string[]): string[][] {
  const out: string[][] = [];
  for (const [name, child] of trie.children) {
    if (child.included) out.push([...segs, name]);
    else out.push(...collectIncluded(child, [...segs, name]));
  }
  return out;
}
