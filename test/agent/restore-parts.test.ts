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
import { createMachine, type TestMachine } from '../helpers/machine.js';

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
