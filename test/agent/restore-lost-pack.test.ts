/**
 * A pack the vault lost, whose data a later backup stored again: a restore on a machine that does
 * not know the pack is lost (a fresh one, after a disaster) still brings every file back,
 * whichever of the two index files naming that data it reads last, and remembers the pack as
 * missing so its own next backup does not count on it. Without a copy elsewhere, the files that
 * need the pack fail and the rest is restored.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { knownBadPacks, recordMissingPacks } from '../../src/agent/file-cache.js';
import { runRestore } from '../../src/agent/restore.js';
import type { PackId } from '../../src/core/ids.js';
import { expectSameTree, writeRandomFile } from '../helpers/fs-tree.js';
import { biggestPack, forgetful, losePack, lostAndStoredAgain } from '../helpers/lost-pack.js';
import { layout } from '../../src/vault/layout.js';
import { createMachine, withMethods, type TestMachine } from '../helpers/machine.js';

const MiB = 1024 * 1024;

const remembered = (m: TestMachine) => knownBadPacks(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId).missing;

/**
 * A machine that backed up src/b.txt ("small\n") on its own, then with src/a.bin (20 MiB): the small
 * file's chunk is in no pack of the big file's (backed up together, the two are read side by side,
 * and the first pack holds both). `point` is the second backup's.
 */
async function smallThenBig() {
  const m = await createMachine();
  const src = path.join(m.dir, 'src');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'b.txt'), 'small\n');
  await runBackup(m.ctx, { include: [src] });
  await writeRandomFile(path.join(src, 'a.bin'), 20 * MiB);
  const { point } = await runBackup(m.ctx, { include: [src] });
  return { m, src, point };
}

describe('a restore and a pack the vault lost', () => {
  it.each([
    ['chunks', 'biggest', 'last', true],
    ['chunks', 'biggest', 'first', false],
    ['listings', 'smallest', 'last', true],
  ] as const)('restores every file from the %s stored again when the lost pack (the %s) is read %s', async (_, which, __, lostLast) => {
    const { m, src, first, second, before, pack } = await lostAndStoredAgain(which);
    if (which === 'biggest') expect(second.stats.newBytes).toBeGreaterThanOrEqual(8 * MiB);

    // Read last, the index file of the lost pack puts its blobs there; read first, the later one wins.
    const ctx = await forgetful(m, (names) => {
      const older = names.filter((n) => before.has(n));
      const newer = names.filter((n) => !before.has(n));
      return lostLast ? [...newer, ...older] : [...older, ...newer];
    });
    for (const point of [first.point, second.point]) {
      const target = path.join(m.dir, `out-${point.id}`);
      const r = await runRestore(ctx, { point: point.id, target, paths: [], conflict: 'skip' });
      expect(r.failed).toEqual([]);
      expect(r.restored).toMatchObject({ files: 2, bytes: 20 * MiB + 6 });
      expect(r.missingPacks).toEqual(lostLast && point === first.point ? [pack] : []);
      await expectSameTree(src, path.join(target, src));
    }
    expect(remembered(m)).toEqual(lostLast ? [pack] : []);
  });

  it('goes on to a third copy when the second is lost too, and makes the hard links of a file restored so', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a.bin'), 20 * MiB);
    await fs.link(path.join(src, 'a.bin'), path.join(src, 'a-link.bin'));
    await fs.writeFile(path.join(src, 'b.txt'), 'small\n');
    const first = await runBackup(m.ctx, { include: [src] });
    // Lost, stored again, lost again, stored a third time: three index files name a.bin's chunks.
    const rounds: string[][] = [await m.ctx.session.listIndex()];
    const lost: PackId[] = [];
    for (let i = 0; i < 2; i++) {
      lost.push(await losePack(m, 'biggest'));
      recordMissingPacks(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId, lost);
      expect((await runBackup(m.ctx, { include: [src] })).stats.newBytes).toBeGreaterThanOrEqual(8 * MiB);
      const seen = new Set(rounds.flat());
      rounds.push((await m.ctx.session.listIndex()).filter((n) => !seen.has(n)));
    }
    // Newest first: the first lost pack is found first, then the second, then the copy that is there.
    const ctx = await forgetful(m, () => [...rounds[2]!, ...rounds[1]!, ...rounds[0]!]);
    const target = path.join(m.dir, 'out');
    const r = await runRestore(ctx, { point: first.point.id, target, paths: [], conflict: 'skip' });
    expect(r.failed).toEqual([]);
    expect(r.missingPacks).toEqual([...lost].sort());
    expect(r.restored).toMatchObject({ files: 3, bytes: 40 * MiB + 6 });
    await expectSameTree(src, path.join(target, src));
    const [a, link] = await Promise.all(['a.bin', 'a-link.bin'].map((n) => fs.stat(path.join(target, src, n))));
    expect(link!.ino).toBe(a!.ino);
  });

  it('without a copy elsewhere, fails the files that need the lost pack and restores the rest', async () => {
    const { m, src, point } = await smallThenBig();
    const pack = await losePack(m, 'biggest');

    const target = path.join(m.dir, 'out');
    const r = await runRestore(await forgetful(m, (names) => names), { point: point.id, target, paths: [], conflict: 'skip' });
    expect(r.missingPacks).toEqual([pack]);
    expect(r.failed).toEqual([{ path: path.join(src, 'a.bin'), reason: `Pack ${pack} is missing from the vault.` }]);
    expect(await fs.readFile(path.join(target, src, 'b.txt'), 'utf8')).toBe('small\n');
    // Nothing half-written is left under the file's name, nor any temporary file.
    expect((await fs.readdir(path.join(target, src))).sort()).toEqual(['b.txt']);
    expect(remembered(m)).toEqual([pack]);
  });

  it('reads a pack remembered missing again once the vault holds it again, and forgets it', async () => {
    const { m, src, point } = await smallThenBig();
    const key = layout.pack(await biggestPack(m));
    const kept = (await m.base.get(key))!;
    await m.base.delete(key);
    const lost = await runRestore(m.ctx, { point: point.id, target: path.join(m.dir, 'out-lost'), paths: [], conflict: 'skip' });
    expect(lost.failed.map((f) => f.path)).toEqual([path.join(src, 'a.bin')]);
    expect(remembered(m)).toHaveLength(1);

    // Put back (a disk mounted again): the same machine restores it whole, and forgets it was missing.
    await m.base.put(key, kept);
    const target = path.join(m.dir, 'out-back');
    const back = await runRestore(m.ctx, { point: point.id, target, paths: [], conflict: 'skip' });
    expect(back.failed).toEqual([]);
    expect(back.missingPacks).toEqual([]);
    await expectSameTree(src, path.join(target, src));
    expect(remembered(m)).toEqual([]);
    // Nor does its next backup store that data again: the vault has it.
    expect((await runBackup(m.ctx, { include: [src] })).stats.newBytes).toBeLessThan(MiB);
  });

  it('stops, remembering no pack as missing, when the whole vault goes away during the restore (a folder moved or unmounted)', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a.bin'), 6 * MiB);
    await fs.writeFile(path.join(src, 'b.txt'), 'small\n');
    const b = await runBackup(m.ctx, { include: [src] });
    // Everything the storage holds, taken away as the restore reads its first pack, and put back after.
    const away = new Map<string, Buffer>();
    const vanish = async () => {
      for await (const key of m.base.list('')) away.set(key, (await m.base.get(key))!);
      for (const key of away.keys()) await m.base.delete(key);
    };
    let first = true;
    const session = withMethods(m.ctx.session, (s) => ({
      readPack: async (...a: Parameters<typeof s.readPack>) => {
        if (first) await vanish();
        first = false;
        return s.readPack(...a);
      },
    }));
    const target = path.join(m.dir, 'out');
    const err = await runRestore({ ...m.ctx, session }, { point: b.point.id, target, paths: [], conflict: 'skip' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AZBK_VAULT_NOT_FOUND' });
    expect(remembered(m)).toEqual([]);

    // Back again, the vault restores everything: nothing was left out.
    for (const [key, data] of away) await m.base.put(key, data);
    const again = path.join(m.dir, 'again');
    const r = await runRestore(m.ctx, { point: b.point.id, target: again, paths: [], conflict: 'skip' });
    expect(r.failed).toEqual([]);
    await expectSameTree(src, path.join(again, src));
  });
});
