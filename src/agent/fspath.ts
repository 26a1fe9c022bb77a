/**
 * Absolute paths as segment lists, the form recovery points store them in. POSIX `/a/b` is
 * ['a','b']; Windows `C:\a\b` is ['C:','a','b']. Restoring under a target folder maps a drive
 * letter to a folder (`TARGET/C/a/b`).
 */
import path from 'node:path';

const isWin = process.platform === 'win32';

/** Segments of an absolute path (resolved against the current folder first). */
export function toSegments(p: string): string[] {
  const abs = path.resolve(p);
  if (isWin) {
    const parsed = path.win32.parse(abs);
    const drive = parsed.root.replace(/[\\/]+$/, '');
    return [drive, ...abs.slice(parsed.root.length).split(/[\\/]+/).filter(Boolean)];
  }
  return abs.split('/').filter(Boolean);
}

/** The absolute path of a segment list on this platform. */
export function fromSegments(segs: readonly string[]): string {
  if (isWin) {
    const [drive = 'C:', ...rest] = segs;
    return path.win32.join(drive + '\\', ...rest);
  }
  return '/' + segs.join('/');
}

/**
 * Where a path is restored: at its original place, or under `target`, where the drive of a path
 * backed up on Windows (`windows`) becomes a folder (`C:` -> `C`). Only there: on other systems a
 * first folder named `x:` is a name like any other, and must not land on the folder `x`.
 */
export function restoreLocation(segs: readonly string[], target: string | null, windows: boolean): string {
  if (target === null) return fromSegments(segs);
  return path.join(target, ...segs.map((s, i) => (i === 0 && windows ? s.replace(/^([A-Za-z]):$/, '$1') : s)));
}

/** Display form of a segment list: the original absolute path. */
export function displayPath(segs: readonly string[]): string {
  return fromSegments(segs);
}

/** `name` (one safe segment) in the folder `dir` (an absolute, normalized path): path.join without its cost. */
export function childPath(dir: string, name: string): string {
  return dir.endsWith(path.sep) ? dir + name : dir + path.sep + name;
}
