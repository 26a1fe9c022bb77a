/** Writing a restored file: the steps the restore's main thread and its workers share. */
import fs from 'node:fs';
import { blobId } from '../core/blob.js';
import { Chunker, type ChunkerParams } from '../core/chunker.js';
import type { BlobId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { AzbkError } from '../shared/errors.js';
import { errnoCode, errnoText, writeAll } from '../shared/files.js';

/** Throws AZBK_CANCELLED when `signal` asks the restore to stop (see RestoreOptions.signal). */
export function stopIfAsked(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AzbkError('AZBK_CANCELLED', 'Restore stopped.');
}

/** Seconds since the epoch with microsecond precision, from nanoseconds as a decimal string (as text before 1970). */
export function toTime(ns: string): number | string {
  const micros = Number(BigInt(ns) / 1000n);
  // libuv cuts the time to whole microseconds (toward zero, before it makes a negative fraction
  // positive), and seconds as a double are a few tenths of one off: half a microsecond further
  // from zero is cut back to the right one, not the one next to it.
  // Node takes a negative number of seconds as "now"; as text, it is taken as it is (before 1970).
  if (micros < 0) return String((micros - 0.5) / 1e6);
  return (micros + 0.5) / 1e6;
}

/** Opening an existing temporary file never follows a link put in its place (where the OS can tell). */
const REOPEN = fs.constants.O_WRONLY | (fs.constants.O_NOFOLLOW ?? 0);

/**
 * Opens a file's temporary file for writing: `create` makes it (owner-only) and fails if anything
 * is at that name already, a planted link included; else it must exist and not be a link.
 */
export function openTemp(tmp: string, create: boolean): number {
  return create ? fs.openSync(tmp, 'wx', 0o600) : fs.openSync(tmp, REOPEN);
}

/** Chunks shorter than this are written even when all zero: a hole that small saves nothing. */
const HOLE_MIN = 64 * 1024;
/** Zero bytes to compare chunks with, grown to the largest chunk compared (never written). */
let zeros = Buffer.alloc(0);

/**
 * True when `data` is a chunk of zero bytes long enough to leave as a hole: a restored file is
 * new, so not writing it leaves a hole where the file system has them (a disk image's unused
 * space stays unused), and the file's end is set by `extendTo`.
 */
export function isHole(data: Uint8Array): boolean {
  if (data.length < HOLE_MIN || data[0] !== 0 || data[data.length - 1] !== 0) return false;
  if (zeros.length < data.length) zeros = Buffer.alloc(data.length);
  return Buffer.compare(data, zeros.subarray(0, data.length)) === 0;
}

/**
 * Writes `data` at `position` of a new file, leaving each stretch of zeros of HOLE_MIN bytes (at
 * HOLE_MIN steps from the chunk's start) unwritten, a hole where the file system has them: a chunk
 * of a sparse image is up to 8 MiB of zeros around a few bytes of data. Returns where the file must
 * end when the chunk's last bytes were such a stretch (see extendTo), else 0. A stretch of data
 * costs a look at its first byte, or its first and last.
 */
export function writeSparse(fd: number, data: Uint8Array, position: number): number {
  if (data.length < 2 * HOLE_MIN) {
    writeAll(fd, data, position);
    return 0;
  }
  const zeroAt = (at: number) => isHole(data.subarray(at, Math.min(at + HOLE_MIN, data.length)));
  let at = 0;
  while (at < data.length) {
    let start = at;
    while (start < data.length && zeroAt(start)) start += HOLE_MIN;
    if (start >= data.length) return position + data.length;
    let end = start + HOLE_MIN;
    while (end < data.length && !zeroAt(end)) end += HOLE_MIN;
    writeAll(fd, data.subarray(start, Math.min(end, data.length)), position + start);
    at = end;
  }
  return 0;
}

/** Makes an open file at least `size` bytes long (the bytes added read as zeros). */
export function extendTo(fd: number, size: number): void {
  if (fs.fstatSync(fd).size < size) fs.ftruncateSync(fd, size);
}

/**
 * The mode a restored file gets: its backed-up permission bits without setuid and setgid. Owners
 * are not restored, so a program that ran as its owner would run as whoever restored it (root,
 * often). A folder keeps setgid and sticky, which grant nothing.
 */
export function restoredMode(mode: number, dir: boolean): number {
  return mode & (dir ? 0o3777 : 0o1777);
}

/** Gives an open file its backed-up mode (see restoredMode) and modification time. */
export function settle(fd: number, mode: number, mtime: string): void {
  const t = toTime(mtime);
  fs.fchmodSync(fd, restoredMode(mode, false));
  fs.futimesSync(fd, t, t);
}

/** Opening a folder to settle it never follows a link put in its place (where the OS can tell). */
export const OPEN_FOLDER = fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);

/**
 * The mode a restore gives an existing folder of `mode` while it writes there: its owner may list
 * it, write in it and go through it. Writing takes write and search; listing it (to remove a dead
 * restore's temporary files) and opening it to give it its mode and time at the end take read.
 * `mode` itself (its permission bits) when the owner has all three.
 */
export function openedToOwner(mode: number): number {
  return (mode & 0o7777) | 0o700;
}

/** Gives a restored folder its backed-up mode (see restoredMode) and time, through the folder itself, not a link in its place. */
export function settleDir(dir: string, mode: number, mtime: string): void {
  const t = toTime(mtime);
  if (process.platform === 'win32') {
    fs.chmodSync(dir, restoredMode(mode, true));
    fs.utimesSync(dir, t, t);
    return;
  }
  const fd = fs.openSync(dir, OPEN_FOLDER);
  try {
    fs.fchmodSync(fd, restoredMode(mode, true));
    fs.futimesSync(fd, t, t);
  } finally {
    fs.closeSync(fd);
  }
}

/** Hard link errors that mean none can be made there: another device, FAT, a limit reached. */
export const NO_HARD_LINK: ReadonlySet<string> = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS', 'EINVAL', 'EISDIR']);

const appeared = () => new Error('something appeared at this path during the restore; left as it is');

/**
 * Puts the finished temporary file `tmp` in place at `dest`: by a rename, which replaces what is
 * there; or with `keep`, not if something is there by now (another program made it during the
 * restore): by a hard link, which fails on a taken name, then the temporary name removed. Where
 * no hard link can be made, and for a symbolic link (`byLink` false: macOS would link to what it
 * points to), a look first, then the rename.
 */
export function putInPlace(tmp: string, dest: string, keep: boolean, byLink = true): void {
  if (keep && byLink && linkedNew(tmp, dest)) {
    fs.rmSync(tmp, { force: true });
    return;
  }
  if (keep && fs.lstatSync(dest, { throwIfNoEntry: false }) !== undefined) throw appeared();
  fs.renameSync(tmp, dest);
}

/** Makes `dest` a hard link to `tmp`: false where no hard link can be made; throws when `dest` is taken. */
function linkedNew(tmp: string, dest: string): boolean {
  try {
    fs.linkSync(tmp, dest);
    return true;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') throw appeared();
    if (code === undefined || !NO_HARD_LINK.has(code)) throw err;
    return false;
  }
}

/** Removes the temporary file of a file that failed; a failure to remove it changes nothing more. */
export function removeTemp(tmp: string): void {
  try {
    fs.rmSync(tmp, { force: true });
  } catch {
    // the file is reported failed already
  }
}

/** What a failed file's error code means in a restore, where the common words (errnoText) do not say it. */
const RESTORE_ERRORS: Readonly<Record<string, string>> = {
  ENAMETOOLONG: 'name or path too long for this file system',
  ENOTDIR: 'a folder on its path was replaced during the restore',
  ELOOP: 'a folder on its path was replaced by a link during the restore',
  ENOENT: 'its folder was removed during the restore',
};

/** The message to report for a failed file operation: what its code means when known, and the code. */
export function why(err: unknown): string {
  const code = errnoCode(err);
  return code === undefined ? (err as Error).message : errnoText(code, RESTORE_ERRORS);
}

/**
 * Whether the regular file at `file` holds exactly the chunks `content` (as a backup with `keys`
 * and `params` would cut and name them); false when it cannot be read. Reads the whole file: for
 * the few files a restore would otherwise take on size and time alone.
 */
export function holdsContent(file: string, content: readonly BlobId[], keys: VaultKeys, params: ChunkerParams): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  } catch {
    return false;
  }
  try {
    const chunker = new Chunker(params, keys.chunkerSeed);
    const buf = Buffer.allocUnsafe(1024 * 1024);
    let i = 0;
    const matches = (chunks: Iterable<Buffer>) => {
      for (const c of chunks) if (i >= content.length || blobId(keys, c) !== content[i++]) return false;
      return true;
    };
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      if (!matches(chunker.cut(buf.subarray(0, n)))) return false;
    }
    return matches(chunker.end()) && i === content.length;
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}
