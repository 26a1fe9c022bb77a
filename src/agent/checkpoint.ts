/**
 * Backup checkpoints. While a job runs it writes, every interval, a sealed delta to the vault: the
 * files finished since the previous checkpoint (path, metadata, chunk list) and how far it got in
 * the files it is reading (the chunks read since the previous checkpoint, so that a file of a
 * million chunks does not repeat its whole list in every checkpoint). Every blob a checkpoint names was flushed and indexed before it was
 * written. The next backup of the machine continues the newest job that has no recovery point
 * yet: finished files whose metadata still match are not read again, and a half-read file
 * continues from its last chunk boundary.
 */
import { isHex64, type BlobId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { objectKeyId, openObject, sealSteps } from '../core/sealed-object.js';
import { runSliced } from '../shared/steps.js';
import type { CheckpointInfo, VaultSession } from '../vault/api.js';

/** A file's identity: what tells whether it changed (see unchanged). */
export type FileIdentity = { readonly size: number; readonly mtime: string; readonly ctime: string; readonly ino: string };

/** The identity alone, of anything that has one (an lstat, a known file). */
export function identity(st: FileIdentity): FileIdentity {
  return { size: st.size, mtime: st.mtime, ctime: st.ctime, ino: st.ino };
}

/** What identifies an unchanged file, and its content. */
export interface KnownFile {
  readonly size: number;
  /** nanoseconds as decimal strings; ino as a decimal string */
  readonly mtime: string;
  readonly ctime: string;
  readonly ino: string;
  readonly content: readonly BlobId[];
}

/**
 * A KnownFile from a file's identity. Written out in full: V8 gives every object made as
 * `{ ...id, content }` a hidden class of its own (about 230 bytes more per file).
 */
export function knownFile(id: FileIdentity, content: readonly BlobId[]): KnownFile {
  return { size: id.size, mtime: id.mtime, ctime: id.ctime, ino: id.ino, content };
}

/** A file read up to `offset` (a chunk boundary); `content` holds the chunks before it. */
export interface PartialFile extends KnownFile {
  readonly path: string;
  readonly offset: number;
}

/**
 * A half-read file as a checkpoint stores it: `content` is the file's chunk list from position
 * `from` on; the chunks before it are in the same file's entry in the job's previous checkpoint.
 */
export interface PartialDelta extends PartialFile {
  readonly from: number;
}

export interface CheckpointData {
  /** 2: partials are deltas (version 1 partials hold the whole list, as a delta from 0) */
  readonly version: 1 | 2;
  readonly jobId: string;
  readonly seq: number;
  readonly files: readonly (readonly [string, KnownFile])[];
  /** files being read when the checkpoint was taken (several workers read at once) */
  readonly partials: readonly (PartialFile | PartialDelta)[];
}

/** What a resumed job starts from. */
export interface ResumeState {
  readonly jobId: string;
  readonly seq: number;
  readonly time: string;
  readonly files: Map<string, KnownFile>;
  readonly partials: Map<string, PartialFile>;
}

const objectName = (jobId: string, seq: number) => `${jobId}.${seq}`;

/** Seals a checkpoint in slices (see runSliced): one of a large backup lists tens of thousands of files. */
export function sealCheckpoint(keys: VaultKeys, data: CheckpointData): Promise<Buffer> {
  return runSliced(sealSteps(keys, 'checkpoint', objectName(data.jobId, data.seq), data));
}

const DEC = /^-?\d{1,24}$/;

function isKnownFile(v: unknown): v is KnownFile {
  const f = v as KnownFile;
  return (
    typeof f === 'object' && f !== null &&
    Number.isSafeInteger(f.size) && f.size >= 0 &&
    typeof f.mtime === 'string' && DEC.test(f.mtime) &&
    typeof f.ctime === 'string' && DEC.test(f.ctime) &&
    typeof f.ino === 'string' && DEC.test(f.ino) &&
    Array.isArray(f.content) && f.content.every(isHex64)
  );
}

/** Opens and validates a checkpoint; null when it is damaged or malformed (it is then not used). */
export function openCheckpoint(keys: VaultKeys, jobId: string, seq: number, data: Uint8Array): CheckpointData | null {
  let c: CheckpointData;
  try {
    c = openObject(keys, 'checkpoint', objectName(jobId, seq), data) as CheckpointData;
  } catch {
    return null;
  }
  if ((c?.version !== 1 && c?.version !== 2) || c.jobId !== jobId || c.seq !== seq || !Array.isArray(c.files)) return null;
  for (const entry of c.files) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !isKnownFile(entry[1])) return null;
  }
  if (!Array.isArray(c.partials)) return null;
  for (const p of c.partials as readonly unknown[]) {
    const f = p as PartialFile;
    if (!(isKnownFile(p) && typeof f.path === 'string' && Number.isSafeInteger(f.offset) && f.offset >= 0 && f.offset <= f.size)) return null;
    const from = (p as Partial<PartialDelta>).from;
    if (from !== undefined && !(Number.isSafeInteger(from) && from >= 0)) return null;
  }
  return c;
}

/**
 * The job to resume: the newest job with a checkpoint newer than this machine's newest point,
 * read from its first checkpoint up to the last one that is whole and in sequence.
 */
export async function findResumable(session: VaultSession, keys: VaultKeys): Promise<ResumeState | null> {
  const checkpoints = await session.listCheckpoints();
  if (checkpoints.length === 0) return null;
  const points = await session.listPoints(session.machineId);
  const lastPoint = points.at(-1)?.time ?? '';
  const newest = checkpoints.filter((c) => c.time > lastPoint).at(-1);
  if (newest === undefined) return null;
  const chain = new Map<number, CheckpointInfo>();
  // Oldest first, so a seq written again after a damaged one replaces it.
  for (const c of checkpoints) if (c.jobId === newest.jobId) chain.set(c.seq, c);

  const files = new Map<string, KnownFile>();
  let partials = new Map<string, PartialFile>();
  let last: CheckpointInfo | null = null;
  for (let seq = 1; chain.has(seq); seq++) {
    const info = chain.get(seq)!;
    const raw = await session.readCheckpoint(info.name);
    if (objectKeyId(raw) !== keys.keyId) break;
    const c = openCheckpoint(keys, info.jobId, seq, raw);
    if (c === null) break;
    for (const [path, f] of c.files) files.set(path, f);
    partials = withDeltas(partials, c.partials);
    last = info;
  }
  if (last === null) return null;
  return { jobId: last.jobId, seq: last.seq, time: last.time, files, partials };
}

/**
 * The half-read files after a checkpoint: each of its entries, with the chunks before `from` taken
 * from the same file's entry before it. An entry that does not follow on (another version of
 * the file, or an entry missing) is dropped: that file is read again from its start.
 */
function withDeltas(before: ReadonlyMap<string, PartialFile>, entries: readonly (PartialFile | Partial<PartialDelta>)[]): Map<string, PartialFile> {
  const after = new Map<string, PartialFile>();
  for (const e of entries as readonly (PartialFile & { from?: number })[]) {
    const { from = 0, ...p } = e;
    if (from === 0) {
      after.set(p.path, p);
      continue;
    }
    const prev = before.get(p.path);
    if (prev === undefined || !unchanged(prev, p) || prev.content.length !== from) continue;
    after.set(p.path, { ...p, content: [...prev.content, ...p.content] });
  }
  return after;
}

/**
 * True when a file's metadata match what was recorded of it: size, mtime, ctime and inode (ctime
 * too, since a rewrite can put the old size and mtime back).
 */
export function unchanged(known: FileIdentity, now: FileIdentity): boolean {
  return known.size === now.size && known.mtime === now.mtime && known.ctime === now.ctime && known.ino === now.ino;
}
