/**
 * The scan worker of a full scan: it reports exactly the folders that did not change since a
 * backup stored them (each after the folders beneath it), its help ends when the vault lacks a
 * tree it reports, and a backup that takes its folders still backs up every change.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { FileCache, type KnownDir } from '../../src/agent/file-cache.js';
import { dropPrestartedScan, FolderScan, prestartedScan, prestartScan, type ScanOptions } from '../../src/agent/pipeline/scan.js';
import { buildProgram } from '../../src/cli/main.js';
import { runRestore } from '../../src/agent/restore.js';
import { expectSameTree } from '../helpers/fs-tree.js';
import { createMachine, type TestMachine } from '../helpers/machine.js';
import { settled } from '../helpers/racy.js';

async function write(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, text);
}

// Files changed within two seconds of being read are read again by the next backup, and their
// folders examined again: the trees here are left alone for longer first (settled).

function cacheFile(m: TestMachine): string {
  const cache = FileCache.forVault(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId);
  cache.close();
  return cache.file;
}

/** What the scan reported for each of `dirs` (asked in this order), once it has gone through everything. */
async function scanned(m: TestMachine, roots: readonly string[], dirs: readonly string[], stored: (tree: string) => boolean = () => true, opts: ScanOptions = {}): Promise<Map<string, KnownDir>> {
  const scan = new FolderScan(roots, cacheFile(m), stored, opts);
  try {
    await scan.done();
    const out = new Map<string, KnownDir>();
    for (const d of dirs) {
      const found = scan.take(d);
      if (found !== undefined) out.set(d, found);
    }
    return out;
  } finally {
    scan.close();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('scan worker', () => {
  it('lists folders with the exclusions the walk has, so that a folder with entries left out can stand unchanged', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const p = (...segs: string[]) => path.join(src, ...segs);
    await write(p('a', 'keep.txt'), 'kept\n');
    await write(p('a', 'skip.tmp'), 'left out\n');
    await write(p('a', 'cache', 'blob'), 'left out\n');
    await settled();
    const exclude = ['*.tmp', 'cache'];
    await runBackup(m.ctx, { include: [src], exclude });

    const same = await scanned(m, [src], [src, p('a')], () => true, { exclude });
    expect([...same.keys()]).toEqual([src]);
    expect(same.get(src)).toMatchObject({ files: 1, dirs: 2, bytes: 5 });
    // Without them, the folder holds more than was stored: the walk examines it.
    expect([...(await scanned(m, [src], [src, p('a')])).keys()]).toEqual([]);
  });

  it('reports the folders that did not change, each standing for those beneath it, and no other', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const p = (...segs: string[]) => path.join(src, ...segs);
    await write(p('a', 'x', 'f1.txt'), 'one\n');
    await write(p('a', 'y', 'f2.txt'), 'two\n');
    await write(p('b', 'z', 'f3.txt'), 'three\n');
    await write(p('b', 'z', 'f4.txt'), 'four\n');
    await fs.mkdir(p('c'));
    await write(p('top.txt'), 'top\n');
    const dirs = [src, p('a'), p('a', 'x'), p('a', 'y'), p('b'), p('b', 'z'), p('c')];
    await settled();
    await runBackup(m.ctx, { include: [src] });

    // Nothing changed: the top folder stands for all.
    const all = await scanned(m, [src], dirs);
    expect([...all.keys()]).toEqual([src]);
    expect(all.get(src)).toMatchObject({ files: 5, dirs: 7, symlinks: 0, bytes: 23 });
    expect(all.get(src)?.tree).toMatch(/^[0-9a-f]{64}$/);

    // A change deep down: that folder and every folder above it are left to the walk.
    await fs.appendFile(p('a', 'y', 'f2.txt'), 'more\n');
    const some = await scanned(m, [src], dirs);
    expect([...some.keys()].sort()).toEqual([p('a', 'x'), p('b'), p('c')].sort());
    expect(some.get(p('b'))).toMatchObject({ files: 2, dirs: 2, symlinks: 0, bytes: 11 });

    // A tree the vault lacks: that folder and the folders above it are not taken, the others are.
    const cache = FileCache.forVault(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId);
    const lacking = cache.getDir(p('b', 'z'))!.tree;
    cache.close();
    const without = await scanned(m, [src], dirs, (tree) => tree !== lacking);
    expect([...without.keys()].sort()).toEqual([p('a', 'x'), p('c')].sort());

    // A report older than the bound is not taken: what it says may be out of date.
    const stale = await scanned(m, [src], dirs, () => true, { maxAgeMs: -1 });
    expect(stale.size).toBe(0);

    // An included folder replaced by a link to it, moved: the walk backs up the link as a link,
    // so the scan does not look behind it either (the listing there would match).
    const moved = path.join(m.dir, 'moved');
    await fs.rename(src, moved);
    await fs.symlink(moved, src);
    expect(await scanned(m, [src], [src, p('c')])).toEqual(new Map());
  });

  it('does not go into a folder the cache has no row for: it is new, and so is what is beneath it', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const p = (...segs: string[]) => path.join(src, ...segs);
    await write(p('a', 'x', 'f1.txt'), 'one\n');
    await write(p('b', 'f2.txt'), 'two\n');
    await settled();
    await runBackup(m.ctx, { include: [p('a')] });
    const dirs = [src, p('a'), p('a', 'x'), p('b')];
    // Included alone, the folder stands for what is beneath it.
    expect([...(await scanned(m, [p('a')], dirs)).keys()]).toEqual([p('a')]);
    // Beneath a folder new to the backup it is not looked at, though it did not change: the
    // worker would otherwise list every folder of a tree of new files for nothing.
    expect((await scanned(m, [src], dirs)).size).toBe(0);
  });

  it('keeps the process alive while it is waited for, and only then', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await write(path.join(src, 'a', 'f.txt'), 'one\n');
    await runBackup(m.ctx, { include: [src] });
    const scanUrl = pathToFileURL(path.resolve('dist/agent/pipeline/scan.js')).href;
    const run = (wait: boolean) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const script = `import { FolderScan } from ${JSON.stringify(scanUrl)};
const scan = new FolderScan([${JSON.stringify(src)}], ${JSON.stringify(cacheFile(m))}, () => true);
${wait ? 'await scan.done(); console.log("scanned");' : 'console.log("not waited");'}`;
        execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout) => resolve({ code: err === null ? 0 : (err.code as number | undefined) ?? -1, out: stdout }));
      });
    // Waited for: the process ends once the scan has; before, it ended at once, mid-scan (exit 13).
    expect(await run(true)).toEqual({ code: 0, out: 'scanned\n' });
    // Not waited for: the worker does not keep the process.
    expect(await run(false)).toEqual({ code: 0, out: 'not waited\n' });
  });

  it('started ahead of its scan, hears what to scan in a message; one no scan takes keeps no process alive', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await write(path.join(src, 'a', 'f.txt'), 'one\n');
    await settled();
    await runBackup(m.ctx, { include: [src] });
    const thread = prestartScan();
    expect(thread).not.toBeNull();
    expect(prestartScan(), 'one at a time').toBe(thread);
    const scan = new FolderScan([src], cacheFile(m), () => true);
    try {
      expect((scan as unknown as { worker: Worker }).worker.threadId, 'the scan took the worker started ahead').toBe(thread);
      await scan.done();
      expect(scan.take(src)).toMatchObject({ files: 1, dirs: 2 });
    } finally {
      scan.close();
    }
    expect(prestartScan(), 'the next one is another worker').not.toBe(thread);
    dropPrestartedScan();

    const scanUrl = pathToFileURL(path.resolve('dist/agent/pipeline/scan.js')).href;
    const run = (drop: boolean) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const script = `import { dropPrestartedScan, prestartScan } from ${JSON.stringify(scanUrl)};
prestartScan();
${drop ? 'dropPrestartedScan();' : ''}
console.log("done");`;
        execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout) => resolve({ code: err === null ? 0 : (err.code as number | undefined) ?? -1, out: stdout }));
      });
    expect(await run(false)).toEqual({ code: 0, out: 'done\n' });
    expect(await run(true)).toEqual({ code: 0, out: 'done\n' });
  });

  it('the command line starts one ahead for backup --now only: not for --catch-up, help or another command', async () => {
    /** Whether building the program for `args` started a scan worker ahead (it does so once the scan module has loaded). */
    const startsOne = async (args: string[]) => {
      dropPrestartedScan();
      await buildProgram(args);
      for (let i = 0; i < 50 && prestartedScan() === null; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      const thread = prestartedScan();
      dropPrestartedScan();
      return thread !== null;
    };
    expect(await startsOne(['backup', '--now', '--include', '/srv'])).toBe(true);
    // The hourly check seldom backs up; help runs nothing.
    expect(await startsOne(['backup', '--now', '--catch-up'])).toBe(false);
    expect(await startsOne(['backup', '--now', '--help'])).toBe(false);
    expect(await startsOne(['backup', '--now', '-h'])).toBe(false);
    expect(await startsOne(['backup'])).toBe(false);
    expect(await startsOne(['restore', '--point', 'latest'])).toBe(false);
  });

  it('a full scan takes the folders it found unchanged, and still backs up every change', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const deep = (d: number, f = '') => path.join(src, `d${d}`, 'deep', f);
    for (let d = 0; d < 6; d++) {
      for (let f = 0; f < 5; f++) await write(deep(d, `f${f}.txt`), `folder ${d} file ${f}\n`.repeat(50));
    }
    await settled();
    const first = await runBackup(m.ctx, { include: [src] });

    const take = vi.spyOn(FolderScan.prototype, 'take');
    const taken = () => take.mock.calls.filter((_, i) => take.mock.results[i]?.value !== undefined).map(([dir]) => dir);
    const second = await runBackup(m.ctx, { include: [src], scanFirst: true });
    expect(second.scan.mode).toBe('full');
    expect(taken(), 'the whole unchanged tree is taken from the scan').toEqual([src]);
    // Nothing new but, at most, the listings of the folders above the tree (another process may
    // have added to /tmp meanwhile).
    expect(second.stats.newBlobs).toBeLessThanOrEqual(src.split(path.sep).length - 1);
    expect(second.stats.newBytes).toBeLessThan(4096);
    expect(second.stats).toMatchObject({ files: first.stats.files, dirs: first.stats.dirs, bytes: first.stats.bytes });

    take.mockClear();
    await fs.appendFile(deep(1, 'f1.txt'), 'changed\n');
    await fs.chmod(deep(2, 'f2.txt'), 0o600);
    await fs.rename(deep(4, 'f4.txt'), deep(4, 'renamed.txt'));
    await write(deep(5, 'added.txt'), 'a new file\n');
    await settled();
    const third = await runBackup(m.ctx, { include: [src], scanFirst: true });
    expect(taken().sort()).toEqual([path.join(src, 'd0'), path.join(src, 'd3')].sort());
    expect(third.stats.files).toBe(31);
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const restored = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' });
    expect(restored.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
  });
});
