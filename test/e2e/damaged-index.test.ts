/**
 * An index file the vault holds damaged, though this machine's copy of it is whole: no other
 * machine can find the blobs it names. Once verify has found it, this machine's backups stop
 * counting on those blobs and store them again, so that their points restore anywhere.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, expectExit, setupMachine } from '../helpers/cli.js';
import { expectSameTree, writeRandomFile } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';

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
    const root = await makeTempDir('azbk-index-');
    const src = path.join(root, 'data');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a.txt'), 'hello\n');
    const a = await setupMachine(root, { name: 'alpha' });
    await backup(a, [src]);
    const dir = path.join(a.vault.dir, 'index');
    const [name] = await fs.readdir(dir);
    const file = path.join(dir, name!);
    const size = (await fs.stat(file)).size;
    await fs.chmod(file, 0o600);
    await fs.writeFile(file, Buffer.alloc(size));
    const verify = await a.run(['verify']);
    expectExit(verify, 4);
    expect(verify.stdout).toContain(`  index ${name}: the index file is not a sealed object (damaged)`);
  }, 60_000);
});
