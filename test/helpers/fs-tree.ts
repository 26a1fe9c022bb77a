/**
 * Filesystem helpers for the end-to-end tests: random files, walking a tree with its metadata,
 * comparing a restored tree with its source byte by byte, and measuring a vault folder.
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';

/** Writes `size` random bytes to `file` (in 1 MiB pieces) and returns `file`. */
export async function writeRandomFile(file: string, size: number): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const fh = await fs.open(file, 'w');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(1 << 20, size - done);
      await fh.write(randomBytes(n));
      done += n;
    }
  } finally {
    await fh.close();
  }
  return file;
}

export interface Entry {
  readonly type: 'file' | 'dir' | 'symlink' | 'other';
  /** permission bits (mode & 0o7777) */
  readonly mode: number;
  readonly mtimeNs: bigint;
  readonly size: bigint;
  /** symlink target */
  readonly target?: string;
}

function entryOf(st: BigIntStats, target?: string): Entry {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { type, mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs, size: st.size, ...(target === undefined ? {} : { target }) };
}

/**
 * Every entry under `root` (root itself as ''), keyed by its path relative to root, described by
 * lstat (symlinks are not followed).
 */
export async function walk(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const visit = async (rel: string): Promise<void> => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = await fs.lstat(abs, { bigint: true });
    const e = entryOf(st, st.isSymbolicLink() ? await fs.readlink(abs) : undefined);
    out.set(rel, e);
    if (e.type === 'dir') {
      for (const name of (await fs.readdir(abs)).sort()) await visit(rel === '' ? name : path.join(rel, name));
    }
  };
  await visit('');
  return out;
}

/** One nanosecond-precision time difference below 1 ms passes as "equal at millisecond precision". */
export const MTIME_TOLERANCE_NS = 1_000_000n;

const abs = (n: bigint) => (n < 0n ? -n : n);

/**
 * Asserts that `restored` holds exactly the entries of `source` (same names, same types), every
 * file with the same bytes, every entry with the same permission bits (not for symlinks, whose
 * mode Linux fixes at 0777) and the same modification time within 1 ms, every symlink with the
 * same target. `skipRootMtime` ignores the root folder's own time.
 */
export async function expectSameTree(source: string, restored: string, opts: { skipRootMtime?: boolean } = {}): Promise<Map<string, Entry>> {
  const a = await walk(source);
  const b = await walk(restored);
  expect([...b.keys()].sort(), 'restored entries').toEqual([...a.keys()].sort());
  for (const [rel, ea] of a) {
    const eb = b.get(rel)!;
    const where = `entry ${JSON.stringify(rel)}`;
    expect(eb.type, `${where}: type`).toBe(ea.type);
    if (ea.type !== 'symlink') expect(eb.mode.toString(8), `${where}: mode`).toBe(ea.mode.toString(8));
    if (!(rel === '' && opts.skipRootMtime)) {
      const diff = abs(eb.mtimeNs - ea.mtimeNs);
      expect(diff < MTIME_TOLERANCE_NS, `${where}: mtime ${eb.mtimeNs} vs ${ea.mtimeNs} (differ by ${diff} ns)`).toBe(true);
    }
    if (ea.type === 'symlink') expect(eb.target, `${where}: link target`).toBe(ea.target);
    if (ea.type === 'file') {
      expect(eb.size, `${where}: size`).toBe(ea.size);
      const [da, db] = await Promise.all([fs.readFile(path.join(source, rel)), fs.readFile(path.join(restored, rel))]);
      expect(da.equals(db), `${where}: content differs`).toBe(true);
    }
  }
  return a;
}

/** Asserts two files have the same bytes, reading both in 8 MiB pieces (fit for GiB files). */
export async function expectSameBytes(a: string, b: string): Promise<void> {
  const [sa, sb] = await Promise.all([fs.stat(a), fs.stat(b)]);
  expect(sb.size, `${b}: size`).toBe(sa.size);
  const [fa, fb] = await Promise.all([fs.open(a, 'r'), fs.open(b, 'r')]);
  try {
    const n = 8 << 20;
    const ba = Buffer.allocUnsafe(n);
    const bb = Buffer.allocUnsafe(n);
    for (let pos = 0; pos < sa.size; pos += n) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, n, pos), fb.read(bb, 0, n, pos)]);
      expect(rb.bytesRead).toBe(ra.bytesRead);
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) {
        throw new Error(`${a} and ${b} differ in the 8 MiB piece at ${pos}`);
      }
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/** Every regular file under `dir` (recursively), as absolute paths. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Total bytes of the regular files under `dir`. */
export async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const f of await listFiles(dir)) total += (await fs.lstat(f)).size;
  return total;
}

/** The vault objects under `prefix` (e.g. 'packs', 'machines'), as absolute paths. */
export async function vaultObjects(vaultDir: string, prefix: string): Promise<string[]> {
  try {
    return await listFiles(path.join(vaultDir, prefix));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** True when `p` exists (lstat). */
export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** `dest` for `original` restored under `target` (TARGET/<original absolute path>). */
export function under(target: string, original: string): string {
  return path.join(target, original);
}

/** Flips one bit of the byte at `offset` in `file`, in place. */
export async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await fs.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] = b[0]! ^ 0x01;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}
