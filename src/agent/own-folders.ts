/**
 * azbk's own folders on this machine: AZBK_HOME (its cache, secrets, logs, and the embedded vault
 * the quick start makes in it) and the embedded vault it backs up to, wherever that is. A backup
 * of a folder that holds them leaves them out: the vault would otherwise be stored in itself, and
 * grow by itself, at every backup. A restore does not write into them.
 */
import { fileURLToPath } from 'node:url';
import { slashed } from './folder-listing.js';
import { homeSpellings } from './journal.js';
import { isAtOrBelow } from './fspath.js';

/** Every path of AZBK_HOME `home` and of the embedded vault at `endpoint` (see homeSpellings), as seen from `roots` too. */
export function ownFolders(home: string, endpoint: string, roots: Iterable<string>): string[] {
  const list = [...roots];
  const out = new Set(homeSpellings(home, list));
  if (endpoint.startsWith('file:')) {
    try {
      for (const p of homeSpellings(fileURLToPath(endpoint), list)) out.add(p);
    } catch {
      // not a path of this system: nothing of it is here to leave out
    }
  }
  return [...out];
}

/** `folders` as exclusions see paths (see compileExcludes' `exact`). */
export function excludedForm(folders: readonly string[]): string[] {
  return folders.map(slashed);
}

/** The folder of `folders` that `abs` is or is in, if any. */
export function ownFolderOf(abs: string, folders: readonly string[]): string | undefined {
  return folders.find((f) => isAtOrBelow(abs, f));
}
