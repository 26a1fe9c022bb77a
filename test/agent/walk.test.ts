/**
 * The folder walk past its bound on held entries (512 per worker, at least two workers' worth):
 * it then walks one subfolder at a time, and past eight times the bound waits for a subfolder's
 * files to be read before it lists the next. The tree must come back whole.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { runRestore } from '../../src/agent/restore.js';
import { expectSameTree } from '../helpers/fs-tree.js';
import { createMachine } from '../helpers/machine.js';
import { settled } from '../helpers/racy.js';

describe('folder walk', () => {
  it('backs up a tree wider than its bound on held entries, and the tree restores exactly', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    // 4 x 400 files beside and below each other: 1,600 entries, past the bound of 1,024 for one worker
    for (const dir of ['a', 'b', 'b/deep', 'c']) {
      await fs.mkdir(path.join(src, dir), { recursive: true });
      await Promise.all(Array.from({ length: 400 }, (_, i) => fs.writeFile(path.join(src, dir, `f${i}.txt`), `${dir} ${i}\n`.repeat(i % 7))));
    }
    const res = await runBackup(m.ctx, { include: [src], workers: 1 });
    expect(res.stats.files).toBe(1600);
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const restored = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' });
    expect(restored.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
  });

  it('past eight times its bound, lists the next subfolder only once the files of the one before are read', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    // 12 folders of 40 small files and one of 4 MiB: the second backup finds the small files
    // unchanged at once and has only the large ones to read, so its walk runs far ahead of the
    // reading unless the bound stops it.
    const FOLDERS = 12;
    const PER_FOLDER = 41;
    for (let d = 0; d < FOLDERS; d++) {
      const dir = path.join(src, `d${String(d).padStart(2, '0')}`);
      await fs.mkdir(dir, { recursive: true });
      await Promise.all(Array.from({ length: PER_FOLDER - 1 }, (_, i) => fs.writeFile(path.join(dir, `f${i}.txt`), `${d} ${i}\n`)));
      await fs.writeFile(path.join(dir, 'large.bin'), randomBytes(4 * 1024 * 1024));
    }
    // Files changed within two seconds before a backup read them are read again by the next one.
    await settled();
    const opts = { include: [src], workers: 1, heldEntriesPerWorker: 8 };
    await runBackup(m.ctx, opts);
    for (let d = 0; d < FOLDERS; d++) await fs.appendFile(path.join(src, `d${String(d).padStart(2, '0')}`, 'large.bin'), randomBytes(16));
    const res = await runBackup(m.ctx, opts);
    expect(res.stats.files).toBe(FOLDERS * PER_FOLDER);
    expect(res.stats.readBytes).toBe(FOLDERS * (4 * 1024 * 1024 + 16));
    // The bound is 2 x 8 = 16 entries, the hard one 128: held at most the hard bound and one folder
    // more (without it, all 12 x 41 and the 12 of src), and more than the bound: it was reached.
    const hard = 8 * 2 * 8;
    expect(res.heldEntries).toBeGreaterThan(hard);
    expect(res.heldEntries).toBeLessThanOrEqual(hard + PER_FOLDER);
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const restored = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' });
    expect(restored.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
  });
});
