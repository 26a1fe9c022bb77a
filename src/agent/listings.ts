/**
 * Reading many folder listings at once: level by level from some roots, the listings of a level
 * that lie close together in a pack in one read, several reads at a time, so a walk does not wait
 * on one request per folder (a vault service is a round trip away). The restore reads ahead of its
 * planning this way, and verify ahead of its sweep.
 */
import { decodeBlob } from '../core/blob.js';
import type { BlobId, PackId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { decodeTree, type Tree } from '../core/tree.js';
import { eachAtOnce } from '../shared/each-at-once.js';
import type { VaultSession } from '../vault/api.js';
import type { BlobIndex } from './blob-index.js';
import { readRanges } from './restore-data.js';

/** Listings of one level at most this far apart in a pack are read together, up to READ_MAX bytes. */
const GAP = 256 * 1024;
const READ_MAX = 4 * 1024 * 1024;
/** reads at a time */
const READERS = 8;

export interface KnownListings {
  /** a listing already at hand: not read again, only gone through */
  readonly have?: (id: BlobId) => Tree | undefined;
  /** a listing found unreadable before: not tried again */
  readonly unreadable?: (id: BlobId) => boolean;
  /** a listing that could not be read or failed its checks now */
  readonly failed?: (id: BlobId) => void;
  /** a listing found stored in parts (left to the walk: see readListings) */
  readonly inParts?: (id: BlobId) => void;
}

/**
 * Reads the listings beneath `roots` (the roots' own included), level by level, while `room()`
 * says there is room for more; each one read and checked goes to `got` with its plaintext and
 * decoded tree. What cannot be read (not indexed, a failed read, damage) is left out, and so is
 * a listing in parts: the walk that needs it reads it itself (and reports what it cannot read).
 */
export async function readListings(
  session: VaultSession,
  keys: VaultKeys,
  index: BlobIndex,
  roots: readonly BlobId[],
  got: (id: BlobId, plain: Buffer, tree: Tree) => void,
  room: () => boolean,
  known: KnownListings = {},
): Promise<void> {
  const seen = new Set<BlobId>();
  let level = [...roots];
  while (level.length > 0 && room()) {
    const byPack = new Map<PackId, { id: BlobId; offset: number; length: number }[]>();
    const next: BlobId[] = [];
    for (const id of level) {
      if (seen.has(id)) continue;
      seen.add(id);
      const kept = known.have?.(id);
      if (kept !== undefined) {
        for (const n of kept.nodes) if (n.type === 'dir') next.push(n.subtree);
        continue;
      }
      if (known.unreadable?.(id) === true) continue;
      const loc = index.get('tree', id);
      if (loc === undefined) continue;
      let list = byPack.get(loc.pack);
      if (list === undefined) byPack.set(loc.pack, (list = []));
      list.push({ id, offset: loc.entry.offset, length: loc.entry.length });
    }
    const reads = [...byPack].flatMap(([pack, list]) => readRanges(list, (b) => b, GAP, READ_MAX).map((r) => ({ pack, ...r })));
    const take = (id: BlobId, sealed: Buffer) => {
      try {
        const plain = decodeBlob(keys, 'tree', id, sealed);
        const tree = decodeTree(plain);
        // A listing in parts (a folder of a few hundred thousand entries: see core/tree.ts) is
        // read whole by the walk that reaches it: not one of a level's small reads.
        if (tree.version !== 1) return known.inParts?.(id);
        got(id, plain, tree);
        for (const n of tree.nodes) if (n.type === 'dir') next.push(n.subtree);
      } catch {
        known.failed?.(id); // damaged: reported by the walk
      }
    };
    /**
     * Reads the listings `items` (in pack order) in one range; when it cannot be read (a damaged
     * stretch of the pack), each half on its own, so a damage costs a few reads more, not the
     * listings around it.
     */
    const readItems = async (pack: PackId, items: readonly { id: BlobId; offset: number; length: number }[]): Promise<void> => {
      if (!room()) return;
      const start = items[0]!.offset;
      // (not Math.max(...items): a 4 MiB range of small listings holds tens of thousands of them)
      const end = items.reduce((e, b) => Math.max(e, b.offset + b.length), 0);
      let data: Buffer;
      try {
        data = await session.readPack(pack, start, end - start);
      } catch {
        if (items.length === 1) known.failed?.(items[0]!.id);
        else {
          const half = Math.ceil(items.length / 2);
          await readItems(pack, items.slice(0, half));
          await readItems(pack, items.slice(half));
        }
        return;
      }
      for (const b of items) take(b.id, data.subarray(b.offset - start, b.offset - start + b.length));
    };
    await eachAtOnce(reads, READERS, (r) => readItems(r.pack, r.items));
    level = next;
  }
}
