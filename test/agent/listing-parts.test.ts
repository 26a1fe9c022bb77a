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
import { FileCache } from '../../src/agent/file-cache.js';
import { createMachine } from '../helpers/machine.js';
import { settled } from '../helpers/racy.js';

describe('a folder listing past the limit', () => {
  it('skips that folder, saying why, and backs up the rest; the copy stored before is not taken for it again', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(path.join(src, 'big'), { recursive: true });
    await Promise.all(Array.from({ length: 60 }, (_, i) => fs.writeFile(path.join(src, 'big', `file-with-a-long-name-${i}.txt`), `${i}\n`)));
    await fs.mkdir(path.join(src, 'other'));
    await fs.writeFile(path.join(src, 'other', 'doc.txt'), 'important\n');
    await settled(); // no file read again for being changed just before
    // Stored whole first, then over the limit (as a folder whose files grow in place would be).
    expect((await runBackup(m.ctx, { include: [src] })).skipped).toEqual([]);
    const cache = () => FileCache.forVault(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId);
    const before = cache();
    expect(before.getDir(path.join(src, 'big'))?.fingerprint).not.toBeNull();
    before.close();
    await fs.appendFile(path.join(src, 'big', 'file-with-a-long-name-7.txt'), 'grown\n');
    await settled();

    for (let run = 0; run < 2; run++) {
      const res = await runBackup(m.ctx, { include: [src], maxListingBytes: 4096 });
      expect(res.skipped).toEqual([{ path: path.join(src, 'big'), reason: expect.stringMatching(/^its listing \(60 entries and their chunk lists\) would take [\d.]+ MiB, more than the 0.004 MiB one folder's listing may: not backed up/) }]);
      expect(res.stats.files).toBe(1);
      // The grown file is read once; then the files are remembered, not read again only to be skipped.
      expect(res.stats.readBytes).toBe(run === 0 ? 8 : 0);
      // Its row no longer vouches for the folder: a backup that sees no change there examines it.
      const after = cache();
      expect(after.getDir(path.join(src, 'big'))).toMatchObject({ fingerprint: null, self: null });
      expect(after.getFiles(path.join(src, 'big')).size).toBe(60);
      after.close();
    }
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const restored = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' });
    expect(restored.failed).toEqual([]);
    expect(await fs.readFile(path.join(target, src, 'other', 'doc.txt'), 'utf8')).toBe('important\n');
    await expect(fs.readdir(path.join(target, src, 'big'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('skips the files included one by one whose folder listing would pass it, and backs up the rest', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    const files = Array.from({ length: 60 }, (_, i) => path.join(src, `file-with-a-long-name-${i}.txt`));
    await Promise.all(files.map((f, i) => fs.writeFile(f, `${i}\n`)));
    await fs.writeFile(path.join(src, 'sub', 'kept.txt'), 'kept\n');
    const res = await runBackup(m.ctx, { include: [...files, path.join(src, 'sub')], maxListingBytes: 4096 });
    expect(res.skipped.map((s) => s.path).sort()).toEqual([...files].sort());
    expect(res.skipped[0]!.reason).toMatch(new RegExp(`^the listing of ${src} with the files included one by one in it would take .*: not backed up`));
    expect(res.stats.files).toBe(1);
    // None kept at all: no point, as for any backup that keeps nothing.
    await expect(runBackup(m.ctx, { include: files, maxListingBytes: 4096 })).rejects.toMatchObject({ code: 'AZBK_PATH_NOT_FOUND' });
  });

  it('reads the files of a folder too large from the first backup once, not on every backup that skips it', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(path.join(src, 'big'), { recursive: true });
    await Promise.all(Array.from({ length: 60 }, (_, i) => fs.writeFile(path.join(src, 'big', `file-with-a-long-name-${i}.txt`), 'x'.repeat(100))));
    await fs.writeFile(path.join(src, 'doc.txt'), 'important\n');
    await settled();
    const first = await runBackup(m.ctx, { include: [src], maxListingBytes: 4096 });
    expect(first.skipped.map((s) => s.path)).toEqual([path.join(src, 'big')]);
    expect(first.stats.readBytes).toBe(60 * 100 + 10);
    const again = await runBackup(m.ctx, { include: [src], maxListingBytes: 4096 });
    expect(again.skipped.map((s) => s.path)).toEqual([path.join(src, 'big')]);
    expect(again.stats.readBytes).toBe(0);
    // Once it fits, it is stored whole, from the chunks already read.
    const fits = await runBackup(m.ctx, { include: [src] });
    expect(fits.skipped).toEqual([]);
    expect(fits.stats.files).toBe(61);
    expect(fits.stats.readBytes).toBe(0);
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    expect((await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' })).failed).toEqual([]);
    expect(await fs.readFile(path.join(target, src, 'big', 'file-with-a-long-name-59.txt'), 'utf8')).toBe('x'.repeat(100));
  });
});
