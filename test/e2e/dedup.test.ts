/**
 * Deduplication and compression, measured the way an operator would: the growth of the vault
 * folder between two backups.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, expectExit, setupMachine, type Machine } from '../helpers/cli.js';
import { dirSize, expectSameBytes, writeRandomFile } from '../helpers/fs-tree.js';
import { createTempDir, makeTempDir, type TempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

let tmp: TempDir;
let a: Machine;

// One vault and machine; each test backs up its own folder and measures the vault's growth.
beforeAll(async () => {
  tmp = await createTempDir();
  a = await setupMachine(tmp.path);
});

afterAll(() => tmp?.cleanup());

describe('deduplication', () => {
  it('a second backup of an unchanged 30 MiB tree adds well under 1% of its size', async () => {
    const root = await makeTempDir();
    const src = path.join(root, 'tree');
    for (let d = 0; d < 3; d++) {
      for (let f = 0; f < 10; f++) await writeRandomFile(path.join(src, `dir ${d}`, `file ${f}.bin`), MiB + d * 1000 + f);
    }
    const empty = await dirSize(a.vault.dir);
    await backup(a, [src]);
    const first = await dirSize(a.vault.dir);
    expect(first - empty, 'the first backup stores the data').toBeGreaterThan(30 * MiB);
    const second = await backup(a, [src]);
    const grown = (await dirSize(a.vault.dir)) - first;
    expect(grown, `second backup added ${grown} bytes`).toBeLessThan(0.01 * 30 * MiB);
    expect(second.stats.newBytes).toBeLessThan(0.01 * 30 * MiB);
    expect(second.stats.files).toBe(30);

    // Touched files (new times, same bytes) are read again, and their content is still known.
    const later = Date.now() / 1000;
    for (let d = 0; d < 3; d++) for (let f = 0; f < 10; f++) await fs.utimes(path.join(src, `dir ${d}`, `file ${f}.bin`), later, later);
    const before = await dirSize(a.vault.dir);
    const third = await backup(a, [src]);
    const grown3 = (await dirSize(a.vault.dir)) - before;
    expect(grown3, `backup of touched files added ${grown3} bytes`).toBeLessThan(0.01 * 30 * MiB);
    expect(third.stats.bytes).toBe(30 * MiB + 3 * 45 + 3 * 10 * 1000);
  });

  it('a large random file copied under another name adds almost nothing', async () => {
    const root = await makeTempDir();
    const src = path.join(root, 'data');
    await writeRandomFile(path.join(src, 'original.bin'), 20 * MiB);
    await backup(a, [src]);
    const before = await dirSize(a.vault.dir);
    await fs.mkdir(path.join(src, 'elsewhere'));
    await fs.copyFile(path.join(src, 'original.bin'), path.join(src, 'elsewhere', 'renamed copy.bin'));
    const b = await backup(a, [src]);
    const grown = (await dirSize(a.vault.dir)) - before;
    expect(grown, `the copy added ${grown} bytes`).toBeLessThan(0.01 * 20 * MiB);
    expect(b.stats.bytes).toBe(40 * MiB);
  });

  it('inserting a few bytes near the start of a 24 MiB file stores only a chunk or two', async () => {
    const root = await makeTempDir();
    const src = path.join(root, 'data');
    const file = await writeRandomFile(path.join(src, 'big.bin'), 24 * MiB);
    await backup(a, [src]);
    const before = await dirSize(a.vault.dir);
    const data = await fs.readFile(file);
    await fs.writeFile(file, Buffer.concat([data.subarray(0, 5000), Buffer.from('INSERTED'), data.subarray(5000)]));
    const b = await backup(a, [src]);
    const grown = (await dirSize(a.vault.dir)) - before;
    // Fixed-size chunking would store all 24 MiB again; content-defined chunking re-syncs after
    // the first chunk (1 MiB on average, 8 MiB at most).
    expect(grown, `the edit added ${grown} bytes`).toBeLessThan(6 * MiB);
    expect(grown).toBeGreaterThan(0);
    expect(b.stats.newBytes).toBeLessThan(6 * MiB);

    // And the file rebuilt from old and new chunks is the edited one.
    const target = path.join(root, 'restored');
    expectExit(await a.run(['restore', '--point', 'latest', '--target', target]), 0);
    await expectSameBytes(file, path.join(target, file));
  });

  it('compresses: 8 MiB of text takes a small fraction of that in the vault', async () => {
    const root = await makeTempDir();
    const src = path.join(root, 'logs');
    await fs.mkdir(src);
    const lines: string[] = [];
    let size = 0;
    for (let i = 0; size < 8 * MiB; i++) {
      const line = `${new Date(1.7e12 + i * 1000).toISOString()} INFO request ${i} served in ${i % 97} ms\n`;
      lines.push(line);
      size += line.length;
    }
    await fs.writeFile(path.join(src, 'app.log'), lines.join(''));
    const before = await dirSize(a.vault.dir);
    await backup(a, [src]);
    const grown = (await dirSize(a.vault.dir)) - before;
    expect(grown).toBeLessThan(2 * MiB);
  });
});
