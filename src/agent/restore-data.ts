/**
 * The data phase of a restore: every chunk the selected files need, grouped by pack, so each pack
 * is read once (in ranges that skip large gaps), several ranges at a time. The restore workers
 * (pipeline/restore-pool.ts) open and check each chunk and write it at its place in every file
 * that uses it. A file is renamed into place only when all of its chunks are written; a damaged
 * chunk fails exactly the files that use it.
 */
import fs from 'node:fs';
import type { BlobId, PackId } from '../core/ids.js';
import { isAzbkError } from '../shared/errors.js';
import type { VaultSession } from '../vault/api.js';
import type { BlobIndex } from './blob-index.js';
import { RANGE_ROOM } from './pipeline/range-pool.js';
import type { RestorePool } from './pipeline/restore-pool.js';
import { eachAtOnce } from '../shared/each-at-once.js';
import { childPath } from './fspath.js';
import { extendTo, openTemp, putInPlace, removeTemp, settle, stopIfAsked, why } from './restore-files.js';

/**
 * One file to restore: written at its temporary file in `dir` (which must not exist yet), renamed
 * into place when complete (see destOf). A large restore holds one for every file, so it holds no
 * string or array of its own that can be made again when needed.
 */
export interface FilePlan {
  /** the original path of the file's folder, as segments (one array for the files of a folder this restore creates) */
  readonly folder: readonly string[];
  /** the folder it is restored into (one string for the files of a folder) */
  readonly dir: string;
  /** the name it is restored under when not its own (a copy beside an existing file) */
  readonly renamed?: string;
  /** the number of its temporary file in `dir` (see tempPath) */
  readonly tmp: number;
  /** its name, size, mode and time as backed up (the tree's strings: no copies) */
  readonly name: string;
  readonly size: number;
  readonly mode: number;
  readonly mtime: string;
  /** its chunks, until restoreData has planned where each is read (then null: the tree node can go) */
  content: readonly BlobId[] | null;
  /** chunks not yet written (or failed) */
  remaining: number;
  error: string | null;
  /** the temporary file exists and this thread must finish or remove it */
  created?: boolean;
  /** every chunk is in one read range: that range's worker creates and finishes the file (null: several) */
  owner?: Range | null;
  /**
   * its folder was there before the restore, and the conflict rule keeps what is in the way:
   * something another program puts at its name meanwhile is kept too (see putInPlace)
   */
  readonly keep?: boolean;
}

interface Target {
  readonly file: FilePlan;
  readonly offset: number;
}

/** A chunk to read, and where it goes: most go to one place, written inline (one object per chunk). */
interface Wanted {
  readonly id: BlobId;
  /** where the sealed chunk lies in its pack */
  readonly offset: number;
  readonly length: number;
  /** its plaintext's length */
  readonly raw: number;
  readonly file: FilePlan;
  /** where the chunk goes in `file` */
  readonly at: number;
  /** further places it goes (a chunk in several files, or several times in one) */
  more?: Target[];
}

/** Calls `fn` for every place a wanted chunk goes. */
function eachTarget(w: Wanted, fn: (file: FilePlan, offset: number) => void): void {
  fn(w.file, w.at);
  if (w.more !== undefined) for (const t of w.more) fn(t.file, t.offset);
}

interface Range {
  readonly pack: PackId;
  readonly start: number;
  end: number;
  readonly blobs: Wanted[];
}

const MAX_GAP = 1024 * 1024;
const MAX_RANGE = RANGE_ROOM;
/** ranges read at a time */
const READERS = 4;

/** What the data phase found lost (the files it put in place went to `onFile` one by one). */
export interface DataResult {
  /** packs the index names that the vault does not hold (asked once a read of one failed) */
  readonly missing: ReadonlySet<PackId>;
  /** packs the vault holds in which a chunk failed its checks, or a read of which came back short */
  readonly damaged: ReadonlySet<PackId>;
  /** the files that failed because a pack they need is missing or damaged (see `missing` and `damaged`) */
  readonly lost: readonly FilePlan[];
}

/** The path of temporary file number `n` (names start with `prefix`) in the folder `dir`. */
export function tempPath(dir: string, prefix: string, n: number): string {
  return childPath(dir, `${prefix}${n}`);
}

/** Where a planned file goes. */
export function destOf(f: FilePlan): string {
  return childPath(f.dir, f.renamed ?? f.name);
}

/**
 * Writes the content of `files` into their temporary files (none may exist yet; `tmpPrefix`
 * starts their names) through the workers of `pool`, and renames each into place when complete,
 * with its mode and time; a failed file's temporary file is removed and its error set. Closes
 * `pool` (its workers stop before any temporary file is removed), unless `keepPool` and every
 * range was written (the workers are idle then: a restore in parts keeps them). A read that fails because the
 * vault does not hold the pack at all is told apart (see DataResult): those files may have a copy
 * of their data in another pack.
 */
export async function restoreData(
  session: VaultSession,
  index: BlobIndex,
  files: readonly FilePlan[],
  pool: RestorePool,
  opts: { tmpPrefix: string; onFile?: (f: FilePlan) => void; onData?: (bytes: number) => void; signal?: AbortSignal; keepPool?: boolean },
): Promise<DataResult> {
  const tmpOf = (f: FilePlan) => tempPath(f.dir, opts.tmpPrefix, f.tmp);
  const byPack = new Map<PackId, Map<BlobId, Wanted>>();
  const missing = new Set<PackId>();
  const damaged = new Set<PackId>();
  const lost = new Set<FilePlan>();
  /** the size of a pack a read of which failed (null: the vault does not hold it; undefined: it could not say), asked once per pack */
  const asked = new Map<PackId, Promise<number | null | undefined>>();
  /** Finishes a file this thread holds: renamed into place when complete, else removed. */
  const finish = (f: FilePlan) => {
    const tmp = tmpOf(f);
    if (f.error === null) {
      try {
        // Written by several ranges, or (no chunks) an empty file made here.
        const fd = openTemp(tmp, f.created !== true);
        f.created = true;
        try {
          // Every range has written its part: a hole left at the end is there once it has the size.
          extendTo(fd, f.size);
          settle(fd, f.mode, f.mtime);
        } finally {
          fs.closeSync(fd);
        }
        putInPlace(tmp, destOf(f), f.keep === true);
        opts.onFile?.(f);
        return;
      } catch (err) {
        f.error = why(err);
      }
    }
    if (f.created === true) removeTemp(tmp);
  };
  const failFile = (f: FilePlan, why: string) => {
    if (f.error === null) f.error = why;
  };
  /** `n` of the file's chunks are written or failed. */
  const handled = (f: FilePlan, n: number) => {
    f.remaining -= n;
    if (f.remaining === 0) finish(f);
  };

  for (const f of files) {
    let offset = 0;
    const content = f.content ?? [];
    f.content = null;
    for (const id of content) {
      const loc = index.get('data', id);
      if (loc === undefined) {
        failFile(f, index.unindexed(`chunk ${id.slice(0, 12)}`));
        continue;
      }
      let blobs = byPack.get(loc.pack);
      if (blobs === undefined) byPack.set(loc.pack, (blobs = new Map()));
      const w = blobs.get(id);
      if (w === undefined) blobs.set(id, { id, offset: loc.entry.offset, length: loc.entry.length, raw: loc.entry.rawLength, file: f, at: offset });
      else if (w.more === undefined) w.more = [{ file: f, offset }]; // one slot (one pushed onto [] gets 17)
      else w.more.push({ file: f, offset });
      f.remaining++;
      offset += loc.entry.rawLength;
    }
    if (f.error === null && offset !== f.size) failFile(f, `its chunks hold ${offset} bytes where ${f.size} were backed up`);
    if (f.remaining === 0) finish(f);
  }

  const planned: Range[] = [];
  for (const [pack, blobs] of byPack) for (const r of ranges(pack, [...blobs.values()])) planned.push(r);
  byPack.clear();
  assignOwners(planned);
  // A range is let go once read, with its chunks' ids: the plan shrinks as the restore goes on.
  const all: (Range | undefined)[] = planned;
  let written = false;
  try {
    // Files written by several ranges are created here first, so a worker never creates one.
    for (const f of files) {
      if (f.remaining === 0 || f.owner != null || f.error !== null) continue;
      try {
        fs.closeSync(openTemp(tmpOf(f), true));
        f.created = true;
      } catch (err) {
        failFile(f, why(err));
      }
    }
    // On a failure the other readers finish the range they are on (a worker may have renamed
    // files of it into place), start no other, and the first failure is reported.
    // Each reader waits for its range to be written: as many readers as workers keep every core busy.
    await eachAtOnce(all, Math.max(READERS, pool.workers), restoreRange);
    written = true;
  } finally {
    if (!written || opts.keepPool !== true) await pool.close();
    // A restore that stops early leaves no temporary file behind (a worker may have made one).
    for (const f of files) {
      if (f.remaining > 0) {
        failFile(f, 'the restore stopped');
        f.remaining = 0;
        removeTemp(tmpOf(f));
      }
    }
  }
  return { missing, damaged, lost: [...lost].filter((f) => f.error !== null) };

  async function restoreRange(range: Range): Promise<void> {
    stopIfAsked(opts.signal); // the ranges being written are finished, no other is started
    let read: { data: Buffer; inRoom: boolean };
    try {
      read = await pool.read(session, range.pack, range.start, range.end - range.start);
    } catch (err) {
      if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT') && !isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')) throw err;
      // The vault itself gone (a service stopped), not this pack alone: the restore stops, as
      // any job that loses its vault does, rather than fail every file left one range at a time.
      if (isAzbkError(err, 'AZBK_VAULT_UNREACHABLE') && !(await vaultAnswers(session, range.pack))) throw err;
      let size: number | null | undefined;
      if (isAzbkError(err, 'AZBK_VAULT_CORRUPT')) {
        let ask = asked.get(range.pack);
        if (ask === undefined) asked.set(range.pack, (ask = session.statPack(range.pack).catch(() => undefined)));
        size = await ask;
        if (size === undefined) asked.delete(range.pack); // the vault could not say: asked again next time
      }
      const gone = size === null;
      if (gone) missing.add(range.pack);
      // The vault holds it shorter than the index says (cut short): damaged there.
      const short = typeof size === 'number' && size < range.end;
      if (short) damaged.add(range.pack);
      for (const w of range.blobs) {
        eachTarget(w, (file) => {
          if (file.owner === range) file.owner = undefined; // the range may go
          failFile(file, err.message);
          if (gone || short) lost.add(file);
          handled(file, 1);
        });
      }
      return;
    }
    // The task names each file once; files that failed already are left out (and counted).
    const work = { ids: [] as string[], layout: [] as number[], tmps: [] as string[], dests: [] as string[], modes: [] as number[], mtimes: [] as string[], owns: [] as number[], keep: [] as number[] };
    const taskFiles: FilePlan[] = [];
    const counts: number[] = [];
    const slot = new Map<FilePlan, number>();
    /** Adds a place the chunk goes to the task; false when its file failed already. */
    const place = (f: FilePlan, offset: number): boolean => {
      if (f.error !== null) {
        if (f.owner === range) f.owner = undefined; // the range may go
        handled(f, 1);
        return false;
      }
      let i = slot.get(f);
      if (i === undefined) {
        slot.set(f, (i = taskFiles.length));
        taskFiles.push(f);
        counts.push(0);
        work.tmps.push(tmpOf(f));
        work.dests.push(destOf(f));
        work.modes.push(f.mode);
        work.mtimes.push(f.mtime);
        work.owns.push(f.owner === range ? 1 : 0);
        work.keep.push(f.keep === true ? 1 : 0);
      }
      counts[i]!++;
      work.layout.push(i, offset);
      return true;
    };
    /** the plaintext bytes the task writes (for progress: also those of a chunk that fails) */
    let bytes = 0;
    for (const w of range.blobs) {
      const at = work.layout.length;
      work.layout.push(w.offset - range.start, w.length, 0);
      let n = place(w.file, w.at) ? 1 : 0;
      if (w.more !== undefined) for (const t of w.more) if (place(t.file, t.offset)) n++;
      if (n === 0) work.layout.length = at;
      else {
        work.layout[at + 2] = n;
        work.ids.push(w.id);
        bytes += n * w.raw;
      }
    }
    const { data, inRoom } = read;
    if (work.ids.length === 0) {
      if (inRoom) pool.giveBack(data.buffer as ArrayBuffer);
      return;
    }
    const { errors, damaged: bad } = await pool.run(data, { ...work, pack: range.pack, layout: new Float64Array(work.layout), modes: new Int32Array(work.modes), owns: new Uint8Array(work.owns), keep: new Uint8Array(work.keep) }, inRoom);
    opts.onData?.(bytes);
    for (let i = 0; i < taskFiles.length; i++) {
      const f = taskFiles[i]!;
      const error = errors[i] ?? null;
      if (error !== null) failFile(f, error);
      if (error !== null && bad) lost.add(f); // perhaps stored again elsewhere
      if (bad) damaged.add(range.pack);
      if (f.owner === range) {
        // the worker renamed it into place, or removed it (and the range may go)
        f.owner = undefined;
        f.remaining = 0;
        if (error === null) opts.onFile?.(f);
      } else handled(f, counts[i]!);
    }
  }
}

/**
 * How long a vault whose read just failed (after its retries) has to answer a question before it
 * counts as gone: asked with retries of its own, the question would wait as long again.
 */
const ANSWER_MS = 15_000;

/** Whether the vault answers a question about `pack` at all (whatever the answer) within `waitMs`. */
export function vaultAnswers(session: VaultSession, pack: PackId, waitMs = ANSWER_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), waitMs);
  });
  const answer = session.statPack(pack).then(
    () => true,
    (err: unknown) => !isAzbkError(err, 'AZBK_VAULT_UNREACHABLE'),
  );
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/** True when the vault says it does not hold `pack` (not when it cannot say). */
export async function packMissing(session: VaultSession, pack: PackId): Promise<boolean> {
  return session.statPack(pack).then(
    (size) => size === null,
    () => false,
  );
}

/** A file whose chunks all lie in one range is owned by it; one in several ranges gets null. */
function assignOwners(all: readonly Range[]): void {
  for (const r of all) {
    for (const w of r.blobs) {
      eachTarget(w, (f) => {
        if (f.owner === undefined) f.owner = f.error === null ? r : null;
        else if (f.owner !== r) f.owner = null;
      });
    }
  }
}

/** Groups a pack's wanted blobs into read ranges, merging neighbours separated by small gaps. */
function ranges(pack: PackId, wanted: Wanted[]): Range[] {
  return readRanges(wanted, (w) => w, MAX_GAP, MAX_RANGE).map((r) => ({ pack, start: r.start, end: r.end, blobs: r.items }));
}

/**
 * Groups the pieces of one pack (sorted here by offset) into read ranges: a piece joins the range
 * before it when at most `gap` bytes lie between them and the range stays within `max` bytes.
 */
export function readRanges<T>(items: T[], at: (x: T) => { readonly offset: number; readonly length: number }, gap: number, max: number): { start: number; end: number; items: T[] }[] {
  items.sort((a, b) => at(a).offset - at(b).offset);
  const out: { start: number; end: number; items: T[] }[] = [];
  for (const x of items) {
    const { offset, length } = at(x);
    const last = out.at(-1);
    const end = offset + length;
    if (last !== undefined && offset - last.end <= gap && end - last.start <= max) {
      last.end = Math.max(last.end, end);
      last.items.push(x);
    } else out.push({ start: offset, end, items: [x] });
  }
  return out;
}
