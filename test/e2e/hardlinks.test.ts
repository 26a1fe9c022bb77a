/**
 * Hard links through the CLI: names of one file backed up together come back as one file with
 * those names, and a name restored without the others comes back as a plain file.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, expectExit, parseJson, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

describe.skipIf(process.platform === 'win32')('hard links', () => {
  it('restores the names of a hard-linked file as links of one file, and one name alone as a file', async () => {
    const tmp = await makeTempDir('azbk-hardlinks-');
    const src = path.join(tmp, 'data');
    await fs.mkdir(path.join(src, 'a'), { recursive: true });
    await fs.mkdir(path.join(src, 'b/c'), { recursive: true });
    await fs.writeFile(path.join(src, 'a/one.txt'), 'one file, three names\n');
    await fs.chmod(path.join(src, 'a/one.txt'), 0o640);
    await fs.link(path.join(src, 'a/one.txt'), path.join(src, 'b/two.txt'));
    await fs.link(path.join(src, 'a/one.txt'), path.join(src, 'b/c/three.txt'));
    await fs.writeFile(path.join(src, 'a/pair.bin'), Buffer.alloc(200_000, 7));
    await fs.link(path.join(src, 'a/pair.bin'), path.join(src, 'a/pair-again.bin'));
    await fs.writeFile(path.join(src, 'a/alone.txt'), 'one link only\n');
    await fs.writeFile(path.join(src, 'b/alone-too.txt'), 'one file, three names\n'); // same bytes, not linked

    const m = await setupMachine(tmp);
    const done = await backup(m, [src]);
    expect(done.stats.files).toBe(7);

    const target = path.join(tmp, 'restored');
    const r = await m.run(['restore', '--point', 'latest', '--target', target, '--json']);
    expectExit(r, 0);
    expect(parseJson(r)).toMatchObject({ restored: { files: 7 } });
    const at = (rel: string) => path.join(target, src, rel);
    const [one, two, three, pair, pairAgain, alone, aloneToo] = await Promise.all(
      ['a/one.txt', 'b/two.txt', 'b/c/three.txt', 'a/pair.bin', 'a/pair-again.bin', 'a/alone.txt', 'b/alone-too.txt'].map((p) => fs.stat(at(p))),
    );
    expect(one!.nlink).toBe(3);
    expect(two!.ino).toBe(one!.ino);
    expect(three!.ino).toBe(one!.ino);
    expect(one!.mode & 0o777).toBe(0o640);
    expect(pair!.nlink).toBe(2);
    expect(pairAgain!.ino).toBe(pair!.ino);
    expect(alone!.nlink).toBe(1);
    expect(aloneToo!.nlink).toBe(1);
    expect(aloneToo!.ino).not.toBe(one!.ino);
    expect(await fs.readFile(at('b/c/three.txt'), 'utf8')).toBe('one file, three names\n');
    expect(await fs.readFile(at('a/pair-again.bin'))).toEqual(Buffer.alloc(200_000, 7));
    // Written once: a write through one name shows through the others, as in the source.
    await fs.appendFile(at('b/two.txt'), 'more\n');
    expect(await fs.readFile(at('a/one.txt'), 'utf8')).toBe('one file, three names\nmore\n');

    // One folder alone: its name of the file comes back as a plain file; two names in it, as one.
    const part = path.join(tmp, 'part');
    expectExit(await m.run(['restore', '--point', 'latest', '--path', path.join(src, 'b'), '--target', part]), 0);
    const two2 = await fs.stat(path.join(part, src, 'b/two.txt'));
    const three2 = await fs.stat(path.join(part, src, 'b/c/three.txt'));
    expect(two2.nlink).toBe(2);
    expect(three2.ino).toBe(two2.ino);
    expect(await fs.readFile(path.join(part, src, 'b/two.txt'), 'utf8')).toBe('one file, three names\n');

    // Restored where it was, over changed copies: every name gets the backed-up content and is linked again.
    await fs.rm(path.join(src, 'b/two.txt'));
    await fs.writeFile(path.join(src, 'b/two.txt'), 'a file of its own now\n');
    expectExit(await m.run(['restore', '--point', 'latest', '--path', path.join(src, 'a'), path.join(src, 'b'), '--conflict', 'overwrite']), 0);
    expect((await fs.stat(path.join(src, 'b/two.txt'))).ino).toBe((await fs.stat(path.join(src, 'a/one.txt'))).ino);
    expect(await fs.readFile(path.join(src, 'b/two.txt'), 'utf8')).toBe('one file, three names\n');

    // With --conflict skip, a name left as it is does not lead: the names restored link to each other.
    await fs.rm(path.join(src, 'b'), { recursive: true });
    await fs.rm(path.join(src, 'a/one.txt'));
    await fs.writeFile(path.join(src, 'a/one.txt'), 'kept as it is\n');
    const skip = await m.run(['restore', '--point', 'latest', '--path', path.join(src, 'a/one.txt'), path.join(src, 'b'), '--json']);
    expectExit(skip, 0);
    expect(parseJson(skip)).toMatchObject({ restored: { files: 3 }, conflicts: [{ path: path.join(src, 'a/one.txt'), action: 'skipped' }] });
    expect(await fs.readFile(path.join(src, 'a/one.txt'), 'utf8')).toBe('kept as it is\n');
    const [two3, three3] = await Promise.all([fs.stat(path.join(src, 'b/two.txt')), fs.stat(path.join(src, 'b/c/three.txt'))]);
    expect(three3.ino).toBe(two3.ino);
    expect(two3.nlink).toBe(2);

    // No temporary name is left anywhere.
    for (const root of [target, part, src]) expect(await names(root)).not.toContainEqual(expect.stringContaining('.azbk-restore-'));
  }, 60_000);

  it.skipIf(process.platform !== 'linux')('a name that fails (its path too long at the target) leaves the others to be written: they come back linked to each other', async () => {
    const tmp = await makeTempDir('azbk-hardlinks-');
    const src = path.join(tmp, 'data');
    // The first name's path is just short enough here, and too long under a target with a long name.
    let deep = path.join(src, 'a');
    while (Buffer.byteLength(deep) < 3700) deep = path.join(deep, 'q'.repeat(200));
    await fs.mkdir(deep, { recursive: true });
    await fs.mkdir(path.join(src, 'z'));
    const first = path.join(deep, 'n'.repeat(200));
    await fs.writeFile(first, 'one file, three names\n');
    await fs.link(first, path.join(src, 'z/second.txt'));
    await fs.link(first, path.join(src, 'z/third.txt'));
    const m = await setupMachine(tmp);
    await backup(m, [src]);
    // A target whose name makes the first name's folder 100 bytes short of the limit (4,095): it
    // is made, and the file is written there, but cannot be renamed to its 200-byte name.
    const target = path.join(tmp, 't'.repeat(3995 - Buffer.byteLength(deep) - Buffer.byteLength(tmp) - 1));
    const r = await m.run(['restore', '--point', 'latest', '--target', target, '--json']);
    expectExit(r, 3);
    const out = parseJson(r) as { failed: { path: string; reason: string }[]; restored: { files: number } };
    // Only the name too long fails; before, the other two failed with it ("another name of this
    // hard-linked file ... could not be restored") although their data was there.
    expect(out.failed.map((f) => f.path)).toEqual([first]);
    expect(out.restored.files).toBe(2);
    const second = await fs.stat(path.join(target, src, 'z/second.txt'));
    const third = await fs.stat(path.join(target, src, 'z/third.txt'));
    expect(await fs.readFile(path.join(target, src, 'z/second.txt'), 'utf8')).toBe('one file, three names\n');
    expect(third.ino).toBe(second.ino);
    expect(second.nlink).toBe(2);
  });

  it('run again after it stopped part way, makes whole the groups of names it had begun, whichever name came back first', async () => {
    const tmp = await makeTempDir('azbk-hardlinks-');
    const src = path.join(tmp, 'data');
    await fs.mkdir(path.join(src, 'a'), { recursive: true });
    await fs.mkdir(path.join(src, 'z'), { recursive: true });
    await fs.writeFile(path.join(src, 'a/orig'), 'one file, three names\n');
    await fs.link(path.join(src, 'a/orig'), path.join(src, 'a/link'));
    await fs.link(path.join(src, 'a/orig'), path.join(src, 'z/link2'));
    const m = await setupMachine(tmp);
    await backup(m, [src]);
    const target = path.join(tmp, 'restored');
    const at = (rel: string) => path.join(target, src, rel);
    expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
    // As a restore stopped after its first file leaves it: one name in place (a/orig, which the
    // walk meets after a/link), the others not made yet.
    for (const left of [['a/orig'], ['z/link2'], ['a/link']]) {
      for (const rel of ['a/orig', 'a/link', 'z/link2']) if (!left.includes(rel)) await fs.rm(at(rel));
      const again = await m.run(['restore', '--point', 'latest', '--target', target, '--json']);
      expectExit(again, 0);
      const [x, y, z] = await Promise.all(['a/orig', 'a/link', 'z/link2'].map((rel) => fs.stat(at(rel))));
      expect([x!.nlink, y!.ino, z!.ino], `left ${left[0]}`).toEqual([3, x!.ino, x!.ino]);
      expect(await fs.readFile(at('a/link'), 'utf8')).toBe('one file, three names\n');
    }
    // A name in place that is not the file backed up (changed since) is left alone, and is no link of the others.
    await fs.rm(at('a/link'));
    await fs.rm(at('z/link2'));
    await fs.writeFile(at('a/orig'), 'changed by its user\n');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
    const [x, y, z] = await Promise.all(['a/orig', 'a/link', 'z/link2'].map((rel) => fs.stat(at(rel))));
    expect(x!.nlink).toBe(1);
    expect(z!.ino).toBe(y!.ino);
    expect(await fs.readFile(at('a/orig'), 'utf8')).toBe('changed by its user\n');
    expect(await fs.readFile(at('z/link2'), 'utf8')).toBe('one file, three names\n');

    // Changed with its size and time kept (touch -r, or a tool that keeps them): its content tells.
    await fs.rm(at('a/link'));
    await fs.rm(at('z/link2'));
    await fs.writeFile(at('a/orig'), 'ONE FILE, THREE NAMES\n');
    const kept = await fs.stat(path.join(src, 'a/orig'), { bigint: true });
    await fs.utimes(at('a/orig'), Number(kept.atimeNs) / 1e9, Number(kept.mtimeNs) / 1e9);
    expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
    const [x2, y2, z2] = await Promise.all(['a/orig', 'a/link', 'z/link2'].map((rel) => fs.stat(at(rel))));
    expect(x2!.nlink).toBe(1);
    expect(z2!.ino).toBe(y2!.ino);
    expect(await fs.readFile(at('a/orig'), 'utf8')).toBe('ONE FILE, THREE NAMES\n');
    for (const rel of ['a/link', 'z/link2']) expect(await fs.readFile(at(rel), 'utf8')).toBe('one file, three names\n');
  });

  it('copies where a hard link cannot be made (another file system), without setuid', async (ctx) => {
    const tmp = await makeTempDir('azbk-hardlinks-');
    const elsewhere = await fs.mkdtemp('/dev/shm/azbk-hardlinks-').catch(() => null);
    if (elsewhere !== null) ctx.onTestFinished(() => fs.rm(elsewhere, { recursive: true, force: true }));
    if (elsewhere === null || (await fs.stat(elsewhere)).dev === (await fs.stat(tmp)).dev) ctx.skip(); // no second file system here
    const src = path.join(tmp, 'data');
    await fs.mkdir(path.join(src, 'x'), { recursive: true });
    await fs.mkdir(path.join(src, 'y/z'), { recursive: true });
    await fs.writeFile(path.join(src, 'x/tool'), '#!/bin/sh\necho hi\n');
    await fs.chmod(path.join(src, 'x/tool'), 0o4750);
    await fs.link(path.join(src, 'x/tool'), path.join(src, 'y/z/tool'));
    const m = await setupMachine(tmp);
    await backup(m, [src]);

    // y now lives on the other file system, behind a link of this user's that an in-place restore follows.
    await fs.rm(path.join(src, 'y'), { recursive: true });
    await fs.mkdir(path.join(elsewhere!, 'y/z'), { recursive: true });
    await fs.symlink(path.join(elsewhere!, 'y'), path.join(src, 'y'));
    await fs.rm(path.join(src, 'x/tool'));
    const r = await m.run(['restore', '--point', 'latest', '--path', path.join(src, 'x/tool'), path.join(src, 'y/z/tool'), '--json']);
    expectExit(r, 0);
    expect(parseJson(r)).toMatchObject({ restored: { files: 2 }, failed: [] });
    const [a, b] = await Promise.all([fs.stat(path.join(src, 'x/tool')), fs.stat(path.join(elsewhere!, 'y/z/tool'))]);
    expect(b.ino === a.ino && b.dev === a.dev).toBe(false);
    expect(await fs.readFile(path.join(elsewhere!, 'y/z/tool'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(a.mode & 0o7777).toBe(0o750);
    expect(b.mode & 0o7777).toBe(0o750);
    expect(b.mtimeMs).toBe(a.mtimeMs);
    expect(await names(path.join(elsewhere!, 'y'))).not.toContainEqual(expect.stringContaining('.azbk-restore-'));
  }, 60_000);
});

/** Every name under `root`, recursively. */
async function names(root: string): Promise<string[]> {
  return (await fs.readdir(root, { recursive: true })).map(String);
}
