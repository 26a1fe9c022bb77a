/**
 * The local metadata cache through the CLI: an unchanged folder reuses the tree a backup stored
 * (nothing new is uploaded), and every kind of change under it is still seen, including the ones
 * that keep a file's size and mtime or a folder's mtime the same.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, expectExit, setupMachine, tempDir } from '../helpers/cli.js';
import { expectSameTree } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';
import { settled } from '../helpers/racy.js';

async function write(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, text);
}

describe('metadata cache', () => {
  it.skipIf(process.platform === 'win32')('reuses unchanged folders and still sees every change beneath them', async (ctx) => {
    const root = await tempDir(ctx, 'azbk-cache-');
    const src = path.join(root, 'src');
    for (let d = 0; d < 6; d++) {
      for (let f = 0; f < 5; f++) await write(path.join(src, `d${d}`, 'deep', `f${f}.txt`), `folder ${d} file ${f}\n`.repeat(50));
    }
    await fs.symlink('d0/deep/f0.txt', path.join(src, 'link'));
    const written = Date.now();
    const m = await setupMachine(root);

    // The first backup comes once the files are settled, so that the second reads none of them.
    await settled(written);
    const first = await backup(m, [src]);
    expect(first.stats.files).toBe(30);
    expect(first.stats.readBytes, 'a first backup reads every file').toBe(first.stats.bytes);
    const second = await backup(m, [src]);
    expect(second.stats.readBytes, 'an unchanged file is not read').toBe(0);
    // In words: the point's size, and that nothing was read.
    const text = await m.run(['backup', '--now', '--include', src]);
    expectExit(text, 0);
    expect(text.stdout).toMatch(new RegExp(`30 files \\(${(first.stats.bytes / 1024).toFixed(1)} KiB\\), \\d+ folders, 1 link; 0 B read, `));
    // An unchanged tree stores nothing new: at most the listings of the folders above it, whose
    // times change when another process adds to /tmp meanwhile (as concurrent tests do).
    expect(second.stats.newBlobs, 'an unchanged tree stores nothing new').toBeLessThanOrEqual(src.split(path.sep).length - 1);
    expect(second.stats.newBytes).toBeLessThan(4096);
    expect(second.stats.bytes).toBe(first.stats.bytes);
    expect(second.stats.files).toBe(30);

    // Changes the folder fingerprints must catch.
    const deep = (d: number, f: string) => path.join(src, `d${d}`, 'deep', f);
    // same size and mtime to the nanosecond (touch -r copies it), new content: only ctime tells
    const f1 = deep(1, 'f1.txt');
    const ref = path.join(root, 'ref');
    await fs.writeFile(ref, '');
    expect(spawnSync('touch', ['-r', f1, ref]).status).toBe(0);
    await fs.writeFile(f1, (await fs.readFile(f1, 'utf8')).replace('folder 1', 'FOLDER 1'));
    expect(spawnSync('touch', ['-r', ref, f1]).status).toBe(0);
    // permissions only
    await fs.chmod(deep(2, 'f2.txt'), 0o600);
    // mtime only
    await fs.utimes(deep(3, 'f3.txt'), new Date('2020-01-02T03:04:05.678Z'), new Date('2020-01-02T03:04:05.678Z'));
    // a rename in place (same inode and metadata), and a new file with the folder's mtime put back
    await fs.rename(deep(4, 'f4.txt'), deep(4, 'renamed.txt'));
    const d5 = path.join(src, 'd5', 'deep');
    const st5 = await fs.stat(d5);
    await write(path.join(d5, 'added.txt'), 'a new file\n');
    await fs.utimes(d5, st5.atime, st5.mtime);
    // a symlink pointed elsewhere
    await fs.rm(path.join(src, 'link'));
    await fs.symlink('d1/deep/f1.txt', path.join(src, 'link'));

    const third = await backup(m, [src]);
    expect(third.stats.files).toBe(31);
    // Read again: the changed files only (each of them 1,000 bytes or less).
    expect(third.stats.readBytes).toBeGreaterThan(0);
    expect(third.stats.readBytes).toBeLessThan(6 * 1000);
    const target = path.join(root, 'restored');
    expectExit(await m.run(['restore', '--point', third.point.id, '--target', target]), 0);
    await expectSameTree(src, path.join(target, path.relative(path.parse(src).root, src)));

    // The run after it stores nothing for the tree (only the listings of the folders above it,
    // whose times changed when the restore target was made).
    const fourth = await backup(m, [src]);
    expect(fourth.stats.newBlobs).toBeLessThanOrEqual(src.split(path.sep).length);
    expect(fourth.stats.newBytes).toBeLessThan(4096);
    expect(fourth.stats.files).toBe(31);
  });

  it.skipIf(process.platform === 'win32')('lists a skipped special file again in every backup of an unchanged folder', async (ctx) => {
    const root = await tempDir(ctx, 'azbk-cache-');
    const src = path.join(root, 'src');
    await write(path.join(src, 'sub', 'a.txt'), 'a\n');
    expect(spawnSync('mkfifo', [path.join(src, 'sub', 'pipe')]).status).toBe(0);
    const m = await setupMachine(root);
    for (let run = 0; run < 2; run++) {
      const r = await backup(m, [src]);
      expect(r.warnings.map((w: { path: string }) => path.basename(w.path)), `run ${run + 1}`).toEqual(['pipe']);
      expect(r.stats.files).toBe(1);
    }
  });

  // The cache only saves work: one that SQLite finds damaged is made anew, where every backup used
  // to fail on it ('file is not a database', exit 1) until it was removed by hand.
  it.each([
    ['its first page overwritten', async (file: string) => {
      const fh = await fs.open(file, 'r+');
      await fh.write(Buffer.from('garbage garbage garbage'), 0, 23, 0);
      await fh.close();
    }],
    ['cut short', (file: string) => fs.truncate(file, 8192)],
    // The first page (the header and the schema) whole: the damage shows only once the backup reads its rows.
    ['every page but the first overwritten', async (file: string) => {
      const { size } = await fs.stat(file);
      expect(size).toBeGreaterThan(4096);
      const fh = await fs.open(file, 'r+');
      await fh.write(Buffer.alloc(size - 4096, 7), 0, size - 4096, 4096);
      await fh.close();
    }],
  ] as const)('makes a damaged cache anew (%s) and backs up all the same', async (_how, damage) => {
    const root = await makeTempDir('azbk-cache-');
    const src = path.join(root, 'src');
    for (let f = 0; f < 40; f++) await write(path.join(src, `d${f % 4}`, `f${f}.txt`), `file ${f}\n`.repeat(200));
    const written = Date.now();
    const m = await setupMachine(root);
    await backup(m, [src]);
    const dir = path.join(m.home, 'cache');
    const [file] = (await fs.readdir(dir)).filter((n) => n.endsWith('.sqlite'));
    await damage(path.join(dir, file!));
    // The backup that makes the cache anew reads the files once they are settled: the cache then
    // remembers them, and the last backup below reads none.
    await settled(written);

    const r = await backup(m, [src]);
    expect(r.warnings).toEqual([{ path: path.join(dir, file!), reason: expect.stringMatching(/local cache was damaged, and was made anew/) }]);
    expect(r.stats.files).toBe(40);
    expect(r.stats.readBytes, 'without the cache, every file is read').toBe(r.stats.bytes);
    const target = path.join(root, 'restored');
    expectExit(await m.run(['restore', '--point', r.point.id, '--target', target]), 0);
    await expectSameTree(src, path.join(target, src));
    const again = await backup(m, [src]);
    expect(again.warnings).toEqual([]);
    expect(again.stats.readBytes, 'the new cache serves the next backup').toBe(0);
  });
});
