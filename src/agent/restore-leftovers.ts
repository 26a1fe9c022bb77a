/**
 * Temporary files a restore could not remove. A restore removes its own when it fails or stops,
 * but not when its process dies (killed, a second Ctrl-C, power lost). So while it runs, a mark
 * under AZBK_HOME names where its temporary files go and how their names start; the next restore
 * finds the mark of one that died and removes what it left, and nothing else.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { readJsonFile, writeFileAtomic } from '../shared/files.js';

/** A folder a restore writes temporary files into: `deep` for every folder under it as well. */
export interface TempRoot {
  readonly path: string;
  readonly deep: boolean;
}

/** The names a restore gives its temporary files: `.azbk-restore-<12 hex>-<n>`. */
const PREFIX = /^\.azbk-restore-[0-9a-f]{12}-$/;

/**
 * Marks a running restore (owner-only): returns what removes the mark once it is done. The mark
 * is bookkeeping: a restore goes on without it when it cannot be written.
 */
export async function markRestore(dir: string, prefix: string, roots: readonly TempRoot[]): Promise<() => Promise<void>> {
  if (!PREFIX.test(prefix)) throw new Error(`not a restore's temporary prefix: ${prefix}`);
  const file = path.join(dir, `${prefix.slice('.azbk-restore-'.length, -1)}.json`);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, JSON.stringify({ prefix, roots }), { mode: 0o600 });
  } catch {
    return async () => {};
  }
  return () => fs.rm(file, { force: true }).catch(() => undefined);
}

/** What a mark holds, if it reads as one (a damaged or edited mark is dropped). */
function readMark(v: unknown): { prefix: string; roots: TempRoot[] } | null {
  const m = v as { prefix?: unknown; roots?: unknown } | null;
  if (typeof m !== 'object' || m === null || typeof m.prefix !== 'string' || !PREFIX.test(m.prefix) || !Array.isArray(m.roots)) return null;
  const roots: TempRoot[] = [];
  for (const r of m.roots as { path?: unknown; deep?: unknown }[]) {
    if (typeof r !== 'object' || r === null || typeof r.path !== 'string' || !path.isAbsolute(r.path) || typeof r.deep !== 'boolean') return null;
    roots.push({ path: r.path, deep: r.deep });
  }
  return { prefix: m.prefix, roots };
}

/**
 * Removes the temporary files of restores that died, as their marks name them, and the marks.
 * Only regular files whose whole name is a temporary name of that restore go; links are not
 * followed. Call it holding the job lock, so no restore it names is still running. Returns how
 * many files it removed.
 */
export async function removeLeftovers(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return 0; // none yet (or unreadable: what a mark names is left, as it was)
  }
  let removed = 0;
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const file = path.join(dir, name);
    const mark = readMark(await readJsonFile(file).catch(() => null));
    if (mark !== null) {
      const temp = new RegExp(`^${mark.prefix.replace(/\./g, '\\.')}\\d+$`);
      for (const r of mark.roots) removed += await sweep(r.path, r.deep, temp);
    }
    await fs.rm(file, { force: true }).catch(() => undefined);
  }
  return removed;
}

/** Removes the files named like `temp` in `folder` (and the folders under it when `deep`). */
async function sweep(folder: string, deep: boolean, temp: RegExp): Promise<number> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(folder, { withFileTypes: true });
  } catch {
    return 0; // gone, or not a folder (any more): nothing of the restore's is there
  }
  let removed = 0;
  for (const e of entries) {
    const p = path.join(folder, e.name);
    if (e.isFile() && temp.test(e.name)) {
      try {
        await fs.unlink(p);
        removed++;
      } catch {
        // removed meanwhile, or not ours to remove: left
      }
    } else if (deep && e.isDirectory()) removed += await sweep(p, true, temp);
  }
  return removed;
}
