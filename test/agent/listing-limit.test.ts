/**
 * A folder whose listing is larger than a blob may be (MAX_BLOB_SIZE: a few hundred thousand
 * entries, or a terabyte of chunk lists) is skipped with the reason, and the rest of the job still
 * makes its point; the limit is lowered here so that a small folder passes it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { runRestore } from '../../src/agent/restore.js';
import { createMachine } from '../helpers/machine.js';

describe('a folder listing past the limit', () => {
  it('skips that folder, saying why, and backs up the rest', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(path.join(src, 'big'), { recursive: true });
    await Promise.all(Array.from({ length: 60 }, (_, i) => fs.writeFile(path.join(src, 'big', `file-with-a-long-name-${i}.txt`), `${i}\n`)));
    await fs.mkdir(path.join(src, 'other'));
    await fs.writeFile(path.join(src, 'other', 'doc.txt'), 'important\n');

    for (let run = 0; run < 2; run++) {
      const res = await runBackup(m.ctx, { include: [src], maxListingBytes: 4096 });
      expect(res.skipped).toEqual([{ path: path.join(src, 'big'), reason: expect.stringMatching(/^its listing \(60 entries and their chunk lists\) would take .* MiB, more than the 64 MiB one folder's listing may: not backed up/) }]);
      expect(res.stats.files).toBe(1);
    }
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const restored = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' });
    expect(restored.failed).toEqual([]);
    expect(await fs.readFile(path.join(target, src, 'other', 'doc.txt'), 'utf8')).toBe('important\n');
    await expect(fs.readdir(path.join(target, src, 'big'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses files included one by one whose folder listing would pass it, clearly', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(src);
    const files = Array.from({ length: 60 }, (_, i) => path.join(src, `file-with-a-long-name-${i}.txt`));
    await Promise.all(files.map((f, i) => fs.writeFile(f, `${i}\n`)));
    await expect(runBackup(m.ctx, { include: files, maxListingBytes: 4096 })).rejects.toMatchObject({
      code: 'AZBK_BAD_INPUT',
      message: expect.stringMatching(new RegExp(`^The files included in ${src} cannot be stored: their chunk lists would take`)),
    });
  });
});
