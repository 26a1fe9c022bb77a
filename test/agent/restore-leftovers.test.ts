/**
 * The marks of running restores and what the next restore removes after one died: only regular
 * files named as that restore named its temporary files, in the folders it wrote into, never
 * through a link.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { markRestore, removeLeftovers } from '../../src/agent/restore-leftovers.js';

let root: string;
let marks: string;
const P = '.azbk-restore-0123456789ab-';

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'azbk-leftovers-'));
  marks = path.join(root, 'home', 'restores');
});
afterEach(() => fs.rm(root, { recursive: true, force: true }));

async function touch(file: string, text = 'x'): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, text);
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

describe('restore leftovers', () => {
  it('removes the temporary files a dead restore named, and nothing else', async () => {
    const deep = path.join(root, 'out');
    const beside = path.join(root, 'beside');
    const outside = path.join(root, 'outside');
    await touch(path.join(deep, `${P}0`));
    await touch(path.join(deep, 'a', 'b', `${P}17`));
    await touch(path.join(beside, `${P}3`));
    await touch(path.join(beside, 'sub', `${P}4`)); // a file's folder is not walked
    await touch(path.join(deep, `${P}5x`)); // not a temporary name
    await touch(path.join(deep, '.azbk-restore-ffffffffffff-6')); // another restore's
    await fs.mkdir(path.join(deep, `${P}7`)); // a folder
    await touch(path.join(outside, `${P}8`));
    await fs.symlink(outside, path.join(deep, 'link')); // not followed
    await fs.symlink(path.join(outside, `${P}8`), path.join(deep, `${P}9`)); // a link is not a file

    const unmark = await markRestore(marks, P, [
      { path: deep, deep: true },
      { path: beside, deep: false },
    ]);
    const [mark] = await fs.readdir(marks);
    expect(mark).toBe('0123456789ab.json');
    expect((await fs.stat(path.join(marks, mark!))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(marks)).mode & 0o777).toBe(0o700);
    void unmark; // the restore died: its mark stays

    expect(await removeLeftovers(marks)).toBe(3);
    expect(await exists(path.join(deep, `${P}0`))).toBe(false);
    expect(await exists(path.join(deep, 'a', 'b', `${P}17`))).toBe(false);
    expect(await exists(path.join(beside, `${P}3`))).toBe(false);
    for (const kept of [
      path.join(beside, 'sub', `${P}4`),
      path.join(deep, `${P}5x`),
      path.join(deep, '.azbk-restore-ffffffffffff-6'),
      path.join(deep, `${P}7`),
      path.join(outside, `${P}8`),
      path.join(deep, `${P}9`),
    ]) {
      expect(await exists(kept), kept).toBe(true);
    }
    expect(await fs.readdir(marks)).toEqual([]);
    expect(await removeLeftovers(marks)).toBe(0);
  });

  it('a restore that ends removes its mark; a damaged mark is dropped and names nothing', async () => {
    const out = path.join(root, 'out');
    await touch(path.join(out, `${P}0`));
    const unmark = await markRestore(marks, P, [{ path: out, deep: true }]);
    await unmark();
    expect(await fs.readdir(marks)).toEqual([]);
    await fs.writeFile(path.join(marks, 'a.json'), '{"prefix":"../","roots":[{"path":"/","deep":true}]}');
    await fs.writeFile(path.join(marks, 'b.json'), '{"prefix":');
    await fs.writeFile(path.join(marks, 'c.json'), JSON.stringify({ prefix: P, roots: [{ path: 'relative', deep: true }] }));
    expect(await removeLeftovers(marks)).toBe(0);
    expect(await exists(path.join(out, `${P}0`))).toBe(true);
    expect(await fs.readdir(marks)).toEqual([]);
  });

  it('no marks folder is no leftovers', async () => {
    expect(await removeLeftovers(path.join(root, 'none'))).toBe(0);
  });
});
