/**
 * Restoring a recovery point, whole or in part. Each file is written under a temporary name in
 * its destination folder and renamed into place once complete and checked, so a failure never
 * leaves a half-written file under a real name. A damaged blob or listing fails only the files it
 * belongs to; everything else is still restored. A pack the vault lost is left out of the index,
 * and what it held is read where a later backup stored it again, if one did.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ChunkerParams } from '../core/chunker.js';
import type { BlobId, PackId } from '../core/ids.js';
import { isPortableName, type DirNode, type FileNode, type SymlinkNode, type TreeNode } from '../core/tree.js';
import { AzbkError, errorRegistry, isAzbkError } from '../shared/errors.js';
import { errnoCode, writeAll } from '../shared/files.js';
import type { PointInfo } from '../vault/api.js';
import type { AgentContext } from './context.js';
import { childPath, displayPath, restoreLocation, toSegments } from './fspath.js';
import { isOwnFolder, ownFolderOf, ownFolders, type OwnFolders } from './own-folders.js';
import { acquireJobLock } from './lock.js';
import { copyName } from './copy-name.js';
import { makeDir, makeParents, makeTarget, untrusted } from './restore-target.js';
import { PointReader, subfolders } from './point-reader.js';
import { restorePool, type RestorePool } from './pipeline/restore-pool.js';
import { markRestore, removeLeftovers, type RestoreMark, type TempRoot } from './restore-leftovers.js';
import { destOf, restoreData, tempPath, type DataResult, type FilePlan } from './restore-data.js';
import { holdsContent, NO_HARD_LINK, openedToOwner, openTemp, putInPlace, settle, settleDir, stopIfAsked, toTime, why } from './restore-files.js';
import type { PointManifest, SkippedItem } from './manifest.js';
import type { PassphraseInput } from './passphrase.js';
import { checkOwnPoint, ownLatest } from './point-history.js';
import { entryAt, findMachine, keysFor, openPoint, outermost, pickPoint } from './points.js';

export type ConflictRule = 'overwrite' | 'skip' | 'copy';

/** Files restored and bytes written so far (a file's bytes count as its chunks are written), or planned in all. */
export interface RestoreCounts {
  readonly files: number;
  readonly bytes: number;
}

/** What a restore has planned so far; `complete` once it has planned everything (see restoreAll). */
export interface PlannedCounts extends RestoreCounts {
  readonly complete: boolean;
}

/**
 * A restore plans at most about this many files and chunks (each one item) before it writes them,
 * then plans the next ones: a plan holds about 0.7 KiB per file, so a restore of millions of files
 * would otherwise hold gigabytes. Each part reads the pack regions its own files need; a pack with
 * chunks of two parts is read once for each.
 */
const BATCH_ITEMS = 200_000;
/**
 * How far a file's time may be from the one backed up and still be the file a restore put there:
 * times are set to the microsecond, and Node's conversion is a microsecond or two off at times.
 */
const SAME_TIME_NS = 10_000n;

export type RestoreEvent =
  | { readonly type: 'file'; readonly path: string; readonly size: number }
  /** it reads the folder listings it needs and plans; `listings` tells how many it has read, whenever asked */
  | { readonly type: 'planning'; readonly listings: () => number }
  /**
   * it begins to write: `total` tells how many files it has planned (files restored at the end,
   * unless some fail), and whether that is all of them, and `progress` how many are restored,
   * whenever asked (a large restore plans and writes in parts: see BATCH_ITEMS)
   */
  | { readonly type: 'planned'; readonly total: () => PlannedCounts; readonly progress: () => RestoreCounts };

export interface RestoreOptions {
  readonly point: string;
  readonly target: string | null;
  readonly paths: readonly string[];
  readonly machine?: string;
  readonly passphrase?: PassphraseInput;
  readonly conflict: ConflictRule;
  readonly now?: () => Date;
  readonly onEvent?: (e: RestoreEvent) => void;
  /** stops the restore at the next safe point: files being written are finished, unfinished ones removed (AZBK_CANCELLED) */
  readonly signal?: AbortSignal;
  /** folder listings kept in memory at most, each counting one plus its entries (see PointReader; tests set fewer) */
  readonly maxKept?: number;
  /** files and chunks planned at most before they are written (see BATCH_ITEMS; tests set fewer) */
  readonly batchItems?: number;
}

export interface RestoreResult {
  readonly point: PointInfo;
  readonly machineName: string;
  readonly target: string | null;
  readonly restored: { files: number; dirs: number; symlinks: number; bytes: number };
  /** existing items left alone (skip) or kept beside a restored copy (copy) */
  readonly conflicts: readonly Conflict[];
  readonly failed: readonly SkippedItem[];
  /** packs the vault's index names that it no longer holds, found by this restore */
  readonly missingPacks: readonly PackId[];
  /** temporary files of earlier restores that died, removed before this one began (see restore-leftovers.ts) */
  readonly leftoversRemoved: number;
  /** what the job history says the vault should have listed and did not (see point-history.ts) */
  readonly warnings: readonly string[];
}

/** An item found in the way: left as it is (--conflict skip, or azbk's own folder: `own`), or restored beside it as `restoredAs`. */
export interface Conflict {
  readonly path: string;
  readonly action: 'skipped' | 'copied';
  readonly restoredAs?: string;
  readonly own?: true;
}

interface Selected {
  readonly segs: readonly string[];
  readonly node: TreeNode;
  /** where it goes */
  readonly dest: string;
}

/** A folder restored, to be given its mode and time once everything in it is written. */
interface PlannedDir {
  readonly segs: readonly string[];
  readonly path: string;
  readonly node: DirNode;
}

/** A file restored as a hard link to another one restored (`leader`), once that one is written. */
interface LinkPlan {
  /** the file it is a link to (another one when a name found in place takes over: see adoptLeader) */
  leader: FilePlan;
  /** the original path of its folder, the folder it goes into, its name and the name it goes under */
  readonly folder: readonly string[];
  readonly dir: string;
  readonly name: string;
  readonly as: string;
  /** see FilePlan.keep */
  readonly keep: boolean;
}

/** Opening a restored file to link or copy it never follows a link put in its place (where the OS can tell). */
const OPEN_RESTORED = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0);

/** Restores a point of this or another machine. */
export async function runRestore(ctx: AgentContext, o: RestoreOptions): Promise<RestoreResult> {
  const machine = await findMachine(ctx, o.machine);
  const families = await keysFor(ctx, machine.id, o.passphrase);
  const listed = await ctx.session.listPoints(machine.id);
  const own = machine.id === ctx.registration.machineId;
  let info = pickPoint(listed, o.point);
  let opened = await openPoint(ctx, families, machine, info, listed);
  // The point chosen is checked first: an old point copied under a newer name is refused, not passed over.
  const warnings = own ? await checkOwnPoint(ctx.paths, listed, info, opened.record.jobId) : [];
  const latest = own && o.point === 'latest' ? await ownLatest(ctx.paths, listed, info) : { point: info };
  if (latest.point !== info) {
    info = latest.point;
    opened = await openPoint(ctx, families, machine, info, listed);
    warnings.unshift(latest.warning!);
  }
  const { manifest, keys } = opened;
  const job = new RestoreJob(ctx, await PointReader.open(ctx, keys, { maxKept: o.maxKept }), manifest.tree, o);
  // Everything asked for is found before anything is written.
  // A path not in the point that "latest" was taken to mean: the error says which point that was, and why.
  const selected = await job.select(info.id, manifest).catch((err: unknown) => {
    if (latest.warning === undefined || !isAzbkError(err)) throw err;
    throw new AzbkError(err.code, `${err.message} ${latest.warning}`, { hint: err.hint, cause: err });
  });
  const lock = await acquireJobLock(ctx.paths.lock, { jobId: randomBytes(16).toString('hex'), kind: 'restore' });
  let leftovers = 0;
  try {
    const earlier = await removeLeftovers(ctx.paths.restores);
    leftovers = earlier.removed;
    job.earlierFolders = earlier.folders;
    // Until the restore is over, whether it ends well, fails or stops (each removes its
    // temporary files then), only a process that dies leaves its mark.
    job.mark = await markRestore(ctx.paths.restores, job.tmpPrefix, job.tempRoots(selected));
    // Listed again in this one's mark: should it die too, the next restore still gives them modes.
    await job.mark.folders([...job.earlierFolders]);
    await job.restoreAll(selected);
  } catch (err) {
    const r = job.restored;
    const sofar = `${r.files} file(s) and ${r.dirs} folder(s) were restored; no unfinished file was left.`;
    if (isAzbkError(err, 'AZBK_CANCELLED')) {
      throw new AzbkError('AZBK_CANCELLED', `Restore stopped: ${sofar}`, { hint: goOn(o.conflict, '') });
    }
    // A vault gone on the way stops it as a Ctrl-C does: said so, with how to go on.
    if (isAzbkError(err, 'AZBK_VAULT_UNREACHABLE') || isAzbkError(err, 'AZBK_VAULT_NOT_FOUND')) {
      throw new AzbkError(err.code, `${err.message} The restore stopped: ${sofar}`, { hint: goOn(o.conflict, ' once the vault answers'), cause: err });
    }
    throw err;
  } finally {
    await job.mark?.remove(job.unsettledEarlier());
    await lock.release();
  }
  return {
    point: info,
    machineName: machine.name,
    target: o.target,
    restored: job.restored,
    conflicts: job.conflicts,
    failed: job.failed,
    missingPacks: [...job.missing].sort(),
    leftoversRemoved: leftovers,
    warnings,
  };
}

/**
 * How to finish a restore that stopped (`when`: a condition, e.g. once the vault answers), by its
 * conflict rule. Skip: the files restored already are left as they are. Overwrite: only the same
 * rule replaces the rest of the files in the way (skip would leave them as they were and end
 * well). Copy: a second run takes what the first restored for items in the way, and copies it.
 */
function goOn(rule: ConflictRule, when: string): string {
  if (rule === 'overwrite') return `Run the same restore again with --conflict overwrite${when} to restore the rest (files restored already are written again).`;
  if (rule === 'copy') {
    return `To have the whole point without more copies, restore it into an empty folder (--target DIR)${when}; run with --conflict copy again, and what this run restored is copied once more.`;
  }
  return `Run the same restore again with --conflict skip (the default)${when} to restore the rest.`;
}

/** A folder as a restore that died left one it made: owner-only, and ours. */
function leftOwnerOnly(st: fs.Stats): boolean {
  return st.isDirectory() && (st.mode & 0o7777) === 0o700 && st.uid === process.getuid?.();
}

class RestoreJob {
  readonly restored = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  /** bytes written (see RestoreCounts), for progress */
  private written = 0;
  readonly conflicts: Conflict[] = [];
  readonly failed: SkippedItem[] = [];
  /** temporary names: `.azbk-restore-<job>-<n>`, unique per job without a random draw per file */
  readonly tmpPrefix = `.azbk-restore-${randomBytes(6).toString('hex')}-`;
  /** names where the temporary files go, for the next restore should this one die (see restore-leftovers.ts) */
  mark: RestoreMark | null = null;
  /** folders restores that died made, still owner-only unless changed since (see restore-leftovers.ts) */
  earlierFolders: ReadonlySet<string> = new Set();
  /** the folders this restore gave their modes and times (absolute paths) */
  private readonly settled = new Set<string>();
  private tmpCount = 0;
  /**
   * the first file planned of each hard-link group, with the entry it was planned from: kept until
   * planning ends (a restore in parts included), one per group
   */
  private readonly linkLeaders = new Map<string, { plan: FilePlan; node: FileNode }>();
  private links: LinkPlan[] = [];
  /** the names copies were given (--conflict copy): two long names cut to one must not get the same */
  private readonly copies = new Set<string>();
  /**
   * The paths this restore puts the point's own items at, in the folders that were there before
   * whose items it is planning (and the paths asked for): a copy must not take one of those names
   * (a point holds the copies an earlier restore made, which sort before the originals).
   */
  private readonly reserved = new Set<string>();
  /** the vault's chunk sizes, once a file found in place is checked against its listing (see adoptLeader) */
  private chunker: ChunkerParams | undefined;
  /** the files planned and not yet written, and how many items (files and chunks) they hold */
  private batch: FilePlan[] = [];
  private batchItems = 0;
  /** the workers, started while the first part is planned; kept from part to part, closed by the last one's data phase (or a failed one's) */
  private pool: RestorePool | null = null;
  /** files (hard links included) and bytes planned so far, and whether that is all */
  private readonly total = { files: 0, bytes: 0, complete: false };
  /** a data phase has begun */
  private writing = false;
  /** the error that stopped a part's data phase (or the next part's workers): the walk stops too */
  private stopped: unknown = null;

  /** AZBK_HOME and the embedded vault (see own-folders.ts): nothing is restored into them */
  private readonly own: OwnFolders;

  constructor(
    private readonly ctx: AgentContext,
    private readonly reader: PointReader,
    /** the point's root listing */
    private readonly root: BlobId,
    private readonly o: RestoreOptions,
  ) {
    this.own = ownFolders(ctx.paths.home, ctx.registration.endpoint);
  }

  /** packs the index names that the vault does not hold, found so far */
  get missing(): ReadonlySet<PackId> {
    return this.reader.missing;
  }

  /** The folders restores that died made which this one did not give modes to: the next one may (another restore of them). */
  unsettledEarlier(): string[] {
    return [...this.earlierFolders].filter((f) => {
      if (this.settled.has(f)) return false;
      // Still there and still owner-only: one removed or changed since is not for a restore to mind.
      const st = fs.lstatSync(f, { throwIfNoEntry: false });
      return st !== undefined && leftOwnerOnly(st);
    });
  }

  /** Resolves the paths to restore to tree nodes; AZBK_PATH_NOT_FOUND for a path not in the point. */
  async select(pointId: string, m: PointManifest): Promise<Selected[]> {
    const wanted = this.o.paths.length > 0 ? this.o.paths.map((p) => toSegments(p)) : m.paths.map((p) => [...p]);
    const out: Selected[] = [];
    const ownRefused = (where: string, own: string) =>
      new AzbkError('AZBK_BAD_INPUT', `${where} is ${where === own ? '' : `in ${own}, `}azbk's own folder (AZBK_HOME or the vault), which a restore does not write into.`, {
        hint: 'Restore somewhere else: --target DIR.',
      });
    if (this.o.target !== null) {
      const own = ownFolderOf(path.resolve(this.o.target), this.own);
      if (own !== undefined) throw ownRefused(path.resolve(this.o.target), own);
    }
    for (const segs of wanted) {
      const node = await entryAt(pointId, m, segs, (x) => this.reader.nodeAt(this.root, x), 'restore');
      const dest = restoreLocation(segs, this.o.target, m.platform === 'win32');
      const own = ownFolderOf(dest, this.own);
      if (own !== undefined) throw ownRefused(dest, own);
      out.push({ segs, node, dest });
    }
    // A path given twice, or inside another one given, is restored once.
    return outermost(out);
  }

  /** Where the restore of `selected` makes temporary files: in each folder restored, and beside each file restored. */
  tempRoots(selected: readonly Selected[]): TempRoot[] {
    return selected.map((s) => (s.node.type === 'dir' ? { path: s.dest, deep: true } : { path: path.dirname(s.dest), deep: false }));
  }

  /**
   * Creates folders and links, lists the files, then writes their data: all at once, or in parts
   * when there are many (see BATCH_ITEMS), each written before the next is planned.
   */
  async restoreAll(selected: readonly Selected[]): Promise<void> {
    // The workers start while this thread reads listings and plans (the last data phase closes them).
    this.pool = restorePool(this.reader.keys.master);
    this.o.onEvent?.({ type: 'planning', listings: () => this.reader.listingsRead });
    const dirs: PlannedDir[] = [];
    try {
      // The target first: without it nothing can be restored.
      if (this.o.target !== null) makeTarget(this.o.target);
      await this.reader.readAhead(selected.flatMap((s) => (s.node.type === 'dir' ? [s.node.subtree] : [])));
      for (const s of selected) this.reserved.add(s.dest);
      for (const s of selected) {
        try {
          makeParents(path.dirname(s.dest), this.o.target);
        } catch (err) {
          this.fail(s.segs, err); // the other paths are still restored
          continue;
        }
        await this.plan(s.segs, s.node, s.dest, false, dirs);
        await this.writeIfFull();
      }
      // Planned: the file plans hold what they need of the listings, which can go.
      this.reader.forget();
      this.linkLeaders.clear();
      this.total.complete = true;
      await this.write();
    } finally {
      // Links not made because the data phase stopped are listed with the rest.
      for (const l of this.links.splice(0)) this.fail([...l.folder, l.name], new Error('the restore stopped before this hard link was made'));
      await this.pool?.close(); // closed already by the data phase, unless planning failed first
      this.reportFailed();
      // Folder modes and times last, deepest first, since writing into a folder changes its time;
      // also when the restore stops early, as folders are made owner-only until then.
      for (const d of dirs.reverse()) {
        try {
          settleDir(d.path, d.node.mode, d.node.mtime);
          this.settled.add(path.resolve(d.path));
        } catch (err) {
          this.fail(d.segs, err);
        }
      }
    }
  }

  /**
   * Writes what is planned when it is a part's worth. A failure stops the walk that called it (see
   * plan), not only the folder it was in.
   */
  private async writeIfFull(): Promise<void> {
    if (this.batchItems < (this.o.batchItems ?? BATCH_ITEMS)) return;
    try {
      await this.write();
    } catch (err) {
      this.stopped = err;
      throw err;
    }
  }

  /** The data phase of the files planned so far, then the hard links to them; the last part's closes the workers. */
  private async write(): Promise<void> {
    const files = this.batch;
    // Hard links to files restored count as files of their own (see link).
    for (const f of files) this.total.bytes += f.size;
    for (const l of this.links) this.total.bytes += l.leader.size;
    this.total.files += files.length + this.links.length;
    const pool = this.pool;
    if (pool === null) throw new Error('no workers for the data phase');
    // The last part's data phase closes the workers, and so does one that fails.
    const last = this.total.complete;
    if (last) this.pool = null;
    // The first part tells how far the restore got from now on; `total` grows with each part.
    if (!this.writing) {
      this.writing = true;
      const { total } = this;
      this.o.onEvent?.({ type: 'planned', total: () => ({ ...total }), progress: () => ({ files: this.restored.files, bytes: this.written }) });
    }
    let r: DataResult;
    try {
      r = await restoreData(this.ctx.session, this.reader.index, files, pool, { ...this.dataOptions(), keepPool: !last });
    } catch (err) {
      this.pool = null;
      await pool.close(); // (closed already, unless it failed before its reads began)
      throw err;
    }
    // Files that failed for a pack the vault lost or holds damaged, again without it (or with its
    // blobs last: their chunks may have been stored again since), while that finds more such
    // packs. A failure to do so leaves them failed, as they were.
    let { lost, missing, damaged } = r;
    try {
      while (lost.length > 0 && [...missing, ...damaged].some((p) => !this.reader.badPacks.has(p))) {
        await this.reader.leaveOut([...missing], [...damaged]);
        ({ lost, missing, damaged } = await this.restoreLost(lost));
      }
    } catch (err) {
      // The vault gone stops the restore here, as in a data phase, rather than in the next part.
      if (!isAzbkError(err) || err.code === 'AZBK_CANCELLED' || err.code === 'AZBK_VAULT_UNREACHABLE') throw err;
    }
    await this.leadAgain();
    while (this.links.length > 0) this.link(this.links.shift()!);
    this.reportFailed();
  }

  /**
   * A hard-linked file that failed under the name it was written under (a path too long there, a
   * folder that could not be made) is written again under the next name of its group, which the
   * group's other names then link to: its data may well be fine. One that fails again is listed
   * with its own reason.
   */
  private async leadAgain(): Promise<void> {
    if (this.o.signal?.aborted === true) return;
    const next = new Map<FilePlan, FilePlan>();
    const written = new Map<FilePlan, LinkPlan>();
    for (const l of this.links) {
      if (l.leader.error === null) continue;
      const had = next.get(l.leader);
      if (had !== undefined) {
        l.leader = had;
        continue;
      }
      const node = await this.reader.nodeAt(this.root, [...l.folder, l.name]).catch(() => undefined);
      if (node?.type !== 'file') continue;
      const plan = this.newPlan(l.folder, l.dir, node, l.as, l.keep);
      next.set(l.leader, plan);
      written.set(plan, l);
    }
    if (written.size === 0) return;
    const moved = new Set(written.values());
    this.links = this.links.filter((l) => !moved.has(l));
    // Names a later part plans link to the new one.
    for (const [k, v] of this.linkLeaders) {
      const g = next.get(v.plan);
      if (g !== undefined) this.linkLeaders.set(k, { plan: g, node: v.node });
    }
    if (this.total.complete) this.reader.forget();
    try {
      await restoreData(this.ctx.session, this.reader.index, [...written.keys()], restorePool(this.reader.keys.master), this.dataOptions());
    } finally {
      for (const g of written.keys()) if (g.error !== null) this.failed.push({ path: displayPath([...g.folder, g.name]), reason: g.error });
    }
  }

  /** Lists the files of the part being written that failed, and lets the part go. */
  private reportFailed(): void {
    for (const f of this.batch) if (f.error !== null) this.failed.push({ path: displayPath([...f.folder, f.name]), reason: f.error });
    this.batch = [];
    this.batchItems = 0;
  }

  /** The data phase's options: every file it puts in place is counted as it is (also when it stops early), and every byte written. */
  private dataOptions(): { tmpPrefix: string; onFile: (f: FilePlan) => void; onData: (bytes: number) => void; signal?: AbortSignal } {
    const onFile = (f: FilePlan) => {
      this.restored.files++;
      this.restored.bytes += f.size;
      this.o.onEvent?.({ type: 'file', path: destOf(f), size: f.size });
    };
    const onData = (bytes: number) => {
      this.written += bytes;
    };
    return { tmpPrefix: this.tmpPrefix, onFile, onData, ...(this.o.signal === undefined ? {} : { signal: this.o.signal }) };
  }

  /**
   * Restores again the files `lost` (failed for a pack the vault lost, each now without a file of
   * its own at its destination) whose chunks the index now finds elsewhere. A file restored gets
   * its error cleared, one that fails again the new error. Returns the packs found missing this
   * time, and the files of `lost` that failed for them.
   */
  private async restoreLost(lost: readonly FilePlan[]): Promise<{ lost: FilePlan[]; missing: ReadonlySet<PackId>; damaged: ReadonlySet<PackId> }> {
    const again = new Map<FilePlan, FilePlan>();
    for (const f of lost) {
      const node = await this.reader.nodeAt(this.root, [...f.folder, f.name]).catch(() => undefined);
      if (node?.type !== 'file' || !node.content.every((id) => this.reader.index.has('data', id))) continue;
      again.set(this.newPlan(f.folder, f.dir, node, f.renamed ?? node.name, f.keep === true), f);
    }
    if (this.total.complete) this.reader.forget(); // else the walk goes on with what it read ahead
    if (again.size === 0) return { lost: [], missing: new Set(), damaged: new Set() };
    try {
      const r = await restoreData(this.ctx.session, this.reader.index, [...again.keys()], restorePool(this.reader.keys.master), this.dataOptions());
      return { lost: r.lost.map((g) => again.get(g)!), missing: r.missing, damaged: r.damaged };
    } finally {
      // Also when the data phase stopped: what it put in place is restored.
      for (const [g, f] of again) f.error = g.error;
    }
  }

  private fail(segs: readonly string[], err: unknown): void {
    const reason = isAzbkError(err) ? (err.code === 'AZBK_BAD_INPUT' && err.hint !== errorRegistry.AZBK_BAD_INPUT.hint ? `${err.message} ${err.hint}` : err.message) : why(err);
    this.failed.push({ path: displayPath(segs), reason });
  }

  /**
   * Plans one item: folders and links are made now, files are listed for the data phase.
   * `fresh`: its folder was created by this restore, so nothing can be in the way.
   */
  private async plan(segs: readonly string[], node: TreeNode, dest: string, fresh: boolean, dirs: PlannedDir[]): Promise<void> {
    stopIfAsked(this.o.signal);
    // azbk's own folder, in a point made before backups left it out: left as it is now.
    if (node.type === 'dir' && !fresh && isOwnFolder(dest, this.own)) {
      this.conflicts.push({ path: displayPath(segs), action: 'skipped', own: true });
      return;
    }
    try {
      // In a fresh folder only a link needs the check: a folder is made with mkdir, which fails
      // rather than follow what another entry made there (on a file system that holds two names
      // equal, by case or Unicode form), and a file is renamed over nothing of its own.
      let found = fresh && node.type !== 'symlink' ? { to: dest, merge: false } : await this.destination(segs, dest, node.type);
      if (found === null) {
        if (node.type === 'file') await this.adoptLeader(segs, dest, node);
        return;
      }
      if (node.type === 'symlink') await this.symlink(node, found.to, !fresh && this.keepInExisting);
      else if (node.type === 'file') {
        this.planFile(segs.slice(0, -1), path.dirname(found.to), node, !fresh, path.basename(found.to));
      } else {
        if (!found.merge && !(await this.makeListed(found.to, fresh && found.to === dest))) {
          // Something is there after all: the conflict rule decides.
          found = await this.destination(segs, dest, 'dir');
          if (found === null) return;
          if (!found.merge && !(await this.makeListed(found.to, false))) throw new AzbkError('AZBK_BAD_INPUT', 'something else appeared at this path during the restore');
        }
        const { to } = found;
        // A folder restored as a copy beside one in the way: its files are not under `dest`.
        if (to !== dest) await this.mark?.add({ path: to, deep: true });
        // Its mode and times are the parent listing's: set at the end also when its own listing
        // cannot be read (the folder then stays, empty, and is listed as failed).
        dirs.push({ segs, path: to, node: found.keepMode === undefined ? node : { ...node, mode: found.keepMode } });
        const tree = await this.reader.tree(node.subtree);
        await this.reader.ahead(subfolders(tree));
        // The folders it makes in a folder it made, listed at once (see makeListed).
        if (!found.merge) await this.mark?.folders(tree.nodes.flatMap((c) => (c.type === 'dir' ? [childPath(to, c.name)] : [])));
        this.restored.dirs++;
        const ours = found.merge ? tree.nodes.map((child) => childPath(to, child.name)) : [];
        for (const p of ours) this.reserved.add(p);
        for (const child of tree.nodes) {
          if (process.platform === 'win32' && !isPortableName(child.name)) {
            this.fail([...segs, child.name], new AzbkError('AZBK_BAD_INPUT', 'this name cannot be created on Windows'));
            continue;
          }
          // A file in a folder made here needs no check, and no call of its own (there are many).
          if (!found.merge && child.type === 'file') this.planFile(segs, to, child, false);
          else await this.plan([...segs, child.name], child, childPath(to, child.name), !found.merge, dirs);
          await this.writeIfFull();
        }
        for (const p of ours) this.reserved.delete(p);
        this.reader.done(node.subtree); // planned: what the restore needs of it is in the plans now
      }
    } catch (err) {
      // The whole restore stops, not this item: asked to, or a part's data phase stopped.
      if (isAzbkError(err, 'AZBK_CANCELLED') || err === this.stopped) throw err;
      this.fail(segs, err);
    }
  }

  /**
   * Makes a folder (see makeDir), listed in the mark before it is made unless `listed` (its
   * parent's were): a restore that dies leaves every folder it made listed, owner-only as they
   * are until it ends, and the same restore run again gives them their modes. Listed once made, a
   * restore killed while it planned left them owner-only for good.
   */
  private async makeListed(to: string, listed: boolean): Promise<boolean> {
    if (!listed) await this.mark?.folders([to]);
    return makeDir(to);
  }

  /**
   * Where to write an item of the point (of type `kind`) given the conflict rule, and whether it
   * merges into a folder already there; null to leave the existing one alone. Throws (the item
   * fails) when a folder is in the way of a file or link, or the reverse, and the rule is not copy.
   */
  private async destination(segs: readonly string[], dest: string, kind: TreeNode['type']): Promise<{ to: string; merge: boolean; keepMode?: number } | null> {
    const wantDir = kind === 'dir';
    const existing = fs.lstatSync(dest, { throwIfNoEntry: false });
    if (existing === undefined) return { to: dest, merge: false };
    if (wantDir && existing.isDirectory()) {
      // Merged into only when nobody else could swap what the restore makes in it.
      const why = untrusted(existing);
      if (why !== null) throw new AzbkError('AZBK_BAD_INPUT', `cannot restore into this existing folder: ${why}`);
      // A folder of ours its owner cannot list, write in or go through (made read-only by an
      // earlier restore, say) is opened for the restore: it gets its mode at the end (the
      // backed-up one, or its own: see below).
      if (openedToOwner(existing.mode) !== (existing.mode & 0o7777) && existing.uid === process.getuid?.()) {
        // Listed first: should this restore die, the next one gives the folder its mode back.
        await this.mark?.opened(dest, existing.mode);
        fs.chmodSync(dest, openedToOwner(existing.mode));
      }
      // One a restore that died made, and left owner-only: this one finishes it, mode included.
      if (this.earlierFolders.has(path.resolve(dest)) && leftOwnerOnly(existing)) return { to: dest, merge: true };
      // Only overwrite gives an existing folder the backed-up mode; skip and copy leave its own (a
      // folder made private since the backup stays private). Its time is the backed-up one.
      if (this.o.conflict === 'overwrite') return { to: dest, merge: true };
      return { to: dest, merge: true, keepMode: existing.mode & 0o7777 };
    }
    const shown = displayPath(segs);
    if (this.o.conflict === 'copy') {
      const copy = await copyName(dest, (this.o.now ?? (() => new Date()))(), (c) => this.copies.has(c) || this.reserved.has(c));
      this.copies.add(copy);
      this.conflicts.push({ path: shown, action: 'copied', restoredAs: copy });
      return { to: copy, merge: false };
    }
    // A folder where the backup has a file or link, or the reverse, fails under skip as under
    // overwrite: skip leaves an item as the user has it, but this one is not that item, and a
    // whole folder of the point left out must not pass as a file kept; overwrite never puts one
    // kind in place of the other.
    if (wantDir || existing.isDirectory()) {
      const there = existing.isDirectory() ? 'a folder' : existing.isSymbolicLink() ? 'a link' : 'a file';
      const backedUp = wantDir ? 'a folder' : kind === 'symlink' ? 'a link' : 'a file';
      throw new AzbkError('AZBK_BAD_INPUT', `${there} is where the backup has ${backedUp}; the existing one was left alone`);
    }
    if (this.o.conflict === 'skip') {
      this.conflicts.push({ path: shown, action: 'skipped' });
      return null;
    }
    return { to: dest, merge: false };
  }

  /** A file to write from `node`, in `dir` (the folder `folder` of the point), under its own name or `as`; `keep`: see FilePlan.keep. */
  private newPlan(folder: readonly string[], dir: string, node: FileNode, as: string, keep: boolean): FilePlan {
    const plan: FilePlan = { folder, dir, tmp: this.tmpCount++, name: node.name, size: node.size, mode: node.mode, mtime: node.mtime, content: node.content, remaining: 0, error: null, ...(keep ? { keep } : {}) };
    return as === node.name ? plan : { ...plan, renamed: as };
  }

  /** Whether a file restored into a folder that was there before keeps what appears at its name meanwhile: unless the rule is to overwrite. */
  private get keepInExisting(): boolean {
    return this.o.conflict !== 'overwrite';
  }

  /**
   * Plans a file to restore into `dir` (as `as`, when not under its own name); `folder`: the
   * original path of its folder; `existing`: `dir` was there before the restore. Another name of a
   * hard-linked file already planned, with the same content, mode and time, becomes a link to that
   * one instead.
   */
  private planFile(folder: readonly string[], dir: string, node: FileNode, existing: boolean, as = node.name): void {
    const keep = existing && this.keepInExisting;
    const leader = node.link === undefined ? undefined : this.linkLeaders.get(node.link);
    if (leader !== undefined && sameFile(leader.node, node)) {
      this.links.push({ leader: leader.plan, folder, dir, name: node.name, as, keep });
      this.batchItems++; // a tree of links (snapshots made with cp -al) is written in parts too
      return;
    }
    const plan = this.newPlan(folder, dir, node, as, keep);
    if (node.link !== undefined && leader === undefined) this.linkLeaders.set(node.link, { plan, node });
    this.batch.push(plan);
    this.batchItems += 1 + node.content.length;
  }

  /**
   * A name of a hard-linked file left alone because something is there (--conflict skip): when
   * that is the file as backed up (its size, and its time to the few microseconds a restore keeps)
   * and no name of its group is planned yet, it is what the group's other names link to. A restore
   * stopped part way, run again, thus makes whole the groups it had begun: their names restored
   * since were linked to each other, not to it.
   */
  private async adoptLeader(segs: readonly string[], dest: string, node: FileNode): Promise<void> {
    if (node.link === undefined) return;
    const had = this.linkLeaders.get(node.link);
    // A name found in place leads the group already (its plan has no temporary file), or the
    // group's first name is another file.
    if (had !== undefined && (had.plan.tmp < 0 || !sameFile(had.node, node))) return;
    const st = fs.lstatSync(dest, { bigint: true, throwIfNoEntry: false });
    if (st === undefined || !st.isFile() || st.size !== BigInt(node.size)) return;
    // Never someone else's file: they could change what the names linked to it hold.
    if (process.getuid !== undefined && Number(st.uid) !== process.getuid()) return;
    const off = st.mtimeNs - BigInt(node.mtime);
    if (off > SAME_TIME_NS || off < -SAME_TIME_NS) return;
    // Size and time can be kept by a change (touch -r, a tool that keeps them): the content decides.
    this.chunker ??= (await this.ctx.session.config()).chunker;
    if (!holdsContent(dest, node.content, this.reader.keys, this.chunker)) return;
    // The group's first name, planned as a new file, if it is not written yet (searched last:
    // the part being planned may hold 200,000 items).
    const at = had === undefined ? -1 : this.batch.indexOf(had.plan);
    if (had !== undefined && at < 0) return;
    const plan: FilePlan = { folder: segs.slice(0, -1), dir: path.dirname(dest), tmp: -1, name: path.basename(dest), size: node.size, mode: node.mode, mtime: node.mtime, content: null, remaining: 0, error: null };
    if (had !== undefined) {
      // That name becomes a link to this file too, as do the names planned as links to it.
      const first = had.plan;
      this.batch.splice(at, 1);
      this.batchItems -= 1 + (first.content?.length ?? 0);
      for (const l of this.links) if (l.leader === first) l.leader = plan;
      this.links.push({ leader: plan, folder: first.folder, dir: first.dir, name: first.name, as: first.renamed ?? first.name, keep: first.keep === true });
      this.batchItems++;
    }
    this.linkLeaders.set(node.link, { plan, node });
  }

  /**
   * Makes a planned hard link once its leader is restored: a link under a temporary name, renamed
   * into place; where the file system has no hard links, a copy. The leader must still be a
   * regular file of its size, and what is linked or copied is checked to be that very file (the
   * copy's source is opened without following a link): a file put in its place since is neither
   * linked to nor copied.
   */
  private link(l: LinkPlan): void {
    const segs = [...l.folder, l.name];
    const { leader } = l;
    const other = `another name of this hard-linked file, ${displayPath([...leader.folder, leader.name])},`;
    if (leader.error !== null) {
      this.fail(segs, new Error(`${other} could not be restored: ${leader.error}`));
      return;
    }
    const source = destOf(leader);
    const dest = childPath(l.dir, l.as);
    const tmp = this.tempName(dest);
    let fd: number | undefined;
    try {
      const st = fs.lstatSync(source);
      const changed = () => new Error(`${other} was changed or replaced after it was restored`);
      const same = (o: fs.Stats) => o.ino === st.ino && o.dev === st.dev;
      if (!st.isFile() || st.size !== leader.size) throw changed();
      try {
        fs.linkSync(source, tmp);
        if (!same(fs.lstatSync(tmp))) throw changed();
      } catch (err) {
        if (!NO_HARD_LINK.has(errnoCode(err) ?? '')) throw err; // a copy is made instead
        fd = fs.openSync(source, OPEN_RESTORED);
        if (!same(fs.fstatSync(fd))) throw changed();
        copyOpenFile(fd, tmp, leader);
      }
      putInPlace(tmp, dest, l.keep);
    } catch (err) {
      this.fail(segs, err);
      return;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
      // Also after a rename that did nothing (the destination was that file already).
      fs.rmSync(tmp, { force: true });
    }
    this.restored.files++;
    this.restored.bytes += leader.size;
    this.written += leader.size;
    this.o.onEvent?.({ type: 'file', path: dest, size: leader.size });
  }

  private tempName(dest: string): string {
    return tempPath(path.dirname(dest), this.tmpPrefix, this.tmpCount++);
  }

  /** Makes a symbolic link at `to`; `keep`: see FilePlan.keep. */
  private async symlink(node: SymlinkNode, to: string, keep: boolean): Promise<void> {
    const tmp = this.tempName(to);
    fs.symlinkSync(node.target, tmp);
    try {
      const t = toTime(node.mtime);
      fs.lutimesSync(tmp, t, t);
      putInPlace(tmp, to, keep, false);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    this.restored.symlinks++;
  }
}

/** Copies the open restored file `fd` to the new file `tmp`, which gets the mode and time of `f` (see settle). */
function copyOpenFile(fd: number, tmp: string, f: FilePlan): void {
  const out = openTemp(tmp, true);
  try {
    const buf = Buffer.allocUnsafe(Math.min(f.size, 1024 * 1024));
    for (let pos = 0; pos < f.size; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, f.size - pos), pos);
      if (n === 0) throw Object.assign(new Error('the file it is copied from ended early'), { code: 'EIO' });
      writeAll(out, buf.subarray(0, n), pos);
      pos += n;
    }
    settle(out, f.mode, f.mtime);
  } finally {
    fs.closeSync(out);
  }
}

/** Whether two names of one hard-linked file were backed up alike (a file changed between the reads of its names was not). */
function sameFile(a: FileNode, b: FileNode): boolean {
  return a.size === b.size && a.mode === b.mode && a.mtime === b.mtime && a.content.length === b.content.length && a.content.every((c, i) => c === b.content[i]);
}
