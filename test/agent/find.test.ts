/** findInPoints: listings shared by several points are read once; an unreadable one is reported and the rest searched. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { findInPoints } from '../../src/agent/find.js';
import { openPoint } from '../../src/agent/points.js';
import { decodeBlob } from '../../src/core/blob.js';
import { decodeTree } from '../../src/core/tree.js';
import { AzbkError } from '../../src/shared/errors.js';
import type { VaultSession } from '../../src/vault/api.js';
import { createMachine, ownMachine, withMethods, type TestMachine } from '../helpers/machine.js';

/** The machine's session, counting reads of packs, and failing those `fail` says to. */
function counting(m: TestMachine, fail: (pack: string, offset: number, length: number) => boolean = () => false): { session: VaultSession; reads: () => number } {
  let reads = 0;
  const session = withMethods(m.ctx.session, (s) => ({
    readPack: (pack, offset, length, into) => {
      reads++;
      return fail(pack, offset, length) ? Promise.reject(new AzbkError('AZBK_VAULT_CORRUPT', 'a damaged range')) : s.readPack(pack, offset, length, into);
    },
  }));
  return { session, reads: () => reads };
}

describe('findInPoints', () => {
  it('reads a listing shared by several points once', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (let d = 0; d < 20; d++) {
      await fs.mkdir(path.join(src, `d${d}`, 'inner'), { recursive: true });
      await fs.writeFile(path.join(src, `d${d}`, 'inner', `f${d}.txt`), String(d));
    }
    const first = await runBackup(m.ctx, { include: [src] });
    const one = counting(m);
    const a = await findInPoints({ ...m.ctx, session: one.session }, { patterns: ['f1*.txt'], point: first.point.id, onMatch: () => undefined });
    expect(a).toMatchObject({ points: 1, matches: 11, failed: [] });

    await runBackup(m.ctx, { include: [src] });
    await runBackup(m.ctx, { include: [src] });
    const three = counting(m);
    const seen: string[] = [];
    const b = await findInPoints({ ...m.ctx, session: three.session }, { patterns: ['f1*.txt'], onMatch: (p, e) => seen.push(`${p.id} ${path.relative(src, e.path)}`) });
    expect(b).toMatchObject({ points: 3, matches: 33, failed: [] });
    expect(seen.filter((s) => s.endsWith('d10/inner/f10.txt'))).toHaveLength(3);
    // The points share every listing: the two later ones read nothing more (the root's own listing aside).
    expect(three.reads()).toBeLessThanOrEqual(one.reads() + 2);
  });

  it('reads a tree of more folders than it keeps in large reads, and finds the same', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (let a = 0; a < 6; a++) {
      for (let b = 0; b < 8; b++) {
        for (let c = 0; c < 3; c++) {
          await fs.mkdir(path.join(src, `a${a}`, `b${b}`, `c${c}`), { recursive: true });
          await fs.writeFile(path.join(src, `a${a}`, `b${b}`, `c${c}`, `f${a}${b}${c}.txt`), 'x');
        }
      }
    }
    await runBackup(m.ctx, { include: [src] });
    await fs.writeFile(path.join(src, 'a5', 'b7', 'c2', 'f572.txt'), 'changed');
    await runBackup(m.ctx, { include: [src] });
    const matched = async (maxKept: number) => {
      const c = counting(m);
      const seen: string[] = [];
      const r = await findInPoints({ ...m.ctx, session: c.session }, { patterns: ['f*2.txt'], maxKept, onMatch: (p, e) => seen.push(`${p.id} ${e.path}`) });
      return { r, seen, reads: c.reads() };
    };
    // Room for about 64 listings (200, each counting one plus its entries), of 199 in the first
    // point: entering a folder reads the listings of its subfolders that are not kept, with those
    // beneath them (one read each took 197).
    const few = await matched(200);
    const all = await matched(100_000);
    expect(few.r).toMatchObject({ points: 2, matches: 2 * 6 * 8, failed: [] });
    expect(few.seen).toEqual(all.seen);
    expect(few.reads).toBeLessThan(160);
  });

  it('by path, tells apart the same folder at two places, and takes a \\ in a name as a character', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (const top of ['a', 'b']) {
      await fs.mkdir(path.join(src, top, 'd'), { recursive: true });
      await fs.writeFile(path.join(src, top, 'd', 'x.txt'), 'the same'); // a/d and b/d: one listing
    }
    await fs.writeFile(path.join(src, 'back\\slash.conf'), 'x');
    await runBackup(m.ctx, { include: [src] });
    const find = async (...patterns: string[]) => {
      const seen: string[] = [];
      await findInPoints(m.ctx, { patterns, onMatch: (_, e) => seen.push(path.relative(src, e.path)) });
      return seen;
    };
    // a/d is walked first and holds no match there; b/d, the same listing, does.
    expect(await find(`${src}/b/**`)).toEqual(['b/d', 'b/d/x.txt']);
    expect(await find(`${src}/*.conf`)).toEqual(['back\\slash.conf']);
    expect(await find(`${src}/back/slash.conf`)).toEqual([]);
  });

  it('reports a listing it cannot read and searches the rest', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(path.join(src, 'a'), { recursive: true });
    await fs.writeFile(path.join(src, 'a', 'x.txt'), 'x');
    await fs.writeFile(path.join(src, 'x.txt'), 'x');
    const res = await runBackup(m.ctx, { include: [src] });
    // The listing of src/a, found from the point's root, cannot be read.
    const index = await BlobIndex.load(m.ctx.session, m.keys);
    const { manifest } = await openPoint(m.ctx, m.keys, ownMachine(m), res.point);
    let id = manifest.tree;
    for (const name of [...src.split('/').filter(Boolean), 'a']) {
      const loc = index.get('tree', id)!;
      const tree = decodeTree(decodeBlob(m.keys, 'tree', id, await m.ctx.session.readPack(loc.pack, loc.entry.offset, loc.entry.length)));
      const node = tree.nodes.find((n) => n.name === name)!;
      if (node.type !== 'dir') throw new Error('not a folder');
      id = node.subtree;
    }
    const bad = index.get('tree', id)!;
    const { session } = counting(m, (pack, offset, length) => pack === bad.pack && offset <= bad.entry.offset && offset + length >= bad.entry.offset + bad.entry.length);
    const seen: string[] = [];
    const r = await findInPoints({ ...m.ctx, session }, { patterns: ['x.txt'], onMatch: (_, e) => seen.push(e.path) });
    expect(seen).toEqual([path.join(src, 'x.txt')]);
    expect(r.failed).toEqual([{ path: `${res.point.id}:${path.join(src, 'a')}`, reason: expect.stringMatching(/damaged range/) as unknown as string }]);
  });
});
