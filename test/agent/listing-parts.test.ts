/**
 * A folder whose listing is larger than a blob may be (MAX_BLOB_SIZE: a few hundred thousand
 * entries) is stored in parts, each naming the next (see core/tree.ts), and read back whole by
 * restore, ls, find and verify; an entry too large for a part on its own (a file of about a
 * terabyte) is skipped with the reason. The limit is lowered here so that small folders pass it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { runBackup } from '../../src/agent/backup.js';
import { FileCache } from '../../src/agent/file-cache.js';
import { toSegments } from '../../src/agent/fspath.js';
import { findInPoints } from '../../src/agent/find.js';
import { listPoint } from '../../src/agent/ls.js';
import { runRestore } from '../../src/agent/restore.js';
import { verifyVault } from '../../src/agent/verify.js';
import { decodeBlob } from '../../src/core/blob.js';
import type { BlobId, PackId } from '../../src/core/ids.js';
import { decodeTree, type Tree } from '../../src/core/tree.js';
import { layout } from '../../src/vault/layout.js';
import { createMachine, withMethods, type TestMachine } from '../helpers/machine.js';
import { settled } from '../helpers/racy.js';

const LIMIT = 4096;
const name = (i: number) => `file-with-a-long-name-${String(i).padStart(2, '0')}.txt`;

/** The blob of a listing (or part of one) as stored, and where. */
async function listingBlob(m: TestMachine, id: BlobId): Promise<{ tree: Tree; pack: PackId; offset: number; length: number }> {
  const loc = (await BlobIndex.load(m.ctx.session, m.keys)).get('tree', id)!;
  const sealed = await m.ctx.session.readPack(loc.pack, loc.entry.offset, loc.entry.length);
  return { tree: decodeTree(decodeBlob(m.keys, 'tree', id, sealed)), pack: loc.pack, offset: loc.entry.offset, length: loc.entry.length };
}

/** A machine, and a folder `src` with `big` in it: 60 files, whose listing takes several parts. */
async function withBigFolder(): Promise<{ m: TestMachine; src: string; big: string }> {
  const m = await createMachine();
  const src = path.join(m.dir, 'src');
  const big = path.join(src, 'big');
  await fs.mkdir(big, { recursive: true });
  await Promise.all(Array.from({ length: 60 }, (_, i) => fs.writeFile(path.join(big, name(i)), `${i}\n`)));
  return { m, src, big };
}

const cacheOf = (m: TestMachine) => FileCache.forVault(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId);

describe('a folder listing past the limit', () => {
  it('is stored in parts and read back whole by restore, ls, find and verify; an unchanged one is reused', async () => {
    const { m, src, big } = await withBigFolder();
    // The same but for its first file: the two listings share every part but the first.
    const twin = path.join(src, 'twin');
    await fs.cp(big, twin, { recursive: true });
    await fs.writeFile(path.join(twin, name(0)), 'other\n');
    const when = new Date('2026-01-02T03:04:05Z');
    for (const f of [big, twin]) for (let i = 0; i < 60; i++) await fs.utimes(path.join(f, name(i)), when, when);
    await fs.mkdir(path.join(src, 'other'));
    await fs.writeFile(path.join(src, 'other', 'doc.txt'), 'important\n');
    await settled(); // no file read again for being changed just before

    const res = await runBackup(m.ctx, { include: [src], maxListingBytes: LIMIT });
    expect(res.skipped).toEqual([]);
    expect(res.stats.files).toBe(121);
    // The folder's listing is its first part, which names the next, and so on: every part fits.
    const cache = cacheOf(m);
    const first = cache.getDir(big)!;
    cache.close();
    expect(first.fingerprint).not.toBeNull();
    const names: string[] = [];
    let parts = 0;
    for (let id: BlobId | undefined = first.tree; id !== undefined; parts++) {
      const { tree, length } = await listingBlob(m, id);
      expect(tree.version).toBe(2);
      expect(length).toBeLessThanOrEqual(LIMIT + 64);
      names.push(...tree.nodes.map((n) => n.name));
      id = tree.next;
    }
    expect(parts).toBeGreaterThan(2);
    expect(names).toEqual(Array.from({ length: 60 }, (_, i) => name(i)));
    const reopened = cacheOf(m);
    const twinFirst = (await listingBlob(m, reopened.getDir(twin)!.tree)).tree;
    reopened.close();
    expect(twinFirst.next).toBe((await listingBlob(m, first.tree)).tree.next);

    // Restored, its first part read twice: once by the read-ahead, which leaves it to the walk,
    // and once by the walk with the parts after it.
    const at = await listingBlob(m, first.tree);
    let firstReads = 0;
    const counting = { ...m.ctx, session: withMethods(m.ctx.session, (s) => ({ readPack: (pack, offset, length) => ((firstReads += pack === at.pack && offset <= at.offset && at.offset < offset + length ? 1 : 0), s.readPack(pack, offset, length)) })) };
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    expect((await runRestore(counting, { point: 'latest', target, paths: [], conflict: 'overwrite' })).failed).toEqual([]);
    expect(firstReads).toBe(2);
    expect((await fs.readdir(path.join(target, big))).sort()).toEqual(names);
    for (const i of [0, 31, 59]) expect(await fs.readFile(path.join(target, big, name(i)), 'utf8')).toBe(`${i}\n`);
    expect(await fs.readFile(path.join(target, src, 'other', 'doc.txt'), 'utf8')).toBe('important\n');
    expect((await fs.readdir(path.join(target, twin))).sort()).toEqual(names);
    expect(await fs.readFile(path.join(target, twin, name(0)), 'utf8')).toBe('other\n');
    // One file of the last part on its own.
    const one = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    expect((await runRestore(m.ctx, { point: 'latest', target: one, paths: [path.join(big, name(59))], conflict: 'overwrite' })).failed).toEqual([]);
    expect(await fs.readFile(path.join(one, big, name(59)), 'utf8')).toBe('59\n');

    const listed: string[] = [];
    await listPoint(m.ctx, { point: 'latest', paths: [big], recursive: false, onEntry: (e) => listed.push(e.path) });
    expect(listed).toEqual(names.map((n) => path.join(big, n)));
    const found: string[] = [];
    await findInPoints(m.ctx, { patterns: [name(59)], onMatch: (_p, e) => found.push(e.path) });
    expect(found).toEqual([path.join(big, name(59)), path.join(twin, name(59))]);
    expect((await verifyVault(m.ctx.session, m.keys, { readData: true })).problems).toEqual([]);

    // Unchanged: the folders stored are taken as they are, nothing read, and no listing made
    // again but those of the folders above src (whose listings name only the way down).
    const again = await runBackup(m.ctx, { include: [src], maxListingBytes: LIMIT });
    expect(again.stats.readBytes).toBe(0);
    expect(again.stats.blobs).toBe(toSegments(src).length);
    expect((await runRestore(m.ctx, { point: 'latest', target: await fs.mkdtemp(path.join(m.dir, 'restore-')), paths: [], conflict: 'overwrite' })).failed).toEqual([]);
  });

  it('a damaged part is named by verify, and by the restore of that folder, which brings back the rest', async () => {
    const { m, src, big } = await withBigFolder();
    await fs.writeFile(path.join(src, 'doc.txt'), 'important\n');
    await settled();
    const res = await runBackup(m.ctx, { include: [src], maxListingBytes: LIMIT });
    const cache = cacheOf(m);
    const second = (await listingBlob(m, cache.getDir(big)!.tree)).tree.next!;
    cache.close();
    const at = await listingBlob(m, second);
    const key = layout.pack(at.pack);
    const data = (await m.base.get(key))!;
    const tag = at.offset + at.length - 1;
    data[tag] = data[tag]! ^ 1;
    await m.base.delete(key);
    await m.base.put(key, data);

    const r = await verifyVault(m.ctx.session, m.keys);
    expect(r.problems).toEqual([{ where: `${res.point.id}:${big}`, what: expect.stringMatching(new RegExp(`^a part of it, tree blob ${second.slice(0, 12)}: `)) }]);
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const restored = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' });
    expect(restored.failed.map((f) => f.path)).toEqual([big]);
    expect(await fs.readFile(path.join(target, src, 'doc.txt'), 'utf8')).toBe('important\n');
  });

  it('leaves out a file too large for a part on its own, names it on every backup, and reads it once', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(src, { recursive: true });
    // A part of 380 bytes holds a file of one chunk with a short name, not one with a name of 250.
    const long = path.join(src, 'x'.repeat(250));
    await fs.writeFile(long, 'too large\n');
    for (const n of ['a.txt', 'b.txt', 'c.txt']) await fs.writeFile(path.join(src, n), `${n}\n`);
    await settled();
    for (let run = 0; run < 2; run++) {
      const res = await runBackup(m.ctx, { include: [src], maxListingBytes: 380 });
      expect(res.skipped).toEqual([{ path: long, reason: expect.stringMatching(/^its entry in the folder's listing \(its name and list of 1 chunk ids\) would take \d+ B, more than the 380 B a part of a listing may: not backed up$/) }]);
      expect(res.stats.files).toBe(3);
      // Read once; then remembered, and not read again only to be left out.
      expect(res.stats.readBytes).toBe(run === 0 ? 10 + 18 : 0);
      // Its folder's row does not vouch for it: a backup that sees no change there examines it.
      const cache = cacheOf(m);
      expect(cache.getDir(src)?.fingerprint).toBeNull();
      expect(cache.getFiles(src).size).toBe(4);
      cache.close();
    }
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    expect((await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' })).failed).toEqual([]);
    expect((await fs.readdir(path.join(target, src))).sort()).toEqual(['a.txt', 'b.txt', 'c.txt']);
  });

  it('skips the files included one by one that are too large for a part, and backs up the rest', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    const files = ['x', 'y'].map((c) => path.join(src, c.repeat(250)));
    for (const f of files) await fs.writeFile(f, 'too large\n');
    await fs.writeFile(path.join(src, 'sub', 'kept.txt'), 'kept\n');
    const res = await runBackup(m.ctx, { include: [...files, path.join(src, 'sub')], maxListingBytes: 380 });
    expect(res.skipped.map((s) => s.path)).toEqual(files);
    expect(res.stats.files).toBe(1);
    // None kept at all: no point, as for any backup that keeps nothing.
    await expect(runBackup(m.ctx, { include: files, maxListingBytes: 380 })).rejects.toMatchObject({ code: 'AZBK_PATH_NOT_FOUND' });
  });
});
