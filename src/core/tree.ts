/**
 * Tree blobs: one directory listing each, with the metadata a restore needs. Names are validated
 * when read, since a tree comes from the vault and a hostile one must not steer a restore outside
 * its target (no '/', NUL, '.', '..' or empty names; no duplicates).
 */
import { isHex64, type BlobId } from './ids.js';
import { AzbkError } from '../shared/errors.js';

interface NodeBase {
  readonly name: string;
  /** permission bits (mode & 0o7777) */
  readonly mode: number;
  /** modification time in nanoseconds since the epoch, as a decimal string */
  readonly mtime: string;
}
export interface FileNode extends NodeBase {
  readonly type: 'file';
  readonly size: number;
  readonly content: readonly BlobId[];
  /** for a file with more than one hard link: "<device>:<inode>", the same for each of its names */
  readonly link?: string;
}
export interface DirNode extends NodeBase {
  readonly type: 'dir';
  readonly subtree: BlobId;
}
export interface SymlinkNode extends NodeBase {
  readonly type: 'symlink';
  readonly target: string;
}
export type TreeNode = FileNode | DirNode | SymlinkNode;

export interface Tree {
  readonly version: 1;
  readonly nodes: readonly TreeNode[];
}

/** Serialises a tree; nodes are sorted by name so equal directories give equal blobs. */
export function encodeTree(nodes: readonly TreeNode[]): Buffer {
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Buffer.from(JSON.stringify({ version: 1, nodes: sorted } satisfies Tree));
}

/**
 * True for a name that cannot climb out of the folder it is joined to: not empty, '.' or '..', and
 * without '/' or NUL. A backslash is an ordinary character on POSIX; `isPortableName` says whether
 * a name is also safe on Windows.
 */
export function isSafeName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= 4096 && name !== '.' && name !== '..' && !/[/\0]/.test(name);
}

/** True for a safe name that Windows can also create (no backslash, colon or other reserved character). */
export function isPortableName(name: string): boolean {
  return isSafeName(name) && !/[\\:*?"<>|]/.test(name) && !/[. ]$/.test(name);
}

function bad(why: string): AzbkError {
  return new AzbkError('AZBK_VAULT_CORRUPT', `A directory listing in the vault is damaged: ${why}.`);
}

const MTIME = /^-?\d{1,22}$/;
const LINK = /^\d{1,20}:\d{1,20}$/;

/** Parses and validates an untrusted tree blob. */
export function decodeTree(data: Uint8Array): Tree {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  const t = v as { version?: unknown; nodes?: unknown };
  if (t.version !== 1 || !Array.isArray(t.nodes)) throw bad('unknown format');
  const seen = new Set<string>();
  for (const n of t.nodes as Record<string, unknown>[]) {
    if (typeof n !== 'object' || n === null) throw bad('bad entry');
    if (!isSafeName(n.name)) throw bad('unsafe name');
    if (seen.has(n.name)) throw bad('duplicate name');
    seen.add(n.name);
    if (typeof n.mode !== 'number' || !Number.isInteger(n.mode) || n.mode < 0 || n.mode > 0o7777) throw bad('bad mode');
    if (typeof n.mtime !== 'string' || !MTIME.test(n.mtime)) throw bad('bad time');
    switch (n.type) {
      case 'file':
        if (typeof n.size !== 'number' || !Number.isSafeInteger(n.size) || n.size < 0) throw bad('bad size');
        if (!Array.isArray(n.content) || !n.content.every(isHex64)) throw bad('bad content list');
        if (n.link !== undefined && (typeof n.link !== 'string' || !LINK.test(n.link))) throw bad('bad hard link');
        break;
      case 'dir':
        if (!isHex64(n.subtree)) throw bad('bad subtree');
        break;
      case 'symlink':
        if (typeof n.target !== 'string' || n.target.length === 0 || n.target.includes('\0')) throw bad('bad link target');
        break;
      default:
        throw bad('unknown entry type');
    }
  }
  return v as Tree;
}
