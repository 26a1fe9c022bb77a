/**
 * A backup job: walk the included paths, store file content as deduplicated chunks and every
 * directory as a tree blob, then write the recovery point. The point is written last, after every
 * blob it refers to is in the vault and indexed, so a failed job never leaves a half-written point.
 *
 * The walk runs on the main thread with synchronous lstat and readdir (fast, and it never waits
 * on a file's content); files whose metadata match the checkpoint being resumed or the local
 * cache are not read; the others go to the chunk workers (pipeline/pool.ts), which read, chunk,
 * hash, compress and seal on every core while the main thread deduplicates, packs and uploads.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BlobId } from '../core/ids.js';
import { encodeTree, type FileNode, type TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { errnoCode } from '../shared/files.js';
import type { PointInfo } from '../vault/api.js';
import { BlobIndex } from './blob-index.js';
import { BlobWriter } from './blob-writer.js';
import { findResumable, sealCheckpoint, unchanged, type KnownFile, type PartialFile, type ResumeState } from './checkpoint.js';
import type { AgentContext } from './context.js';
import { FileCache, type KnownDir } from './file-cache.js';
import { changesSince, dirtyFolders, journalOffset } from './journal.js';
import { fromSegments, toSegments } from './fspath.js';
import { acquireJobLock } from './lock.js';
import { sealManifest, type BackupStats, type PointManifest, type SkippedItem } from './manifest.js';
import { ChunkPool } from './pipeline/pool.js';
import type { FileStat } from './pipeline/protocol.js';

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
  /** chunk workers (default: one per core) */
  readonly workers?: number;
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
  /** full scan or optimized (change journal), and why */
  readonly scan: ScanMode;
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
  const cache = FileCache.open(path.join(ctx.paths.home, 'cache', `${ctx.registration.vaultId}-${ctx.keys.keyId}.sqlite`));
  try {
    const resume = await findResumable(ctx.session, ctx.keys);
    const job = new BackupJob(ctx, resume, cache, opts);
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
    cache.close();
    await lock.release();
  }
}

const LAST_BACKUP = 'last-backup';

/** The start time and journal offset of the last completed backup, from the cache. */
function lastBackup(v: unknown): { started: string; offset: number } | null {
  const b = v as { started?: unknown; offset?: unknown } | undefined;
  return typeof b?.started === 'string' && typeof b.offset === 'number' ? { started: b.started, offset: b.offset } : null;
}

interface Counts {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

/** A backed-up entry and the totals beneath it. */
interface Entry {
  readonly node: TreeNode;
  readonly counts: Counts;
}

interface Folder {
  readonly tree: BlobId;
  readonly counts: Counts;
}

/** How the job found what to back up. */
export interface ScanMode {
  readonly mode: 'full' | 'optimized';
  readonly reason: string;
}

/** A file being read by a worker: what a checkpoint needs to continue it. */
interface InFlight {
  readonly path: string;
  readonly id: Identity;
  offset: number;
  content: BlobId[];
}

type Identity = { size: number; mtime: string; ctime: string; ino: string };

class BackupJob {
  private readonly skipped: SkippedItem[] = [];
  private readonly warnings: SkippedItem[] = [];
  private readonly stats: BackupStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, newBytes: 0, uploadedBytes: 0, blobs: 0, newBlobs: 0, packs: 0 };
  private writer!: BlobWriter;
  private index!: BlobIndex;
  private pool!: ChunkPool;
  private readonly jobId: string;
  private readonly known: Map<string, KnownFile>;
  private readonly partials: Map<string, PartialFile>;
  private readonly inFlight = new Set<InFlight>();
  private seq: number;
  private checkpoints = 0;
  private finishedSince: [string, KnownFile][] = [];
  private bytesSince = 0;
  private lastCheckpoint = Date.now();
  private checkpointing: Promise<void> = Promise.resolve();
  /** folders the change journal saw change (optimized mode), or null for a full scan */
  private dirty: Set<string> | null = null;
  private scan: ScanMode = { mode: 'full', reason: '' };
  private readonly walkedDirs: [string, KnownDir][] = [];
  private finalCheckpoint: Promise<void> | null = null;

  constructor(
    private readonly ctx: AgentContext,
    private readonly resume: ResumeState | null,
    private readonly cache: FileCache,
    private readonly opts: BackupOptions,
  ) {
    this.jobId = resume?.jobId ?? randomBytes(16).toString('hex');
    this.seq = resume?.seq ?? 0;
    this.known = resume?.files ?? new Map();
    this.partials = resume?.partials ?? new Map();
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

  private skip(p: string, reason: string): void {
    this.skipped.push({ path: p, reason });
    this.opts.onEvent?.({ type: 'skipped', path: p, reason });
  }

  async run(): Promise<BackupResult> {
    const started = new Date();
    const { session, keys } = this.ctx;
    const cfg = await session.config();
    this.index = await BlobIndex.load(session, keys);
    this.writer = new BlobWriter(session, keys, this.index, { packSize: cfg.packSize, level: cfg.compression.level });
    const trie = this.buildTrie();
    const includedPaths = collectIncluded(trie, []);
    if (includedPaths.length === 0) {
      throw new AzbkError('AZBK_PATH_NOT_FOUND', `None of the paths to back up exist: ${this.skipped.map((s) => s.path).join(', ')}.`);
    }
    this.opts.onEvent?.({ type: 'start', jobId: this.jobId, paths: includedPaths.map(fromSegments), resumed: this.resumedFrom });

    // The journal's length now: the next backup reads what changes from here on.
    const home = this.ctx.paths.home;
    const offset = journalOffset(home);
    const journal = changesSince(home, lastBackup(this.cache.getMeta(LAST_BACKUP)), includedPaths.map(fromSegments));
    if (journal.ok) {
      this.dirty = dirtyFolders(journal.changed);
      this.scan = { mode: 'optimized', reason: `the change journal covers the time since the last backup; ${journal.changed.size} path(s) changed` };
    } else this.scan = { mode: 'full', reason: journal.why };

    this.pool = new ChunkPool(
      { master: keys.master, chunker: { min: cfg.chunker.min, avg: cfg.chunker.avg, max: cfg.chunker.max }, level: cfg.compression.level },
      this.opts.workers === undefined ? {} : { workers: this.opts.workers },
    );
    let root: Folder;
    try {
      root = await this.ancestorTree([], trie);
      await this.writer.flush();
    } finally {
      await this.pool.close();
    }

    const w = this.writer.stats;
    Object.assign(this.stats, { ...root.counts, blobs: w.blobs, newBlobs: w.newBlobs, newBytes: w.newRawBytes, packs: w.packs });
    const manifest: PointManifest = {
      version: 1,
      jobId: this.jobId,
      keyId: keys.keyId,
      machineName: this.ctx.registration.machineName,
      hostname: os.hostname(),
      platform: process.platform,
      started: started.toISOString(),
      finished: new Date().toISOString(),
      tree: root.tree,
      paths: includedPaths,
      stats: this.stats,
      skipped: this.skipped,
      warnings: this.warnings,
    };
    const sealed = sealManifest(keys, manifest);
    this.stats.uploadedBytes = w.uploadedBytes + sealed.length;
    const point = await session.putPoint({ keyId: keys.keyId, jobId: this.jobId, manifest: sealed });
    this.cache.putDirs(this.walkedDirs);
    this.cache.setMeta(LAST_BACKUP, { started: manifest.started, offset });
    return {
      scan: this.scan,
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

  /**
   * Called as chunks and files complete: writes a checkpoint when one is due, and a last one
   * followed by AZBK_CANCELLED when the job was asked to stop. Checkpoints never overlap.
   */
  private async tick(): Promise<void> {
    if (this.opts.signal?.aborted === true) {
      this.finalCheckpoint ??= this.checkpointing.then(() => this.checkpoint(true));
      await this.finalCheckpoint;
      throw new AzbkError('AZBK_CANCELLED', `Backup cancelled; checkpoint ${this.seq} of job ${this.jobId} saved.`, {
        hint: 'Run azbk backup --now again: it continues from the checkpoint.',
      });
    }
    const due =
      this.bytesSince >= (this.opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES) ||
      Date.now() - this.lastCheckpoint >= (this.opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS);
    if (!due) return;
    // Reset the triggers at once, so callers arriving while this one runs do not start another.
    this.bytesSince = 0;
    this.lastCheckpoint = Date.now();
    this.checkpointing = this.checkpointing.then(() => this.checkpoint(false));
    await this.checkpointing;
  }

  /**
   * Takes what is finished and how far each file in flight got, flushes the writer (so every blob
   * those name is uploaded and indexed), then stores the checkpoint.
   */
  private async checkpoint(final: boolean): Promise<void> {
    const files = this.finishedSince;
    this.finishedSince = [];
    const partials: PartialFile[] = [...this.inFlight].filter((f) => f.offset > 0).map((f) => ({ path: f.path, ...f.id, offset: f.offset, content: [...f.content] }));
    await this.writer.flush();
    const seq = this.seq + 1;
    const data = sealCheckpoint(this.ctx.keys, { version: 1, jobId: this.jobId, seq, files, partials });
    await this.ctx.session.putCheckpoint({ jobId: this.jobId, seq, data });
    this.seq = seq;
    this.cache.flush();
    this.checkpoints++;
    this.bytesSince = 0;
    this.lastCheckpoint = Date.now();
    this.opts.onEvent?.({ type: 'checkpoint', seq, final });
  }

  /** The included paths as a trie of segments; missing ones are skipped, nested ones merged. */
  private buildTrie(): Trie {
    const root: Trie = { included: false, children: new Map() };
    for (const p of this.opts.include) {
      const abs = path.resolve(p);
      try {
        fs.lstatSync(abs);
      } catch (err) {
        this.skip(abs, errnoCode(err) === 'ENOENT' ? 'not found' : describe(err));
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
  private async ancestorTree(segs: string[], trie: Trie): Promise<Folder> {
    const entries: Promise<Entry | null>[] = [];
    for (const [name, child] of trie.children) {
      const childSegs = [...segs, name];
      const abs = fromSegments(childSegs);
      if (child.included) entries.push(this.entry(abs, name));
      else {
        const st = fs.lstatSync(abs, { bigint: true });
        entries.push(this.ancestorTree(childSegs, child).then((f) => ({ node: { type: 'dir', name, ...meta(st), subtree: f.tree }, counts: f.counts })));
      }
    }
    return this.folder(present(await Promise.all(entries)), false);
  }

  /** Stores a folder's listing; `counted` adds the folder itself to the totals. */
  private async folder(entries: readonly Entry[], counted: boolean): Promise<Folder> {
    const counts: Counts = { files: 0, dirs: counted ? 1 : 0, symlinks: 0, bytes: 0 };
    for (const e of entries) {
      counts.files += e.counts.files;
      counts.dirs += e.counts.dirs;
      counts.symlinks += e.counts.symlinks;
      counts.bytes += e.counts.bytes;
    }
    return { tree: await this.writer.add('tree', encodeTree(entries.map((e) => e.node))), counts };
  }

  /** Backs up one filesystem entry; null (and listed as skipped) when it cannot be read. */
  private async entry(abs: string, name: string): Promise<Entry | null> {
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(abs, { bigint: true });
    } catch (err) {
      this.skip(abs, describe(err));
      return null;
    }
    if (st.isFile()) {
      const node = await this.file(abs, name, st);
      return node === null ? null : { node, counts: { files: 1, dirs: 0, symlinks: 0, bytes: node.size } };
    }
    if (st.isDirectory()) {
      const f = await this.dir(abs);
      return f === null ? null : { node: { type: 'dir', name, ...meta(st), subtree: f.tree }, counts: f.counts };
    }
    if (st.isSymbolicLink()) {
      try {
        const target = fs.readlinkSync(abs);
        return { node: { type: 'symlink', name, ...meta(st), target }, counts: { files: 0, dirs: 0, symlinks: 1, bytes: 0 } };
      } catch (err) {
        this.skip(abs, describe(err));
        return null;
      }
    }
    this.warnings.push({ path: abs, reason: 'special file (device, socket or pipe) not backed up' });
    return null;
  }

  private async dir(abs: string): Promise<Folder | null> {
    if (this.dirty !== null && !this.dirty.has(abs)) {
      // The change journal saw nothing change in here since the last backup.
      const known = this.cache.getDir(abs);
      if (known !== undefined && this.index.has('tree', known.tree)) {
        const { tree, ...counts } = known;
        return { tree, counts };
      }
    }
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch (err) {
      this.skip(abs, describe(err));
      return null;
    }
    names.sort();
    const entries: Promise<Entry | null>[] = [];
    for (const name of names) {
      await this.pool.room();
      entries.push(this.entry(path.join(abs, name), name));
    }
    const folder = await this.folder(present(await Promise.all(entries)), true);
    this.walkedDirs.push([abs, { tree: folder.tree, ...folder.counts }]);
    return folder;
  }

  private async file(abs: string, name: string, st: fs.BigIntStats): Promise<FileNode | null> {
    const id = identity(st);
    const known = this.known.get(abs) ?? this.cache.get(abs);
    if (known !== undefined && unchanged(known, id) && known.content.every((c) => this.index.has('data', c))) {
      // Unchanged since the checkpoint this job resumes from, or since the last backup: not read.
      return this.finishFile(abs, name, st, id, known.content, false);
    }
    // A file that changes while it is read is read once more; if it changes again, what was read
    // is kept and the file is listed as changed during backup.
    let expected = id;
    for (let attempt = 0; ; attempt++) {
      const r = await this.read(abs, expected);
      if ('error' in r) {
        this.skip(abs, describe({ code: r.error, message: r.message }));
        return null;
      }
      const after = { size: r.after.size, mtime: r.after.mtime, ctime: r.after.ctime, ino: r.after.ino };
      const changed = !sameContentStat(r.before, expected) || !sameContentStat(r.after, r.before) || r.size !== r.after.size;
      if (!changed || attempt === 1) {
        if (changed) this.warnings.push({ path: abs, reason: 'changed during backup' });
        return this.finishFile(abs, name, { mode: r.after.mode, mtimeNs: BigInt(r.after.mtime) }, after, r.content, !changed);
      }
      expected = after;
    }
  }

  /** Reads a file through the workers, continuing a half-read file from the resumed checkpoint. */
  private async read(abs: string, id: Identity): Promise<{ error: string; message: string } | { size: number; before: FileStat; after: FileStat; content: BlobId[] }> {
    const p = this.partials.get(abs);
    const resumeAt = p !== undefined && unchanged(p, id) && p.content.every((c) => this.index.has('data', c));
    const f: InFlight = { path: abs, id, offset: resumeAt ? p.offset : 0, content: resumeAt ? [...p.content] : [] };
    this.inFlight.add(f);
    try {
      const r = await this.pool.read(abs, f.offset, id.size - f.offset, async (chunks, offset) => {
        for (const c of chunks) {
          await this.writer.addSealed('data', c.id as BlobId, c.sealed, c.rawLength);
          // content and offset move together, so a checkpoint taken at any await sees a chunk boundary
          f.content.push(c.id as BlobId);
          f.offset += c.rawLength;
          this.bytesSince += c.rawLength;
        }
        if (f.offset !== offset) throw new AzbkError('AZBK_INTERNAL', `Chunk offsets of ${abs} do not add up.`);
        await this.tick();
      });
      return 'error' in r ? r : { ...r, content: f.content };
    } finally {
      this.inFlight.delete(f);
    }
  }

  private async finishFile(abs: string, name: string, st: { mode: bigint | number; mtimeNs: bigint }, id: Identity, content: readonly BlobId[], remember: boolean): Promise<FileNode> {
    this.opts.onEvent?.({ type: 'file', path: abs, size: id.size });
    if (remember) {
      const known: KnownFile = { ...id, content };
      this.finishedSince.push([abs, known]);
      this.cache.put(abs, known);
    }
    await this.tick();
    return { type: 'file', name, mode: Number(BigInt(st.mode) & 0o7777n), mtime: st.mtimeNs.toString(), size: id.size, content: [...content] };
  }
}

/** The metadata that tell whether a file changed since it was last read. */
function identity(st: fs.BigIntStats): Identity {
  return { size: Number(st.size), mtime: st.mtimeNs.toString(), ctime: st.ctimeNs.toString(), ino: st.ino.toString() };
}

function sameContentStat(a: { size: number; mtime: string; ino: string }, b: { size: number; mtime: string; ino: string }): boolean {
  return a.size === b.size && a.mtime === b.mtime && a.ino === b.ino;
}

function meta(st: fs.BigIntStats): { mode: number; mtime: string } {
  return { mode: Number(st.mode & 0o7777n), mtime: st.mtimeNs.toString() };
}

function present<T>(xs: readonly (T | null)[]): T[] {
  return xs.filter((x): x is T => x !== null);
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
