/**
 * Objects in a vault's storage that no azbk wrote (a stray README, a record that is not one) are
 * passed over or reported as damage, never fatal to every command and never a crash.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, createVault, expectExit, expectNoStack, parseJson, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

/** A vault, machine A registered with it, and a folder `src` holding f.txt ("kept"), not backed up yet. */
async function machineWithData(prefix: string) {
  const root = await makeTempDir(prefix);
  const vault = await createVault(root);
  const a = await setupMachine(root, { name: 'A', vault });
  const src = path.join(root, 'data');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'f.txt'), 'kept\n');
  return { root, vault, a, src };
}

describe('a vault with junk in its storage', () => {
  it('registers, lists and restores past objects that are not records, and reports a point that is not one as damaged', async () => {
    const { root, vault, a, src } = await machineWithData('azbk-junk-');
    const first = await backup(a, [src]);
    const machine = first.point.machineId as string;

    await fs.writeFile(path.join(vault.dir, 'machines', 'README'), 'hello');
    await fs.writeFile(path.join(vault.dir, 'keys', 'README'), 'hello');
    await fs.writeFile(path.join(vault.dir, 'machines', '0'.repeat(32)), 'null');
    const junkPoint = '29991231T000000000Z-deadbeef';
    await fs.writeFile(path.join(vault.dir, 'points', machine, junkPoint), 'null');

    // Another machine registers, and finds this one by name.
    const b = await setupMachine(root, { name: 'B', vault });
    const theirs = await b.run(['points', '--machine', 'A', '--json']);
    // The point that is not a record is listed as damaged (exit 3); the good one is listed as usual.
    expectExit(theirs, 3);
    const listed = parseJson(theirs).points as { id: string; damaged?: string }[];
    expect(listed.map((p) => [p.id, p.damaged === undefined])).toEqual([[first.point.id, true], [junkPoint, false]]);

    // The point that is not a record is damaged; the others restore.
    const bad = await a.run(['restore', '--point', junkPoint, '--target', path.join(root, 'bad')]);
    expectExit(bad, 1);
    expect(bad.stderr).toContain('AZBK_VAULT_CORRUPT');
    expectNoStack(bad);
    const target = path.join(root, 'out');
    expectExit(await a.run(['restore', '--point', first.point.id, '--target', target]), 0);
    expect(await fs.readFile(path.join(target, src, 'f.txt'), 'utf8')).toBe('kept\n');

    // A machine whose record is not one is told so, not a bug.
    const reg = JSON.parse(await fs.readFile(path.join(b.home, 'registration.json'), 'utf8'));
    await fs.writeFile(path.join(b.home, 'registration.json'), JSON.stringify({ ...reg, machineId: '0'.repeat(32) }));
    const zero = await b.run(['points']);
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toContain('AZBK_VAULT_CORRUPT');
    expect(zero.stderr).not.toContain('AZBK_INTERNAL');
    expectNoStack(zero);
  }, 60_000);

  it('refuses to back up into another vault found where the registration points', async () => {
    const { vault, a, src } = await machineWithData('azbk-other-vault-');
    await backup(a, [src]);
    const packs = async () => (await fs.readdir(path.join(vault.dir, 'packs'), { recursive: true })).sort();
    const before = await packs();

    // The same storage under another vault's id: its index and packs are not the ones the cache knows.
    const file = path.join(vault.dir, 'config');
    const config = JSON.parse(await fs.readFile(file, 'utf8'));
    await fs.writeFile(file, JSON.stringify({ ...config, id: 'f'.repeat(32) }));
    await fs.writeFile(path.join(src, 'g.txt'), 'new\n');
    const r = await a.run(['backup', '--now', '--include', src]);
    expectExit(r, 1);
    expectNoStack(r);
    expect(r.stderr).toMatch(/AZBK_VAULT_CORRUPT: The vault at .+ is another vault \(id f{32}\) than this machine registered with/);
    expect(await packs()).toEqual(before);
  }, 60_000);

  it('says a new vault made where the machine\'s was is another vault, not that it should register again', async () => {
    const { vault, a, src } = await machineWithData('azbk-new-vault-');
    await backup(a, [src]);
    await fs.rename(vault.dir, `${vault.dir}.moved`);
    const made = await a.run(['vault', 'create', '--path', vault.dir, '--name', 'impostor']);
    expectExit(made, 0);
    for (const args of [['backup', '--now', '--include', src], ['points']]) {
      const r = await a.run(args);
      expectExit(r, 1);
      expectNoStack(r);
      // Before: AZBK_CREDENTIALS_INVALID (exit 13) with the hint to register again, which would
      // have bound the machine to the impostor.
      expect(r.stderr).toMatch(/AZBK_VAULT_CORRUPT: The vault at .+ is another vault \(id [0-9a-f]{32}\) than this machine registered with/);
      expect(r.stderr).not.toMatch(/reregister/);
    }
  }, 60_000);
});
