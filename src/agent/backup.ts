/**
 * A backup job: walk the included paths, store file content as deduplicated chunks and every
 * directory as a tree blob, then write the recovery point. The point is written last, after every
 * blob it refers to is in the vault and indexed, so a failed job never leaves a half-written point.
 *
 * The walk runs on the main thread with synchronous lstat and readdir (fast, and it never waits
 * on a file's content), helped in a full scan by the scan worker (pipeline/scan.ts), which finds
 * unchanged folders from the far end; files whose metadata match the checkpoint being resumed or
 * the local cache are not read; the others go to the chunk workers (pipeline/pool.ts), which read, chunk,
 * hash, compress and seal on every core while the main thread deduplicates, packs and uploads.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { compileExcludes, excludesKey, type Excluded } from '../core/exclude.js';
import type { BlobId, PackId } from '../core/ids.js';
import { MAX_BLOB_SIZE } from '../core/blob.js';
import { formatBytes } from '../core/size.js';
import { encodeTree, encodeTreePart, splitTree, type FileNode, type TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError, localIoError } from '../shared/errors.js';
import { fileIdentity } from '../shared/files.js';
import { absentOf } from '../shared/missing.js';
import type { NewPoint } from '../vault/api.js';
import type { VaultConfig } from '../vault/config.js';
import { BlobIndex } from './blob-index.js';
import { BlobWriter, type PackRef } from './blob-writer.js';
import { findResumable, identity, knownFile, sealCheckpoint, unchanged, type FileIdentity, type KnownFile, type PartialDelta, type PartialFile, type ResumeState } from './checkpoint.js';
import { anotherVault, type AgentContext } from './context.js';
import { FileCache, isDamagedCache, type KnownDir } from './file-cache.js';
import { entryStat, fingerprint, folderIdentity, listFolder, MAX_FOLDER_DEPTH, type EntryStat, type Listed } from './folder-listing.js';
import { changesSince, journalOffset, journalRun, journalSync, underTree } from './journal.js';
import { LAST_BACKUP, lastBackup, planScan, type LastBackup, type ScanMode } from './scan-mode.js';
import { childPath, fromSegments, toSegments } from './fspath.js';
import { ownFolders, type OwnFolders } from './own-folders.js';
import { collectIncluded, includedTrie, type Trie } from './included.js';
import { skipReason } from './skip-reason.js';
import { acquireJobLock } from './lock.js';
import { openSpool } from './spool.js';
import { sealManifest, type BackupStats, type PointManifest, type SkippedItem } from './manifest.js';
import { ChunkPool } from './pipeline/pool.js';
import { dropPrestartedScan, FolderScan, type ScanOptions } from './pipeline/scan.js';
import { REPLACED, type FileStat, type SealedChunk } from './pipeline/protocol.js';

/** How far a running backup got: files examined (read, or found unchanged) and what was read, new and uploaded. */
export interface BackupProgress {
  readonly files: number;
  /** the size of the files examined */
  readonly bytes: number;
  readonly readBytes: number;
  readonly newBytes: number;
  readonly uploadedBytes: number;
}

export type BackupEvent =
  /** `progress` tells how far the job got, whenever asked, until it ends */
  | { readonly type: 'start'; readonly jobId: string; readonly paths: readonly string[]; readonly resumed: ResumedFrom | null; readonly progress: () => BackupProgress }
  | { readonly type: 'checkpoint'; readonly seq: number; readonly final: boolean }
  /**
   * every file is read: what is left is uploading the last packs and storing the point, which a
   * request to stop no longer interrupts (a checkpoint would wait for the same uploads)
   */
  | { readonly type: 'finishing' }
  /** the job runs once more: packs it counted on are gone, or the local cache was found damaged */
  | { readonly type: 'retry'; readonly why: 'packs gone' | 'cache damaged' }
  | { readonly type: 'file'; readonly path: string; readonly size: number }
  | { readonly type: 'skipped'; readonly path: string; readonly reason: string };

export interface BackupOptions {
  readonly include: readonly string[];
  /** what to leave out under the included paths: patterns (see core/exclude.ts) */
  readonly exclude?: readonly string[];
  readonly onEvent?: (e: BackupEvent) => void;
  /** write a checkpoint at least this often (default 60 s) */
  readonly checkpointIntervalMs?: number;
  /** and after reading this many bytes since the last one (default 512 MiB) */
  readonly checkpointBytes?: number;
  /** and after finishing this many files since the last one (default 100,000) */
  readonly checkpointFiles?: number;
  /** aborting saves a last checkpoint and ends the job with AZBK_CANCELLED */
  readonly signal?: AbortSignal;
  /** chunk workers (default: one per core) */
  readonly workers?: number;
  /** folder entries per worker the walk may hold before it goes one subfolder at a time (default 512; tests set fewer) */
  readonly heldEntriesPerWorker?: number;
  /**
   * a full scan's walk starts only once the scan worker has gone through everything, so that it
   * takes every folder the worker found unchanged (tests)
   */
  readonly scanFirst?: boolean;
  /** the largest folder listing a backup stores (default MAX_BLOB_SIZE; tests set less) */
  readonly maxListingBytes?: number;
}

/** The checkpoint a job continued from. */
export interface ResumedFrom {
  readonly jobId: string;
  readonly seq: number;
  readonly time: string;
}

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 60_000;
export const DEFAULT_CHECKPOINT_BYTES = 512 * 1024 * 1024;
/**
 * A checkpoint lists the files finished since the one before, held in memory until it is written
 * (about 0.4 KiB each): many small files finish in far less than an interval (500,000 of them
 * in 40 s), so a count bounds them too.
 */
export const DEFAULT_CHECKPOINT_FILES = 100_000;
/** How long a failed job waits for the checkpoint it was writing to end (it fails fast once the writer is abandoned). */
const CHECKPOINT_WAIT_MS = 5000;

/** A job's counts: a point's stats, with the data read always there (older points may lack it). */
export type JobStats = BackupStats & { readBytes: number };

export interface BackupResult {
  readonly jobId: string;
  /** full scan or optimized (change journal), and why */
  readonly scan: ScanMode;
  readonly resumed: ResumedFrom | null;
  readonly checkpoints: number;
  readonly point: NewPoint;
  readonly paths: readonly string[];
  readonly stats: JobStats;
  readonly skipped: readonly SkippedItem[];
  readonly warnings: readonly SkippedItem[];
  readonly started: string;
  readonly finished: string;
  /** the most folder entries the walk held at once: listed, in folders not yet finished (see walkFolder) */
  readonly heldEntries: number;
}

/** File data read and bytes uploaded, which a run's attempts add up. */
interface Counted {
  readonly readBytes: number;
  readonly uploadedBytes: number;
}

/** Runs one backup job for the registered machine in `ctx`. */
export async function runBackup(ctx: AgentContext, opts: BackupOptions): Promise<BackupResult> {
  if (opts.include.length === 0) throw new AzbkError('AZBK_NOTHING_TO_BACK_UP', 'No folders or files to back up were given.');
  const lock = await acquireJobLock(ctx.paths.lock, { jobId: randomBytes(16).toString('hex'), kind: 'backup' });
  const open = () => {
    const c = FileCache.forVault(ctx.paths.home, ctx.registration.vaultId, ctx.keys.keyId);
    c.holdReads(); // the walk looks up rows for every folder
    return c;
  };
  let cache: FileCache;
  try {
    cache = open();
  } catch (err) {
    await lock.release(); // a cache that cannot be opened ends the job before it starts
    throw err;
  }
  let result: BackupResult | undefined;
  let cacheLost: string | null = null;
  try {
    let carried: Counted = { readBytes: 0, uploadedBytes: 0 };
    let remade = false;
    for (let attempt = 1; result === undefined; attempt++) {
      const resume = await findResumable(ctx.session, ctx.keys);
      const job = new BackupJob(ctx, resume, cache, opts, carried);
      // Status names the job that runs, the one its point and history name (not needed to run it).
      await lock.relabel(job.id).catch(() => undefined);
      try {
        result = await job.run();
      } catch (err) {
        // Packs the job counted on are not in the vault (prune deleted them while it ran, or they
        // were lost): this machine leaves the missing ones out from now on, and the job runs once
        // more, storing what was in them anew (continuing from the checkpoints the first run wrote).
        if (attempt === 1 && isAzbkError(err, 'AZBK_PACK_GONE')) {
          const missing = await job.missingPacks().catch(() => null);
          if (missing !== null) {
            cache.addMissingPacks(missing);
            carried = job.counted; // what it read and uploaded counts in the run's totals
            opts.onEvent?.({ type: 'retry', why: 'packs gone' });
            continue;
          }
        }
        // The cache found damaged on the way: made anew, and the job runs once more (from its
        // checkpoints), reading what the cache would have spared it.
        if (!remade && isDamagedCache(err)) {
          cache.discard();
          cache = open();
          cache.remade = remade = true;
          carried = job.counted;
          opts.onEvent?.({ type: 'retry', why: 'cache damaged' });
          continue;
        }
        throw jobError(job, err);
      }
    }
  } finally {
    try {
      cache.close();
    } catch (err) {
      // Found damaged only now, the job done: the next one finds it so, and makes it anew. What
      // the disk could not take (full, read-only) is lost with it: the next backup reads those
      // files again. Either way the job's own outcome stands (its point is in the vault).
      if (!isDamagedCache(err) && localIoError(err) === undefined) throw err;
      cache.abandon();
      cacheLost = isDamagedCache(err) ? 'it was found damaged' : `it could not be written: ${localIoError(err)!.message}`;
    } finally {
      await lock.release();
    }
  }
  // Said, so that a full disk does not go on making every backup read everything without a word.
  if (cacheLost === null) return result!;
  return { ...result!, warnings: [...result!.warnings, { path: cache.file, reason: `the local cache of what was backed up is lost (${cacheLost}): the next backup reads every file again` }] };
}

/** A job's error as the user sees it: where the next backup continues from, when the vault could not be reached. */
function jobError(job: BackupJob, err: unknown): unknown {
  if (isAzbkError(err, 'AZBK_VAULT_UNREACHABLE') || isAzbkError(err, 'AZBK_VAULT_NOT_FOUND')) {
    const saved = job.lastSeq > 0 ? `checkpoint ${job.lastSeq} of job ${job.id}` : null;
    return new AzbkError(err.code, `${err.message} The backup stopped${saved ? `; the next one continues from ${saved}` : ''}.`, {
      hint: err.hint,
      cause: err,
    });
  }
  return err;
}

interface Counts {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

/**
 * The packs a folder's tree and everything beneath it are in: what a point must name for prune to
 * keep. A set for a folder this job stored; `cache` for a stored one it reuses as it is, whose
 * packs the cache keeps (see storedFolder): read only when needed, as the folder above is mostly
 * reused too.
 */
type FolderPacks = ReadonlySet<PackRef> | 'cache';

/** A backed-up entry and the totals beneath it. */
interface Entry {
  readonly node: TreeNode;
  /** a folder's counts; a file or a link counts as one of its kind (no object each: a folder may hold 200,000) */
  readonly counts?: Counts;
  /** for a folder: its packs */
  readonly packs?: FolderPacks;
}

interface Folder {
  readonly tree: BlobId;
  readonly counts: Counts;
  readonly packs: FolderPacks;
  /** nothing in it or beneath it was skipped, special or changing while read */
  readonly clean?: boolean;
}

/** A file being read by a worker: what a checkpoint needs to continue it. */
interface InFlight {
  readonly path: string;
  readonly id: FileIdentity;
  offset: number;
  content: BlobId[];
}

class BackupJob {
  private readonly skipped: SkippedItem[] = [];
  private readonly warnings: SkippedItem[] = [];
  private readonly stats: JobStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, readBytes: 0, newBytes: 0, uploadedBytes: 0, blobs: 0, newBlobs: 0, packs: 0 };
  private writer!: BlobWriter;
  private index!: BlobIndex;
  private pool!: ChunkPool;
  private readonly jobId: string;
  private readonly known: Map<string, KnownFile>;
  private readonly partials: Map<string, PartialFile>;
  /** the half-read files the last checkpoint written (or the one resumed from) holds: which version, and how many chunks */
  private heldPartials: ReadonlyMap<string, { readonly id: FileIdentity; readonly count: number }>;
  private readonly inFlight = new Set<InFlight>();
  /** the scan worker's help in a full scan (see pipeline/scan.ts) */
  private scanner: FolderScan | null = null;
  private seq: number;
  private checkpoints = 0;
  private finishedSince: [string, KnownFile][] = [];
  private bytesSince = 0;
  private lastCheckpoint = Date.now();
  /** the checkpoint being written in the background, if any (see tickSlow) */
  private checkpointing: Promise<void> = Promise.resolve();
  private checkpointRunning = false;
  /** why a checkpoint written in the background failed: the job fails with it */
  private checkpointFailure: { readonly error: unknown } | null = null;
  /** folders the change journal saw change (optimized mode), or null for a full scan */
  private dirty: ReadonlySet<string> | null = null;
  /** folders the change journal says to examine whole (a folder moved or made there) */
  private movedTrees: ReadonlySet<string> = new Set();
  private scan: ScanMode = { mode: 'full', reason: '' };
  private finalCheckpoint: Promise<void> | null = null;
  /** entries of folders listed and not yet finished: what the walk holds in memory */
  private openEntries = 0;
  /** the most it has been */
  private heldEntries = 0;
  /** the trees this job stored (or found stored) and their packs, for the cache once the point is written */
  private readonly madeTrees = new Map<BlobId, ReadonlySet<PackRef>>();
  /** the packs of the point, once it is being written */
  private named: readonly PackId[] = [];
  /** how many of the writer's packs the checkpoints written name */
  private namedByCheckpoints = 0;
  /** included paths backed up (not skipped) so far */
  private includedKept = 0;
  /** files examined so far, and their size (see progress) */
  private readonly examined = { files: 0, bytes: 0 };
  /** what the walk leaves out, and the same as one text (see core/exclude.ts) */
  private readonly excluded: Excluded | null;
  private readonly excludeKey: string;
  /** AZBK_HOME and the embedded vault, which the walk leaves out (see own-folders.ts) */
  private readonly own: OwnFolders;

  constructor(
    private readonly ctx: AgentContext,
    private readonly resume: ResumeState | null,
    private readonly cache: FileCache,
    private readonly opts: BackupOptions,
    /** what an earlier attempt of this run read and uploaded (see runBackup) */
    private readonly carried: Counted = { readBytes: 0, uploadedBytes: 0 },
  ) {
    this.stats.readBytes = carried.readBytes;
    this.jobId = resume?.jobId ?? randomBytes(16).toString('hex');
    this.seq = resume?.seq ?? 0;
    this.known = resume?.files ?? new Map();
    this.partials = resume?.partials ?? new Map();
    this.heldPartials = new Map([...this.partials].map(([p, f]) => [p, { id: identity(f), count: f.content.length }]));
    // azbk's own folders are left out like the patterns given (but are no change of those).
    this.own = ownFolders(ctx.paths.home, ctx.registration.endpoint);
    this.excluded = compileExcludes(opts.exclude ?? []);
    this.excludeKey = excludesKey(opts.exclude ?? []);
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
    if (this.cache.remade) this.warnings.push({ path: this.cache.file, reason: 'the local cache was damaged, and was made anew: every file was read once more' });
    const cfg = await this.ctx.session.config();
    // The local cache says which blobs this vault holds: another vault at the same place lacks them.
    if (cfg.id !== this.ctx.registration.vaultId) throw anotherVault(this.ctx.registration, cfg.id);
    const trie = includedTrie(this.opts.include, this.own, this.excluded, {
      skip: (p, reason) => this.skip(p, reason),
      warn: (p, reason) => this.warnings.push({ path: p, reason }),
    });
    const includedPaths = collectIncluded(trie);
    if (includedPaths.length === 0) {
      throw new AzbkError('AZBK_PATH_NOT_FOUND', `None of the paths to back up can be backed up: ${this.skipped.map((s) => `${s.path} (${s.reason})`).join('; ')}.`, {
        hint: 'Each path says why it was not backed up.',
      });
    }

    // The journal's length and run now, once the watcher has recorded every change before now
    // (and may drop the lines before where the last backup read from; see journalSync): the
    // next backup reads what changes from here on.
    const home = this.ctx.paths.home;
    const last = lastBackup(this.cache.getMeta(LAST_BACKUP));
    const sync = await journalSync(home, undefined, last?.offset);
    const offset = journalOffset(home);
    const run = journalRun(home);
    const included = includedPaths.map(fromSegments);
    const journal = changesSince(home, last, included, this.excludeKey, this.excluded, this.own.key);
    ({ scan: this.scan, dirty: this.dirty, movedTrees: this.movedTrees } = planScan({ last, exclude: this.excludeKey, own: this.own.key, sync, journal, included, now: started }));
    // A full scan after an earlier backup has help from the scan worker, which starts at once (or
    // was started while the command loaded: see prestartScan); a backup that needs none ends that one.
    if (this.dirty === null && last !== null) this.scanner = startScan(included, { exclude: this.opts.exclude ?? [], own: [...this.own.ids] }, this.cache.file, (tree) => this.reusable(tree));
    else dropPrestartedScan();
    try {
      return await this.backUp(started, cfg, includedPaths, trie, { offset, run, included, last });
    } finally {
      this.scanner?.close();
    }
  }

  /** The rest of run(): the walk, then the point; `journal`: where the change journal stood and the last backup's mark. */
  private async backUp(
    started: Date,
    cfg: VaultConfig,
    includedPaths: string[][],
    trie: Trie,
    journal: { offset: number; run: string | null; included: string[]; last: LastBackup | null },
  ): Promise<BackupResult> {
    const { session, keys } = this.ctx;
    const { offset, run, included, last } = journal;
    this.index = await BlobIndex.load(session, keys, this.cache, { forBackup: true });
    // A vault service takes data packs through the spool; this job holds the machine, so what a
    // killed one left there goes.
    const spool = session.putPackFile === undefined ? undefined : this.ctx.paths.spool;
    if (spool !== undefined) await openSpool(spool);
    this.writer = new BlobWriter(session, keys, this.index, { packSize: cfg.packSize, level: cfg.compression.level, indexCache: this.cache, ...(spool === undefined ? {} : { spool }) });
    this.opts.onEvent?.({ type: 'start', jobId: this.jobId, paths: included, resumed: this.resumedFrom, progress: () => this.progress() });
    if (this.opts.scanFirst === true) await this.scanner?.done();

    this.pool = new ChunkPool(
      { master: keys.master, chunker: { min: cfg.chunker.min, avg: cfg.chunker.avg, max: cfg.chunker.max }, level: cfg.compression.level },
      this.opts.workers === undefined ? {} : { workers: this.opts.workers },
    );
    let root: Folder;
    try {
      root = await this.ancestorTree([], trie);
      // Not one of them could be read (a folder this user may not list, say): no point of nothing.
      if (this.includedKept === 0) {
        const why = [...this.skipped, ...this.warnings].map((x) => `${x.path} (${x.reason})`).join('; ');
        throw new AzbkError('AZBK_PATH_NOT_FOUND', `None of the paths to back up could be backed up: ${why}.`, {
          hint: 'Each path says why it was not backed up.',
        });
      }
      this.opts.onEvent?.({ type: 'finishing' });
      await this.checkpointsWritten();
      await this.writer.flush();
    } catch (err) {
      await this.writer.abandon(); // drops a pack being streamed: nothing names it
      // A checkpoint being written fails at once now, or ends soon: not after the job.
      await Promise.race([this.checkpointing, delay(CHECKPOINT_WAIT_MS, undefined, { ref: false })]);
      throw err;
    } finally {
      this.scanner?.close();
      await this.pool.close();
    }

    const w = this.writer.stats;
    Object.assign(this.stats, { ...root.counts, blobs: w.blobs, newBlobs: w.newBlobs, newBytes: w.newRawBytes, packs: w.packs });
    const manifest: PointManifest = {
      version: 1,
      jobId: this.jobId,
      keyId: keys.keyId,
      machineId: this.ctx.registration.machineId,
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
    // The manifest records what went up before it; the result counts the manifest too.
    this.stats.uploadedBytes = this.counted.uploadedBytes;
    const sealed = sealManifest(keys, manifest);
    this.stats.uploadedBytes += sealed.length;
    this.named = packIds(this.packsOf(root.tree, root.packs));
    const point = await session.putPoint({ keyId: keys.keyId, jobId: this.jobId, manifest: sealed, packs: this.named }).catch((err: unknown) => {
      // Sent, but no answer: the vault may have written the point before it stopped answering.
      if (!isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')) throw err;
      throw new AzbkError(err.code, `${err.message} The recovery point was sent when the vault stopped answering, and may have been made.`, {
        hint: 'Once the vault answers, azbk points shows whether it was; run azbk backup --now again either way (it sends nothing the vault has).',
        cause: err,
      });
    });
    this.cache.putTreePacks([...this.madeTrees].map(([tree, refs]) => [tree, packIds(refs)] as const));
    const mark: LastBackup = { started: manifest.started, offset, run, paths: included, lastFull: this.scan.mode === 'full' ? manifest.started : (last?.lastFull ?? null), exclude: this.excludeKey, own: this.own.key };
    this.cache.setMeta(LAST_BACKUP, mark);
    this.index.saveSnapshot(this.cache); // the next backup or restore loads the index as it is
    return {
      scan: this.scan,
      jobId: this.jobId,
      resumed: this.resumedFrom,
      checkpoints: this.checkpoints,
      point,
      paths: included,
      stats: this.stats,
      skipped: this.skipped,
      warnings: this.warnings,
      started: manifest.started,
      finished: manifest.finished,
      heldEntries: this.heldEntries,
    };
  }

  /**
   * Called as chunks and files complete: starts a checkpoint when one is due (one at a time), and
   * writes a last one followed by AZBK_CANCELLED when the job was asked to stop. Throws when a
   * checkpoint written in the background failed.
   */
  private tick(): Promise<void> | undefined {
    if (this.checkpointFailure !== null) return Promise.reject(this.checkpointFailure.error);
    // Most calls find nothing to do: no promise for those.
    if (this.opts.signal?.aborted !== true && (this.checkpointRunning || !this.checkpointDue())) return undefined;
    return this.tickSlow();
  }

  private checkpointDue(): boolean {
    return (
      this.bytesSince >= (this.opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES) ||
      this.finishedSince.length >= (this.opts.checkpointFiles ?? DEFAULT_CHECKPOINT_FILES) ||
      Date.now() - this.lastCheckpoint >= (this.opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS)
    );
  }

  private async tickSlow(): Promise<void> {
    if (this.opts.signal?.aborted === true) {
      this.finalCheckpoint ??= this.checkpointing.then(() => this.checkpoint(true));
      await this.finalCheckpoint;
      // One that failed meanwhile left its files out of every checkpoint: the job failed.
      if (this.checkpointFailure !== null) throw this.checkpointFailure.error;
      throw new AzbkError('AZBK_CANCELLED', `Backup cancelled; checkpoint ${this.seq} of job ${this.jobId} saved.`, {
        hint: 'Run azbk backup --now again: it continues from the checkpoint.',
      });
    }
    // Due, and none running (see tick). Written in the background: the files read meanwhile go on
    // to the packs (the checkpoint names what was finished when it began). Holding the results
    // back until it was stored left the workers without files for as long as that took, a third
    // of a second here and there. One at a time: on a slow link the next is due only an interval
    // after this one is stored.
    this.checkpointRunning = true;
    this.checkpointing = this.checkpoint(false)
      .catch((error: unknown) => {
        this.checkpointFailure ??= { error };
      })
      .finally(() => {
        this.checkpointRunning = false;
      });
  }

  /** Waits for the checkpoints being written; throws when one failed. */
  private async checkpointsWritten(): Promise<void> {
    await this.checkpointing;
    if (this.checkpointFailure !== null) throw this.checkpointFailure.error;
  }

  /**
   * Takes what is finished and how far each file in flight got, flushes the writer (so every blob
   * those name is uploaded and indexed), then stores the checkpoint.
   */
  private async checkpoint(final: boolean): Promise<void> {
    const files = this.finishedSince;
    this.finishedSince = [];
    // A delta on the same file's entry in the last checkpoint written, where it has one.
    const partials: PartialDelta[] = [...this.inFlight]
      .filter((f) => f.offset > 0)
      .map((f) => {
        const held = this.heldPartials.get(f.path);
        const from = held !== undefined && unchanged(held.id, f.id) && held.count <= f.content.length ? held.count : 0;
        return { path: f.path, ...f.id, offset: f.offset, from, content: f.content.slice(from) };
      });
    await this.writer.flush(false); // a checkpoint names file chunks, never listings
    const seq = this.seq + 1;
    const data = await sealCheckpoint(this.ctx.keys, { version: 2, jobId: this.jobId, seq, files, partials });
    // The packs stored since the last checkpoint: the vault's prune keeps them while the checkpoint lasts.
    const stored = this.writer.indexedPacks.length;
    await this.ctx.session.putCheckpoint({ jobId: this.jobId, seq, data, packs: this.writer.indexedPacks.slice(this.namedByCheckpoints) });
    this.namedByCheckpoints = stored;
    this.heldPartials = new Map(partials.map((p) => [p.path, { id: identity(p), count: p.from + p.content.length }]));
    this.seq = seq;
    this.cache.flush();
    this.checkpoints++;
    this.bytesSince = 0;
    this.lastCheckpoint = Date.now();
    this.opts.onEvent?.({ type: 'checkpoint', seq, final });
  }

  /** The file data this attempt read and what it uploaded, with an earlier attempt's. */
  get counted(): Counted {
    return { readBytes: this.stats.readBytes, uploadedBytes: this.carried.uploadedBytes + (this.writer?.stats.uploadedBytes ?? 0) };
  }

  /** How far the job got (see BackupProgress). */
  private progress(): BackupProgress {
    const { readBytes, uploadedBytes } = this.counted;
    return { files: this.examined.files, bytes: this.examined.bytes, readBytes, newBytes: this.writer.stats.newRawBytes, uploadedBytes };
  }

  /** Counts files examined (see progress): one by one, or a folder's at once. */
  private countExamined(files: number, bytes: number): void {
    this.examined.files += files;
    this.examined.bytes += bytes;
  }

  /** The packs of the point the vault refused (AZBK_PACK_GONE) that it does not hold. */
  async missingPacks(): Promise<PackId[]> {
    return absentOf(this.named, (p) => this.ctx.session.statPack(p));
  }

  /** A tree for a directory above the included paths: only the children on the way down. */
  private async ancestorTree(segs: string[], trie: Trie): Promise<Folder> {
    const entries: Promise<Entry | null>[] = [];
    const abs = fromSegments(segs);
    // Files included on their own are remembered under a key no folder path can have.
    const key = `\0${abs}`;
    const known = this.cache.getFiles(key);
    const remembered = new Map<string, KnownFile>();
    for (const [name, child] of trie.children) {
      const childSegs = [...segs, name];
      const childAbs = fromSegments(childSegs);
      if (child.included) {
        const l = this.lstat(childAbs, name);
        const e = l === null ? Promise.resolve(null) : l.st.kind === 'dir' ? this.dirEntry(l, this.dir(l)) : this.entry(l, known, remembered);
        entries.push(e.then((x) => (x === null ? x : (this.includedKept++, x))));
      } else {
        const st = entryStat(fs.lstatSync(childAbs, { bigint: true }));
        entries.push(this.ancestorTree(childSegs, child).then((f) => ({ node: { type: 'dir', name, ...meta(st), subtree: f.tree }, counts: f.counts, packs: f.packs })));
      }
    }
    const folder = await this.folder(abs, present(await Promise.all(entries)), false);
    // Only files are left out (see folder), and all files here were included one by one.
    this.includedKept -= folder.left;
    if (remembered.size > 0) this.cache.putDir(key, { fingerprint: null, self: null, tree: folder.tree, ...folder.counts, known: remembered });
    return folder;
  }

  /**
   * Stores the listing of the folder `abs`, in parts when it is larger than a blob may be (a few
   * hundred thousand entries: see core/tree.ts); `counted` adds the folder itself to the totals.
   * An entry too large for a part of its own (a file of about a terabyte, by its list of chunk
   * ids) is skipped and left out; `left` counts those.
   */
  private async folder(abs: string, all: readonly Entry[], counted: boolean): Promise<Folder & { readonly left: number }> {
    const limit = this.opts.maxListingBytes ?? MAX_BLOB_SIZE;
    let entries = all;
    /** the ids of the listing's blobs: its first part last */
    const trees: BlobId[] = [];
    const nodes = all.map((e) => e.node);
    const whole = wholeListing(nodes);
    if (whole !== null && whole.length <= limit) trees.push(await this.writer.add('tree', whole));
    else {
      const { parts, tooLarge } = splitTree(nodes, limit);
      for (const n of tooLarge) this.skip(childPath(abs, n.name), tooLargeReason(n, limit));
      const left = new Set(tooLarge.map((n) => n.name));
      entries = all.filter((e) => !left.has(e.node.name));
      // Each part names the next one: they are stored from the last.
      for (let i = parts.length - 1; i >= 0; i--) {
        trees.push(await this.writer.add('tree', parts.length === 1 ? encodeTree(parts[i]!) : encodeTreePart(parts[i]!, trees.at(-1))));
      }
    }
    const counts: Counts = { files: 0, dirs: counted ? 1 : 0, symlinks: 0, bytes: 0 };
    for (const { node, counts: c } of entries) {
      if (c !== undefined) {
        counts.files += c.files;
        counts.dirs += c.dirs;
        counts.symlinks += c.symlinks;
        counts.bytes += c.bytes;
      } else if (node.type === 'file') {
        counts.files++;
        counts.bytes += node.size;
      } else counts.symlinks++;
    }
    const packs = new Set<PackRef>();
    for (const e of entries) {
      if (e.node.type === 'file') for (const c of e.node.content) packs.add(this.writer.packRef('data', c));
      else if (e.node.type === 'dir' && e.packs !== undefined) for (const p of this.packsOf(e.node.subtree, e.packs)) packs.add(p);
    }
    for (const id of trees) packs.add(this.writer.packRef('tree', id));
    const tree = trees.at(-1)!;
    this.madeTrees.set(tree, packs);
    return { tree, counts, packs, left: all.length - entries.length };
  }

  /**
   * Whether a tree a backup stored can be reused as it is: the vault still has it, the cache has
   * its packs, and prune has condemned none of them (with none left out, the packs need not be
   * read: an unchanged tree has thousands of folders, and their packs are seldom needed).
   */
  private reusable(tree: BlobId): boolean {
    if (!this.index.has('tree', tree)) return false;
    // A tree in a pack prune condemned or deleted (which the index left out) is stored again.
    const gone = this.index.leftOut;
    if (gone.size === 0) return this.cache.hasTreePacks(tree);
    const packs = this.cache.getTreePacks(tree);
    return packs !== undefined && !packs.some((p) => gone.has(p));
  }

  /** A folder's packs (see FolderPacks); `tree` is its tree. */
  private packsOf(tree: BlobId, packs: FolderPacks): Iterable<PackRef> {
    if (packs !== 'cache') return packs;
    // reusable() found them, and the cache's packs of trees change only after the point is written
    const stored = this.cache.getTreePacks(tree);
    if (stored === undefined) throw new AzbkError('AZBK_INTERNAL', `The local cache lost the packs of tree ${tree} during the backup.`);
    return stored;
  }

  /** A folder taken whole, without examining what it holds, counted as examined. */
  private countedWhole(f: Folder): Folder {
    this.countExamined(f.counts.files, f.counts.bytes);
    return f;
  }

  /** A folder as a backup stored it (a cache row with a fingerprint: nothing was skipped in it), or undefined when it cannot be reused (see reusable). */
  private storedFolder(row: KnownDir): Folder | undefined {
    if (!this.reusable(row.tree)) return undefined;
    const { tree, files, dirs, symlinks, bytes } = row;
    return { tree, counts: { files, dirs, symlinks, bytes }, clean: true, packs: 'cache' };
  }

  /** lstat, or null (and listed as skipped) when the entry cannot be examined. */
  private lstat(abs: string, name: string): Listed | null {
    try {
      return { abs, name, st: entryStat(fs.lstatSync(abs, { bigint: true })) };
    } catch (err) {
      this.skip(abs, skipReason(err));
      return null;
    }
  }

  /** A subfolder's entry in its parent's listing, once its own tree is stored. */
  private async dirEntry(l: Listed, sub: Promise<Folder | null>): Promise<Entry | null> {
    const f = await sub;
    return f === null ? null : { node: { type: 'dir', name: l.name, ...meta(l.st), subtree: f.tree }, counts: f.counts, packs: f.packs };
  }

  /**
   * Backs up a file, symlink or special file; null when it is not backed up. A regular file that
   * was read cleanly (or matched what was known) goes into `remembered`.
   */
  private async entry(l: Listed, known: ReadonlyMap<string, KnownFile>, remembered: Map<string, KnownFile>): Promise<Entry | null> {
    const { abs, name, st } = l;
    if (st.kind === 'file') {
      const r = await this.file(abs, name, st, known.get(name));
      if (r === null) return null;
      if (r.known !== null) remembered.set(name, r.known);
      return { node: r.node };
    }
    if (st.kind === 'symlink') {
      try {
        const raw = fs.readlinkSync(abs, { encoding: 'buffer' });
        const target = raw.toString('utf8');
        // As with names (see folder-listing.ts): a target that is not valid UTF-8 would be stored
        // with U+FFFD in place of its bad bytes, and restored pointing elsewhere.
        if (!Buffer.from(target, 'utf8').equals(raw)) {
          this.skip(abs, 'the path it points to is not valid UTF-8 text, which azbk cannot store');
          return null;
        }
        return { node: { type: 'symlink', name, ...meta(st), target } };
      } catch (err) {
        this.skip(abs, skipReason(err));
        return null;
      }
    }
    this.warnings.push({ path: abs, reason: 'special file (device, socket or pipe) not backed up' });
    return null;
  }

  /**
   * Backs up a folder. Its subfolders come first: their trees are part of this folder's
   * fingerprint, and when the fingerprint matches the cache (nothing in here changed since a
   * backup stored it), that backup's tree is used without looking at the files one by one.
   */
  private async dir(folder: Listed, walked?: () => void): Promise<Folder | null> {
    try {
      return await this.dirWalk(folder, walked);
    } finally {
      walked?.();
    }
  }

  /** dir(), which calls `walked` once every file beneath the folder is queued (or none will be). */
  private async dirWalk(folder: Listed, walked: (() => void) | undefined): Promise<Folder | null> {
    const { abs } = folder;
    if (toSegments(abs).length > MAX_FOLDER_DEPTH) {
      this.skip(abs, `more than ${MAX_FOLDER_DEPTH} folders deep: not backed up`);
      return null;
    }
    if (this.dirty !== null && !this.dirty.has(abs) && !underTree(abs, this.movedTrees)) {
      // The change journal saw nothing change in here since the last backup (a folder stored
      // without a fingerprint had something skipped or changing: it is examined again). It must
      // be the same folder: one moved here from elsewhere has another inode and ctime.
      const known = this.cache.getDir(abs);
      const stored = known !== undefined && known.fingerprint !== null && known.self === folderIdentity(folder.st) ? this.storedFolder(known) : undefined;
      if (stored !== undefined) return this.countedWhole(stored);
    }
    const scanned = this.scanner?.take(abs);
    const stored = scanned === undefined ? undefined : this.storedFolder(scanned);
    if (stored !== undefined) return this.countedWhole(stored);
    let listed: Listed[];
    let complete: boolean;
    try {
      ({ listed, complete } = listFolder(abs, (p, why) => this.skip(p, typeof why === 'string' ? why : skipReason(why)), folder.st, this.excluded, this.own.ids));
    } catch (err) {
      this.skip(abs, skipReason(err));
      return null;
    }
    this.openEntries += listed.length;
    this.heldEntries = Math.max(this.heldEntries, this.openEntries);
    try {
      return await this.walkFolder(folder, listed, complete, walked);
    } finally {
      this.openEntries -= listed.length;
    }
  }

  /** Folder entries the walk may hold before it walks one subfolder at a time. */
  private entriesBound(): number {
    return openEntriesBound(this.pool.workers, this.opts.heldEntriesPerWorker);
  }

  /** The rest of dir(): subfolders, then the fingerprint check, then the files. */
  private async walkFolder(self: Listed, listed: readonly Listed[], complete: boolean, walked: (() => void) | undefined): Promise<Folder> {
    const { abs } = self;
    const subdirs = new Map<string, Promise<Folder | null>>();
    let previous: { walked: Promise<void>; done: Promise<Folder | null> } | undefined;
    for (const l of listed) {
      if (l.st.kind !== 'dir') continue;
      if (!this.pool.hasRoom) await this.pool.room();
      // Past a bound, walk one subfolder at a time, so the walk does not list far more of the
      // tree than the readers have reached (memory would grow with the tree). The next one starts
      // once the one before has queued all its files, not once they are read: the readers are
      // still busy with those while it is listed. Past eight times the bound (folders of
      // thousands of entries, each waiting for a file or two), once they are read.
      const bound = this.entriesBound();
      if (previous !== undefined && this.openEntries > bound) {
        await previous.walked;
        if (this.openEntries > HARD_BOUND_FACTOR * bound) await previous.done;
      }
      let walkedSub!: () => void;
      const walked = new Promise<void>((resolve) => (walkedSub = resolve));
      const done = handled(this.dir(l, walkedSub));
      previous = { walked, done };
      subdirs.set(l.name, done);
    }
    const subtrees = new Map<string, Folder | null>();
    for (const [name, sub] of subdirs) subtrees.set(name, await sub);

    const cached = this.cache.getDir(abs);
    if (cached?.fingerprint != null && complete) {
      const fp = fingerprint(listed, subtrees);
      const stored = fp !== null && fp.equals(cached.fingerprint) ? this.storedFolder(cached) : undefined;
      if (stored !== undefined) {
        // Its subfolders were counted as they were examined: what is left is its own files.
        let { files, bytes } = stored.counts;
        for (const f of subtrees.values()) {
          files -= f?.counts.files ?? 0;
          bytes -= f?.counts.bytes ?? 0;
        }
        this.countExamined(files, bytes);
        return stored;
      }
    }

    const known = cached === undefined ? NO_FILES : this.cache.getFiles(abs);
    const remembered = new Map<string, KnownFile>();
    const entries: (Entry | null | Promise<Entry | null>)[] = [];
    for (const l of listed) {
      if (l.st.kind === 'dir') entries.push(this.dirEntry(l, Promise.resolve(subtrees.get(l.name)!)));
      else {
        // Most files of a folder examined again have not changed: no promise for those.
        if (l.st.kind === 'file') {
          const id = identity(l.st);
          const same = this.storedVersion(l.abs, id, known.get(l.name));
          if (same !== undefined) {
            entries.push(this.storedFile(l, id, same, remembered));
            continue;
          }
        }
        if (!this.pool.hasRoom) await this.pool.room();
        entries.push(handled(this.entry(l, known, remembered)));
      }
    }
    walked?.();
    const done = await Promise.all(entries);
    const folder = await this.folder(abs, present(done), true);
    // A folder with anything skipped, special or changed while read, in it or beneath it, gets no
    // fingerprint: it is examined again next time, also when the change journal saw nothing. (A
    // file left out of its listing for its size is remembered: it is not read again to be left out.)
    const clean =
      folder.left === 0 &&
      complete &&
      done.every((e, i) => e !== null && (listed[i]!.st.kind !== 'file' || remembered.has(listed[i]!.name))) &&
      [...subtrees.values()].every((f) => f?.clean === true);
    const fp = clean ? fingerprint(listed, subtrees, (name) => remembered.get(name)) : null;
    this.cache.putDir(abs, { fingerprint: fp, self: folderIdentity(self.st), tree: folder.tree, ...folder.counts, known: remembered });
    return { ...folder, clean };
  }

  /**
   * What was stored of a file that has not changed since the checkpoint this job resumes from, or
   * since the last backup, provided the vault still has every chunk; undefined if it must be read.
   */
  private storedVersion(abs: string, id: FileIdentity, cached: KnownFile | undefined): KnownFile | undefined {
    const known = this.known.get(abs) ?? cached;
    return known !== undefined && unchanged(known, id) && known.content.every((c) => this.index.has('data', c)) ? known : undefined;
  }

  /**
   * The entry of an unchanged file without reading it: `same` is what was stored of it (see
   * storedVersion), remembered as it is. A promise only when a checkpoint is due.
   */
  private storedFile(l: Listed, id: FileIdentity, same: KnownFile, remembered: Map<string, KnownFile>): Entry | Promise<Entry> {
    this.opts.onEvent?.({ type: 'file', path: l.abs, size: id.size });
    this.countExamined(1, id.size);
    remembered.set(l.name, same);
    const entry: Entry = { node: fileNode(l.name, l.st, id, same.content) };
    const t = this.tick();
    return t === undefined ? entry : handled(t.then(() => entry));
  }

  /** Backs up a regular file; `known` is what was known of it (`null` in the result: changed while read). */
  private async file(abs: string, name: string, st: EntryStat, cached: KnownFile | undefined): Promise<{ node: FileNode; known: KnownFile | null } | null> {
    const id = identity(st);
    const same = this.storedVersion(abs, id, cached);
    if (same !== undefined) return this.finishFile(abs, name, st, id, same.content, false);
    const known = this.known.get(abs) ?? cached;
    // The chunks of its previous version that the vault has: the workers hash those, and do not
    // compress or encrypt them again (a big file changed in a few places costs a read).
    const stored = known?.content.filter((c) => this.index.has('data', c));
    // A file that changes while it is read is read once more; if it changes again, what was read
    // is kept and the file is listed as changed during backup.
    let expected = id;
    for (let attempt = 0; ; attempt++) {
      const readFrom = Date.now();
      const r = await this.read(abs, expected, stored);
      if ('error' in r) {
        this.skip(abs, skipReason({ code: r.error, message: r.message }));
        return null;
      }
      // Another file than the walk's: one put in its place, or read through a folder above it
      // that was swapped for a link. Never stored under this name (it may be from anywhere).
      if (r.after.ino !== st.ino || r.after.dev !== st.dev) {
        this.skip(abs, skipReason({ code: REPLACED }));
        return null;
      }
      const after = { size: r.after.size, mtime: r.after.mtime, ctime: r.after.ctime, ino: r.after.ino };
      const changed = !unchanged(r.after, expected) || r.size !== r.after.size;
      if (!changed || attempt === 1) {
        if (changed) {
          // What was read is kept, with the size read: its listing must add up to its chunks.
          this.warnings.push({ path: abs, reason: 'changed during backup' });
          return { node: (await this.finishFile(abs, name, r.after, { ...after, size: r.size }, r.content, false)).node, known: null };
        }
        if (racy(after, readFrom)) {
          // Changed so shortly before it was read that a change right after could keep its size
          // and times: backed up, and remembered under a change time no file has, so the next
          // backup reads it again (hashing the chunks the vault has, not sealing them again); not
          // in a checkpoint either.
          const done = await this.finishFile(abs, name, r.after, after, r.content, false);
          return { node: done.node, known: knownFile({ ...after, ctime: RACY_CTIME }, done.known.content) };
        }
        return this.finishFile(abs, name, r.after, after, r.content, true);
      }
      expected = after;
    }
  }

  /** Reads a file through the workers, continuing a half-read file from the resumed checkpoint. */
  private async read(abs: string, id: FileIdentity, stored: readonly BlobId[] | undefined): Promise<{ error: string; message: string } | { size: number; after: FileStat; content: BlobId[] }> {
    const p = this.partials.get(abs);
    const resumeAt = p !== undefined && unchanged(p, id) && p.content.every((c) => this.index.has('data', c));
    const f: InFlight = { path: abs, id, offset: resumeAt ? p.offset : 0, content: resumeAt ? [...p.content] : [] };
    this.inFlight.add(f);
    try {
      const r = await this.pool.read(abs, f.offset, id.size, (chunks, offset) => this.addChunks(f, chunks, 0, offset), stored);
      return 'error' in r ? r : { size: r.size, after: r.after, content: f.content };
    } finally {
      this.inFlight.delete(f);
    }
  }

  /**
   * Hands a file's chunks from `from` on to the writer; `offset` is where the file stands after
   * the last. A promise only when the writer makes it wait, a checkpoint failed or the job is
   * stopping: most chunks of a source tree are a small file's only one, and a promise each was
   * garbage for the collector.
   */
  private addChunks(f: InFlight, chunks: readonly SealedChunk[], from: number, offset: number): Promise<void> | undefined {
    for (let i = from; i < chunks.length; i++) {
      const c = chunks[i]!;
      // Read, as the writer counts it new: progress never shows more new than read.
      this.stats.readBytes += c.rawLength;
      if (c.sealed !== undefined) {
        const wait = this.writer.addSealed('data', c.id as BlobId, c.sealed, c.rawLength);
        if (wait !== undefined) {
          return wait.then(() => {
            this.added(f, c);
            return this.addChunks(f, chunks, i + 1, offset);
          });
        }
      } else this.writer.addStored('data', c.id as BlobId, c.rawLength);
      this.added(f, c);
    }
    if (f.offset !== offset) throw new AzbkError('AZBK_INTERNAL', `Chunk offsets of ${f.path} do not add up.`);
    return this.tick();
  }

  /** Content and offset move together, so a checkpoint taken while a chunk waits sees a chunk boundary. */
  private added(f: InFlight, c: SealedChunk): void {
    f.content.push(c.id as BlobId);
    f.offset += c.rawLength;
    this.bytesSince += c.rawLength;
  }

  /** The file's listing entry and what to remember of it; `fresh`: just read (the checkpoint records it). */
  private async finishFile(abs: string, name: string, st: NodeStat, id: FileIdentity, content: readonly BlobId[], fresh: boolean): Promise<{ node: FileNode; known: KnownFile }> {
    this.opts.onEvent?.({ type: 'file', path: abs, size: id.size });
    this.countExamined(1, id.size);
    // One copy of the chunk list for the listing, the cache and the checkpoint: the list a read
    // grew has room for more (one chunk pushed onto [] takes 17 slots), and it lives till a checkpoint.
    const known = knownFile(id, fresh ? content.slice() : content);
    if (fresh) this.finishedSince.push([abs, known]);
    const t = this.tick();
    if (t !== undefined) await t;
    return { node: fileNode(name, st, id, known.content), known };
  }
}

/** What a file's listing entry takes of its stat. */
type NodeStat = Pick<FileStat, 'mode' | 'mtime' | 'dev' | 'ino' | 'nlink'>;

/**
 * A file's listing entry; `content` is shared, never changed (a read's growing list is copied
 * first). A file with more than one hard link carries its device and inode numbers, which its
 * other names backed up share: a restore makes them links again.
 */
function fileNode(name: string, st: NodeStat, id: FileIdentity, content: readonly BlobId[]): FileNode {
  const node: FileNode = { type: 'file', name, mode: st.mode, mtime: st.mtime, size: id.size, content };
  return st.nlink > 1 ? { ...node, link: fileIdentity(st) } : node;
}

const NO_FILES: ReadonlyMap<string, KnownFile> = new Map();

/** A scan worker for a full scan (see FolderScan), or null when no thread could be started: it is only a help. */
function startScan(roots: readonly string[], excludes: ScanOptions, cacheFile: string, stored: (tree: BlobId) => boolean): FolderScan | null {
  try {
    return new FolderScan(roots, cacheFile, stored, excludes);
  } catch {
    return null;
  }
}

/** The ids of packs, each once and sorted, once every pack of this job among them is stored. */
function packIds(refs: Iterable<PackRef>): PackId[] {
  const out = new Set<PackId>();
  for (const r of refs) {
    if (typeof r === 'string') out.add(r);
    else if (r.pack === null) throw new AzbkError('AZBK_INTERNAL', 'A pack of this backup was named before it was stored.');
    else out.add(r.pack.id);
  }
  return [...out].sort();
}
/**
 * Folder entries the walk may hold, per worker, before it goes one subfolder at a time. Enough to
 * keep the workers fed; every entry held longer is state the collector copies and promotes (two
 * workers, kernel tree: 20,000 entries in all took 8.0-9.1 s and 306-318 MiB, 1,000 took 7.9-8.6 s
 * and 280-292 MiB; 500 in all starved the workers: 9.6 s).
 */
const OPEN_ENTRIES_PER_WORKER = 512;

/** Past this many times the bound, the walk waits for a subfolder's files to be read, not only queued. */
const HARD_BOUND_FACTOR = 8;

function openEntriesBound(workers: number, perWorker = OPEN_ENTRIES_PER_WORKER): number {
  return Math.max(2, workers) * perWorker;
}

/**
 * How recent a change must be for a file read now to be "racy": file times tick coarsely (a
 * jiffy on Linux before 6.13, 2 s on FAT), so a write in the same tick as the read, after it,
 * would leave the size and times the read saw.
 */
export const RACY_MS = 2000;

/** The change time a racy file is remembered under: never a file's, so it never matches. */
const RACY_CTIME = '-1';

/**
 * Whether a file whose metadata after reading were `id` changed within RACY_MS before `start`
 * (ms), when its read began. Its change time tells: every write sets it to the clock of the
 * moment (an mtime can be set to anything, the future included).
 */
export function racy(id: FileIdentity, start: number): boolean {
  return Number(id.ctime) > (start - RACY_MS) * 1e6; // ns; a double's rounding is far below a tick
}

function meta(st: { mode: number; mtime: string }): { mode: number; mtime: string } {
  return { mode: st.mode, mtime: st.mtime };
}

/** A folder's listing as one blob, or null when it is past what one string may hold (some 2 million long names: split). */
function wholeListing(nodes: readonly TreeNode[]): Buffer | null {
  try {
    return encodeTree(nodes);
  } catch (err) {
    if (err instanceof RangeError) return null;
    throw err;
  }
}

/** Why an entry too large for a part of a folder's listing (see core/tree.ts) is left out of it. */
function tooLargeReason(n: TreeNode, limit: number): string {
  const what = n.type === 'file' ? `its name and list of ${n.content.length} chunk ids` : 'its name and metadata';
  return `its entry in the folder's listing (${what}) would take ${formatBytes(Buffer.byteLength(JSON.stringify(n)))}, more than the ${formatBytes(limit)} a part of a listing may: not backed up`;
}

/**
 * Marks `p` as handled at once; whoever awaits it later still sees its rejection. A job that fails
 * while it is still starting more work must not leave rejections that nobody awaits (Node would
 * end the process with a stack trace instead of the job's error).
 */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

function present<T>(xs: readonly (T | null)[]): T[] {
  return xs.filter((x): x is T => x !== null);
}
