/**
 * azbk's own folders on this machine: AZBK_HOME (its cache, secrets, logs, and the embedded vault
 * the quick start makes in it) and the embedded vault it backs up to, wherever that is. A backup
 * of a folder that holds them leaves them out: the vault would otherwise be stored in itself, and
 * grow by itself, at every backup. A restore does not write into them.
 *
 * They are known by device and inode, not by path: a link or a bind mount names them by another
 * path, and a name in another Unicode form is another folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface OwnFolders {
  /** the folders as they were given (for messages, and the change journal's checks by path) */
  readonly paths: readonly string[];
  /** `dev:ino` of each (see idOf) */
  readonly ids: ReadonlySet<string>;
  /** the ids as one text, the same for the same folders (to tell a change of them) */
  readonly key: string;
}

/** A folder's identity from its stat: device and inode, in the decimal form EntryStat has them. */
export function idOf(st: { readonly dev: string | bigint; readonly ino: string | bigint }): string {
  return `${String(st.dev)}:${String(st.ino)}`;
}

/** What `p` is (following links), or undefined when it is not there or cannot be examined. */
function statId(p: string): string | undefined {
  try {
    const st = fs.statSync(p, { bigint: true, throwIfNoEntry: false });
    return st === undefined ? undefined : idOf(st);
  } catch {
    return undefined;
  }
}

/** AZBK_HOME `home` and the embedded vault at `endpoint` (an https:// one is not here). */
export function ownFolders(home: string, endpoint: string): OwnFolders {
  const paths = [path.resolve(home)];
  if (endpoint.startsWith('file:')) {
    try {
      paths.push(fileURLToPath(endpoint));
    } catch {
      // not a path of this system: nothing of it is here
    }
  }
  // One that cannot be examined: a walk cannot reach it either.
  const ids = new Set(paths.flatMap((p) => statId(p) ?? []));
  return { paths, ids, key: [...ids].sort().join(',') };
}

/**
 * The own folder the path `abs` is or is in, by any path (following links), if any: each folder
 * from `abs` up that exists is compared with them.
 */
export function ownFolderOf(abs: string, own: OwnFolders): string | undefined {
  if (own.ids.size === 0) return undefined;
  for (let d = path.resolve(abs); ; d = path.dirname(d)) {
    const id = statId(d); // one not examined: the folders above it still are
    if (id !== undefined && own.ids.has(id)) return d;
    if (path.dirname(d) === d) return undefined;
  }
}

/** Whether the folder `abs` is one of them itself (one stat, following links). */
export function isOwnFolder(abs: string, own: OwnFolders): boolean {
  const id = own.ids.size === 0 ? undefined : statId(abs);
  return id !== undefined && own.ids.has(id);
}

/** Whether `abs` itself (not a link to it) is one of them: for a walk, which never follows links. */
export function isOwnEntry(abs: string, own: OwnFolders): boolean {
  if (own.ids.size === 0) return false;
  try {
    const st = fs.lstatSync(abs, { bigint: true });
    return st.isDirectory() && own.ids.has(idOf(st));
  } catch {
    return false;
  }
}
