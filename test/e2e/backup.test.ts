/** backup --now: missing include paths (partial), the policy, one job at a time, a vanished vault. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { backup, BIN, expectExit, expectNoStack, parseJson, runCli, setupMachine, tempDir } from '../helpers/cli.js';
import { exists, expectSameTree, writeRandomFile } from '../helpers/fs-tree.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `azbk backup --now --include src` as machine `home`, in the background. */
function spawnBackup(home: string, src: string) {
  const child = spawn(process.execPath, [BIN, 'backup', '--now', '--include', src], { env: { ...process.env, AZBK_HOME: home }, stdio: 'ignore' });
  const done = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, done };
}

/** The pid named in a job lock file, or null while there is none (or it is still empty). */
function lockPid(lock: string): number | null {
  try {
    return (JSON.parse(readFileSync(lock, 'utf8')) as { pid?: number }).pid ?? null;
  } catch {
    return null;
  }
}

describe.concurrent('backup', () => {
  it('backs up what exists, lists what does not, and exits 3', async (ctx) => {
    const root = await tempDir(ctx);
    const here = path.join(root, 'here');
    const gone = path.join(root, 'not there');
    await fs.mkdir(here);
    await fs.writeFile(path.join(here, 'f.txt'), 'present\n');
    const a = await setupMachine(root);

    const text = await a.run(['backup', '--now', '--include', gone, here]);
    expectExit(text, 3);
    expect(text.stdout).toContain(gone);
    expect(text.stdout).toMatch(/1 item\(s\) skipped/);

    const json = await backup(a, [here, gone], 3);
    expect(json.status).toBe('partial');
    expect(json.skipped).toEqual([{ path: gone, reason: 'not found' }]);
    expect(json.paths).toEqual([here]);

    const target = path.join(root, 't');
    expectExit(await a.run(['restore', '--point', json.point.id, '--target', target]), 0);
    await expectSameTree(here, path.join(target, here));
    expect(await exists(path.join(target, gone))).toBe(false);
  });

  it.skipIf(process.platform !== 'linux')('skips a name that is not UTF-8, says so, and keeps the rest of its folder (also a name with U+FFFD)', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(Buffer.concat([Buffer.from(`${src}/n`), Buffer.from([0xe9])]), 'latin-1 name\n');
    await fs.writeFile(path.join(src, 'n\uFFFD'), 'a real replacement character\n');
    await fs.writeFile(path.join(src, 'important.txt'), 'keep me\n');
    const a = await setupMachine(root);
    const first = await backup(a, [src], 3);
    expect(first.skipped).toEqual([{ path: path.join(src, 'n\uFFFD'), reason: 'its name is not valid UTF-8 text, which azbk cannot store (its bytes: 6e e9)' }]);
    expect(first.stats.files).toBe(2);
    // Said again by the next backup: the folder is not taken as unchanged.
    expect((await backup(a, [src], 3)).skipped).toHaveLength(1);
    const target = path.join(root, 't');
    expectExit(await a.run(['restore', '--point', first.point.id, '--target', target]), 0);
    expect(await fs.readFile(path.join(target, src, 'n\uFFFD'), 'utf8')).toBe('a real replacement character\n');
    expect(await fs.readFile(path.join(target, src, 'important.txt'), 'utf8')).toBe('keep me\n');
  });

  it.skipIf(process.platform !== 'linux')('skips a link whose target is not UTF-8, says so, and keeps a link to a name with U+FFFD', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.symlink(Buffer.concat([Buffer.from('tar'), Buffer.from([0xff]), Buffer.from('get')]), path.join(src, 'bad'));
    await fs.symlink('tar\uFFFDget', path.join(src, 'good'));
    await fs.writeFile(path.join(src, 'important.txt'), 'keep me\n');
    const a = await setupMachine(root);
    const first = await backup(a, [src], 3);
    // Before, it was stored pointing at tar\uFFFDget, and restored so, without a word.
    expect(first.skipped).toEqual([{ path: path.join(src, 'bad'), reason: 'the path it points to is not valid UTF-8 text, which azbk cannot store' }]);
    expect((await backup(a, [src], 3)).skipped).toHaveLength(1);
    const target = path.join(root, 't');
    expectExit(await a.run(['restore', '--point', first.point.id, '--target', target]), 0);
    expect(await fs.readlink(path.join(target, src, 'good'))).toBe('tar\uFFFDget');
    expect(await exists(path.join(target, src, 'bad'))).toBe(false);
    expect(await fs.readFile(path.join(target, src, 'important.txt'), 'utf8')).toBe('keep me\n');
  });

  it.skipIf(process.platform !== 'linux')('refuses a path on the command line that holds U+FFFD: it may be bytes that were not UTF-8, naming another path', async (ctx) => {
    const root = await tempDir(ctx);
    // Given as d<0xff>X, the process reads d\uFFFDX: the name of this other folder.
    const other = path.join(root, 'd\uFFFDX');
    await fs.mkdir(other);
    await fs.writeFile(path.join(other, 'f'), 'the other folder\n');
    const a = await setupMachine(root);
    const r = await a.run(['backup', '--now', '--include', other]);
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toContain('U+FFFD');
    expect(await a.run(['points', '--json']).then((p) => JSON.parse(p.stdout).points)).toEqual([]);
    const ok = await backup(a, [root], 0);
    const restored = await a.run(['restore', '--point', ok.point.id, '--target', path.join(root, 't\uFFFD')]);
    expectExit(restored, 2);
    expect(await exists(path.join(root, 't\uFFFD'))).toBe(false);
    expectExit(await a.run(['restore', '--point', ok.point.id, '--target', path.join(root, 't'), '--path', other]), 2);
    expectExit(await a.run(['policy', 'set', '--include', other]), 2);
  });

  it('refuses the root folder as a whole, and warns that an included link is backed up as a link', async (ctx) => {
    const root = await tempDir(ctx);
    const a = await setupMachine(root);
    const r = await a.run(['backup', '--now', '--include', path.parse(root).root]);
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toContain('cannot be backed up as a whole');
    const data = path.join(root, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'f.txt'), 'x\n');
    const link = path.join(root, 'link');
    await fs.symlink(data, link);
    const b = await backup(a, [link]);
    expect(b.warnings).toEqual([{ path: link, reason: 'a link: the link itself is backed up, not what it points to (include its target for that)' }]);
    expect(b.stats).toMatchObject({ files: 0, symlinks: 1 });
    // A path below an included link is not silently dropped: listed as skipped, exit 3.
    const inner = path.join(link, 'f.txt');
    const c = await backup(a, [link, inner], 3);
    expect(c.skipped).toEqual([{ path: inner, reason: expect.stringContaining(`below ${link}, an included link`) }]);
    expect(c.stats).toMatchObject({ files: 0, symlinks: 1 });
  });

  it('exits 2 and makes no point when no include path exists, or none could be backed up', async (ctx) => {
    const root = await tempDir(ctx);
    const a = await setupMachine(root);
    const r = await a.run(['backup', '--now', '--include', path.join(root, 'nope1'), path.join(root, 'nope2')]);
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toContain('nope1');
    // There, but nothing of it can be kept: a pipe (as a folder this user may not list).
    const pipe = path.join(root, 'pipe');
    if (process.platform !== 'win32') {
      expect(spawnSync('mkfifo', [pipe]).status).toBe(0);
      const none = await a.run(['backup', '--now', '--include', pipe]);
      expectExit(none, 2);
      expect(none.stderr).toContain(`None of the paths to back up could be backed up: ${pipe} (special file`);
    }
    if (process.platform !== 'win32' && process.getuid?.() !== 0) {
      const locked = path.join(root, 'locked');
      await fs.mkdir(locked, { mode: 0o000 });
      const none = await a.run(['backup', '--now', '--include', locked]);
      expectExit(none, 2);
      expect(none.stderr).toContain(`None of the paths to back up could be backed up: ${locked} (`);
      await fs.chmod(locked, 0o700);
    }
    const points = await a.run(['points', '--json']);
    expectExit(points, 0);
    expect(parseJson(points).points).toEqual([]);
  });

  it("leaves azbk's own folders (AZBK_HOME, the vault) out of a folder that holds them, so the vault is never stored in itself", async (ctx) => {
    const root = await tempDir(ctx);
    await writeRandomFile(path.join(root, 'data', 'a.bin'), 256 * 1024);
    // The vault (root/vault) and AZBK_HOME (root/home-A) are both in the folder backed up.
    const a = await setupMachine(root);
    const first = await backup(a, [root]);
    const again = await backup(a, [root]);
    expect(again.stats.files).toBe(first.stats.files);
    expect(again.stats.bytes).toBe(first.stats.bytes);
    expect(again.stats.newBytes, 'an unchanged re-run stores (almost) nothing').toBeLessThan(16 * 1024);
    const ls = await a.run(['ls', '--point', 'latest', '-r', root]);
    expectExit(ls, 0);
    expect(ls.stdout).toContain('a.bin');
    for (const own of [a.vault.dir, a.home]) expect(ls.stdout).not.toContain(own);
    // Named on their own, they are skipped and said so; with nothing else to back up, exit 2.
    const only = await a.run(['backup', '--now', '--include', a.home, path.join(a.vault.dir, 'packs')]);
    expectExit(only, 2);
    expectNoStack(only);
    expect(only.stderr).toContain(`${a.home} (it is azbk's own folder (AZBK_HOME or the vault), which backups leave out)`);
    expect(only.stderr).toContain(`it is in ${a.vault.dir}, which is azbk's own folder`);
    const mixed = await backup(a, [path.join(root, 'data'), a.vault.dir], 3);
    expect(mixed.skipped.map((x: { path: string }) => x.path)).toEqual([a.vault.dir]);
    expect(mixed.paths).toEqual([path.join(root, 'data')]);

    // They are known as folders, not by their names: reached through a link they are left out as
    // well, and a folder beside them whose name starts the same is backed up.
    await writeRandomFile(path.join(root, `${path.basename(a.home)}2`, 'c.bin'), 1024);
    const up = path.join(root, 'data', 'up');
    await fs.symlink(path.dirname(root), up); // stored as a link by a walk of root
    const throughLink = await a.run(['backup', '--now', '--include', path.join(up, path.basename(root), path.basename(a.vault.dir), 'packs')]);
    expectExit(throughLink, 2);
    expect(throughLink.stderr).toContain("azbk's own folder");
    const viaLink = path.join(up, path.basename(root));
    await backup(a, [viaLink]);
    const listed = await a.run(['ls', '--point', 'latest', '-r', viaLink]);
    expectExit(listed, 0);
    expect(listed.stdout).toContain('c.bin');
    expect(listed.stdout).toContain(`${path.basename(a.home)}2`);
    expect(listed.stdout).toContain(path.join(viaLink, 'data', 'a.bin'));
    for (const own of [a.vault.dir, a.home]) expect(listed.stdout).not.toContain(`${path.join(viaLink, path.basename(own))}\n`);
    expect(listed.stdout).not.toContain(path.join(viaLink, path.basename(a.home), 'registration.json'));
    await fs.rm(up);
    // An included link to one is stored as a link, as any included link is.
    const homeLink = path.join(root, 'home-link');
    await fs.symlink(a.home, homeLink);
    const linked = await backup(a, [homeLink]);
    expect(linked.skipped).toEqual([]);
    expect(linked.stats.symlinks).toBe(1);
    await fs.rm(homeLink);
    // A mark of a backup that did not say which own folders it left out: the next one is a full scan.
    const again2 = await backup(a, [root]);
    expect(again2.stats.files).toBe(first.stats.files + 1); // c.bin
    const [db] = (await fs.readdir(path.join(a.home, 'cache'))).filter((f) => f.endsWith('.sqlite'));
    const cache = new Database(path.join(a.home, 'cache', db!));
    cache.prepare("UPDATE meta SET value = json_remove(value, '$.own') WHERE key = 'last-backup'").run();
    cache.close();
    const rescan = await backup(a, [root]);
    expect(rescan.scan).toMatchObject({ mode: 'full', reason: expect.stringContaining("azbk's own folders") });
  });

  it('takes several policy set at once in turn: every change stands', async (ctx) => {
    const root = await tempDir(ctx);
    const a = await setupMachine(root);
    for (let round = 0; round < 3; round++) {
      const include = path.join(root, `src${round}`);
      const runs = await Promise.all([
        a.run(['policy', 'set', '--include', include]),
        a.run(['policy', 'set', '--exclude', `*.tmp${round}`]),
        a.run(['policy', 'set', '--work-bandwidth', `${round + 1}M`]),
        a.run(['policy', 'set', '--keep-daily', String(30 + round)]),
      ]);
      for (const r of runs) expectExit(r, 0);
      // Set, but said: a path not there (yet) is skipped by backups.
      expect(runs[0]!.stderr).toContain(`azbk: ${include} does not exist now: backups skip it (exit 3) until it does.`);
      const shown = parseJson(await a.run(['policy', 'show', '--json']));
      expect(shown.include).toEqual([include]);
      expect(shown.exclude).toEqual([`*.tmp${round}`]);
      expect(shown.bandwidth.work).toBe((round + 1) * 1024 * 1024);
      expect(shown.retention.daily).toBe(30 + round);
    }
    expect(await exists(path.join(a.home, 'policy.lock'))).toBe(false);
    // A path below a file is not there either: said, and set.
    await fs.writeFile(path.join(root, 'file'), 'f\n');
    const below = await a.run(['policy', 'set', '--include', path.join(root, 'file', 'x')]);
    expectExit(below, 0);
    expect(below.stderr).toContain('does not exist now');
    // azbk's own folders, which backups leave out: said; alone, refused and nothing changed.
    const vault = path.join(root, 'vault');
    const mixed = await a.run(['policy', 'set', '--include', root, path.join(a.home, 'cache')]);
    expectExit(mixed, 0);
    expect(mixed.stderr).toContain(`azbk: ${path.join(a.home, 'cache')} is azbk's own folder (AZBK_HOME or the vault) or in it: backups leave it out (exit 3).`);
    const alone = await a.run(['policy', 'set', '--include', vault, '--schedule', '10:00']);
    expectExit(alone, 2);
    expect(alone.stderr).toContain(`${vault} is azbk's own folder (AZBK_HOME or the vault) or in it, which backups leave out, and nothing else is included; nothing was changed.`);
    expect(parseJson(await a.run(['policy', 'show', '--json'])).include).toEqual([root, path.join(a.home, 'cache')]);
  });

  it('uses the policy when --include is not given', async (ctx) => {
    const root = await tempDir(ctx);
    const a = await setupMachine(root);
    const noPolicy = await a.run(['backup', '--now']);
    expectExit(noPolicy, 2);
    expect(noPolicy.stderr).toMatch(/AZBK_NOTHING_TO_BACK_UP/);
    const notNow = await a.run(['backup', '--include', root]);
    expectExit(notNow, 2);

    const p1 = path.join(root, 'documents');
    const p2 = path.join(root, 'pictures');
    await fs.mkdir(p1);
    await fs.mkdir(p2);
    await fs.writeFile(path.join(p1, 'cv.txt'), 'cv');
    await fs.writeFile(path.join(p2, 'cat.txt'), 'cat');
    await fs.writeFile(path.join(root, 'outside.txt'), 'not in the policy');
    const set = await a.run(['policy', 'set', '--include', p1, p2]);
    expectExit(set, 0);
    const show = await a.run(['policy', 'show', '--json']);
    expectExit(show, 0);
    expect(parseJson(show).include).toEqual([p1, p2]);

    const r = await a.run(['backup', '--now', '--json']);
    expectExit(r, 0);
    const res = parseJson(r);
    expect(res.paths).toEqual([p1, p2]);
    expect(res.stats.files).toBe(2);
    const target = path.join(root, 't');
    expectExit(await a.run(['restore', '--point', 'latest', '--target', target]), 0);
    await expectSameTree(p1, path.join(target, p1));
    await expectSameTree(p2, path.join(target, p2));
    expect(await exists(path.join(target, root, 'outside.txt'))).toBe(false);
  });

  it('refuses a job lock that is a folder (exit 1, said so) and leaves that folder as it is', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'f.txt'), 'x');
    const a = await setupMachine(root);
    const lock = path.join(a.home, 'job.lock');
    await fs.mkdir(lock);
    await fs.writeFile(path.join(lock, 'mine.txt'), 'mine');
    const r = await a.run(['backup', '--now', '--include', src]);
    expectExit(r, 1);
    expectNoStack(r);
    expect(r.stderr).toContain(`azbk: error AZBK_LOCAL_IO: ${lock} is not a file, so the job lock cannot be taken`);
    expect(await fs.readFile(path.join(lock, 'mine.txt'), 'utf8')).toBe('mine');
    expect((await fs.readdir(a.home)).filter((n) => n.startsWith('job.lock.'))).toEqual([]);
    await fs.rm(lock, { recursive: true });
    expectExit(await a.run(['backup', '--now', '--include', src]), 0);
  });

  it('runs one job at a time per machine: a second backup or a restore exits 11', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'big');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'small.txt'), 'small');
    const a = await setupMachine(root);
    await backup(a, [src]); // a point to restore
    await writeRandomFile(path.join(src, 'data.bin'), 48 * 1024 * 1024);
    const lock = path.join(a.home, 'job.lock');
    const first = spawnBackup(a.home, src);
    let stopped = false;
    try {
      // Once the first backup holds the lock (written, naming its process), freeze it, so the
      // checks cannot race the end of the job.
      for (let i = 0; i < 6000 && first.child.exitCode === null && lockPid(lock) !== first.child.pid; i++) await sleep(5);
      stopped = first.child.kill('SIGSTOP');
      expect(lockPid(lock), 'the first backup holds the job lock').toBe(first.child.pid);
      const second = await a.run(['backup', '--now', '--include', src]);
      expectExit(second, 11);
      expectNoStack(second);
      expect(second.stderr).toMatch(/AZBK_JOB_RUNNING/);
      const target = path.join(root, 't');
      const restore = await a.run(['restore', '--point', 'latest', '--target', target]);
      expectExit(restore, 11);
      expect(await exists(path.join(target, src)), 'the refused restore wrote nothing').toBe(false);
    } finally {
      if (stopped) first.child.kill('SIGCONT');
      expect(await first.done).toBe(0);
    }
    // The lock is released when the job ends, and a lock left by a dead process is taken over.
    expect(await exists(lock)).toBe(false);
    await fs.writeFile(lock, JSON.stringify({ pid: 2 ** 22 + 12345, jobId: 'x', kind: 'backup' }));
    const after = await a.run(['backup', '--now', '--include', src]);
    expectExit(after, 0);
    expect(await exists(lock)).toBe(false);
  });

  it('refuses a second job even at the moment the first one is creating the lock', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    await writeRandomFile(path.join(src, 'f.bin'), 1024 * 1024);
    const a = await setupMachine(root);
    const lock = path.join(a.home, 'job.lock');
    // Freeze the first backup the instant job.lock appears, which often lands between its
    // creation and the write of its content. A few tries make hitting that moment likely.
    for (let attempt = 0; attempt < 4; attempt++) {
      const first = spawnBackup(a.home, src);
      const deadline = Date.now() + 30_000;
      while (!existsSync(lock) && Date.now() < deadline) {
        // busy-wait: a timer would miss the moment
      }
      const stopped = first.child.kill('SIGSTOP');
      let caughtEmpty = false;
      try {
        expect(existsSync(lock), 'the first backup created the job lock').toBe(true);
        caughtEmpty = readFileSync(lock, 'utf8') === '';
        const second = await a.run(['backup', '--now', '--include', src]);
        expect(second.code, `attempt ${attempt}: a second backup ran while the first was ${caughtEmpty ? 'creating' : 'holding'} the lock`).toBe(11);
      } finally {
        if (stopped) first.child.kill('SIGCONT');
        expect(await first.done).toBe(0);
      }
      if (caughtEmpty) break;
    }
  });

  it('exits 2 on an unregistered machine and 10 when the vault folder is gone', async (ctx) => {
    const root = await tempDir(ctx);
    const fresh = await runCli(['backup', '--now', '--include', root], { home: path.join(root, 'fresh home') });
    expectExit(fresh, 2);
    expect(fresh.stderr).toMatch(/AZBK_NOT_REGISTERED/);
    const a = await setupMachine(root);
    await fs.rename(a.vault.dir, path.join(root, 'elsewhere'));
    const r = await a.run(['backup', '--now', '--include', a.home]);
    expectExit(r, 10);
    expectNoStack(r);
    expectExit(await a.run(['points']), 10);
  });
});
