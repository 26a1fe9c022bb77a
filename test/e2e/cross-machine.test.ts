/**
 * Restoring another machine's data: same passphrase works with --machine and --passphrase-file;
 * a wrong passphrase or a machine of another key family gets exit 12 and nothing is written.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, expectExit, expectNoStack, parseJson, PASSPHRASE, setupMachine, writePassphrase, type Machine } from '../helpers/cli.js';
import { exists, expectSameTree } from '../helpers/fs-tree.js';
import { createTempDir, type TempDir } from '../helpers/tmp.js';

let tmp: TempDir;
let a: Machine;
let src: string;
let pointId: string;

beforeAll(async () => {
  tmp = await createTempDir();
  src = path.join(tmp.path, 'machine A data');
  await fs.mkdir(path.join(src, 'sub'), { recursive: true });
  await fs.writeFile(path.join(src, 'a.txt'), 'written on A\n');
  await fs.writeFile(path.join(src, 'sub', 'b.bin'), Buffer.from([0, 1, 2, 3, 255]));
  await fs.symlink('a.txt', path.join(src, 'link'));
  a = await setupMachine(tmp.path, { name: 'alpha' });
  pointId = (await backup(a, [src])).point.id;
});

afterAll(() => tmp?.cleanup());

describe.concurrent('another machine', () => {
  it('registered with the same passphrase, restores A\'s point with --machine and --passphrase-file', async () => {
    const b = await setupMachine(tmp.path, { name: 'bravo', vault: a.vault });
    const list = await b.run(['points', '--machine', 'alpha', '--json']);
    expectExit(list, 0);
    expect(parseJson(list).points.map((p: { id: string }) => p.id)).toEqual([pointId]);

    const target = path.join(tmp.path, 'on B');
    const r = await b.run(['restore', '--point', 'latest', '--machine', 'alpha', '--passphrase-file', b.passphraseFile, '--target', target, '--json']);
    expectExit(r, 0);
    expect(parseJson(r).machineName).toBe('alpha');
    await expectSameTree(src, path.join(target, src));

    // The passphrase is still needed: B's own keys are not used silently for A's data.
    const noPass = await b.run(['restore', '--point', 'latest', '--machine', 'alpha', '--target', path.join(tmp.path, 'no pass')]);
    expectExit(noPass, 2);
    expect(await exists(path.join(tmp.path, 'no pass'))).toBe(false);
  });

  it('with a wrong passphrase exits 12 and writes nothing in the target', async () => {
    const c = await setupMachine(tmp.path, { name: 'charlie', vault: a.vault });
    const wrong = await writePassphrase(tmp.path, 'definitely not the right passphrase');
    const target = path.join(tmp.path, 'wrong');
    await fs.mkdir(target);
    const r = await c.run(['restore', '--point', pointId, '--machine', 'alpha', '--passphrase-file', wrong, '--target', target]);
    expectExit(r, 12);
    expectNoStack(r);
    expect(r.stderr).toMatch(/AZBK_WRONG_PASSPHRASE/);
    expect(await fs.readdir(target)).toEqual([]);
  });

  it('registered with a different passphrase, cannot read A\'s data (exit 12)', async () => {
    const other = 'a completely different passphrase';
    const d = await setupMachine(tmp.path, { name: 'delta', vault: a.vault, passphrase: other });
    const target = path.join(tmp.path, 'delta');
    // Its own passphrase opens its own key, which does not open A's points.
    const r = await d.run(['restore', '--point', 'latest', '--machine', 'alpha', '--passphrase-file', d.passphraseFile, '--target', target]);
    expectExit(r, 12);
    expectNoStack(r);
    expect(await exists(target)).toBe(false);
    // A's points list without their (encrypted) details.
    const list = await d.run(['points', '--machine', 'alpha', '--json']);
    expectExit(list, 0);
    const p = parseJson(list).points[0];
    expect(p.id).toBe(pointId);
    expect(p.paths).toBeUndefined();
    // With A's passphrase it can.
    const ok = await d.run(['restore', '--point', 'latest', '--machine', 'alpha', '--passphrase-file', await writePassphrase(tmp.path, PASSPHRASE), '--target', target]);
    expectExit(ok, 0);
    await expectSameTree(src, path.join(target, src));
  });

  it('an unknown machine name exits 2', async () => {
    const r = await a.run(['restore', '--point', 'latest', '--machine', 'zulu', '--passphrase-file', a.passphraseFile, '--target', path.join(tmp.path, 'z')]);
    expectExit(r, 2);
    expect(await exists(path.join(tmp.path, 'z'))).toBe(false);
  });

  it("refuses the points of a machine the vault lists under another machine's name (their names swapped): exit 1, nothing written", async () => {
    // A vault of its own: the other tests here run meanwhile.
    const root = path.join(tmp.path, 'swap');
    await fs.mkdir(root);
    const g = await setupMachine(root, { name: 'golf' });
    const f = await setupMachine(root, { name: 'foxtrot', vault: g.vault });
    for (const m of [g, f]) {
      const src = path.join(root, `src-${m.name}`);
      await fs.mkdir(src);
      await fs.writeFile(path.join(src, 'own.txt'), `${m.name}'s own file\n`);
      await backup(m, [src]);
    }
    const recordOf = (m: Machine) => fs.readFile(path.join(m.home, 'registration.json'), 'utf8').then((t) => path.join(g.vault.dir, 'machines', JSON.parse(t).machineId as string));
    const [gFile, fFile] = [await recordOf(g), await recordOf(f)];
    // The vault swaps the two machines' names: asked for golf's points, it gives foxtrot's.
    await fs.writeFile(gFile, JSON.stringify({ ...JSON.parse(await fs.readFile(gFile, 'utf8')), name: 'foxtrot' }));
    await fs.writeFile(fFile, JSON.stringify({ ...JSON.parse(await fs.readFile(fFile, 'utf8')), name: 'golf' }));
    const target = path.join(root, 'swapped');
    const r = await g.run(['restore', '--point', 'latest', '--machine', 'golf', '--passphrase-file', g.passphraseFile, '--target', target]);
    expectExit(r, 1);
    expectNoStack(r);
    expect(r.stderr).toMatch(/AZBK_VAULT_CORRUPT.*made by another machine \(foxtrot/);
    expect(await exists(target)).toBe(false);
    expectExit(await g.run(['ls', '--point', 'latest', '--machine', 'golf', '--passphrase-file', g.passphraseFile, '-r']), 1);
  });

  it("takes a point's key from its sealed manifest, not the vault's word: a record naming another key is damaged (exit 1, verify exit 4), not a wrong passphrase", async () => {
    // A vault of its own: the other tests here run meanwhile.
    const root = path.join(tmp.path, 'key-word');
    await fs.mkdir(root);
    const h = await setupMachine(root, { name: 'hotel' });
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a.txt'), 'first\n');
    await backup(h, [src]);
    await fs.writeFile(path.join(src, 'a.txt'), 'second\n');
    const newest = (await backup(h, [src])).point.id as string;
    const machineId = JSON.parse(await fs.readFile(path.join(h.home, 'registration.json'), 'utf8')).machineId as string;
    const file = path.join(h.vault.dir, 'points', machineId, newest);
    const record = JSON.parse(await fs.readFile(file, 'utf8'));
    await fs.writeFile(file, JSON.stringify({ ...record, keyId: 'ab'.repeat(16) }));
    const target = path.join(root, 'out');
    const r = await h.run(['restore', '--point', 'latest', '--target', target]);
    expectExit(r, 1);
    expectNoStack(r);
    expect(r.stderr).toMatch(new RegExp(`AZBK_VAULT_CORRUPT: Recovery point ${newest} is damaged: its record names another key than its manifest`));
    expect(await exists(target)).toBe(false);
    const v = await h.run(['verify', '--json']);
    expectExit(v, 4);
    expect(parseJson<{ problems: { where: string; what: string }[] }>(v).problems).toContainEqual(expect.objectContaining({ where: newest, what: expect.stringMatching(/another key than its manifest/) }));
    expectExit(await h.run(['points']), 3);
  });

  it("refuses a point of A's that the vault lists as B's (both under one passphrase): exit 1, nothing written", async () => {
    const b = await setupMachine(tmp.path, { name: 'echo', vault: a.vault });
    const idOf = async (m: Machine) => JSON.parse(await fs.readFile(path.join(m.home, 'registration.json'), 'utf8')).machineId as string;
    const [aId, bId] = [await idOf(a), await idOf(b)];
    // The vault copies A's point among B's, with the vault's own fields made B's.
    const record = JSON.parse(await fs.readFile(path.join(a.vault.dir, 'points', aId, pointId), 'utf8'));
    const forged = `20261202T120500000Z-deadbeef`;
    await fs.mkdir(path.join(a.vault.dir, 'points', bId), { recursive: true });
    await fs.writeFile(path.join(a.vault.dir, 'points', bId, forged), JSON.stringify({ ...record, id: forged, machineId: bId, time: '2026-12-02T12:05:00.000Z' }));
    try {
      const target = path.join(tmp.path, 'forged');
      const r = await b.run(['restore', '--point', forged, '--target', target]);
      expectExit(r, 1);
      expectNoStack(r);
      expect(r.stderr).toMatch(/AZBK_VAULT_CORRUPT.*made by another machine/);
      expect(await exists(target)).toBe(false);
      const ls = await b.run(['ls', '--point', forged, '-r']);
      expectExit(ls, 1);
      // A's own point is A's: restored by B with the passphrase as before.
      const ok = await b.run(['ls', '--point', pointId, '--machine', 'alpha', '--passphrase-file', b.passphraseFile, '-r']);
      expectExit(ok, 0);
    } finally {
      await fs.rm(path.join(a.vault.dir, 'points', bId, forged));
    }
  });
});
