/** repairIndex: the packs no intact index file names are named again from their own headers. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { repairIndex } from '../../src/agent/repair-index.js';
import { layout } from '../../src/vault/layout.js';
import { writeRandomFile } from '../helpers/fs-tree.js';
import { createMachine, withMethods } from '../helpers/machine.js';
import { AzbkError } from '../../src/shared/errors.js';

const MiB = 1 << 20;

describe('repairIndex', () => {
  it('names again the packs of a lost index file, and leaves one whose header is damaged unnamed', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a.bin'), 20 * MiB); // more than one pack of data
    await writeRandomFile(path.join(src, 'b.bin'), 1000);
    await runBackup(m.ctx, { include: [src] });
    const before = await BlobIndex.load(m.ctx.session, m.keys);
    const packs = await m.ctx.session.listPacks();
    expect(packs.length).toBeGreaterThanOrEqual(3);
    // Nothing to name while every index file is whole.
    expect(await repairIndex(m.ctx.session, m.keys)).toMatchObject({ unnamed: 0, named: 0, indexFiles: [], damagedIndex: [] });

    for await (const key of m.base.list(layout.indexPrefix)) await m.base.delete(key);
    // The last byte of one pack's header (before its length and the magic): that pack cannot be named.
    const hurt = packs[0]!;
    const data = (await m.base.get(layout.pack(hurt)))!;
    data[data.length - 13] = data[data.length - 13]! ^ 1;
    await m.base.delete(layout.pack(hurt));
    await m.base.put(layout.pack(hurt), data);

    const r = await repairIndex(m.ctx.session, m.keys);
    expect(r).toMatchObject({ unnamed: packs.length, named: packs.length - 1, foreign: 0, damaged: [hurt] });
    expect(r.indexFiles).toHaveLength(1);
    const after = await BlobIndex.load(m.ctx.session, m.keys);
    expect(r.blobs).toBe(after.size);
    expect(after.size).toBeLessThan(before.size);
    // What the damaged header's pack held is not named; everything else is, where it was.
    for (let row = 0; row < before.size; row++) {
      const id = before.idAt(row);
      for (const type of ['data', 'tree'] as const) {
        const was = before.get(type, id);
        if (was === undefined) continue;
        if (was.pack === hurt) expect(after.get(type, id)).toBeUndefined();
        else expect(after.get(type, id)).toEqual(was);
      }
    }
    // A second repair names nothing more: the index file it wrote is whole.
    expect(await repairIndex(m.ctx.session, m.keys)).toMatchObject({ unnamed: 1, named: 0, damaged: [hurt] });
  });

  it('takes a pack listed twice once, and an index file listed but not there as one to name around', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a.bin'), 1000);
    await runBackup(m.ctx, { include: [src] });
    const [name] = await m.ctx.session.listIndex();
    const session = withMethods(m.ctx.session, (s) => ({
      listPacks: async () => {
        const packs = await s.listPacks();
        return [...packs, ...packs];
      },
      readIndex: (n) => (n === name ? Promise.reject(new AzbkError('AZBK_VAULT_CORRUPT', `Index ${n} is missing from the vault.`)) : s.readIndex(n)),
    }));
    const packs = await m.ctx.session.listPacks();
    const r = await repairIndex(session, m.keys);
    expect(r).toMatchObject({ unnamed: packs.length, named: packs.length, damaged: [], damagedIndex: [name] });
    expect(r.indexFiles).toHaveLength(1);
  });
});
