/**
 * A folder as a backup sees it: its entries with what lstat says of them, in name order, and the
 * fingerprint that tells whether anything in it changed since a backup stored it (see
 * file-cache.ts). The backup's walk and the scan worker that checks folders ahead of it
 * (pipeline/scan-worker.ts) list and compare folders with these same functions.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { Excluded } from '../core/exclude.js';
import type { KnownFile } from './checkpoint.js';
import { childPath } from './fspath.js';
import { devText, REPLACED, type FileStat } from './pipeline/protocol.js';
import { idOf } from './own-folders.js';

/**
 * Folders deeper than this (counted from the root) are skipped and listed. The walk goes down one
 * call per folder, and a tree made deep enough (anyone who may write in an included folder can
 * make one) would otherwise overflow the stack and fail the whole backup: about 1,100 levels did.
 * No tree people keep comes near: each level takes at least two of a path's 4,096 bytes.
 */
export const MAX_FOLDER_DEPTH = 512;

/** What the backup keeps of an lstat: the kind of entry, its permission bits and its identity. */
export interface EntryStat extends FileStat {
  readonly kind: 'file' | 'dir' | 'symlink' | 'other';
}

/** A folder's entry as lstat saw it. */
export interface Listed {
  readonly abs: string;
  readonly name: string;
  readonly st: EntryStat;
}

/**
 * One object of eight fields for each entry of every folder a backup lists (a folder of 200,000
 * entries holds them all at once): FileStat's fields, written out (a spread put them in a second,
 * out-of-object array).
 */
export function entryStat(st: fs.BigIntStats): EntryStat {
  const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { kind, size: Number(st.size), mtime: st.mtimeNs.toString(), ctime: st.ctimeNs.toString(), ino: st.ino.toString(), mode: Number(st.mode & 0o7777n), dev: devText(st.dev), nlink: Number(st.nlink) };
}

/**
 * The entries of the folder `abs` in name order, each with its lstat (a failed readdir throws).
 * With `self` (the folder's own lstat, as its parent's listing has it), an error with code
 * REPLACED when `abs` names another folder by now.
 * An entry that cannot be examined is left out and handed to `skip` with its error, or with why
 * as text; `complete` is false then. An entry `excluded` leaves out is neither examined nor listed.
 */
export function listFolder(
  abs: string,
  skip: (p: string, why: unknown) => void,
  self?: EntryStat,
  excluded: Excluded | null = null,
  own: ReadonlySet<string> = NONE,
): { listed: Listed[]; complete: boolean } {
  if (self === undefined || process.platform === 'win32') return listAt(abs, abs, skip, excluded, own);
  // Opened without following a link, and checked to be the folder its parent listed: a folder
  // swapped for a link (to one outside the included folders, say) is never listed in its place.
  const fd = fs.openSync(abs, DIR_FLAGS);
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isDirectory() || st.ino.toString() !== self.ino || st.dev.toString() !== self.dev) {
      throw Object.assign(new Error(`${abs} was replaced during the backup`), { code: REPLACED });
    }
    // On Linux the folder opened is listed, and its entries examined, through its descriptor: so
    // also when a folder above it is swapped for a link meanwhile.
    return listAt(abs, BY_DESCRIPTOR ? `/proc/self/fd/${fd}` : abs, skip, excluded, own);
  } finally {
    fs.closeSync(fd);
  }
}

/** A path as exclusions see it: with `/` between names (a Windows path keeps its drive, C:/Users). */
export const slashed = process.platform === 'win32' ? (p: string) => p.replaceAll('\\', '/') : (p: string) => p;

const DIR_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);
const BY_DESCRIPTOR = process.platform === 'linux' && fs.existsSync('/proc/self/fd');

const NONE: ReadonlySet<string> = new Set();

/**
 * listFolder's work: the entries of the folder `abs`, read through the path `at` (abs, or its
 * descriptor), but for the folders of `own` (`dev:ino`: azbk's own, see own-folders.ts).
 */
function listAt(abs: string, at: string, skip: (p: string, why: unknown) => void, excluded: Excluded | null, own: ReadonlySet<string>): { listed: Listed[]; complete: boolean } {
  let names = fs.readdirSync(at);
  const dir = slashed(abs);
  const kept = excluded === null ? null : (name: string) => !excluded(dir === '/' ? `/${name}` : `${dir}/${name}`, name);
  let unnamed = 0;
  if (names.some((n) => n.includes('\uFFFD'))) [names, unnamed] = decodableNames(abs, at, skip, kept);
  if (kept !== null) names = names.filter(kept);
  names.sort();
  const listed: Listed[] = [];
  let left = 0;
  for (const name of names) {
    const p = childPath(abs, name); // a name from readdir is one segment
    try {
      const st = entryStat(fs.lstatSync(at === abs ? p : `${at}/${name}`, { bigint: true }));
      if (st.kind === 'dir' && own.size > 0 && own.has(idOf(st))) left++;
      else listed.push({ abs: p, name, st });
    } catch (err) {
      skip(p, err);
    }
  }
  return { listed, complete: listed.length + left === names.length && unnamed === 0 };
}

/**
 * The names in `abs` that are text, and how many are not. A name that is not valid UTF-8 reads
 * as text with U+FFFD in place of its bad bytes: under that name the file cannot be opened, and
 * it could even be another file's (whose name has U+FFFD itself). Such names are skipped, said so;
 * but one the exclusions leave out (`kept` false, as they see it with U+FFFD: `*.tmp` matches
 * one ending in .tmp) is left out as any other, without a word.
 */
function decodableNames(abs: string, at: string, skip: (p: string, why: unknown) => void, kept: ((name: string) => boolean) | null): [string[], number] {
  const names: string[] = [];
  let bad = 0;
  for (const raw of fs.readdirSync(at, { encoding: 'buffer' })) {
    const name = raw.toString('utf8');
    if (Buffer.from(name, 'utf8').equals(raw)) names.push(name);
    else if (kept === null || kept(name)) {
      bad++;
      // Shown with U+FFFD in place of its bad bytes: its bytes tell which file it is.
      skip(childPath(abs, name), `its name is not valid UTF-8 text, which azbk cannot store (its bytes: ${raw.toString('hex').replace(/(..)(?!$)/g, '$1 ')})`);
    }
  }
  return [names, bad];
}

/** How much of a fingerprint's text is gathered before it is hashed: a folder's whole text was a string of millions of pieces. */
const FINGERPRINT_BATCH = 64 * 1024;

/**
 * What a folder's fingerprint covers: each entry's name, type, mode, times, size and inode (for a
 * file read in this job, the metadata it had when read: `known`), and each subfolder's tree. Null
 * when a subfolder could not be backed up.
 */
export function fingerprint(
  listed: readonly Listed[],
  subtrees: ReadonlyMap<string, { readonly tree: string } | null>,
  known?: (name: string) => KnownFile | undefined,
): Buffer | null {
  const hash = createHash('sha256');
  let text = '';
  for (const { name, st } of listed) {
    let sub = '';
    if (st.kind === 'dir') {
      const f = subtrees.get(name);
      if (f == null) return null;
      sub = f.tree;
    }
    const id = known?.(name) ?? st;
    // A hard-linked file's listing entry names its device too (see backup.ts fileNode), which a
    // remount may change without touching the file.
    const dev = st.kind === 'file' && st.nlink > 1 ? `@${st.dev}` : '';
    text += `${name}\0${st.kind}\0${st.mode}\0${id.mtime}\0${id.ctime}\0${id.ino}${dev}\0${id.size}\0${sub}\n`;
    if (text.length >= FINGERPRINT_BATCH) {
      hash.update(text);
      text = '';
    }
  }
  return hash.update(text).digest();
}

/** A folder's own inode and ctime: a folder moved or made anew in its place differs. */
export function folderIdentity(st: EntryStat): string {
  return `${st.ino}:${st.ctime}`;
}
