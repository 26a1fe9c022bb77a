/** verifyVault on a healthy vault, one with a pack deleted under it, and one with unused packs. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { recordDamagedPacks } from '../../src/agent/file-cache.js';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { BlobWriter } from '../../src/agent/blob-writer.js';
import { openPoint } from '../../src/agent/points.js';
import { runRestore } from '../../src/agent/restore.js';
import { verifyVault } from '../../src/agent/verify.js';
import { deriveKeys, generateMasterKey } from '../../src/core/keys.js';
import { encodeTree } from '../../src/core/tree.js';
import { AzbkError } from '../../src/shared/errors.js';
import { layout } from '../../src/vault/layout.js';
import { homePaths } from '../../src/shared/paths.js';
import { writeRandomFile } from '../helpers/fs-tree.js';
import { createMachine, dataOnlyPack, filesInPack, ownMachine, readPoint, withMethods, type TestMachine } from '../helpers/machine.js';

// Backups read files in worker threads; under vitest those run from a bundle of their source.

const MiB = 1 << 20;

/** A small source tree; with `big`, a.bin spans three packs, the middle one of its data only. */
async function smallTree(m: TestMachine, big = false): Promise<string> {
  const src = path.join(m.dir, 'src');
  await writeRandomFile(path.join(src, 'a.bin'), big ? 36 * MiB : 3 * MiB);
  await writeRandomFile(path.join(src, 'sub', 'b.bin'), 2 * MiB);
  await fs.writeFile(path.join(src, 'sub', 'c.txt'), 'hello');
  await fs.mkdir(path.join(src, 'empty'));
  return src;
}

describe('verifyVault', () => {
  it('finds nothing wrong with a healthy vault, with or without reading data', async () => {
    const m = await createMachine();
    const src = await smallTree(m);
    await runBackup(m.ctx, { include: [src] });
    await runBackup(m.ctx, { include: [src] });
    for (const readData of [false, true]) {
      const r = await verifyVault(m.ctx.session, m.keys, { readData });
      expect(r.problems).toEqual([]);
      expect(r.points).toBe(2);
      expect(r.checkpoints).toBe(0);
      // root, the ancestors of src, src, sub, empty: at least 3 distinct trees; 3 files' chunks
      expect(r.trees).toBeGreaterThanOrEqual(4);
      expect(r.blobs).toBeGreaterThanOrEqual(r.trees + 3);
      expect(r.orphanPacks).toBe(0);
    }
  });

  it('reads each pack whole and once, in ranges of up to 2 MiB (or one larger chunk); a pack of listings at most twice', async () => {
    const m = await createMachine();
    const src = await smallTree(m, true); // a.bin: 36 MiB in about 36 chunks, over three packs
    await runBackup(m.ctx, { include: [src] });
    const reads: { pack: string; offset: number; length: number }[] = [];
    const session = withMethods(m.ctx.session, (s) => ({ readPack: (pack, offset, length, into) => (reads.push({ pack, offset, length }), s.readPack(pack, offset, length, into)) }));
    const r = await verifyVault(session, m.keys, { readData: true });
    expect(r.problems).toEqual([]);
    expect(r.blobs).toBeGreaterThan(30);
    // One read per blob would be r.blobs reads (41 or so); neighbours that fit in a range share one.
    expect(reads.length).toBeLessThan(r.blobs + 4);
    expect(Math.max(...reads.map((x) => x.length))).toBeLessThanOrEqual(8 * MiB); // a range, or one chunk larger than a range
    for await (const key of m.base.list('packs/')) {
      const pack = path.posix.basename(key);
      const size = (await m.base.stat(key))!.size;
      const mine = reads.filter((x) => x.pack === pack).sort((a, b) => a.offset - b.offset);
      // Whole: the reads cover every byte, for the pack's hash.
      let covered = 0;
      for (const x of mine) if (x.offset <= covered) covered = Math.max(covered, x.offset + x.length);
      expect(covered, pack).toBe(size);
      const read = mine.reduce((n, x) => n + x.length, 0);
      // A data pack once; the listings' pack (small) may be read by the walk before it is read whole.
      if (size > 4 * MiB) expect(read, pack).toBe(size);
      else expect(read, pack).toBeLessThanOrEqual(2 * size);
    }
  });

  it('reports the files of a point whose pack was deleted from the store', async () => {
    const m = await createMachine();
    const src = await smallTree(m, true);
    const res = await runBackup(m.ctx, { include: [src] });
    // A pack of a.bin's data and no listing of the point.
    const contents = await readPoint(m, res.point);
    const pack = dataOnlyPack(contents, path.join(src, 'a.bin'));
    const affected = filesInPack(contents, pack);
    expect(affected).toContain(path.join(src, 'a.bin'));
    await m.base.delete(layout.pack(pack));

    for (const readData of [false, true]) {
      const r = await verifyVault(m.ctx.session, m.keys, { readData });
      expect(r.problems.map((p) => p.where).sort()).toEqual(affected.map((p) => `${res.point.id}:${p}`).sort());
      if (!readData) for (const p of r.problems) expect(p.what).toMatch(/chunks unreadable: pack \w+ of data blob \w+ is missing/);
    }
  });

  /** Flips a byte in a pack of a.bin's data only (the store never overwrites: delete, then put). */
  async function damageData(m: TestMachine, src: string, point: Parameters<typeof readPoint>[1]): Promise<void> {
    const pack = dataOnlyPack(await readPoint(m, point), path.join(src, 'a.bin'));
    const key = layout.pack(pack);
    const data = (await m.base.get(key))!;
    data[5] = data[5]! ^ 1;
    await m.base.delete(key);
    await m.base.put(key, data);
  }

  it('reports a damaged blob only when reading data', async () => {
    const m = await createMachine();
    const src = await smallTree(m, true);
    const res = await runBackup(m.ctx, { include: [src] });
    await damageData(m, src, res.point);
    expect((await verifyVault(m.ctx.session, m.keys)).problems).toEqual([]);
    const r = await verifyVault(m.ctx.session, m.keys, { readData: true });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]!.what).toMatch(/1 of \d+ chunks unreadable: .*failed authentication/);
  });

  it('a damaged chunk stored again by a later backup is no problem, whichever index file names it last', async () => {
    const m = await createMachine();
    const src = await smallTree(m, true);
    const first = await runBackup(m.ctx, { include: [src] });
    const before = new Set(await m.ctx.session.listIndex());
    await damageData(m, src, first.point);
    const pack = dataOnlyPack(await readPoint(m, first.point), path.join(src, 'a.bin'));
    // The machine that found it damaged stores what it has of it again.
    recordDamagedPacks(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId, [pack]);
    await runBackup(m.ctx, { include: [src] });
    // Another machine knows nothing of it; the index file of the damaged pack is read last.
    const session = withMethods(m.ctx.session, (s) => ({
      listIndex: async () => {
        const names = await s.listIndex();
        return [...names.filter((n) => !before.has(n)), ...names.filter((n) => before.has(n))];
      },
    }));
    const r = await verifyVault(session, m.keys, { readData: true });
    expect(r.problems).toEqual([]);
    expect(r.damagedPacks).toEqual([pack]);
    expect(r.points).toBe(2);
    // Not counted among the packs nothing refers to, which prune frees: the first point names it.
    expect(r.orphanPacks).toBe(0);
  });

  it('names every point a damaged chunk breaks, also where the points share the folder that holds it', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const big = path.join(src, 'sub', 'big.bin');
    await writeRandomFile(big, 36 * MiB);
    await fs.writeFile(path.join(src, 'top.txt'), '1\n');
    const first = await runBackup(m.ctx, { include: [src] });
    // The second point's listing of src differs; that of sub, which holds big.bin, is the same one.
    await fs.writeFile(path.join(src, 'top.txt'), '2\n');
    const second = await runBackup(m.ctx, { include: [src] });
    const pack = dataOnlyPack(await readPoint(m, first.point), big);
    const data = (await m.base.get(layout.pack(pack)))!;
    data[5] = data[5]! ^ 1;
    await m.base.delete(layout.pack(pack));
    await m.base.put(layout.pack(pack), data);
    const r = await verifyVault(m.ctx.session, m.keys, { readData: true });
    expect(r.problems.map((p) => p.where).sort()).toEqual([first, second].map((b) => `${b.point.id}:${big}`).sort());
    expect(r.problems[0]!.what).toMatch(/1 of \d+ chunks unreadable: .*failed authentication/);
    expect(r.problems[1]!.what).toBe(r.problems[0]!.what);
  });

  it('reading data, reads each pack whole and reports one that does not match its id, though every chunk checks out', async () => {
    const m = await createMachine();
    const src = await smallTree(m, true);
    const res = await runBackup(m.ctx, { include: [src] });
    const pack = dataOnlyPack(await readPoint(m, res.point), path.join(src, 'a.bin'));
    // A byte of its header (at its end, before the header's length and the magic): no chunk is in it.
    const key = layout.pack(pack);
    const data = (await m.base.get(key))!;
    data[data.length - 20] = data[data.length - 20]! ^ 1;
    await m.base.delete(key);
    await m.base.put(key, data);
    expect((await verifyVault(m.ctx.session, m.keys)).problems).toEqual([]);
    const r = await verifyVault(m.ctx.session, m.keys, { readData: true });
    expect(r.problems).toEqual([{ where: `pack ${pack}`, what: 'its bytes do not match its id: damaged where no point reads (its header, or data no point needs)' }]);
    expect(r.damagedPacks).toEqual([pack]);
    // A restore does not need the header: every file comes back.
    const target = path.join(m.dir, 'out');
    expect((await runRestore(m.ctx, { point: res.point.id, target, paths: [], conflict: 'skip' })).failed).toEqual([]);
  });

  it('reading data, checks as it meets them the chunks the first sweep did not reach', async () => {
    const m = await createMachine();
    const src = await smallTree(m, true);
    const res = await runBackup(m.ctx, { include: [src] });
    await damageData(m, src, res.point);
    // The first read of a listing (the point's root, in the first sweep) fails once: that sweep
    // marks no chunk, and the one that reports finds them all.
    let failures = 0;
    const session = withMethods(m.ctx.session, (s) => ({
      readPack: (pack, offset, length, into) => {
        if (failures++ === 0) return Promise.reject(new AzbkError('AZBK_VAULT_CORRUPT', 'The read was cut short.'));
        return s.readPack(pack, offset, length, into);
      },
    }));
    const r = await verifyVault(session, m.keys, { readData: true });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]!.where).toMatch(new RegExp(`^${res.point.id}:${src}/`));
    expect(r.problems[0]!.what).toMatch(/1 of \d+ chunks unreadable: .*failed authentication/);
  });

  it('reports a listing no index file names at every point that refers to it, checking it once', async () => {
    const m = await createMachine();
    const src = await smallTree(m);
    const first = await runBackup(m.ctx, { include: [src] });
    const second = await runBackup(m.ctx, { include: [src] }); // nothing changed: the same listings
    // ... unless a folder above src changed in between (another process made a file in the
    // system's temporary folder): then the two points have two root listings.
    const roots = new Set([(await openPoint(m.ctx, m.keys, ownMachine(m), first.point)).manifest.tree, (await openPoint(m.ctx, m.keys, ownMachine(m), second.point)).manifest.tree]);
    for await (const key of m.base.list(layout.indexPrefix)) await m.base.delete(key);
    for (const readData of [false, true]) {
      const r = await verifyVault(m.ctx.session, m.keys, { readData });
      expect(r.points).toBe(2);
      expect(r.problems.map((p) => p.where).sort()).toEqual([`${first.point.id}:/`, `${second.point.id}:/`].sort());
      for (const p of r.problems) expect(p.what).toMatch(/^tree blob [0-9a-f]{12} is not in the index$/);
      expect(r.blobs).toBe(roots.size);
      expect(r.trees).toBe(roots.size);
    }
  });

  it('counts indexed packs nothing refers to as orphans, not problems', async () => {
    const m = await createMachine();
    const src = await smallTree(m);
    await runBackup(m.ctx, { include: [src] });
    // What an interrupted job leaves: a pack with its index, referenced by no point or checkpoint.
    const index = await BlobIndex.load(m.ctx.session, m.keys);
    const w = new BlobWriter(m.ctx.session, m.keys, index);
    await w.add('data', Buffer.from('left over by a job that never finished'));
    await w.flush();
    const r = await verifyVault(m.ctx.session, m.keys);
    expect(r.problems).toEqual([]);
    expect(r.orphanPacks).toBe(1);
  });

  it('leaves out a point removed after it was listed, and still reports one that is damaged', async () => {
    const m = await createMachine();
    const src = await smallTree(m);
    const first = await runBackup(m.ctx, { include: [src] });
    await runBackup(m.ctx, { include: [src] });
    const third = await runBackup(m.ctx, { include: [src] });
    const key = (id: string) => `points/${m.ctx.registration.machineId}/${id}`;
    await m.base.delete(key(third.point.id));
    await m.base.put(key(third.point.id), Buffer.from('{"not":"a point"}'));
    const firstRecord = (await m.base.get(key(first.point.id)))!;
    // Retention (a backup of the machine) removes the first point once it is listed.
    const session = withMethods(m.ctx.session, (s) => ({
      listPoints: async (machine) => {
        const listed = await s.listPoints(machine);
        await m.base.delete(key(first.point.id));
        return listed;
      },
    }));
    for (const readData of [false, true]) {
      await m.base.put(key(first.point.id), firstRecord);
      const r = await verifyVault(session, m.keys, { readData });
      expect(r.points).toBe(1);
      expect(r.problems.map((p) => p.where)).toEqual([third.point.id]);
      expect(r.problems[0]!.what).toMatch(/damaged/);
    }
  });

  it('skips points of another key family', async () => {
    const m = await createMachine();
    const src = await smallTree(m);
    await runBackup(m.ctx, { include: [src] });
    const other = { ...m.keys, keyId: '0'.repeat(32) } as typeof m.keys;
    const r = await verifyVault(m.ctx.session, other);
    expect(r).toMatchObject({ points: 0, checkpoints: 0, blobs: 0, problems: [] });
  });
});

describe('a data chunk and a tree with the same bytes', () => {
  // Blob ids are HMAC(idKey, plaintext) whatever the type; each blob is sealed with its type, and
  // the index knows blobs by type and id, so the two are distinct blobs and both restore.
  it('are stored as two blobs: the vault verifies and both come back', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(path.join(src, 'b-empty'), { recursive: true });
    await fs.writeFile(path.join(src, 'a.json'), encodeTree([]));
    await runBackup(m.ctx, { include: [src] });
    const r = await verifyVault(m.ctx.session, m.keys, { readData: true });
    expect(r.problems).toEqual([]);
    const target = path.join(m.dir, 'restored');
    const res = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip' });
    expect(res.failed).toEqual([]);
    expect((await fs.readFile(path.join(target, src, 'a.json'))).equals(encodeTree([]))).toBe(true);
    expect((await fs.stat(path.join(target, src, 'b-empty'))).isDirectory()).toBe(true);
  });

  it("counts a point record that cannot be read as a problem of its machine's key only, when its other points say which", async () => {
    const m = await createMachine();
    const src = await smallTree(m);
    await runBackup(m.ctx, { include: [src] });
    // Machine m2 of another key, with two points.
    const creds = await m.vault.credentials({ endpoint: 'memory://t', certFingerprint: null, validDays: 1 });
    const reg = await m.vault.register({ token: creds.token, machineName: 'm2', os: 'test', hostname: 'h2', reregister: false });
    const keys2 = deriveKeys(generateMasterKey());
    const home2 = path.join(m.dir, 'home2');
    await fs.mkdir(home2, { mode: 0o700 });
    const ctx2 = { ...m.ctx, paths: { ...m.ctx.paths, ...homePaths(home2) }, session: await m.vault.session(reg.machineId, reg.secret), keys: keys2, registration: { ...m.ctx.registration, machineId: reg.machineId, machineName: 'm2', keyId: keys2.keyId } };
    await runBackup(ctx2, { include: [src] });
    await runBackup(ctx2, { include: [src] });
    const records: string[] = [];
    for await (const key of m.base.list(`points/${reg.machineId}/`)) records.push(key);
    expect(records).toHaveLength(2);
    const damage = async (key: string) => (await m.base.delete(key), await m.base.put(key, Buffer.from('{"not a point')));
    await damage(records[0]!);

    const mine = await verifyVault(m.ctx.session, m.keys, {});
    expect(mine.problems).toEqual([]);
    expect(mine.points).toBe(1);
    const theirs = await verifyVault(ctx2.session, keys2, {});
    expect(theirs.problems).toEqual([{ where: expect.any(String), what: expect.stringMatching(/not valid JSON/) }]);

    // With no readable point left, whose it was cannot be told: a problem for every key.
    await damage(records[1]!);
    expect((await verifyVault(m.ctx.session, m.keys, {})).problems).toHaveLength(2);
  });
});
