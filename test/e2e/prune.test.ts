/**
 * Prune end to end with the built CLI: once retention removed the only point that needed a big
 * file, `azbk vault prune` condemns the packs that held it, deletes them when their grace period
 * is over (the test dates the vault's markers back, as a vault that has run for weeks holds
 * them), and everything still kept restores and verifies. The next backup of that file stores it
 * again instead of counting on what was deleted.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { DAY_MS } from '../../src/core/retention.js';
import { dayOf } from '../../src/vault/retention.js';
import { backup, expectExit, expectNoStack, parseJson, runCli, setupMachine, tempDir } from '../helpers/cli.js';
import { dirSize, expectSameTree, listFiles, writeRandomFile } from '../helpers/fs-tree.js';

const MiB = 1024 * 1024;
const daysAgo = (n: number) => dayOf(new Date(Date.now() - n * DAY_MS));

/** Renames each day folder under `dir` (YYYYMMDD) to the day `days` days before it. */
async function dateBack(dir: string, days: number): Promise<void> {
  for (const day of await fs.readdir(dir)) {
    const time = Date.parse(`${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6, 8)}T12:00:00Z`);
    await fs.rename(path.join(dir, day), path.join(dir, dayOf(new Date(time - days * DAY_MS))));
  }
}

/** A machine with one point of a file of 1 MiB, and the point's record in the vault. */
async function onePoint(ctx: TestContext) {
  const root = await tempDir(ctx);
  const m = await setupMachine(root);
  const src = path.join(root, 'src');
  await writeRandomFile(path.join(src, 'x.bin'), MiB);
  const first = await backup(m, [src]);
  return { root, m, first, file: path.join(m.vault.dir, 'points', first.point.machineId, first.point.id) };
}

describe('prune', () => {
  it('frees the packs only expired points needed, after a grace period, and keeps every kept point whole', async (ctx) => {
    const root = await tempDir(ctx);
    const m = await setupMachine(root);
    const vault = m.vault.dir;
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'docs'), { recursive: true });
    await fs.writeFile(path.join(src, 'docs', 'a.txt'), 'kept all along\n');
    // 40 MiB of random data: at least one pack holds nothing else.
    const big = await writeRandomFile(path.join(src, 'media', 'big.bin'), 40 * MiB);
    const copy = path.join(root, 'big.bin');
    await fs.copyFile(big, copy);

    const first = await backup(m, [src]);
    await fs.rm(path.join(src, 'media'), { recursive: true });
    const second = await backup(m, [src]);

    // Nothing to free while the first point is kept.
    const none = parseJson(await runCli(['vault', 'prune', '--path', vault, '--json']));
    expect(none).toMatchObject({ skipped: null, points: 2, condemned: 0, purged: 0 });

    // Retention removed the first point 20 days ago: the next backup purges it for good.
    const machine = first.point.machineId as string;
    const expired = path.join(vault, 'expired', machine, daysAgo(20));
    await fs.mkdir(expired, { recursive: true });
    await fs.rename(path.join(vault, 'points', machine, first.point.id), path.join(expired, first.point.id));
    await backup(m, [src]);
    expect(await listFiles(path.join(vault, 'expired', machine))).toEqual([]);

    const packsBefore = await dirSize(path.join(vault, 'packs'));
    const condemn = await runCli(['vault', 'prune', '--path', vault]);
    expectExit(condemn, 0);
    expect(condemn.stdout).toMatch(/Deleted 0 pack\(s\)/);
    // Condemned by this pass, or by the last backup's own daily pass when it began a new day.
    expect(parseJson(await runCli(['vault', 'prune', '--path', vault, '--json'])).waiting).toBeGreaterThanOrEqual(1);
    expect(await dirSize(path.join(vault, 'packs'))).toBe(packsBefore);

    // Fourteen days later, still named by no point, they go.
    await dateBack(path.join(vault, 'condemned'), 15);
    const purge = parseJson(await runCli(['vault', 'prune', '--path', vault, '--json']));
    expect(purge).toMatchObject({ skipped: null, points: 2, waiting: 0 });
    expect(purge.purged).toBeGreaterThanOrEqual(1);
    expect(purge.purgedBytes).toBeGreaterThanOrEqual(16 * MiB);
    expect(await dirSize(path.join(vault, 'packs'))).toBe(packsBefore - purge.purgedBytes);

    // What is kept is whole: verify reads every chunk, and both points restore.
    const verify = await m.run(['verify', '--read-data']);
    expectExit(verify, 0);
    expect(verify.stdout).toMatch(/Nothing is wrong/);
    for (const p of [second.point.id, 'latest']) {
      const out = path.join(root, `restore-${p}`);
      expectExit(await m.run(['restore', '--point', p, '--target', out]), 0);
      await expectSameTree(src, path.join(out, src));
    }

    // The file comes back: the chunks that were in the deleted packs are stored anew.
    await fs.mkdir(path.join(src, 'media'));
    await fs.copyFile(copy, path.join(src, 'media', 'big.bin'));
    const again = await backup(m, [src]);
    expect(again.stats.newBytes).toBeGreaterThan(purge.purgedBytes - MiB);
    const out = path.join(root, 'restore-again');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', out]), 0);
    await expectSameTree(src, path.join(out, src));
    expectExit(await m.run(['verify']), 0);
  });

  it('prune frees nothing while the pack list of a point fails its check sum; verify reports the data of one without a sum that lost a pack, once prune has condemned it (exit 4)', async (ctx) => {
    const { m, first, file } = await onePoint(ctx);
    const record = JSON.parse(await fs.readFile(file, 'utf8')) as { packs: string[] };
    expect(record.packs.length).toBeGreaterThan(1);
    // The plain list, all the vault can read of a point, damaged: it no longer names a pack it needs.
    const [lost, ...rest] = record.packs;
    await fs.writeFile(file, JSON.stringify({ ...record, packs: rest }));
    const refused = parseJson(await runCli(['vault', 'prune', '--path', m.vault.dir, '--json']));
    expect(refused).toMatchObject({ condemned: 0, purged: 0, skipped: expect.stringMatching(/1 recovery point\(s\) .* are damaged/) });
    // A record from before records carried the sum is taken as it is: then only verify can tell.
    await fs.writeFile(file, JSON.stringify({ ...record, packs: rest, packsSha256: undefined }));
    const pruned = parseJson(await runCli(['vault', 'prune', '--path', m.vault.dir, '--json']));
    expect(pruned).toMatchObject({ skipped: null, condemned: 1, purged: 0 });

    const r = await m.run(['verify']);
    expectExit(r, 4);
    expectNoStack(r);
    expect(r.stdout + r.stderr).toContain(`pack ${lost!.slice(0, 12)}`);
    expect(r.stdout + r.stderr).toMatch(/is condemned: no recovery point names it/);
    expect(r.stdout + r.stderr).toContain(first.point.id);
  });

  it('removes nothing while a point of an earlier version, which names no packs, is kept', async (ctx) => {
    const { root, m, file } = await onePoint(ctx);
    const { packs: _packs, ...record } = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    await fs.writeFile(file, JSON.stringify(record));
    await fs.mkdir(path.join(m.vault.dir, 'packs', '00'), { recursive: true });
    await fs.writeFile(path.join(m.vault.dir, 'packs', '00', '00'.repeat(32)), 'no point names this');

    const r = await runCli(['vault', 'prune', '--path', m.vault.dir]);
    expectExit(r, 0);
    expectNoStack(r);
    expect(r.stdout).toMatch(/Nothing was pruned: 1 recovery point\(s\) or checkpoint\(s\) name no packs/);
    await expect(fs.readdir(path.join(m.vault.dir, 'condemned'))).rejects.toThrow();
    expectExit(await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'out')]), 0);
  });

  it('after verify finds a pack lost, the next backup stores what was in it again, and every point is whole, here and on another machine', async (ctx) => {
    const root = await tempDir(ctx);
    const m = await setupMachine(root);
    const src = path.join(root, 'src');
    await writeRandomFile(path.join(src, 'a.bin'), 20 * MiB);
    await fs.writeFile(path.join(src, 'b.txt'), 'small\n');
    const first = await backup(m, [src]);
    // The biggest pack is a data pack: lost, as a disk can lose it.
    const packs = await listFiles(path.join(m.vault.dir, 'packs'));
    const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(p)).size));
    await fs.rm(packs[sizes.indexOf(Math.max(...sizes))]!);

    const lost = await m.run(['verify']);
    expectExit(lost, 4);
    expect(lost.stdout).toContain(path.join(src, 'a.bin'));
    // Nothing changed in the source, yet the backup reads what the lost pack held again.
    const second = await backup(m, [src]);
    expect(second.stats.newBytes).toBeGreaterThanOrEqual(8 * MiB);
    // This machine remembers the lost pack, so here the first point finds its chunks where they
    // were stored again: it is whole too.
    expect(parseJson(await m.run(['verify', '--read-data', '--json']))).toMatchObject({ points: 2, problems: [] });
    for (const p of [first.point.id, second.point.id]) {
      const out = path.join(root, `out-${p}`);
      expectExit(await m.run(['restore', '--point', p, '--target', out]), 0);
      await expectSameTree(src, path.join(out, src));
    }
    // Nothing is read again: only the listings above the source, whose folders' times changed, are new.
    expect((await backup(m, [src])).stats.newBytes).toBeLessThan(64 * 1024);

    // Another machine knows nothing of the lost pack. Every point restores whole, whichever index
    // file it happens to read last (test/agent/restore-lost-pack.test.ts sets the order both
    // ways); a restore that looked in the lost pack says so.
    const other = await setupMachine(root, { name: 'B', vault: m.vault });
    for (const p of [first.point.id, second.point.id]) {
      const out = path.join(root, `other-${p}`);
      const r = await other.run(['restore', '--point', p, '--machine', m.name, '--passphrase-file', other.passphraseFile, '--target', out, '--json']);
      expectExit(r, 0);
      expect(parseJson(r).missingPacks.length).toBeLessThanOrEqual(1);
      await expectSameTree(src, path.join(out, src));
    }
  });
});
