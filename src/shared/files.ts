/** Small file helpers shared by the agent and the vault. */
import { randomBytes } from 'node:crypto';
import fsCb from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AzbkError } from './errors.js';

/**
 * Reads a small text file the user names (a passphrase or credentials file): a regular file (a
 * pipe or device is refused, never waited on), at most `limit` bytes, valid UTF-8 (a byte order
 * mark is dropped). `what` names it in the errors, which are AZBK_BAD_INPUT.
 */
export async function readSmallTextFile(file: string, limit: number, what: string): Promise<string> {
  const bad = (why: string) => new AzbkError('AZBK_BAD_INPUT', `Cannot read the ${what} ${file} (${why}).`);
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(file, fsCb.constants.O_RDONLY | (fsCb.constants.O_NONBLOCK ?? 0));
    const st = await fh.stat();
    if (!st.isFile()) throw bad('not a regular file');
    const buf = Buffer.alloc(limit + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > limit) throw bad(`larger than ${limit} bytes`);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, bytesRead));
    return text.startsWith('\uFEFF') ? text.slice(1) : text;
  } catch (err) {
    if (err instanceof AzbkError) throw err;
    throw bad(err instanceof TypeError ? 'not UTF-8 text' : (errnoCode(err) ?? 'error'));
  } finally {
    await fh?.close();
  }
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
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'wx', opts.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
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

/** Reads and parses a JSON file; null when it does not exist. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return JSON.parse(text) as unknown;
}

/** Like readJsonFile, but an unreadable or malformed file throws `damaged()` instead. */
export async function readLocalJson(file: string, damaged: () => Error): Promise<unknown> {
  try {
    return await readJsonFile(file);
  } catch {
    throw damaged();
  }
}

/** The errno code of a Node.js system error, if any. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : undefined;
}
