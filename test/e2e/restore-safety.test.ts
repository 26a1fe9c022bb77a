/**
 * What a restore must never do, whatever it finds on the way or in the point: write through a link
 * it did not make, land two different paths on one place, or hand back a setuid program (owners
 * are not restored).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { restoreLocation } from '../../src/agent/fspath.js';
import { settleDir } from '../../src/agent/restore-files.js';
import { BIN, REPO, backup, expectExit, expectNoStack, parseJson, pointFixture, runCli, setupMachine } from '../helpers/cli.js';
import { listFiles } from '../helpers/fs-tree.js';

const fx = pointFixture(async (src) => {
  await fs.mkdir(path.join(src, 'docs'), { recursive: true });
  await fs.writeFile(path.join(fx.src, 'docs/report.txt'), 'report\n');
  await fs.writeFile(path.join(fx.src, 'tool'), '#!/bin/sh\necho hi\n');
  await fs.chmod(path.join(fx.src, 'tool'), 0o4755);
  await fs.mkdir(path.join(fx.src, 'shared'));
  await fs.chmod(path.join(fx.src, 'shared'), 0o2775);
});
const fresh = fx.fresh;

describe.skipIf(process.platform === 'win32')('restore safety', () => {
  it('does not write through a link found under the target on the way to a path', async () => {
    const target = fresh('target');
    const outside = fresh('outside');
    await fs.mkdir(outside);
    await fs.mkdir(target);
    const first = path.relative(path.parse(fx.src).root, fx.src).split(path.sep)[0]!;
    await fs.symlink(outside, path.join(target, first));
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', target, '--json']);
    expectExit(r, 3);
    expectNoStack(r);
    const res = parseJson(r);
    expect(res.failed).toHaveLength(1);
    expect(res.failed[0].reason).toContain('is a link');
    expect(await listFiles(outside)).toEqual([]);
    const said = await fx.machine.run(['restore', '--point', 'latest', '--target', target]);
    expectExit(said, 3);
    expect(said.stdout).toMatch(/^Could not restore point \S+ of \S+ under /);
    expect(said.stdout).toContain('1 item(s) could not be restored');
  });

  it('says it restored only part of the point when some items could not be', async () => {
    const target = fresh('target');
    expectExit(await fx.machine.run(['restore', '--point', 'latest', '--target', target]), 0);
    const report = path.join(target, path.relative(path.parse(fx.src).root, fx.src), 'docs/report.txt');
    await fs.rm(report);
    await fs.mkdir(path.join(report, 'kept'), { recursive: true });
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', target, '--conflict', 'overwrite']);
    expectExit(r, 3);
    expect(r.stdout).toMatch(/^Restored part of point \S+ of \S+ under /);
    expect(r.stdout).toMatch(/1 item\(s\) could not be restored:\n\s+\S+report\.txt: a folder is where the backup has a file; the existing one was left alone/);
    expect(await fs.readdir(report)).toEqual(['kept']);
    // A link where the backup has a folder is named a link (it was called a file).
    const docs = path.dirname(report);
    await fs.rm(docs, { recursive: true });
    await fs.symlink(target, docs);
    const l = await fx.machine.run(['restore', '--point', 'latest', '--target', target, '--conflict', 'overwrite']);
    expectExit(l, 3);
    expect(l.stdout).toMatch(/docs: a link is where the backup has a folder; the existing one was left alone/);
    expect((await fs.lstat(docs)).isSymbolicLink()).toBe(true);
  });

  it('restores files without setuid or setgid, and folders with setgid', async () => {
    const target = fresh('target');
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', target]);
    expectExit(r, 0);
    const at = (rel: string) => path.join(target, path.relative(path.parse(fx.src).root, fx.src), rel);
    expect((await fs.stat(at('tool'))).mode & 0o7777).toBe(0o755);
    expect((await fs.stat(at('shared'))).mode & 0o7777).toBe(0o2775);
    expect(await fs.readFile(at('docs/report.txt'), 'utf8')).toBe('report\n');
  });

  it('restores a path given twice, or inside another one given, once', async () => {
    const target = fresh('target');
    const docs = path.join(fx.src, 'docs');
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', target, '--path', docs, path.join(docs, 'report.txt'), docs, '--json']);
    expectExit(r, 0);
    expect(parseJson(r).restored).toMatchObject({ files: 1, dirs: 1 });
    expect(parseJson(r).conflicts).toEqual([]);
  });

  it('does not restore below a folder that anyone may change: a --target inside one is refused (exit 2), and not made', async () => {
    const open = fresh('open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777); // not sticky: anyone may rename what the restore makes in it
    const r = await fx.machine.run(['restore', '--point', 'latest', '--target', path.join(open, 'target', 'deeper')]);
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toContain('anyone may rename what is in it');
    expect(await fs.readdir(open)).toEqual([]); // refused before any folder of the target was made
    // Nor through a link in such a folder: anyone may point it elsewhere once checked.
    const safe = fresh('safe');
    await fs.mkdir(safe);
    await fs.symlink(safe, path.join(open, 'link'));
    const linked = await fx.machine.run(['restore', '--point', 'latest', '--target', path.join(open, 'link', 'target')]);
    expectExit(linked, 2);
    expect(linked.stderr).toContain(`${open}: anyone may rename what is in it`);
    expect(await fs.readdir(safe)).toEqual([]);
    await fs.rm(path.join(open, 'link'));
    // With a umask of 0 the target's folders are still made writable by their owner alone: they
    // would be refused once made, and left behind.
    const loose = fresh('umask0');
    const umask0 = spawnSync('sh', ['-c', 'umask 0 && exec "$0" "$@"', process.execPath, BIN, 'restore', '--point', 'latest', '--target', path.join(loose, 'a', 'b')], {
      cwd: REPO,
      env: { ...process.env, AZBK_HOME: fx.machine.home },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(umask0.status, umask0.stderr).toBe(0);
    expect((await fs.stat(path.join(loose, 'a'))).mode & 0o777).toBe(0o755);
    await fs.chmod(open, 0o1777); // sticky, as /tmp is: others cannot rename what is not theirs
    expectExit(await fx.machine.run(['restore', '--point', 'latest', '--target', path.join(open, 'target')]), 0);
  });

  it.skipIf(process.getuid?.() !== 0)('does not restore in place below a folder of another user, who could swap what it makes there', async () => {
    const theirs = fresh('theirs');
    await fs.mkdir(theirs);
    const inside = path.join(theirs, 'data');
    await fs.mkdir(inside);
    await fs.writeFile(path.join(inside, 'f.txt'), 'theirs\n');
    const m = await setupMachine(fresh('machine'));
    await backup(m, [inside]);
    await fs.rm(inside, { recursive: true });
    await fs.chown(theirs, 65534, 65534);
    const r = await m.run(['restore', '--point', 'latest', '--json']);
    expectExit(r, 3);
    const res = parseJson(r);
    expect(res.failed).toEqual([{ path: inside, reason: expect.stringContaining('belongs to another user (uid 65534)') }]);
    expect(res.failed[0].reason).toContain('--target');
    expect(await fs.readdir(theirs)).toEqual([]);
  });

  it("writes nothing into azbk's own folders: a --target in them is refused (exit 2), and a point's copy of one is left alone", async () => {
    const root = fresh('own');
    await fs.mkdir(root);
    const m = await setupMachine(root, { name: 'own-a' });
    const data = path.join(root, 'data');
    await fs.mkdir(path.join(data, 'keep'), { recursive: true });
    await fs.writeFile(path.join(data, 'a.txt'), 'a\n');
    await fs.writeFile(path.join(data, 'keep', 'b.txt'), 'b\n');
    await backup(m, [data]);
    for (const target of [m.home, path.join(m.vault.dir, 'packs', 'x')]) {
      const r = await m.run(['restore', '--point', 'latest', '--target', target]);
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stderr).toContain("azbk's own folder (AZBK_HOME or the vault), which a restore does not write into");
    }
    expect(await fs.readdir(path.join(m.vault.dir, 'packs'))).not.toContain('x');
    // Nor through a link to one.
    await fs.symlink(m.home, path.join(root, 'home-link'));
    const linked = await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'home-link', 'rt')]);
    expectExit(linked, 2);
    expect(linked.stderr).toContain("azbk's own folder");
    expect(await fs.readdir(m.home)).not.toContain('rt');
    // Another machine whose AZBK_HOME is where the point has a folder (made before backups left
    // such folders out): restored in place, that folder is left as it is, the rest restored.
    await fs.rm(path.join(data, 'a.txt'));
    await fs.rm(path.join(data, 'keep', 'b.txt'));
    await fs.chmod(path.join(data, 'keep'), 0o700);
    const homeB = path.join(data, 'keep');
    const asB = (args: string[]) => runCli(args, { home: homeB });
    expectExit(await asB(['register', '--vault-credentials', m.vault.credentials, '--passphrase-file', m.passphraseFile, '--machine-name', 'own-b']), 0);
    const r = await asB(['restore', '--point', 'latest', '--machine', m.name, '--passphrase-file', m.passphraseFile, '--path', data, '--json']);
    expectExit(r, 0);
    expect(parseJson(r).conflicts).toEqual([{ path: homeB, action: 'skipped', own: true }]);
    expect(await fs.readFile(path.join(data, 'a.txt'), 'utf8')).toBe('a\n');
    expect(await fs.readdir(homeB)).not.toContain('b.txt');
  });

  it('settles a folder only through the folder itself, never through a link in its place', async () => {
    const dir = fresh('dir');
    await fs.mkdir(dir);
    const link = fresh('link');
    await fs.symlink(dir, link);
    expect(() => settleDir(link, 0o777, '1500000000000000000')).toThrow(/ELOOP|ENOTDIR/);
    expect((await fs.stat(dir)).mode & 0o777).not.toBe(0o777);
  });
});

describe('restore locations', () => {
  it('turn a drive into a folder only for a point made on Windows', () => {
    expect(restoreLocation(['C:', 'Users', 'a'], '/t', true)).toBe(path.join('/t', 'C', 'Users', 'a'));
    expect(restoreLocation(['x:', 'pwn'], '/t', false)).toBe(path.join('/t', 'x:', 'pwn'));
    expect(restoreLocation(['x', 'pwn'], '/t', false)).not.toBe(restoreLocation(['x:', 'pwn'], '/t', false));
  });
});
