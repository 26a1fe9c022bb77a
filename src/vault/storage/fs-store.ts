/**
 * The BlobStore of a vault on a local (or mounted) disk: one file per object under a root folder.
 *
 * Atomic put without overwrite: the data goes to a unique file in `<root>/.tmp/`, is fsynced, and
 * is then hard-linked to its final name. link(2) fails with EEXIST when the name is taken, so of
 * many concurrent writers exactly one wins and nobody overwrites; a reader sees the whole file or
 * no file. The parent folder is fsynced afterwards so the new name survives a power loss.
 * `openWriter` does the same for an object written in pieces (a pack streamed by a backup).
 */
import { randomBytes } from 'node:crypto';
import fsCb, { type Dirent, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { AzbkError, isAzbkError } from '../../shared/errors.js';
import { errnoText, fileIdentity, syncFolder, writeAt } from '../../shared/files.js';
import { InFlight } from '../../shared/in-flight.js';
import type { BlobStore, ObjectWriter } from './blobstore.js';
import { clipRange, isKeySegment, validateKey, validatePrefix, type ByteRange } from './keys.js';

/** The folder under the root that holds files being written; never listed. */
export const TEMP_DIR = '.tmp';
/** How long a streamed object's temporary file may go unwritten before another writer removes it. */
const STALE_WRITER_MS = 24 * 60 * 60 * 1000;

type Op = 'put' | 'get' | 'stat' | 'list' | 'delete';

/**
 * A BlobStore over the folder `root`, which must exist: FsBlobStore never creates it, so a vault
 * on an unmounted disk is reported as missing (AZBK_VAULT_NOT_FOUND) instead of being recreated
 * on the disk underneath. Sub-folders are created as needed; empty ones are never removed.
 *
 * Differences from the general contract, forced by the file system:
 * - keys whose first segment is `.tmp` are reserved and rejected with AZBK_BAD_INPUT;
 * - a key cannot also be a folder of other keys ('a' and 'a/b'): such a put throws AZBK_BAD_INPUT;
 * - a segment longer than the file system allows (usually 255 bytes) throws AZBK_BAD_INPUT.
 * OS errors are reported as AZBK_VAULT_UNREACHABLE with the OS error as `cause`.
 */
export class FsBlobStore implements BlobStore {
  readonly root: string;
  #swept: Promise<number> | undefined;

  /** the vault folder's identity ("<dev>:<ino>") when first seen: a folder put in its place is not it */
  #rootId: string | undefined;

  constructor(root: string) {
    this.root = path.resolve(root);
    try {
      this.#rootId = fileIdentity(fsCb.statSync(this.root));
    } catch {
      // not there yet (a vault being created): taken when first written to
    }
  }

  /**
   * Throws AZBK_VAULT_NOT_FOUND (with `cause`, the error that had it looked at, if any) unless the
   * vault's folder is there and is the folder it was: one moved away, with another (an empty one,
   * a mount point) put in its place, is never written to.
   */
  async #sameRoot(cause?: unknown): Promise<void> {
    let st: Stats;
    try {
      st = await fs.stat(this.root);
    } catch (err) {
      throw this.#gone(cause ?? err);
    }
    if (!st.isDirectory()) throw this.#gone(cause);
    const id = fileIdentity(st);
    this.#rootId ??= id;
    if (id !== this.#rootId) throw new AzbkError('AZBK_VAULT_NOT_FOUND', `The vault folder ${this.root} was replaced by another folder.`, { hint: 'Put the vault folder back where it was (mount its disk again), then run the command again.' });
  }

  async put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
    this.#path(key); // a bad key is refused before anything is written
    const writer = await this.#open(key);
    this.#sweepOnce(writer);
    try {
      await writer.write(data);
      return await writer.finish(key);
    } finally {
      await writer.abort();
    }
  }

  /**
   * A writer of one new object, in a unique file in `.tmp` until `finish` names it. The first
   * writer a store opens also removes, in the background, temporary files left by writers that
   * were killed: those not written for a day by the clock of the disk itself (its time of the new
   * file), so a writer idle for less than a day, or a disk whose clock is off, loses nothing.
   */
  async openWriter(): Promise<ObjectWriter> {
    const writer = await this.#open();
    this.#sweepOnce(writer);
    return writer;
  }

  /** With the store's first writer (a put's too: a vault service only puts), starts the sweep of stale temporary files. */
  #sweepOnce(writer: FsObjectWriter): void {
    if (this.#swept !== undefined) return;
    this.#swept = fstatFile(writer.fd).then(
      (st) => this.removeStaleTemp(STALE_WRITER_MS, st.mtimeMs).catch(() => 0),
      () => 0,
    );
  }

  /** A new writer; its errors name `key`, or its temporary file when the key is not known yet. */
  async #open(key?: string): Promise<FsObjectWriter> {
    const tempDir = path.join(this.root, TEMP_DIR);
    const name = `${randomBytes(12).toString('hex')}.tmp`;
    const label = key ?? `${TEMP_DIR}/${name}`;
    try {
      await this.#ensureTempDir(tempDir);
      const fd = await openFile(path.join(tempDir, name), 'wx', 0o600);
      return new FsObjectWriter(fd, path.join(tempDir, name), label, this.root, (temp, k) => this.#link(temp, k));
    } catch (err) {
      throw toStorageError(err, 'put', label, this.root);
    }
  }

  /** Gives the finished temporary file `temp` the name of `key` without overwriting; fsyncs the folders it changed. */
  async #link(temp: string, key: string): Promise<'created' | 'exists'> {
    const file = this.#path(key);
    const parent = path.dirname(file);
    const created = await this.#makeFolders(parent).catch((err: unknown) => {
      // A file where a folder should be: the key extends another key ('a' exists, put 'a/b').
      throw errno(err) === 'ENOTDIR' ? keyConflict(key) : err;
    });
    try {
      await fs.link(temp, file);
    } catch (err) {
      if (errno(err) === 'ENOTDIR') throw keyConflict(key);
      if (errno(err) === 'ENOENT') await this.#sameRoot(err);
      if (errno(err) !== 'EEXIST') throw err;
      if ((await fs.lstat(file)).isFile()) return 'exists';
      throw keyConflict(key);
    }
    await syncDirs(created === undefined ? parent : path.dirname(created), parent);
    return 'created';
  }

  /**
   * Makes the folders from the vault's folder down to `dir` that are not there yet, and returns the
   * first one made (as mkdir -p does). Never the vault's folder itself: one moved or unmounted
   * while a backup runs is gone (AZBK_VAULT_NOT_FOUND), not made anew at its old place, where
   * checkpoints would land that the vault does not have.
   */
  async #makeFolders(dir: string): Promise<string | undefined> {
    await this.#sameRoot();
    let first: string | undefined;
    let at = this.root;
    for (const seg of path.relative(this.root, dir).split(path.sep).filter(Boolean)) {
      at = path.join(at, seg);
      try {
        await fs.mkdir(at, { mode: 0o700 });
        first ??= at;
      } catch (err) {
        if (errno(err) === 'EEXIST') continue;
        if (errno(err) === 'ENOENT') await this.#sameRoot(err);
        throw err;
      }
    }
    return first;
  }

  async get(key: string, range?: ByteRange): Promise<Buffer | null> {
    const file = this.#path(key);
    clipRange(0, range); // reject a bad range before touching the disk
    // The callback API with a plain descriptor: a restore reads thousands of small ranges, and a
    // FileHandle costs several times more per call.
    let fd: number;
    try {
      fd = await openFile(file);
    } catch (err) {
      if (isMissing(err)) return null;
      throw toStorageError(err, 'get', key, this.root);
    }
    try {
      const stat = await fstatFile(fd);
      if (!stat.isFile()) return null;
      const { start, end } = clipRange(stat.size, range);
      const out = range?.into !== undefined && range.into.length >= end - start ? range.into.subarray(0, end - start) : Buffer.allocUnsafe(end - start);
      let done = 0;
      while (done < out.length) {
        const bytesRead = await readFile(fd, out, done, out.length - done, start + done);
        if (bytesRead === 0) break; // objects never shrink; guard against a loop anyway
        done += bytesRead;
      }
      return done === out.length ? out : out.subarray(0, done);
    } catch (err) {
      if (isMissing(err)) return null;
      throw toStorageError(err, 'get', key, this.root);
    } finally {
      await closeFile(fd).catch(() => undefined);
    }
  }

  async stat(key: string): Promise<{ size: number } | null> {
    const file = this.#path(key);
    try {
      const stat = await fs.stat(file);
      return stat.isFile() ? { size: stat.size } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw toStorageError(err, 'stat', key, this.root);
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    validatePrefix(prefix);
    const cut = prefix.lastIndexOf('/');
    const dirKey = prefix.slice(0, Math.max(cut, 0));
    const start = prefix.slice(cut + 1);
    // Depth-first over folders; `stack` holds key prefixes ('' or ending in '/') still to read.
    const stack: { key: string; filter: string }[] = [{ key: dirKey ? `${dirKey}/` : '', filter: start }];
    while (stack.length > 0) {
      const { key: dir, filter } = stack.pop()!;
      for (const entry of await this.#readDir(dir, prefix)) {
        const name = entry.name;
        if (!name.startsWith(filter) || !isKeySegment(name)) continue;
        if (dir === '' && name === TEMP_DIR) continue;
        if (entry.isDirectory()) stack.push({ key: `${dir}${name}/`, filter: '' });
        else if (entry.isFile()) yield `${dir}${name}`;
      }
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.#path(key);
    try {
      await fs.unlink(file);
    } catch (err) {
      // EISDIR: the key names a folder of other keys, so no object has that key.
      if (isMissing(err)) return;
      throw toStorageError(err, 'delete', key, this.root);
    }
  }

  /**
   * Removes files left in `.tmp` by writers that crashed, if last written more than `maxAgeMs`
   * before `now` (default one hour, far longer than any put takes); a time after `now` is not
   * old. Best effort: returns how many it removed.
   */
  async removeStaleTemp(maxAgeMs = 60 * 60 * 1000, now = Date.now()): Promise<number> {
    const tempDir = path.join(this.root, TEMP_DIR);
    let removed = 0;
    const names = await fs.readdir(tempDir).catch(() => [] as string[]);
    for (const name of names) {
      const file = path.join(tempDir, name);
      const stat = await fs.lstat(file).catch(() => null);
      if (stat?.isFile() && now - stat.mtimeMs > maxAgeMs) {
        await fs.rm(file, { force: true }).then(() => removed++, () => undefined);
      }
    }
    return removed;
  }

  #path(key: string): string {
    validateKey(key);
    if (key === TEMP_DIR || key.startsWith(`${TEMP_DIR}/`)) {
      throw new AzbkError('AZBK_BAD_INPUT', `Invalid object key "${key}": "${TEMP_DIR}" is reserved.`);
    }
    return path.join(this.root, ...key.split('/'));
  }

  async #ensureTempDir(tempDir: string): Promise<void> {
    await this.#sameRoot();
    try {
      await fs.mkdir(tempDir, { mode: 0o700 });
    } catch (err) {
      if (errno(err) === 'EEXIST') return;
      if (errno(err) === 'ENOENT') throw this.#gone(err);
      throw err;
    }
  }

  #gone(cause: unknown): AzbkError {
    return new AzbkError('AZBK_VAULT_NOT_FOUND', `The vault folder ${this.root} does not exist.`, { cause });
  }

  async #readDir(dirKey: string, prefix: string): Promise<Dirent[]> {
    try {
      return await fs.readdir(path.join(this.root, ...dirKey.split('/')), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return [];
      throw toStorageError(err, 'list', prefix, this.root);
    }
  }
}

const openFile = (file: string, flags = 'r', mode?: number) => new Promise<number>((resolve, reject) => fsCb.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
const fsyncFile = (fd: number) => new Promise<void>((resolve, reject) => fsCb.fsync(fd, (err) => (err ? reject(err) : resolve())));
const fstatFile = (fd: number) => new Promise<Stats>((resolve, reject) => fsCb.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
const readFile = (fd: number, buf: Buffer, at: number, length: number, position: number) =>
  new Promise<number>((resolve, reject) => fsCb.read(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n))));
const closeFile = (fd: number) => new Promise<void>((resolve, reject) => fsCb.close(fd, (err) => (err ? reject(err) : resolve())));

/**
 * An object being written into its temporary file: each write goes to its own offset at once, so
 * several may be in flight; `finish` waits for them all, fsyncs and closes the file, then links it
 * to its name.
 */
class FsObjectWriter implements ObjectWriter {
  #size = 0;
  readonly #writes = new InFlight();
  #accepting = true;
  #finishing: Promise<unknown> | undefined;
  #closed: Promise<void> | undefined;

  constructor(
    readonly fd: number,
    private readonly temp: string,
    private readonly label: string,
    private readonly root: string,
    private readonly link: (temp: string, key: string) => Promise<'created' | 'exists'>,
  ) {}

  write(data: Uint8Array): Promise<void> {
    if (!this.#accepting) return Promise.reject(new Error('ObjectWriter used after finish or abort'));
    const at = this.#size;
    this.#size += data.length;
    return this.#writes.track(writeAt(this.fd, data, at)).catch((err: unknown) => {
      throw toStorageError(err, 'put', this.label, this.root);
    });
  }

  finish(key: string): Promise<'created' | 'exists'> {
    if (!this.#accepting) return Promise.reject(new Error('ObjectWriter used after finish or abort'));
    this.#accepting = false;
    const finishing = this.#finish(key);
    this.#finishing = finishing.catch(() => undefined);
    return finishing;
  }

  async #finish(key: string): Promise<'created' | 'exists'> {
    try {
      await this.#writes.settled();
      if (this.#writes.failure !== undefined) throw this.#writes.failure;
      await fsyncFile(this.fd);
      await this.#close();
      return await this.link(this.temp, key);
    } catch (err) {
      throw toStorageError(err, 'put', key, this.root);
    } finally {
      await this.#drop();
    }
  }

  /** After `finish` has begun, waits for it instead: the file is its to close and remove. */
  async abort(): Promise<void> {
    this.#accepting = false;
    if (this.#finishing !== undefined) await this.#finishing;
    else await this.#drop();
  }

  async #drop(): Promise<void> {
    await this.#writes.settled();
    await this.#close().catch(() => undefined);
    await fs.rm(this.temp, { force: true }).catch(() => undefined);
  }

  #close(): Promise<void> {
    this.#closed ??= closeFile(this.fd);
    return this.#closed;
  }
}

/** Fsyncs every folder from `top` down to `bottom` (its descendant or itself). */
async function syncDirs(top: string, bottom: string): Promise<void> {
  const dirs = [bottom];
  for (let d = bottom; d !== top && path.dirname(d) !== d; ) dirs.push((d = path.dirname(d)));
  for (const dir of dirs) await syncFolder(dir);
}

function errno(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isMissing(err: unknown): boolean {
  const code = errno(err);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

function keyConflict(key: string): AzbkError {
  return new AzbkError(
    'AZBK_BAD_INPUT',
    `Object key "${key}" conflicts with another key: on disk a key cannot also be a folder of keys.`,
  );
}

/** What an OS error means for a vault on disk, where the common words (errnoText) do not say it. */
const VAULT_ERRORS: Readonly<Record<string, string>> = { EXDEV: 'the vault spans several file systems' };

/** What to do about an OS error of the vault's disk. */
const HINTS: Readonly<Record<string, string>> = {
  ENOSPC: 'Free space on the vault disk, then run the command again.',
  EDQUOT: 'Raise the quota or free space on the vault disk.',
  EACCES: 'Check that azbk may read and write the vault folder.',
  EPERM: 'Check that azbk may read and write the vault folder.',
  EROFS: 'Mount the vault disk read-write.',
  EIO: 'The vault disk reported an I/O error; check the disk.',
  EXDEV: 'Keep the whole vault folder on one file system.',
};

/**
 * Turns an error thrown by `fs` while doing `op` on `key` into an AzbkError: AzbkErrors pass
 * through, ENAMETOOLONG becomes AZBK_BAD_INPUT, any other OS error AZBK_VAULT_UNREACHABLE with the
 * OS error as `cause` and a hint for the common ones (disk full, permissions, read-only, I/O).
 * Errors without an OS code (bugs) pass through unchanged. Messages name the key, never data.
 */
export function toStorageError(err: unknown, op: Op, key: string, root: string): unknown {
  if (isAzbkError(err)) return err;
  const code = errno(err);
  // Node's own errors (ERR_INVALID_ARG_TYPE and the like) are bugs, not storage trouble.
  if (code === undefined || code.startsWith('ERR_')) return err;
  if (code === 'ENAMETOOLONG') {
    return new AzbkError('AZBK_BAD_INPUT', `Object key "${key}" is too long for the vault's file system.`, {
      cause: err,
    });
  }
  const message = `Cannot ${op} vault object "${key}" in ${root}: ${errnoText(code, VAULT_ERRORS)}.`;
  return new AzbkError('AZBK_VAULT_UNREACHABLE', message, { cause: err, hint: HINTS[code] });
}
