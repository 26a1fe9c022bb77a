/** Small file helpers shared by the agent and the vault. */
import { randomBytes } from 'node:crypto';
import fsCb from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AzbkError, localIoError } from './errors.js';

/**
 * Reads a small file the user names (a passphrase or credentials file): a regular file (a pipe or
 * device is refused, never waited on) of at most `limit` bytes. `what` names it in the errors,
 * which are AZBK_BAD_INPUT.
 */
export async function readSmallFile(file: string, limit: number, what: string): Promise<Buffer> {
  const bad = (why: string) => new AzbkError('AZBK_BAD_INPUT', `Cannot read the ${what} ${file} (${why}).`);
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(file, fsCb.constants.O_RDONLY | (fsCb.constants.O_NONBLOCK ?? 0));
    const st = await fh.stat();
    if (!st.isFile()) throw bad('not a regular file');
    const buf = Buffer.alloc(limit + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > limit) throw bad(`larger than ${limit} bytes`);
    return buf.subarray(0, bytesRead);
  } catch (err) {
    if (err instanceof AzbkError) throw err;
    throw bad(errnoCode(err) ?? 'error');
  } finally {
    await fh?.close();
  }
}

/** Writes all of `data` to `fd`: at `position`, or (null) where the file's offset is (its end, for one opened to append). */
export function writeAll(fd: number, data: Uint8Array, position: number | null = null): void {
  let pos = 0;
  while (pos < data.length) pos += fsCb.writeSync(fd, data, pos, data.length - pos, position === null ? null : position + pos);
}

/** `data` as UTF-8 text without a byte order mark, or null when it is not UTF-8. */
export function utf8Text(data: Uint8Array): string | null {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    return text.startsWith('\uFEFF') ? text.slice(1) : text;
  } catch {
    return null;
  }
}

/** Reads a small UTF-8 text file (see readSmallFile); AZBK_BAD_INPUT when it is not UTF-8. */
export async function readSmallTextFile(file: string, limit: number, what: string): Promise<string> {
  const text = utf8Text(await readSmallFile(file, limit, what));
  if (text === null) throw new AzbkError('AZBK_BAD_INPUT', `Cannot read the ${what} ${file} (not UTF-8 text).`);
  return text;
}

/** What common OS error codes mean, in words. */
const OS_ERRORS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EBUSY: 'resource busy',
  EAGAIN: 'resource temporarily unavailable',
  ETIMEDOUT: 'timed out',
  ESTALE: 'stale network file handle',
};

/**
 * An OS error code in words, then the code: "no space left on device (ENOSPC)"; the code alone
 * when it has no words. `own` holds the caller's words for codes that mean more to it.
 */
export function errnoText(code: string, own: Readonly<Record<string, string>> = {}): string {
  const text = own[code] ?? OS_ERRORS[code];
  return text === undefined ? code : `${text} (${code})`;
}

/** Writes all of `data` at `position` of the open file `fd`. */
export async function writeAt(fd: number, data: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const n = await new Promise<number>((resolve, reject) =>
      fsCb.write(fd, data, done, data.length - done, position + done, (err, n) => (err ? reject(err) : resolve(n))),
    );
    // A write that makes no progress and reports nothing would spin here for ever.
    if (n === 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
    done += n;
  }
}

/**
 * Makes the folder `dir` and those above it that are missing, each with `mode` (as `mkdir -p`; a
 * folder there already is fine, a file there is EEXIST). Node's own recursive mkdir never ends
 * where a folder exists but refuses new entries the way /proc does (ENOENT for the new folder,
 * EEXIST for its parent, and again), and its synchronous form does not even let a signal stop
 * the process; here such a folder's ENOENT is thrown. Synchronous, also for async callers: a few
 * mkdir calls for local state, a vault's folder or a restore's target.
 */
export function makeFoldersSync(dir: string, mode = 0o777): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      fsCb.mkdirSync(d, mode);
      break;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') {
        if (missing.length === 0 && !fsCb.statSync(d).isDirectory()) throw err;
        break; // made before (a file above a missing folder fails below, with ENOTDIR)
      }
      if (code !== 'ENOENT' || path.dirname(d) === d) throw err;
      missing.push(d);
    }
  }
  for (const d of missing.reverse()) {
    try {
      fsCb.mkdirSync(d, mode);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || !fsCb.statSync(d).isDirectory()) throw err; // made meanwhile by another
    }
  }
}

/**
 * Writes `data` to `file` atomically: a temporary file in the same folder, fsync, rename. With
 * `mode` the file is created with those permissions from the start (0o600 for secrets), so its
 * content is never readable by others, not even for a moment. With `exclusive`, an existing file
 * is left alone and the call fails with EEXIST.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  opts: { mode?: number; exclusive?: boolean } = {},
): Promise<void> {
  const dir = path.dirname(file);
  makeFoldersSync(dir);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'wx', opts.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    // A full disk: the temporary file goes, not left behind for every write that failed so.
    await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw naming(err, file);
  }
  await fh.close();
  try {
    if (opts.exclusive) {
      await fs.link(tmp, file);
      await fs.unlink(tmp);
    } else {
      await fs.rename(tmp, file);
    }
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** A new file azbk will not write over (a passphrase, a credentials file) is there already. */
export function existsError(file: string): AzbkError {
  return new AzbkError('AZBK_BAD_INPUT', `${file} already exists; azbk will not overwrite it.`, { hint: 'Name a new file, or move that one away first.' });
}

/** Why such a new file (see existsError) could not be written. */
export function newFileError(file: string, err: unknown): AzbkError {
  const code = errnoCode(err);
  return code === 'EEXIST' ? existsError(file) : new AzbkError('AZBK_BAD_INPUT', `Cannot write ${file} (${code ?? 'error'}).`);
}

/**
 * `err` naming `file` when it names no file: a write through a handle fails (a full disk) with
 * only the system call, and the user is told which file could not be written.
 */
export function naming(err: unknown, file: string): unknown {
  const e = err as NodeJS.ErrnoException | null;
  if (e !== null && typeof e === 'object' && typeof e.code === 'string' && e.path === undefined) e.path = file;
  return err;
}

/**
 * Makes the names in `dir` durable (fsync of the folder), so that a rename in it survives a power
 * loss. Windows cannot open or fsync a folder (NTFS journals the rename itself): there it does nothing.
 */
export async function syncFolder(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reads and parses a JSON file; null when it does not exist (one holding null throws, as a malformed one does). */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const value = JSON.parse(text) as unknown;
  // null means "no file" to callers: a file that holds it is not one of ours, not a missing one.
  if (value === null) throw new SyntaxError(`${file} holds null`);
  return value;
}

/** Like readJsonFile, but an unreadable or malformed file throws `damaged()` instead. */
export async function readLocalJson(file: string, damaged: () => Error): Promise<unknown> {
  try {
    return await readJsonFile(file);
  } catch (err) {
    // One this user cannot read (written by another, say root) is not damaged: removing it is not the fix.
    const io = localIoError(err);
    if (io !== undefined) throw new AzbkError('AZBK_LOCAL_IO', `${io.message.replace(/\.$/, '')}: the file cannot be read.`, { hint: `Give it back to this user, readable by it (chown, chmod 600 ${file}), then run the command again.`, cause: err });
    throw damaged();
  }
}

/** A file's or folder's identity on its file system ("<dev>:<ino>"): another one at the same path has another. */
export function fileIdentity(st: { readonly dev: number | bigint | string; readonly ino: number | bigint | string }): string {
  return `${st.dev}:${st.ino}`;
}

/** The errno code of a Node.js system error, if any. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : undefined;
}

/**
 * A warning for a file of secrets (a passphrase, a credentials file) that others than its owner
 * may read, by its permission bits; null when only the owner may, on Windows (ACLs, not bits),
 * and when the file cannot be examined.
 */
export function exposedWarning(file: string, what: string): string | null {
  if (process.platform === 'win32') return null;
  try {
    if ((fsCb.statSync(file).mode & 0o044) === 0) return null;
  } catch {
    return null;
  }
  return `the ${what} ${file} can be read by other users of this machine: keep it owner-only (chmod 600)`;
}
