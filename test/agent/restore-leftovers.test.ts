/**
 * The marks of running restores and what the next restore removes after one died: only files
 * and links named as that restore named its temporary files, in the folders it wrote into, never
 * through a link; a mark stays while its restore may run, or when its folders could not be read.
 */
import { spawn } from 'node:child_process';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { markRestore, removeLeftovers } from '../../src/agent/restore-leftovers.js';
import { runRestore } from '../../src/agent/restore.js';
import { createMachine, withMethods } from '../helpers/machine.js';
import { processIdentity } from '../../src/shared/process.js';

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
    await fs.symlink(path.join(outside, `${P}8`), path.join(deep, `${P}9`)); // a link the restore made: removed, not followed

    const mark = await markRestore(marks, P, [
      { path: deep, deep: true },
      { path: beside, deep: false },
    ]);
    expect(await fs.readdir(marks)).toEqual(['0123456789ab.json']);
    expect((await fs.stat(path.join(marks, '0123456789ab.json'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(marks)).mode & 0o777).toBe(0o700);
    // A folder restored as a copy, found after the mark was made.
    const copy = path.join(root, 'copy');
    await touch(path.join(copy, 'c', `${P}10`));
    await mark.add({ path: copy, deep: true });
    // The restore died: its mark stays. Its process is gone (a pid no process has).
    const file = path.join(marks, '0123456789ab.json');
    await fs.writeFile(file, JSON.stringify({ ...(JSON.parse(await fs.readFile(file, 'utf8')) as object), pid: 2 ** 22 + 1 }));

    expect((await removeLeftovers(marks)).removed).toBe(5);
    for (const gone of [path.join(deep, `${P}0`), path.join(deep, 'a', 'b', `${P}17`), path.join(beside, `${P}3`), path.join(deep, `${P}9`), path.join(copy, 'c', `${P}10`)]) {
      expect(await exists(gone), gone).toBe(false);
    }
    for (const kept of [
      path.join(beside, 'sub', `${P}4`),
      path.join(deep, `${P}5x`),
      path.join(deep, '.azbk-restore-ffffffffffff-6'),
      path.join(deep, `${P}7`),
      path.join(outside, `${P}8`),
    ]) {
      expect(await exists(kept), kept).toBe(true);
    }
    expect(await fs.readdir(marks)).toEqual([]);
    expect((await removeLeftovers(marks)).removed).toBe(0);
  });

  it('a restore that ends removes its mark; a damaged mark is dropped and names nothing', async () => {
    const out = path.join(root, 'out');
    await touch(path.join(out, `${P}0`));
    const mark = await markRestore(marks, P, [{ path: out, deep: true }]);
    await mark.remove();
    expect(await fs.readdir(marks)).toEqual([]);
    await fs.writeFile(path.join(marks, 'a.json'), '{"prefix":"../","roots":[{"path":"/","deep":true}]}');
    await fs.writeFile(path.join(marks, 'b.json'), '{"prefix":');
    await fs.writeFile(path.join(marks, 'c.json'), JSON.stringify({ prefix: P, roots: [{ path: 'relative', deep: true }] }));
    expect((await removeLeftovers(marks)).removed).toBe(0);
    expect(await exists(path.join(out, `${P}0`))).toBe(true);
    expect(await fs.readdir(marks)).toEqual([]);
  });

  it('keeps the mark of a restore still running, and of one whose folder could not be read', async () => {
    const out = path.join(root, 'out');
    await touch(path.join(out, `${P}0`));
    // Its own process's mark is of a restore that died (the pid was reused): swept.
    await markRestore(marks, P, [{ path: out, deep: true }]);
    expect((await removeLeftovers(marks)).removed).toBe(1);

    // A running process with the pid and start the mark names.
    await touch(path.join(out, `${P}1`));
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await fs.writeFile(path.join(marks, 'a.json'), JSON.stringify({ prefix: P, roots: [{ path: out, deep: true }], pid: child.pid, identity: processIdentity(child.pid!) }));
      expect((await removeLeftovers(marks)).removed).toBe(0);
      expect(await fs.readdir(marks)).toEqual(['a.json']);
    } finally {
      child.kill();
    }
    await new Promise((r) => child.once('exit', r));
    expect((await removeLeftovers(marks)).removed).toBe(1);

    // A folder that cannot be read (a loop of links): the mark stays, to be tried again.
    await fs.symlink(path.join(root, 'loop'), path.join(root, 'loop'));
    await markRestore(marks, '.azbk-restore-00000000000f-', [{ path: path.join(root, 'loop'), deep: true }]);
    await fs.writeFile(path.join(marks, 'b.tmp'), 'a mark cut short');
    expect((await removeLeftovers(marks)).removed).toBe(0);
    expect(await fs.readdir(marks)).toEqual(['00000000000f.json']);
  });

  it('no marks folder is no leftovers', async () => {
    expect((await removeLeftovers(path.join(root, 'none'))).removed).toBe(0);
  });
});

describe('the folders a restore makes', () => {
  it('are listed in its mark before they are made: a restore that dies while it plans leaves none unlisted', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    let deepest = src;
    for (let i = 0; i < 6; i++) {
      deepest = path.join(deepest, `level-${i}`);
      await fs.mkdir(deepest, { recursive: true });
      await fs.writeFile(path.join(deepest, 'file.txt'), `${i}\n`);
    }
    await runBackup(m.ctx, { include: [src] });
    // The listings are read as the planning reaches them (one kept at a time); the first read once
    // it has made three levels waits for ever.
    const target = path.join(m.dir, 'out');
    let reached!: () => void;
    const paused = new Promise<void>((resolve) => (reached = resolve));
    let fail!: (err: Error) => void;
    const never = new Promise<Buffer>((_, reject) => (fail = reject));
    const third = path.join(target, src, 'level-0', 'level-1', 'level-2');
    const session = withMethods(m.ctx.session, (s) => ({ readPack: (...args) => (fsSync.existsSync(third) ? (reached(), never) : s.readPack(...args)) }));
    const restore = runRestore({ ...m.ctx, session }, { point: 'latest', target, paths: [], conflict: 'skip', maxKept: 1 });
    await paused;
    // As a restore killed now would leave it: every folder it made so far is in its list.
    const made = (await fs.readdir(target, { recursive: true })).map((p) => path.join(target, String(p)));
    const folders = [target, ...made].filter((p) => p.includes('level-') || p === path.join(target, src));
    expect(folders.length).toBeGreaterThan(3);
    const [mark] = (await fs.readdir(m.ctx.paths.restores)).filter((n) => n.endsWith('.dirs'));
    const listed = (await fs.readFile(path.join(m.ctx.paths.restores, mark!), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as string);
    for (const f of folders) if ((await fs.stat(f)).isDirectory()) expect(listed, f).toContain(f);
    fail(new Error('the test is over'));
    await expect(restore).rejects.toThrow('the test is over');
  });
});
