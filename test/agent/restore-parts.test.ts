/**
 * A restore of many files plans and writes them in parts, so that its plan never holds every file
 * of a large point: the parts here are a few files each (the default is 200,000 files and chunks).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { runRestore, type PlannedCounts, type RestoreCounts, type RestoreEvent } from '../../src/agent/restore.js';
import { expectSameTree, listFiles, writeRandomFile } from '../helpers/fs-tree.js';
import { recordMissingPacks } from '../../src/agent/file-cache.js';
import { forgetful, losePack } from '../helpers/lost-pack.js';
import { createMachine, type TestMachine } from '../helpers/machine.js';
import { layout } from '../../src/vault/layout.js';

const KiB = 1024;

/** 4 folders of 6 files, one of 3 MiB (several chunks), an empty file, and two names of one file in different folders. */
async function makeSource(m: TestMachine): Promise<string> {
  const src = path.join(m.dir, 'src');
  for (const d of ['a', 'b', 'c/deep', 'd']) {
    for (let i = 0; i < 6; i++) await writeRandomFile(path.join(src, d, `f${i}.bin`), (i + 1) * 3 * KiB);
  }
  await writeRandomFile(path.join(src, 'b', 'big.bin'), 3 * 1024 * KiB);
  await fs.writeFile(path.join(src, 'c', 'empty'), '');
  // The second name comes after the first in the walk, parts later.
  await fs.link(path.join(src, 'a', 'f0.bin'), path.join(src, 'd', 'same.bin'));
  await fs.chmod(path.join(src, 'c', 'deep'), 0o750);
  return src;
}

describe('a restore in parts', () => {
  it('writes each part before it plans the next, and restores everything as a restore in one part does', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    await runBackup(m.ctx, { include: [src] });

    let total: (() => PlannedCounts) | null = null;
    let progress: (() => RestoreCounts) | null = null;
    /** what was planned and what restored whenever a file was put in place */
    const seen: { planned: PlannedCounts; restored: number }[] = [];
    const onEvent = (e: RestoreEvent) => {
      if (e.type === 'planned') {
        expect(total).toBeNull(); // told once, at the first part
        ({ total, progress } = e);
      }
      if (e.type === 'file') seen.push({ planned: total!(), restored: progress!().files });
    };
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const r = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip', batchItems: 5, onEvent });
    expect(r.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
    expect(r.restored.files).toBe(27);

    // Files were put in place while later ones were not planned yet, and the totals grew to all of them.
    const early = seen.filter((s) => !s.planned.complete);
    expect(early.length).toBeGreaterThan(5);
    expect(early[0]!.planned.files).toBeLessThan(27);
    for (const s of seen) expect(s.restored).toBeLessThanOrEqual(s.planned.files);
    expect(total!()).toEqual({ files: 27, bytes: r.restored.bytes, complete: true });
    expect(progress!()).toEqual({ files: 27, bytes: r.restored.bytes });

    // The second name of the hard-linked file, planned in a later part, is a link to the first.
    const [one, two] = await Promise.all([fs.stat(path.join(target, src, 'a', 'f0.bin')), fs.stat(path.join(target, src, 'd', 'same.bin'))]);
    expect(two.ino).toBe(one.ino);
    expect((await fs.stat(path.join(target, src, 'c', 'deep'))).mode & 0o777).toBe(0o750);
  });

  it('counts hard links to files of an earlier part as items of their own: a tree of links is written in parts too', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (let i = 0; i < 4; i++) await writeRandomFile(path.join(src, 'a', `f${i}.bin`), 1000 + i);
    // Ten snapshots of a/ made of links, as cp -al makes them.
    for (let s = 0; s < 10; s++) {
      await fs.mkdir(path.join(src, `snap${s}`));
      for (let i = 0; i < 4; i++) await fs.link(path.join(src, 'a', `f${i}.bin`), path.join(src, `snap${s}`, `f${i}.bin`));
    }
    await runBackup(m.ctx, { include: [src] });
    let total: (() => PlannedCounts) | null = null;
    let linksEarly = 0;
    const onEvent = (e: RestoreEvent) => {
      if (e.type === 'planned') total = e.total;
      if (e.type === 'file' && e.path.includes('snap') && !total!().complete) linksEarly++;
    };
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const r = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip', batchItems: 8, onEvent });
    expect(r.failed).toEqual([]);
    expect(r.restored.files).toBe(44);
    expect(linksEarly).toBeGreaterThan(20);
    const one = await fs.stat(path.join(target, src, 'a', 'f2.bin'));
    expect((await fs.stat(path.join(target, src, 'snap9', 'f2.bin'))).ino).toBe(one.ino);
  });

  it('stops at a part whose data phase loses the vault, with the parts before it in place and no temporary file left', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    await runBackup(m.ctx, { include: [src] });
    let restored = 0;
    let down = false;
    // The vault goes away once a few files are in place: every read and question fails from then on.
    m.faulty.fail('get', { match: (k) => k.startsWith('packs/') && (down ||= restored >= 4), times: Infinity });
    m.faulty.fail('stat', { match: () => down, times: Infinity });
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    let total: (() => PlannedCounts) | null = null;
    const onEvent = (e: RestoreEvent) => {
      if (e.type === 'file') restored++;
      if (e.type === 'planned') total = e.total;
    };
    await expect(runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip', batchItems: 5, onEvent })).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    // It stopped there: the folders after that part were not planned (nor made).
    expect(total!().complete).toBe(false);
    const left = await listFiles(target);
    expect(left.filter((f) => path.basename(f).startsWith('.azbk-restore-'))).toEqual([]);
    expect(left.length).toBeGreaterThanOrEqual(4);
    expect(left.length).toBeLessThan(27);

    m.faulty.clearFaults();
    const again = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip', batchItems: 5 });
    expect(again.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
  });
});

describe('a restore in parts and a pack the vault lost', () => {
  it('stops where the vault stops answering while a part is restored again from data stored elsewhere', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a.bin'), 10 * 1024 * KiB);
    await fs.writeFile(path.join(src, 'b.txt'), 'small\n');
    const first = await runBackup(m.ctx, { include: [src] });
    const before = new Set(await m.ctx.session.listIndex());
    // The pack of a.bin's chunks is lost; as after verify found it missing, the next backup stores them again.
    const pack = await losePack(m, 'biggest');
    recordMissingPacks(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId, [pack]);
    await runBackup(m.ctx, { include: [src] });
    // Once the vault said the pack is gone, it stops answering at the next pack read: that of
    // a.bin's chunks stored again.
    const lost = layout.pack(pack);
    let gone = false;
    let down = false;
    m.faulty.fail('stat', { match: (k) => (k === lost && !down ? ((gone = true), false) : down), times: Infinity });
    m.faulty.fail('get', { match: (k) => k.startsWith('packs/') && k !== lost && (down ||= gone), times: Infinity });
    // A machine that does not know the pack is lost, reading its index file last: a.bin's chunks are looked for there.
    const ctx = await forgetful(m, (names) => [...names.filter((n) => !before.has(n)), ...names.filter((n) => before.has(n))]);
    let total: (() => PlannedCounts) | null = null;
    const onEvent = (e: RestoreEvent) => {
      if (e.type === 'planned') total = e.total;
    };
    // a.bin (10 MiB: about ten items) is a part of its own, b.txt the next.
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    await expect(runRestore(ctx, { point: first.point.id, target, paths: [], conflict: 'skip', batchItems: 5, onEvent })).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    expect(down).toBe(true);
    expect(total!().files).toBe(1); // b.txt's part was never handed over
    expect((await listFiles(target)).filter((f) => path.basename(f).startsWith('.azbk-restore-'))).toEqual([]);
  });
});
