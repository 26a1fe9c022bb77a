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

/**
 * Reads the listings beneath `roots` (the roots' own included), level by level, while `room()`
 * says there is room for more; each one read and checked goes to `got` with its plaintext and
 * decoded tree. What cannot be read (not indexed, a failed read, damage) is left out: the walk
 * that needs it reads it itself and reports it. A listing `have` gives is not read again, only
 * gone through.
 */
export async function readListings(
  session: VaultSession,
  keys: VaultKeys,
  index: BlobIndex,
  roots: readonly BlobId[],
  got: (id: BlobId, plain: Buffer, tree: Tree) => void,
  room: () => boolean,
  have?: (id: BlobId) => Tree | undefined,
): Promise<void> {
  const seen = new Set<BlobId>();
  let level = [...roots];
  while (level.length > 0 && room()) {
    const byPack = new Map<PackId, { id: BlobId; offset: number; length: number }[]>();
    const next: BlobId[] = [];
    for (const id of level) {
      if (seen.has(id)) continue;
      seen.add(id);
      const kept = have?.(id);
      if (kept !== undefined) {
        for (const n of kept.nodes) if (n.type === 'dir') next.push(n.subtree);
        continue;
      }
      const loc = index.get('tree', id);
      if (loc === undefined) continue;
      let list = byPack.get(loc.pack);
      if (list === undefined) byPack.set(loc.pack, (list = []));
      list.push({ id, offset: loc.entry.offset, length: loc.entry.length });
    }
    const reads = [...byPack].flatMap(([pack, list]) => readRanges(list, (b) => b, GAP, READ_MAX).map((r) => ({ pack, ...r })));
    await eachAtOnce(reads, READERS, async (r) => {
      if (!room()) return;
      let data: Buffer;
      try {
        data = await session.readPack(r.pack, r.start, r.end - r.start);
      } catch {
        return;
      }
      for (const b of r.items) {
        try {
          const plain = decodeBlob(keys, 'tree', b.id, data.subarray(b.offset - r.start, b.offset - r.start + b.length));
          const tree = decodeTree(plain);
          got(b.id, plain, tree);
          for (const n of tree.nodes) if (n.type === 'dir') next.push(n.subtree);
        } catch {
          // damaged: reported by the walk
        }
      }
    });
    level = next;
  }
}
