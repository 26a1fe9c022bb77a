/**
 * Temporary files a restore could not remove. A restore removes its own when it fails or stops,
 * but not when its process dies (killed, a second Ctrl-C, power lost). So while it runs, a mark
 * under AZBK_HOME names where its temporary files go and how their names start; the next restore
 * finds the mark of one that died and removes what it left, and nothing else. Beside the mark, a
 * list of the folders the restore makes (`<id>.dirs`, one JSON string a line, written before
 * each is made): a folder is made owner-only and gets its mode at the end, so one that died
 * leaves them so, and the same restore run again gives them their modes (see RestoreJob); a
 * restore that gives them none (another one) lists them for the next. The list also names the
 * existing folders the restore opened to its owner (a path and their mode, a JSON array a line),
 * which the next restore gives their modes back at once.
 */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, makeFoldersSync, readJsonFile, writeFileAtomic } from '../shared/files.js';
import { processAlive, processIdentity } from '../shared/process.js';
import { OPEN_FOLDER, openedToOwner } from './restore-files.js';

/** A folder a restore writes temporary files into: `deep` for every folder under it as well. */
export interface TempRoot {
  readonly path: string;
  readonly deep: boolean;
}

/** A running restore's mark. */
export interface RestoreMark {
  /** a folder found to receive temporary files after the mark was made (an item restored as a copy) */
  add(root: TempRoot): Promise<void>;
  /** folders the restore makes (owner-only until it ends), listed before they are made: added to the mark's list of them */
  folders(paths: readonly string[]): Promise<void>;
  /**
   * an existing folder of mode `mode` that the restore is about to open to its owner (see
   * RestoreJob): should the restore die, the next one gives it its mode back
   */
  opened(folder: string, mode: number): Promise<void>;
  /**
   * the restore is over: its temporary files are gone. Folders a restore that died made, which
   * this one did not give modes to (`handOn`), stay listed for the next restore.
   */
  remove(handOn?: readonly string[]): Promise<void>;
}

/** A mark's list of folders, beside it. */
const dirsOf = (markFile: string) => markFile.replace(/\.json$/, '.dirs');

/** Removes a mark and its list of folders (the list first: a list without its mark is dropped as well). */
async function removeMark(markFile: string): Promise<void> {
  await fs.rm(dirsOf(markFile), { force: true }).catch(() => undefined);
  await fs.rm(markFile, { force: true }).catch(() => undefined);
}

/** A list of folders larger than this is not read (a restore of some ten million folders): they keep the owner-only mode. */
const MAX_DIRS_BYTES = 256 * 1024 * 1024;

/** The names a restore gives its temporary files: `.azbk-restore-<12 hex>-<n>`. */
const PREFIX = /^\.azbk-restore-[0-9a-f]{12}-$/;

/**
 * Marks a running restore (owner-only). The mark is bookkeeping: a restore goes on without it
 * when it cannot be written.
 */
export async function markRestore(dir: string, prefix: string, roots: readonly TempRoot[]): Promise<RestoreMark> {
  if (!PREFIX.test(prefix)) throw new Error(`not a restore's temporary prefix: ${prefix}`);
  const file = path.join(dir, `${prefix.slice('.azbk-restore-'.length, -1)}.json`);
  const all = roots.map((r) => ({ path: path.resolve(r.path), deep: r.deep }));
  const owner = { pid: process.pid, identity: processIdentity(process.pid) };
  let written = false;
  const write = async () => {
    try {
      makeFoldersSync(dir, 0o700);
      await writeFileAtomic(file, JSON.stringify({ prefix, roots: all, ...owner }), { mode: 0o600 });
      written = true;
    } catch {
      // a restore does not depend on its mark
    }
  };
  await write();
  // Kept open: a folder is listed before it is made, one write each.
  let list: number | undefined;
  const append = async (lines: readonly unknown[]) => {
    if (!written || lines.length === 0) return;
    try {
      list ??= fsSync.openSync(dirsOf(file), 'a', 0o600);
      fsSync.writeSync(list, lines.map((l) => JSON.stringify(l) + '\n').join(''));
    } catch {
      // bookkeeping, as the mark is: such folders would keep the mode the restore left
    }
  };
  const closeList = () => {
    if (list === undefined) return;
    try {
      fsSync.closeSync(list);
    } catch {
      // nothing was buffered
    }
    list = undefined;
  };
  return {
    add: async (root) => {
      all.push({ path: path.resolve(root.path), deep: root.deep });
      if (written) await write();
    },
    folders: (paths) => append(paths.map((p) => path.resolve(p))),
    opened: (folder, mode) => append([[path.resolve(folder), mode & 0o7777]]),
    remove: async (handOn = []) => {
      closeList();
      if (!written) return;
      if (handOn.length === 0) return removeMark(file);
      // Left as the mark of a restore that is over (no process, nothing to sweep), naming them.
      try {
        await writeFileAtomic(dirsOf(file), handOn.map((p) => JSON.stringify(p) + '\n').join(''), { mode: 0o600 });
        await writeFileAtomic(file, JSON.stringify({ prefix, roots: [], pid: null, identity: null }), { mode: 0o600 });
      } catch {
        await removeMark(file);
      }
    },
  };
}

interface Mark {
  readonly prefix: string;
  readonly roots: TempRoot[];
  readonly pid: number | null;
  readonly identity: string | null;
}

/** What a mark holds, if it reads as one (a damaged or edited mark is dropped). */
function readMark(v: unknown): Mark | null {
  const m = v as { prefix?: unknown; roots?: unknown; pid?: unknown; identity?: unknown } | null;
  if (typeof m !== 'object' || m === null || typeof m.prefix !== 'string' || !PREFIX.test(m.prefix) || !Array.isArray(m.roots)) return null;
  const roots: TempRoot[] = [];
  for (const r of m.roots as { path?: unknown; deep?: unknown }[]) {
    if (typeof r !== 'object' || r === null || typeof r.path !== 'string' || !path.isAbsolute(r.path) || typeof r.deep !== 'boolean') return null;
    roots.push({ path: r.path, deep: r.deep });
  }
  const pid = Number.isSafeInteger(m.pid) && (m.pid as number) > 0 ? (m.pid as number) : null;
  return { prefix: m.prefix, roots, pid, identity: typeof m.identity === 'string' ? m.identity : null };
}

/** True when the restore that made the mark may still be running (another process of the same pid and start). */
function maybeRunning(m: Mark): boolean {
  if (m.pid === null || m.pid === process.pid || !processAlive(m.pid)) return false;
  const now = processIdentity(m.pid);
  return m.identity === null || now === null || now === m.identity;
}

/** What removeLeftovers found of restores that died. */
export interface Leftovers {
  /** temporary files and links removed */
  readonly removed: number;
  /** the folders those restores made (still owner-only, unless changed since) */
  readonly folders: ReadonlySet<string>;
}

/**
 * Removes the temporary files and links of restores that died, as their marks name them, and the
 * marks, and reads the folders they made. Only entries whose whole name is a temporary name of that
 * restore go; links are not followed. A mark stays while its process runs, and when a folder it
 * names could not be read or an entry removed (tried again next time). Call it holding the job
 * lock.
 */
export async function removeLeftovers(dir: string): Promise<Leftovers> {
  let names: string[];
  const folders = new Set<string>();
  try {
    names = await fs.readdir(dir);
  } catch {
    return { removed: 0, folders }; // none yet (or unreadable: what a mark names is left, as it was)
  }
  let removed = 0;
  for (const name of names) {
    const file = path.join(dir, name);
    // A mark's own temporary file, left by a restore that died while writing it.
    if (name.endsWith('.tmp')) await fs.rm(file, { force: true }).catch(() => undefined);
    // A list of folders whose mark is gone (removed just after it).
    if (name.endsWith('.dirs') && !names.includes(name.replace(/\.dirs$/, '.json'))) await fs.rm(file, { force: true }).catch(() => undefined);
    if (!name.endsWith('.json')) continue;
    const mark = readMark(await readJsonFile(file).catch(() => null));
    if (mark !== null && maybeRunning(mark)) continue;
    let whole = true;
    if (mark !== null) {
      const temp = new RegExp(`^${mark.prefix.replace(/\./g, '\\.')}\\d+$`);
      for (const r of mark.roots) {
        const s = await sweep(r.path, r.deep, temp);
        removed += s.removed;
        whole &&= s.whole;
      }
      for (const f of await listedFolders(dirsOf(file))) {
        if (f.mode === undefined) folders.add(f.path);
        else giveBackMode(f.path, f.mode);
      }
    }
    if (whole) await removeMark(file);
  }
  return { removed, folders };
}

/**
 * The folders a list names: made by the restore (a path), or existing ones it opened (a path and
 * the mode they had). Absolute paths only; anything else in it is dropped.
 */
async function listedFolders(file: string): Promise<{ path: string; mode?: number }[]> {
  let text: string;
  try {
    if ((await fs.stat(file)).size > MAX_DIRS_BYTES) return [];
    text = await fs.readFile(file, 'utf8');
  } catch {
    return [];
  }
  const out: { path: string; mode?: number }[] = [];
  for (const line of text.split('\n')) {
    try {
      const p: unknown = JSON.parse(line);
      if (typeof p === 'string' && path.isAbsolute(p)) out.push({ path: p });
      const [f, mode] = Array.isArray(p) ? (p as unknown[]) : [];
      if (typeof f === 'string' && path.isAbsolute(f) && Number.isInteger(mode) && (mode as number) >= 0 && (mode as number) <= 0o7777) out.push({ path: f, mode: mode as number });
    } catch {
      // a line cut short by the process dying, or none
    }
  }
  return out;
}

/**
 * Gives an existing folder a restore that died had opened to its owner its own mode back: only
 * while it is still ours and as the restore left it (a mode changed since is the user's).
 */
function giveBackMode(folder: string, mode: number): void {
  let fd: number;
  try {
    fd = fsSync.openSync(folder, OPEN_FOLDER); // never through a link put in its place
  } catch {
    return; // gone, or not a folder any more
  }
  try {
    const st = fsSync.fstatSync(fd);
    if (st.isDirectory() && (st.mode & 0o7777) === openedToOwner(mode) && st.uid === process.getuid?.()) fsSync.fchmodSync(fd, mode);
  } catch {
    // left as it is: the restore that opened it said where it was going
  } finally {
    fsSync.closeSync(fd);
  }
}

/** Folders that are not there (any more) hold nothing of a restore's. */
const NOTHING_THERE = new Set(['ENOENT', 'ENOTDIR']);

/**
 * Removes the entries named like `temp` in `folder` (and in the folders under it when `deep`);
 * `whole` is false when a folder could not be read or an entry removed.
 */
async function sweep(folder: string, deep: boolean, temp: RegExp): Promise<{ removed: number; whole: boolean }> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(folder, { withFileTypes: true });
  } catch (err) {
    return { removed: 0, whole: NOTHING_THERE.has(errnoCode(err) ?? '') };
  }
  let removed = 0;
  let whole = true;
  for (const e of entries) {
    const p = path.join(folder, e.name);
    if ((e.isFile() || e.isSymbolicLink()) && temp.test(e.name)) {
      try {
        await fs.unlink(p); // a link itself, never what it points to
        removed++;
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') whole = false;
      }
    } else if (deep && e.isDirectory()) {
      const s = await sweep(p, true, temp);
      removed += s.removed;
      whole &&= s.whole;
    }
  }
  return { removed, whole };
}
