/**
 * The folders a restore writes into, made and checked so that no other user can send the restore
 * elsewhere: a folder on the way that another user could change (swap for a link, between the
 * restore's check and its writes) is refused, as is a link on the way that is not the user's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { errnoCode, errnoText, makeFoldersSync } from '../shared/files.js';
import { childPath } from './fspath.js';

/**
 * Makes the folder a selected item is restored into, one folder at a time, and never through a
 * link someone else could have put on the way. Under a --target folder (made as given, links in
 * its own path included) no link is followed: the restore makes everything below it. In place, a
 * link on the way is followed only when it belongs to this user or to root, as the kernel's
 * protected_symlinks does in shared folders. A file, a link or a permission in the way is bad input.
 */
export function makeParents(dir: string, target: string | null): void {
  const cannot = (at: string, why: string) => cannotCreate(at, why, target === null ? 'Restore with --target FOLDER, or remove what is in the way.' : undefined);
  const root = target === null ? path.parse(dir).root : path.resolve(target);
  let at = root;
  for (const seg of path.relative(root, dir).split(path.sep).filter((s) => s !== '')) {
    at = childPath(at, seg);
    let st = fs.lstatSync(at, { throwIfNoEntry: false });
    if (st === undefined) {
      try {
        fs.mkdirSync(at);
      } catch (err) {
        throw creating(at, err);
      }
      continue; // made here: this user's
    }
    if (st.isSymbolicLink()) {
      if (target !== null || !ownedByUserOrRoot(st)) throw cannot(at, `it is a link${target === null ? ' that belongs to another user' : ''}; a restore does not write through it`);
      const real = fs.statSync(at, { throwIfNoEntry: false });
      if (real?.isDirectory() !== true) throw cannot(at, 'a link to something other than a folder is in the way');
      st = real;
    } else if (!st.isDirectory()) throw cannot(at, 'a file is in the way');
    const why = untrusted(st);
    if (why !== null) throw cannot(at, why);
  }
}

/**
 * Makes the --target folder as given (links in its own path are the user's to name); refused when
 * a folder on its way could be swapped by another user (see untrusted). The folders that exist
 * are checked before any is made, so a refused target leaves nothing behind; the whole way is
 * checked again once made.
 */
export function makeTarget(target: string): void {
  const abs = path.resolve(target);
  let existing = abs;
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  if (existing !== abs) trustedWay(existing, abs);
  try {
    // Never writable by others, whatever the umask (0 would make them so, and refused once made).
    makeFoldersSync(abs, 0o755);
  } catch (err) {
    throw creating(abs, err);
  }
  trustedWay(abs, abs);
  // One that takes nothing new (a read-only file system, a folder this user may not write in) is
  // refused as a target, as one that cannot be made is, rather than failing every item in it.
  try {
    fs.accessSync(abs, fs.constants.W_OK);
  } catch (err) {
    const code = errnoCode(err);
    throw new AzbkError('AZBK_BAD_INPUT', `Cannot write in the folder ${abs} to restore into (${code === undefined ? String(err) : errnoText(code)}).`, { hint: TARGET_HINT });
  }
}

/**
 * Refuses `target` when `dir` (that exists), or a folder above it, is untrusted (see untrusted):
 * above it as written, and above the folder it really is. A link on the way as written is only as
 * safe as the folder it is in: whoever may rename what is in that folder may point it elsewhere.
 */
function trustedWay(dir: string, target: string): void {
  const real = fs.realpathSync(dir);
  const way = new Set<string>();
  for (const start of [path.resolve(dir), real]) {
    for (let d = start; ; d = path.dirname(d)) {
      way.add(d);
      if (path.dirname(d) === d) break;
    }
  }
  for (const d of way) {
    const why = untrusted(fs.statSync(d));
    if (why !== null) throw cannotCreate(dir === target ? real : target, `${d}: ${why}`, 'Choose a --target folder that only you or root can change, or restore as the user who owns it.');
  }
}

/**
 * Why a restore must not write in or below this existing folder, or null. Whoever can rename what
 * is in a folder can swap a folder the restore just made for a link, between the restore's check
 * and its writes: so a folder on the way must belong to this user or to root, and others may
 * write in it only if it is sticky (/tmp), where they cannot rename what is not theirs. Not on
 * Windows, whose permissions are access lists the mode does not show: Node reports every folder
 * there as writable by all (0666), which would refuse every restore.
 */
export function untrusted(st: Pick<fs.Stats, 'mode' | 'uid'>, platform: NodeJS.Platform = process.platform): string | null {
  if (platform === 'win32') return null;
  if (!ownedByUserOrRoot(st)) return `it belongs to another user (uid ${st.uid}), who could send the restore elsewhere`;
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0) return 'anyone may rename what is in it, and so send the restore elsewhere';
  return null;
}

/** What a --target folder that cannot be made or written in is told to do. */
const TARGET_HINT = 'Choose a --target folder that can be created and written to.';

function cannotCreate(at: string, why: string, hint = TARGET_HINT): AzbkError {
  return new AzbkError('AZBK_BAD_INPUT', `Cannot create the folder ${at} to restore into (${why}).`, { hint });
}

/**
 * A failed mkdir as the error to report: the folder to restore into cannot be made there (a file,
 * a permission, a full or read-only file system, a loop of links in the way), whatever the OS
 * error; an error of azbk's own as it is.
 */
function creating(at: string, err: unknown): unknown {
  const code = errnoCode(err);
  if (isAzbkError(err) || code === undefined) return err;
  if (code === 'ENOTDIR' || code === 'EEXIST') return cannotCreate(at, 'a file is in the way');
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return cannotCreate(at, code);
  if (code === 'ENAMETOOLONG') return cannotCreate(at, 'the path or a name in it is too long for the file system');
  // (see makeFoldersSync)
  if (code === 'ENOENT') return cannotCreate(at, 'a folder on the way is missing, or takes no new folders: a broken link, or a file system such as /proc');
  if (code === 'ELOOP') return cannotCreate(at, 'a link on the way leads round in a loop');
  return cannotCreate(at, errnoText(code));
}

/** Whether this user or root owns it (always, where there are no such owners: Windows). */
function ownedByUserOrRoot(st: Pick<fs.Stats, 'uid'>): boolean {
  const uid = process.getuid?.();
  return uid === undefined || st.uid === 0 || st.uid === uid;
}

/**
 * Makes a folder whose parent exists, owner-only until the restore gives it its mode at the end
 * (nobody else can put a link in it meanwhile); false if something is at that path already.
 */
export function makeDir(p: string): boolean {
  try {
    fs.mkdirSync(p, 0o700);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
}
