/**
 * The folder walk past its bound on held entries (512 per worker, at least two workers' worth):
 * it then walks one subfolder at a time. The tree must come back whole.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { runRestore } from '../../src/agent/restore.js';
import { expectSameTree } from '../helpers/fs-tree.js';
import { createMachine } from '../helpers/machine.js';

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
});
