/** Where a restore writes: the original place without --target, and only the chosen --path items. */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { expectExit, expectNoStack, parseJson, pointFixture } from '../helpers/cli.js';
import { exists, expectSameTree, listFiles, walk } from '../helpers/fs-tree.js';

const exec = promisify(execFile);

async function smallTree(src: string): Promise<void> {
  await fs.mkdir(path.join(src, 'docs/old'), { recursive: true });
  await fs.mkdir(path.join(src, 'photos'), { recursive: true });
  await fs.writeFile(path.join(src, 'top.txt'), 'top\n');
  await fs.writeFile(path.join(src, 'docs/report.txt'), 'report\n');
  await fs.writeFile(path.join(src, 'docs/old/2019.txt'), 'old\n');
  await fs.writeFile(path.join(src, 'photos/cat.jpg'), Buffer.from('not really a jpeg'));
  await fs.chmod(path.join(src, 'photos/cat.jpg'), 0o640);
  await fs.symlink('docs/report.txt', path.join(src, 'report-link'));
  for (const [rel, t] of [['docs/old/2019.txt', 1.5e9], ['docs/old', 1.5e9 + 1], ['docs', 1.5e9 + 2], ['photos/cat.jpg', 1.5e9 + 3.25]] as const) {
    await fs.utimes(path.join(src, rel), t, t);
  }
}

// One machine and one point of the small tree for every test in this file.
const fx = pointFixture(smallTree);


describe('restore to the original location', () => {
  it('brings deleted files, folders and links back to where they were', async () => {
    const pristine = fx.fresh('pristine');
    await exec('cp', ['-a', fx.src, pristine]); // keeps modes, times and links
    await fs.rm(path.join(fx.src, 'top.txt'));
    await fs.rm(path.join(fx.src, 'docs'), { recursive: true });
    await fs.rm(path.join(fx.src, 'report-link'));
    expect(await exists(path.join(fx.src, 'docs'))).toBe(false);

    const r = await fx.machine.run(['restore', '--point', 'latest', '--json']);
    expectExit(r, 0);
    const res = parseJson(r);
    expect(res.target).toBeNull();
    expect(res.failed).toEqual([]);
    expect(res.restored.files).toBe(3); // top.txt, report.txt, 2019.txt; cat.jpg was still there
    expect(res.conflicts).toEqual([{ path: path.join(fx.src, 'photos/cat.jpg'), action: 'skipped' }]);
    await expectSameTree(pristine, fx.src);
  });
});

describe('restore --target', () => {
  it('a target below a file is bad input (exit 2) with a clear message, and writes nothing', async () => {
    const file = fx.fresh('a-file');
    await fs.writeFile(file, 'not a folder\n');
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', path.join(file, 'sub')]);
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toMatch(/^azbk: error AZBK_BAD_INPUT: Cannot create the folder .+ \(a file is in the way\)\.\n  hint: .+\n$/);
    expect(await fs.readFile(file, 'utf8')).toBe('not a folder\n');
  });

  // /proc has folders that take no new entries (mkdir of a child: ENOENT, of the parent: EEXIST),
  // on which Node's own recursive mkdir went round for ever, deaf to Ctrl-C.
  it.runIf(process.platform === 'linux')('a target on a file system that makes no folders is bad input, at once', async () => {
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', '/proc/azbk-restore-target/sub']);
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toContain('Cannot create the folder /proc/azbk-restore-target/sub to restore into (a folder on the way is missing, or takes no new folders: a broken link, or a file system such as /proc).');
  });

  it('a target behind a loop of links, or in which nothing can be written, is bad input, at once', async () => {
    const loop = fx.fresh('loop');
    await fs.symlink(path.basename(loop), loop);
    const looped = await fx.machine.run(['restore', '--point', 'latest', '--target', loop]);
    expectExit(looped, 2);
    expectNoStack(looped);
    expect(looped.stderr).toContain(`Cannot create the folder ${loop} to restore into (a link on the way leads round in a loop).`);

    // Read-only: a file system mounted so (root may write in any folder), or a folder of mode 0555.
    const ro = fx.fresh('read-only');
    await fs.mkdir(ro);
    const root = process.getuid?.() === 0;
    if (root) {
      try {
        await exec('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
      } catch {
        return; // not allowed to mount here
      }
    } else await fs.chmod(ro, 0o555);
    try {
      const r = await fx.machine.run(['restore', '--point', 'latest', '--target', ro]);
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stderr).toMatch(new RegExp(`Cannot write in the folder ${ro} to restore into \\((read-only file system \\(EROFS\\)|permission denied \\(EACCES\\))\\)\\.`));
    } finally {
      if (root) await exec('umount', [ro]);
      else await fs.chmod(ro, 0o755);
    }
  });

  it('a target with a name longer than the file system takes is bad input, not an error of AZBK_HOME', async () => {
    const long = path.join(fx.fresh('long'), 'n'.repeat(300));
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', long]);
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toContain(`Cannot create the folder ${long} to restore into (the path or a name in it is too long for the file system).`);
  });
});

describe('restore --path', () => {
  it('restores only the chosen file and folder', async () => {
    const target = fx.fresh('target');
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', target, '--path', path.join(fx.src, 'docs'), path.join(fx.src, 'photos/cat.jpg'), '--json']);
    expectExit(r, 0);
    expect(parseJson(r).restored).toMatchObject({ files: 3, dirs: 2, symlinks: 0 });
    const got = (await listFiles(target)).map((f) => path.relative(path.join(target, fx.src), f)).sort();
    expect(got).toEqual(['docs/old/2019.txt', 'docs/report.txt', 'photos/cat.jpg']);
    await expectSameTree(path.join(fx.src, 'docs'), path.join(target, fx.src, 'docs'));
    // Only the chosen file of photos/, with its mode and time.
    expect((await walk(path.join(target, fx.src, 'photos'))).size).toBe(2);
    const [s, t] = await Promise.all([fs.lstat(path.join(fx.src, 'photos/cat.jpg')), fs.lstat(path.join(target, fx.src, 'photos/cat.jpg'))]);
    expect(t.mode & 0o7777).toBe(0o640);
    expect(Math.abs(t.mtimeMs - s.mtimeMs)).toBeLessThan(1);
    expect(await exists(path.join(target, fx.src, 'top.txt'))).toBe(false);
    expect(await exists(path.join(target, fx.src, 'report-link'))).toBe(false);
  });

  it('refuses a path that is not in the point with exit 2 and writes nothing', async () => {
    const elsewhere = fx.fresh('not backed up');
    await fs.mkdir(elsewhere);
    const target = fx.fresh('target');
    for (const paths of [[path.join(fx.src, 'no such file')], [elsewhere], [path.join(fx.src, 'top.txt'), path.join(fx.src, 'docs/missing.txt')], [path.join(fx.src, 'top.txt/below')]]) {
      const r = await fx.machine.run(['restore', '--point', 'latest', '--target', target, '--path', ...paths]);
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stderr).toMatch(/not in (the )?recovery point/i);
      expect(await exists(target), `nothing may be written for --path ${paths.join(' ')}`).toBe(false);
    }
    // Without --target too: the original place is left alone.
    await fs.rm(path.join(fx.src, 'top.txt'));
    const r = await fx.machine.run(['restore', '--point', 'latest', '--path', path.join(fx.src, 'top.txt'), path.join(fx.src, 'nope')]);
    expectExit(r, 2);
    expect(await exists(path.join(fx.src, 'top.txt'))).toBe(false);
  });
});
