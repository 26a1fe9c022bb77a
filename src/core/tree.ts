/**
 * Tree blobs: one directory listing each, with the metadata a restore needs. Names are validated
 * when read, since a tree comes from the vault and a hostile one must not steer a restore outside
 * its target (no '/', NUL, '.', '..' or empty names; no duplicates).
 *
 * A listing larger than a blob may be (a folder of a few hundred thousand entries) is stored in
 * parts (version 2): each holds a run of the entries, in name order, and the id of the next part;
 * the folder's listing is the first part. A listing that fits is one blob (version 1), so that
 * equal folders give equal blobs as before.
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
  /** 1: a whole listing; 2: a part of one (see the module comment) */
  readonly version: 1 | 2;
  readonly nodes: readonly TreeNode[];
  /** a part's next part; none in the last */
  readonly next?: BlobId;
}

const byName = (a: TreeNode, b: TreeNode) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Serialises a tree; nodes are sorted by name so equal directories give equal blobs. */
export function encodeTree(nodes: readonly TreeNode[]): Buffer {
  return Buffer.from(JSON.stringify({ version: 1, nodes: [...nodes].sort(byName) } satisfies Tree));
}

/** Bytes a part takes besides its entries: `{"version":2,"nodes":[],"next":"<64 hex>"}`, and room to spare. */
const PART_OVERHEAD = 128;

/**
 * A listing too large for one blob of `limit` bytes in parts (see the module comment), each of
 * them the entries (sorted by name) that go together in one part of at most `limit` bytes; and the
 * entries that alone would not fit in a part (a file of about a terabyte: its list of chunk ids),
 * which are in none.
 */
export function splitTree(nodes: readonly TreeNode[], limit: number): { parts: TreeNode[][]; tooLarge: TreeNode[] } {
  const room = limit - PART_OVERHEAD;
  const parts: TreeNode[][] = [];
  const tooLarge: TreeNode[] = [];
  let part: TreeNode[] = [];
  let bytes = 0;
  for (const n of [...nodes].sort(byName)) {
    const size = Buffer.byteLength(JSON.stringify(n)) + 1; // and its comma
    if (size > room) {
      tooLarge.push(n);
      continue;
    }
    if (bytes + size > room) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(n);
    bytes += size;
  }
  if (part.length > 0 || parts.length === 0) parts.push(part);
  return { parts, tooLarge };
}

/** Serialises a part of a listing (see splitTree); `next` is the id of the part after it. */
export function encodeTreePart(nodes: readonly TreeNode[], next: BlobId | undefined): Buffer {
  const part: Tree = next === undefined ? { version: 2, nodes } : { version: 2, nodes, next };
  return Buffer.from(JSON.stringify(part));
}

/** At most this many parts in one listing (64 MiB each): a chain longer than that is damaged (a loop, say). */
const MAX_PARTS = 4096;

/**
 * The whole listing whose first blob is `first` (id `id`): itself when it is whole, else its
 * entries with those of each part after it, read by `part` (which decodes and checks each
 * one), as one version-1 tree. A part that is not one, a loop or a name found in two parts:
 * AZBK_VAULT_CORRUPT.
 */
export async function wholeTree(id: BlobId, first: Tree, part: (id: BlobId) => Promise<Tree>): Promise<Tree> {
  if (first.next === undefined) {
    if (first.version !== 1) throw bad('a part of a listing taken for a whole one');
    return first;
  }
  const nodes = [...first.nodes];
  const names = new Set(nodes.map((n) => n.name));
  const ids = new Set<BlobId>([id]);
  for (let next: BlobId | undefined = first.next; next !== undefined; ) {
    if (ids.has(next) || ids.size >= MAX_PARTS) throw bad('its parts go round in a loop');
    ids.add(next);
    const t = await part(next);
    if (t.version !== 2) throw bad('a part of it is not one');
    for (const n of t.nodes) {
      if (names.has(n.name)) throw bad('duplicate name');
      names.add(n.name);
      nodes.push(n);
    }
    next = t.next;
  }
  return { version: 1, nodes };
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
  const t = v as { version?: unknown; nodes?: unknown; next?: unknown };
  if ((t.version !== 1 && t.version !== 2) || !Array.isArray(t.nodes)) throw bad('unknown format');
  if (t.next !== undefined && (t.version !== 2 || !isHex64(t.next))) throw bad('bad next part');
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
