/**
 * listPoint: a folder whose listing cannot be read is reported, and everything else is listed;
 * no file data is read; listings in a pack the vault lost are read where a later backup stored
 * them again, on a machine that did not know of the loss.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { isoTime, listPoint, type ListedEntry } from '../../src/agent/ls.js';
import { openPoint } from '../../src/agent/points.js';
import { runRestore } from '../../src/agent/restore.js';
import { decodeBlob } from '../../src/core/blob.js';
import type { BlobId } from '../../src/core/ids.js';
import { decodeTree, type Tree } from '../../src/core/tree.js';
import { AzbkError } from '../../src/shared/errors.js';
import { expectSameTree, writeRandomFile } from '../helpers/fs-tree.js';
import { forgetful, lostAndStoredAgain } from '../helpers/lost-pack.js';
import { createMachine, ownMachine, withMethods, type TestMachine } from '../helpers/machine.js';

const MiB = 1024 * 1024;

async function readTree(m: TestMachine, index: BlobIndex, id: BlobId): Promise<Tree> {
  const loc = index.get('tree', id)!;
  return decodeTree(decodeBlob(m.keys, 'tree', id, await m.ctx.session.readPack(loc.pack, loc.entry.offset, loc.entry.length)));
}

/** 6 x 8 x 3 folders under src, each with a file and an empty folder: 343 folders, 199 different listings. */
async function wideTree(m: TestMachine): Promise<string> {
  const src = path.join(m.dir, 'src');
  for (let a = 0; a < 6; a++) {
    for (let b = 0; b < 8; b++) {
      for (let c = 0; c < 3; c++) {
        await fs.mkdir(path.join(src, `a${a}`, `b${b}`, `c${c}`, 'empty'), { recursive: true });
        await fs.writeFile(path.join(src, `a${a}`, `b${b}`, `c${c}`, 'f.txt'), `${a}/${b}/${c}`);
      }
    }
  }
  return src;
}

describe('listPoint', () => {
  it('reports a folder whose listing cannot be read and lists the rest', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (const d of ['one', 'two']) {
      await fs.mkdir(path.join(src, d, 'inner'), { recursive: true });
      await fs.writeFile(path.join(src, d, 'f.txt'), d);
      await fs.writeFile(path.join(src, d, 'inner', 'g.txt'), d);
    }
    const res = await runBackup(m.ctx, { include: [src] });

    // The listing of src/two, found from the point's root.
    const index = await BlobIndex.load(m.ctx.session, m.keys);
    const { manifest } = await openPoint(m.ctx, m.keys, ownMachine(m), res.point);
    let tree = await readTree(m, index, manifest.tree);
    let two: BlobId | undefined;
    for (const name of [...src.split('/').filter(Boolean), 'two']) {
      const node = tree.nodes.find((n) => n.name === name)!;
      if (node.type !== 'dir') throw new Error('not a folder');
      two = node.subtree;
      tree = await readTree(m, index, node.subtree);
    }
    const bad = index.get('tree', two!)!;
    const session = withMethods(m.ctx.session, (s) => ({
      readPack: (pack, offset, length, into) =>
        pack === bad.pack && offset <= bad.entry.offset && offset + length >= bad.entry.offset + bad.entry.length
          ? Promise.reject(new AzbkError('AZBK_VAULT_CORRUPT', 'a damaged range'))
          : s.readPack(pack, offset, length, into),
    }));
    const seen: ListedEntry[] = [];
    const r = await listPoint({ ...m.ctx, session }, { point: 'latest', paths: [src], recursive: true, onEntry: (e) => seen.push(e) });
    expect(r.failed).toEqual([{ path: path.join(src, 'two'), reason: expect.stringMatching(/damaged range/) as unknown as string }]);
    expect(seen.map((e) => path.relative(src, e.path))).toEqual(['one', 'one/f.txt', 'one/inner', 'one/inner/g.txt', 'two']);
    expect(r.entries).toBe(5);
  });

  it('reads only folder listings, each once', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'big.bin'), 12 * MiB);
    await fs.mkdir(path.join(src, 'sub'));
    await fs.writeFile(path.join(src, 'sub', 'small.txt'), 'small');
    await runBackup(m.ctx, { include: [src] });
    let read = 0;
    const session = withMethods(m.ctx.session, (s) => ({ readPack: (pack, offset, length, into) => ((read += length), s.readPack(pack, offset, length, into)) }));
    const seen: string[] = [];
    // The same folder twice, and one inside it: listed once.
    await listPoint({ ...m.ctx, session }, { point: 'latest', paths: [src, src, path.join(src, 'sub')], recursive: true, onEntry: (e) => seen.push(e.path) });
    expect(seen).toEqual([path.join(src, 'big.bin'), path.join(src, 'sub'), path.join(src, 'sub', 'small.txt')]);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(64 * 1024); // the big file's chunks are megabytes
  });

  it('reads a tree of more folders than it keeps in large reads, for ls -r and for a restore', async () => {
    const m = await createMachine();
    const src = await wideTree(m);
    await runBackup(m.ctx, { include: [src] });
    // src, a*, a*/b*, a*/b*/c* and a*/b*/c*/empty: 343 folders, of 199 different listings (the empty ones share one)
    const folders = 1 + 6 + 6 * 8 + 2 * 6 * 8 * 3;
    const files = 6 * 8 * 3;
    let reads = 0;
    const session = withMethods(m.ctx.session, (s) => ({ readPack: (pack, offset, length, into) => (reads++, s.readPack(pack, offset, length, into)) }));

    // Room for less than half the tree (300, each listing counting one plus its entries: the 199
    // listings count 686): past the first read-ahead, entering a folder reads its subfolders'
    // listings that are not kept, with those beneath them. One read per listing missed took 289.
    const seen: string[] = [];
    const r = await listPoint({ ...m.ctx, session }, { point: 'latest', paths: [src], recursive: true, maxKept: 300, onEntry: (e) => seen.push(e.path) });
    expect(r.entries).toBe(folders - 1 + files);
    expect(seen).toEqual((await fs.readdir(src, { recursive: true })).map((n) => path.join(src, String(n))).sort());
    expect(reads).toBeLessThan(80);

    reads = 0;
    const target = path.join(m.dir, 'out');
    const restored = await runRestore({ ...m.ctx, session }, { point: 'latest', target, paths: [], conflict: 'skip', maxKept: 300 });
    expect(restored.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
    expect(reads).toBeLessThan(80); // the listings (one by one: 290 reads) and the files' data
  });

  it('reads the listing of folders that are the same (copies) once, for ls -r and for a restore', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const one = path.join(m.dir, 'one');
    for (const sub of ['x', 'x/y', 'x/y/z', 'w']) {
      await fs.mkdir(path.join(one, sub), { recursive: true });
      await fs.writeFile(path.join(one, sub, 'f.txt'), sub);
    }
    // Copies with the same names, contents, modes and times share their listings.
    for (let i = 0; i < 40; i++) await fs.cp(one, path.join(src, `copy${i}`), { recursive: true, preserveTimestamps: true });
    await runBackup(m.ctx, { include: [src] });
    let reads = 0;
    const session = withMethods(m.ctx.session, (s) => ({ readPack: (pack, offset, length, into) => (reads++, s.readPack(pack, offset, length, into)) }));
    const r = await listPoint({ ...m.ctx, session }, { point: 'latest', paths: [src], recursive: true, onEntry: () => undefined });
    expect(r.entries).toBe(40 * 9);
    // The listings of the folders above src (its depth), src's, and the copies' five, at most.
    const listings = src.split(path.sep).length - 1 + 1 + 5;
    expect(reads).toBeLessThanOrEqual(listings);
    reads = 0;
    const target = path.join(m.dir, 'out');
    const restored = await runRestore({ ...m.ctx, session }, { point: 'latest', target, paths: [src], conflict: 'skip' });
    expect(restored.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
    expect(reads).toBeLessThanOrEqual(listings + 2);
  });

  it('past what it keeps, reports a damaged listing and lists everything around it', async () => {
    const m = await createMachine();
    const src = await wideTree(m);
    const res = await runBackup(m.ctx, { include: [src] });
    const index = await BlobIndex.load(m.ctx.session, m.keys);
    const { manifest } = await openPoint(m.ctx, m.keys, ownMachine(m), res.point);
    let tree = await readTree(m, index, manifest.tree);
    let id: BlobId | undefined;
    for (const name of [...src.split('/').filter(Boolean), 'a3', 'b4', 'c1']) {
      const node = tree.nodes.find((n) => n.name === name)!;
      if (node.type !== 'dir') throw new Error('not a folder');
      id = node.subtree;
      tree = await readTree(m, index, id);
    }
    const bad = index.get('tree', id!)!;
    let reads = 0;
    let failures = 0;
    const session = withMethods(m.ctx.session, (s) => ({
      readPack: (pack, offset, length, into) => {
        reads++;
        // a damaged stretch of the pack: every read that takes in any of the listing's bytes fails
        if (pack !== bad.pack || offset + length <= bad.entry.offset || offset >= bad.entry.offset + bad.entry.length) return s.readPack(pack, offset, length, into);
        failures++;
        return Promise.reject(new AzbkError('AZBK_VAULT_CORRUPT', 'a damaged range'));
      },
    }));
    const seen: string[] = [];
    const r = await listPoint({ ...m.ctx, session }, { point: 'latest', paths: [src], recursive: true, maxKept: 300, onEntry: (e) => seen.push(e.path) });
    const broken = path.join(src, 'a3', 'b4', 'c1');
    expect(r.failed).toEqual([{ path: broken, reason: expect.stringMatching(/damaged range/) as unknown as string }]);
    const all = (await fs.readdir(src, { recursive: true })).map((n) => path.join(src, String(n)));
    expect(seen).toEqual(all.filter((p) => !p.startsWith(`${broken}/`)).sort());
    expect(reads).toBeLessThan(120); // one by one: 204
    expect(failures).toBeGreaterThan(0);
  });

  it('reads a listing the vault lost where a later backup stored it again', async () => {
    // The listings' own pack (the smallest) is lost; the next backup stores them again.
    const { m, src, first, before, pack } = await lostAndStoredAgain('smallest');
    // A machine that does not know: the old index file, read last, puts the listings in the lost pack.
    const ctx = await forgetful(m, (names) => [...names.filter((n) => !before.has(n)), ...names.filter((n) => before.has(n))]);
    const seen: string[] = [];
    const r = await listPoint(ctx, { point: first.point.id, paths: [src], recursive: true, onEntry: (e) => seen.push(e.path) });
    expect(seen).toEqual([path.join(src, 'a.bin'), path.join(src, 'b.txt')]);
    expect(r.failed).toEqual([]);
    expect(r.missingPacks).toEqual([pack]);
  });
});

describe('times in listings', () => {
  it('shows a time to the millisecond, rounded down, before 1970 too', () => {
    expect(isoTime('1700000000123456789')).toBe('2023-11-14T22:13:20.123Z');
    expect(isoTime('0')).toBe('1970-01-01T00:00:00.000Z');
    // a nanosecond before 1970 is in 1969, not at its end
    expect(isoTime('-1')).toBe('1969-12-31T23:59:59.999Z');
    expect(isoTime('-315359992876543211')).toBe('1960-01-04T00:00:07.123Z');
    expect(isoTime('-1000000')).toBe('1969-12-31T23:59:59.999Z');
    // years of more than four digits are not shown
    expect(isoTime('-99999999999999999999999')).toBeNull();
  });
});
