/** readListings: a damaged stretch of a listings pack costs a few reads more, not the listings around it. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { readListings } from '../../src/agent/listings.js';
import type { BlobId } from '../../src/core/ids.js';
import { AzbkError } from '../../src/shared/errors.js';
import { createMachine, readPoint, withMethods } from '../helpers/machine.js';

describe('readListings', () => {
  it('reads the listings around a damaged one in halves, and names the damaged one', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (let i = 0; i < 64; i++) {
      await fs.mkdir(path.join(src, `d${String(i).padStart(2, '0')}`), { recursive: true });
      await fs.writeFile(path.join(src, `d${String(i).padStart(2, '0')}`, 'f.txt'), String(i));
    }
    const res = await runBackup(m.ctx, { include: [src] });
    const { index, trees } = await readPoint(m, res.point);
    // The point's listings (the 64 folders' and those above them), in the order they lie in their
    // pack; one in the middle is damaged.
    const listings = [...trees].sort((a, b) => index.get('tree', a)!.entry.offset - index.get('tree', b)!.entry.offset);
    expect(new Set(listings.map((id) => index.get('tree', id)!.pack)).size).toBe(1);
    const badId = listings[Math.floor(listings.length / 2)]!;
    const bad = index.get('tree', badId)!;
    let reads = 0;
    const session = withMethods(m.ctx.session, (s) => ({
      readPack: (pack, offset, length, into) => {
        reads++;
        if (pack !== bad.pack || offset + length <= bad.entry.offset || offset >= bad.entry.offset + bad.entry.length) return s.readPack(pack, offset, length, into);
        return Promise.reject(new AzbkError('AZBK_VAULT_CORRUPT', 'a damaged range'));
      },
    }));
    const got: BlobId[] = [];
    const failed: BlobId[] = [];
    await readListings(session, m.keys, index, listings, (id) => got.push(id), () => true, { failed: (id) => failed.push(id) });
    expect(failed).toEqual([badId]);
    expect(got.sort()).toEqual(listings.filter((id) => id !== badId).sort());
    // One read for them all, then halves down to the damaged one: about two per halving. Before,
    // the failed read left out every listing it held.
    expect(reads).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(listings.length)) + 1);
  });
});
