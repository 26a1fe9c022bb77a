/**
 * An index file the vault holds damaged, though this machine's copy of it is whole: no other
 * machine can find the blobs it names. Once verify has found it, this machine's backups stop
 * counting on those blobs and store them again, so that their points restore anywhere.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, expectExit, setupMachine, type Machine } from '../helpers/cli.js';
import { expectSameTree, writeRandomFile } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';

/** Machine alpha with one backup of one small file: the vault's index folder, and its one index file. */
async function oneSmallBackup(): Promise<{ a: Machine; dir: string; name: string }> {
  const root = await makeTempDir('azbk-index-');
  const src = path.join(root, 'data');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'a.txt'), 'hello\n');
  const a = await setupMachine(root, { name: 'alpha' });
  await backup(a, [src]);
  const dir = path.join(a.vault.dir, 'index');
  const [name] = await fs.readdir(dir);
  return { a, dir, name: name! };
}

describe('a damaged index file in the vault', () => {
  it('is found by verify, and the next backup stores again what it named: another machine restores that point whole', async () => {
    const root = await makeTempDir('azbk-index-');
    const src = path.join(root, 'data');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'a.txt'), 'hello\n');
    await writeRandomFile(path.join(src, 'sub', 'b.bin'), 300_000);
    const a = await setupMachine(root, { name: 'alpha' });
    await backup(a, [src]);
    // One byte of each index file changed (a disk's fault): every blob so far is named by none whole.
    const dir = path.join(a.vault.dir, 'index');
    for (const name of await fs.readdir(dir)) {
      const file = path.join(dir, name);
      const data = await fs.readFile(file);
      data[data.length >> 1] = data[data.length >> 1]! ^ 1;
      await fs.chmod(file, 0o600);
      await fs.writeFile(file, data);
    }
    const verify = await a.run(['verify']);
    expectExit(verify, 4);
    expect(verify.stdout).toMatch(/^ {2}index [0-9a-f]{64}: /m);

    const again = await backup(a, [src]);
    expect(again.stats.newBytes).toBeGreaterThanOrEqual(300_000);
    const b = await setupMachine(root, { name: 'bravo', vault: a.vault });
    const target = path.join(root, 'on-bravo');
    const r = await b.run(['restore', '--point', again.point.id, '--machine', 'alpha', '--passphrase-file', b.passphraseFile, '--target', target]);
    expectExit(r, 0);
    await expectSameTree(src, path.join(target, src));
  }, 60_000);

  it('that is not a sealed object at all (filled with zeros) is reported, not taken for one of another key', async () => {
    const { a, dir, name } = await oneSmallBackup();
    const file = path.join(dir, name);
    const size = (await fs.stat(file)).size;
    await fs.chmod(file, 0o600);
    await fs.writeFile(file, Buffer.alloc(size));
    const verify = await a.run(['verify']);
    expectExit(verify, 4);
    expect(verify.stdout).toContain(`  index ${name}: the index file is not a sealed object (damaged)`);
  }, 60_000);

  it('that names nothing the points use (added by any machine of the vault: not azbk\'s, or failing its checks) is no problem', async () => {
    const { a, dir, name: own } = await oneSmallBackup();
    // Any registered machine may add index files: one of bytes that are no sealed object, and one
    // that looks like a sealed object of alpha's key but fails its checks.
    const looksSealed = Buffer.concat([(await fs.readFile(path.join(dir, own))).subarray(0, 36), Buffer.alloc(64, 7)]);
    const planted = ['9'.repeat(64), 'a'.repeat(64)];
    await fs.writeFile(path.join(dir, planted[0]!), 'not an index\n');
    await fs.writeFile(path.join(dir, planted[1]!), looksSealed);
    for (const args of [['verify'], ['verify', '--read-data']]) {
      const r = await a.run(args);
      expectExit(r, 0);
      expect(r.stderr).toContain(`2 index files damaged, or not azbk's (any machine of the vault may add one): every point and checkpoint is found without them, so not a problem: ${planted.join(', ')}.`);
      expect(r.stdout).toContain('Nothing is wrong.');
    }
    const json = JSON.parse((await a.run(['verify', '--json'])).stdout);
    expect(json).toMatchObject({ damagedIndex: planted, unneededIndex: planted, problems: [] });
    // While a pack the points need is missing, a damaged index file may name another copy of
    // what it held: a problem again.
    const packs = path.join(a.vault.dir, 'packs');
    const pack = (await fs.readdir(packs, { recursive: true, withFileTypes: true })).find((e) => e.isFile())!;
    const packFile = path.join(pack.parentPath, pack.name);
    await fs.rename(packFile, `${packFile}.away`);
    const missing = await a.run(['verify', '--json']);
    expectExit(missing, 4);
    expect(JSON.parse(missing.stdout).unneededIndex).toEqual([]);
    expect(JSON.parse(missing.stdout).problems.map((p: { where: string }) => p.where)).toEqual(expect.arrayContaining(planted.map((n) => `index ${n}`)));
    await fs.rename(`${packFile}.away`, packFile);
    // Once alpha's own index file is damaged too, its blobs are named by none: all three are problems.
    const data = await fs.readFile(path.join(dir, own));
    data[data.length >> 1] = data[data.length >> 1]! ^ 1;
    await fs.chmod(path.join(dir, own), 0o600);
    await fs.writeFile(path.join(dir, own), data);
    const bad = await a.run(['verify', '--json']);
    expectExit(bad, 4);
    const report = JSON.parse(bad.stdout);
    expect(report.unneededIndex).toEqual([]);
    expect(report.problems.map((p: { where: string }) => p.where).filter((w: string) => w.startsWith('index '))).toEqual([own, ...planted].sort().map((n) => `index ${n}`));
  }, 60_000);
});
