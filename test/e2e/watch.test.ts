/**
 * The change journal through the CLI: with `azbk watch` running since the last backup, a backup
 * examines only what changed ("optimized") and still captures every change exactly; without it,
 * the backup scans everything and says why.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, REPO, backup, createVault, expectExit, parseJson, setupMachine, type Machine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Watchers still running: a failed test must not leave one behind. */
const running = new Set<ChildProcess>();
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

function startWatch(m: Machine, args: readonly string[] = [], started = 'Watching') {
  const child = spawn(process.execPath, [BIN, 'watch', ...args], { cwd: REPO, env: { ...process.env, AZBK_HOME: m.home }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  const ready = (async () => {
    for (let i = 0; i < 400 && !stdout.includes(started); i++) await sleep(25);
    if (!stdout.includes(started)) throw new Error(`azbk watch did not start: ${stdout}`);
  })();
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { ready, stop: () => child.kill('SIGTERM'), done, output: () => stdout + stderr, stdout: () => stdout, pid: child.pid! };
}

/** Runs `fn` while the watcher `pid` is held still (SIGSTOP), and lets it go on after, whatever happens. */
async function whileHeld<T>(pid: number, fn: () => Promise<T>): Promise<T> {
  process.kill(pid, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

/** Runs `fn` while `azbk watch` runs (ready) for machine `m`, and stops the watcher after, whatever happens. */
async function watching(m: Machine, fn: () => Promise<void>): Promise<void> {
  const w = startWatch(m);
  await w.ready;
  try {
    await fn();
  } finally {
    w.stop();
    await w.done;
  }
}

async function tree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    out.set(path.relative(root, p), e.isFile() ? await fs.readFile(p, 'utf8') : e.isDirectory() ? '<dir>' : '<other>');
  }
  return out;
}

/** A machine whose policy includes `src`, a folder that holds keep/f ("v1\n"). */
async function watchedKeep(): Promise<{ root: string; src: string; m: Machine }> {
  const root = await makeTempDir('azbk-watch-');
  const src = path.join(root, 'src');
  await fs.mkdir(path.join(src, 'keep'), { recursive: true });
  await fs.writeFile(path.join(src, 'keep', 'f'), 'v1\n');
  const m = await setupMachine(root);
  expectExit(await m.run(['policy', 'set', '--include', src]), 0);
  return { root, src, m };
}

/** keep/f (see watchedKeep) as recovery point `point` holds it: restored under `root`. */
async function keptIn(m: Machine, root: string, src: string, point: string): Promise<string> {
  const target = path.join(root, `out-${point}`);
  expectExit(await m.run(['restore', '--point', point, '--target', target]), 0);
  return fs.readFile(path.join(target, src, 'keep', 'f'), 'utf8');
}

describe('change journal', () => {
  it('backs up only what changed while azbk watch runs, and the points restore exactly', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    for (let d = 0; d < 20; d++) {
      await fs.mkdir(path.join(src, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 10; f++) await fs.writeFile(path.join(src, `d${d}`, 'sub', `f${f}.txt`), `dir ${d} file ${f}\n`);
    }
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);

    const first = await backup(m, [src]);
    expect(first.scan.mode).toBe('full');
    expect(first.scan.reason).toMatch(/no earlier backup/);

    const w = startWatch(m);
    await w.ready;
    const second = await backup(m, [src]);
    expect(second.scan.mode, 'the journal started after the first backup').toBe('full');
    expect(second.scan.reason).toMatch(/started after the last backup/);

    // Change, add, delete and rename while the watcher runs.
    await fs.appendFile(path.join(src, 'd3', 'sub', 'f1.txt'), 'changed\n');
    await fs.writeFile(path.join(src, 'd7', 'new.txt'), 'new file\n');
    await fs.rm(path.join(src, 'd9'), { recursive: true });
    await fs.rename(path.join(src, 'd11', 'sub', 'f2.txt'), path.join(src, 'd12', 'moved.txt'));
    // A new folder tree (its files may be written before the watcher sees the folder), a
    // permission change and a same-size rewrite: files are watched through their folders.
    await fs.mkdir(path.join(src, 'd2', 'new', 'deeper'), { recursive: true });
    await fs.writeFile(path.join(src, 'd2', 'new', 'a.txt'), 'new a\n');
    await fs.writeFile(path.join(src, 'd2', 'new', 'deeper', 'b.txt'), 'new b\n');
    await fs.chmod(path.join(src, 'd4', 'sub', 'f4.txt'), 0o600);
    await fs.writeFile(path.join(src, 'd5', 'sub', 'f5.txt'), 'DIR 5 FILE 5\n');
    await sleep(500);
    const third = await backup(m, [src]);
    expect(third.scan.mode).toBe('optimized');
    expect(third.stats.files).toBe(200 - 10 + 1 + 2);
    expect(third.stats.dirs).toBe(1 + 19 * 2 + 2);

    const target = path.join(root, 'restored');
    expectExit(await m.run(['restore', '--point', third.point.id, '--target', target]), 0);
    expect(await tree(path.join(target, src))).toEqual(await tree(src));
    if (process.platform !== 'win32') expect((await fs.stat(path.join(target, src, 'd4', 'sub', 'f4.txt'))).mode & 0o777).toBe(0o600);

    const fourth = await backup(m, [src]);
    expect(fourth.scan.mode).toBe('optimized');
    expect(fourth.stats.newBytes).toBeLessThan(2048);

    w.stop();
    expect(await w.done).toBe(0);
    const fifth = await backup(m, [src]);
    expect(fifth.scan.mode).toBe('full');
    expect(fifth.scan.reason).toMatch(/not running/);
  }, 120_000);

  it('a folder swapped by renames is backed up with its new content, subfolders included', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    for (const d of ['x', 'y']) {
      await fs.mkdir(path.join(src, d, 'sub', 'deeper'), { recursive: true });
      await fs.writeFile(path.join(src, d, 'top.txt'), `top of ${d}\n`);
      await fs.writeFile(path.join(src, d, 'sub', 'f.txt'), `sub of ${d}\n`);
      await fs.writeFile(path.join(src, d, 'sub', 'deeper', 'g.txt'), `deeper in ${d}\n`);
    }
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    await backup(m, [src]);
    const w = startWatch(m);
    await w.ready;
    try {
      await backup(m, [src]);
      // The watches of y and its subfolders still carry y's paths after the rename: the watcher
      // sets up its watches anew, and says so in the journal before and after.
      await fs.rename(path.join(src, 'x'), path.join(src, 'x.old'));
      await fs.rename(path.join(src, 'y'), path.join(src, 'x'));
      const journal = path.join(m.home, 'journal', 'changes.log');
      const marker = JSON.stringify({ tree: src });
      for (let i = 0; i < 1200 && (await fs.readFile(journal, 'utf8')).split(marker).length < 3; i++) await sleep(25);
      const jtext = await fs.readFile(journal, 'utf8');
      expect(jtext.split(marker).length, `the watches were set up anew: ${jtext}`).toBe(3);
      const third = await backup(m, [src]);
      expect(third.scan).toEqual({ mode: 'full', reason: expect.stringMatching(/watches anew/) });
      const target = path.join(root, 'restored');
      expectExit(await m.run(['restore', '--point', third.point.id, '--target', target]), 0);
      expect(await tree(path.join(target, src))).toEqual(await tree(src));
      expect(await fs.readFile(path.join(target, src, 'x', 'sub', 'deeper', 'g.txt'), 'utf8')).toBe('deeper in y\n');

      // Writes in the moved folders afterwards are seen under their new paths.
      await fs.writeFile(path.join(src, 'x', 'sub', 'deeper', 'g.txt'), 'rewritten\n');
      await fs.writeFile(path.join(src, 'x.old', 'sub', 'f.txt'), 'old x, rewritten\n');
      await sleep(500);
      const fourth = await backup(m, [src]);
      expect(fourth.scan.mode).toBe('optimized');
      const target2 = path.join(root, 'restored2');
      expectExit(await m.run(['restore', '--point', fourth.point.id, '--target', target2]), 0);
      expect(await tree(path.join(target2, src))).toEqual(await tree(src));
    } finally {
      w.stop();
      await w.done;
    }
  }, 120_000);

  it('reuses a folder only if it is the one stored: a journal that names just the parent of a swap is enough', async () => {
    // A journal as a platform whose watcher does not report the subfolders of a folder moved in
    // would leave it: the renames are recorded in the parent only.
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    for (const d of ['x', 'y']) {
      await fs.mkdir(path.join(src, d, 'sub'), { recursive: true });
      await fs.writeFile(path.join(src, d, 'sub', 'f.txt'), `sub of ${d}\n`);
    }
    const m = await setupMachine(root);
    await backup(m, [src]);
    const journal = path.join(m.home, 'journal');
    await fs.mkdir(journal, { recursive: true, mode: 0o700 });
    const session = { version: 1, pid: process.pid, run: 'r1', proc: null, started: new Date().toISOString(), paths: [src] };
    await fs.writeFile(path.join(journal, 'session.json'), JSON.stringify(session), { mode: 0o600 });
    await backup(m, [src]);
    await fs.rename(path.join(src, 'x'), path.join(src, 'x.old'));
    await fs.rename(path.join(src, 'y'), path.join(src, 'x'));
    const names = ['x', 'x.old', 'y'].map((n) => JSON.stringify(path.join(src, n)));
    await fs.appendFile(path.join(journal, 'changes.log'), names.join('\n') + '\n');
    const third = await backup(m, [src]);
    expect(third.scan.mode).toBe('optimized');
    const target = path.join(root, 'restored');
    expectExit(await m.run(['restore', '--point', third.point.id, '--target', target]), 0);
    expect(await tree(path.join(target, src))).toEqual(await tree(src));
  }, 60_000);

  it('trusts a journal only from the run of the watcher the last backup saw, still the same process, over folders that backup covered', async () => {
    const root = await makeTempDir('azbk-watch-');
    const [a, b] = [path.join(root, 'a'), path.join(root, 'b')];
    for (const d of [a, b]) {
      await fs.mkdir(d, { recursive: true });
      await fs.writeFile(path.join(d, 'f.txt'), `${d}\n`);
    }
    const m = await setupMachine(root);
    const journal = path.join(m.home, 'journal');
    await fs.mkdir(journal, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(journal, 'changes.log'), '', { mode: 0o600 }); // a watcher makes it as it starts
    const session = (o: object) => fs.writeFile(path.join(journal, 'session.json'), JSON.stringify({ version: 1, pid: process.pid, run: 'r1', proc: null, started: new Date().toISOString(), paths: [root], ...o }), { mode: 0o600 });
    await session({});
    await backup(m, [a, b]); // full: no earlier backup; the run is remembered
    expect((await backup(m, [a, b])).scan.mode).toBe('optimized');
    // A backup of a alone moves the journal on past changes in b, which it did not look at.
    await fs.writeFile(path.join(b, 'f.txt'), 'changed\n');
    await fs.appendFile(path.join(journal, 'changes.log'), JSON.stringify(path.join(b, 'f.txt')) + '\n');
    expect((await backup(m, [a])).scan.mode).toBe('optimized');
    const both = await backup(m, [a, b]);
    expect(both.scan).toEqual({ mode: 'full', reason: `the last backup did not include ${b}` });
    expect(both.stats.newBlobs).toBeGreaterThan(0);
    // Another run of the watcher, even with the same pid, did not see what happened before it.
    await session({ run: 'r2' });
    expect((await backup(m, [a, b])).scan.reason).toBe('the change journal started after the last backup');
    // The same run id, but the pid now belongs to another process: not the watcher.
    await session({ run: 'r2', proc: 'another-boot/1' });
    expect((await backup(m, [a, b])).scan.reason).toBe('the change journal stopped (azbk watch is not running)');
  }, 60_000);

  // AZBK_HOME under a watched folder (the default ~/.config/azbk under a watched home folder): the
  // journal written there was itself a change to record, for ever, and the watcher never got ready
  // nor heeded SIGTERM.
  // Below a link, the watched folder names AZBK_HOME by another path than its own or its real one.
  it.each([
    ['by its own path', false],
    ['below a link', true],
  ])('leaves AZBK_HOME out of a watched folder that holds it, %s', async (_, linked) => {
    const base = await makeTempDir('azbk-watch-');
    const real = path.join(base, 'real');
    await fs.mkdir(real);
    const data = path.join(real, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'a.txt'), 'a\n');
    const m = await setupMachine(data, { vault: await createVault(base) });
    expect(m.home.startsWith(data + path.sep)).toBe(true);
    // The watched folder itself is a real one; a folder above it is reached through the link.
    if (linked) await fs.symlink(real, path.join(base, 'link'));
    const root = linked ? path.join(base, 'link', 'data') : data;
    /** a path under `data` as the backup names it (through the link) */
    const named = (p: string) => path.join(root, path.relative(data, p));
    expectExit(await m.run(['policy', 'set', '--include', root]), 0);

    const w = startWatch(m);
    await w.ready;
    await fs.writeFile(path.join(data, 'a.txt'), 'changed\n');
    expectExit(await m.run(['status']), 0); // writes in AZBK_HOME while watched
    await sleep(500);
    const changes = path.join(m.home, 'journal', 'changes.log');
    const size = (await fs.stat(changes)).size;
    await sleep(500);
    expect((await fs.stat(changes)).size, 'the journal stays still while nothing changes').toBe(size);
    const lines = (await fs.readFile(changes, 'utf8')).split('\n').filter((l) => l !== '');
    expect(lines).toContain(JSON.stringify(named(path.join(data, 'a.txt'))));
    expect(lines.filter((l) => l.includes(m.home) || l.includes(named(m.home)))).toEqual([]);

    // Backups leave AZBK_HOME out as well, by whichever path they reach it, optimized ones too.
    await backup(m, [root]);
    const marker = path.join(m.home, 'marker.txt');
    await fs.writeFile(marker, 'home changed\n');
    await fs.writeFile(path.join(data, 'b.txt'), 'b\n');
    await sleep(500);
    const optimized = await backup(m, [root]);
    expect(optimized.scan.mode, optimized.scan.reason).toBe('optimized');
    expect(optimized.status).toBe('ok');
    const ls = await m.run(['ls', '--point', optimized.point.id, '-r', root]);
    expectExit(ls, 0);
    expect(ls.stdout).toContain('b.txt');
    expect(ls.stdout).not.toContain(path.basename(m.home));
    w.stop();
    expect(await w.done).toBe(0);
  }, 60_000);

  it('leaves the embedded vault out of a watched folder that holds it: a backup that stores data there keeps the next one optimized', async () => {
    const base = await makeTempDir('azbk-watch-');
    const data = path.join(base, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'a.txt'), 'a\n');
    // The vault is in the watched folder, AZBK_HOME is not.
    const m = await setupMachine(base, { vault: await createVault(data) });
    expect(m.vault.dir.startsWith(data + path.sep)).toBe(true);
    expectExit(await m.run(['policy', 'set', '--include', data]), 0);
    const w = startWatch(m);
    await w.ready;
    await backup(m, [data]);
    await fs.writeFile(path.join(data, 'b.bin'), Buffer.alloc(200_000, 7)); // new data: new packs in the vault
    await sleep(500);
    const first = await backup(m, [data]);
    expect(first.scan.mode, first.scan.reason).toBe('optimized');
    await fs.writeFile(path.join(data, 'c.txt'), 'c\n');
    await sleep(500);
    const next = await backup(m, [data]);
    expect(next.scan.mode, next.scan.reason).toBe('optimized');
    expect(next.scan.reason).toContain('1 path(s) changed');
    const lines = (await fs.readFile(path.join(m.home, 'journal', 'changes.log'), 'utf8')).split('\n');
    expect(lines.filter((l) => l.includes(m.vault.dir))).toEqual([]);
    w.stop();
    expect(await w.done).toBe(0);
  }, 60_000);

  // A bind mount shows AZBK_HOME by another path: watched, the journal's own writes were changes
  // to record, without end.
  it.skipIf(process.platform !== 'linux' || process.getuid?.() !== 0)('leaves AZBK_HOME out where a bind mount shows it in the watched folder', async (ctx) => {
    const base = await makeTempDir('azbk-watch-');
    const data = path.join(base, 'data');
    await fs.mkdir(path.join(data, 'mnt'), { recursive: true });
    await fs.writeFile(path.join(data, 'a.txt'), 'a\n');
    const m = await setupMachine(base, { vault: await createVault(base) });
    if (spawnSync('mount', ['--bind', m.home, path.join(data, 'mnt')]).status !== 0) return ctx.skip();
    ctx.onTestFinished(() => void spawnSync('umount', [path.join(data, 'mnt')]));
    expectExit(await m.run(['policy', 'set', '--include', data]), 0);
    const w = startWatch(m);
    await w.ready;
    await backup(m, [data]);
    await fs.writeFile(path.join(data, 'b.txt'), 'b\n');
    await sleep(500);
    const next = await backup(m, [data]);
    expect(next.scan.mode, next.scan.reason).toBe('optimized');
    const changes = path.join(m.home, 'journal', 'changes.log');
    const lines = (await fs.readFile(changes, 'utf8')).split('\n').filter((l) => l !== '');
    expect(lines.filter((l) => l.includes(path.join(data, 'mnt', '')))).toEqual([]);
    expect(lines).toContain(JSON.stringify(path.join(data, 'b.txt')));
    const ls = await m.run(['ls', '--point', 'latest', '-r', data]);
    expect(ls.stdout).toContain('b.txt');
    expect(ls.stdout).not.toContain(path.join(data, 'mnt'));
    w.stop();
    expect(await w.done).toBe(0);
  }, 60_000);

  it('stops with exit 2 when a watched folder is removed, and backups then scan everything', async () => {
    const root = await makeTempDir('azbk-watch-');
    const kept = path.join(root, 'kept');
    const gone = path.join(root, 'gone');
    for (const d of [kept, gone]) {
      await fs.mkdir(d, { recursive: true });
      await fs.writeFile(path.join(d, 'f.txt'), 'x\n');
    }
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', kept, gone]), 0);
    const w = startWatch(m);
    await w.ready;
    await fs.rm(gone, { recursive: true });
    expect(await Promise.race([w.done, sleep(20_000).then(() => 'still running')])).toBe(2);
    expect(w.output()).toContain(`${gone} was removed or replaced`);
    const after = await backup(m, [kept]);
    expect(after.scan.mode).toBe('full');
  }, 60_000);

  it('status says when the running watcher reported an error', async () => {
    const { m } = await watchedKeep();
    const w = startWatch(m);
    await w.ready;
    try {
      const session = path.join(m.home, 'journal', 'session.json');
      // As the watcher writes it when a folder could not be watched (the system's limit reached).
      await whileHeld(w.pid, async () => {
        const s = JSON.parse(await fs.readFile(session, 'utf8'));
        await fs.writeFile(session, JSON.stringify({ ...s, broken: 'ENOSPC: System limit for number of file watchers reached' }));
        const status = await m.run(['status']);
        expectExit(status, 0);
        expect(status.stdout).toContain(`Change journal: azbk watch (pid ${w.pid}) reported an error, so backups scan everything until it is started again: ENOSPC`);
        const json = parseJson<{ watcher: unknown }>(await m.run(['status', '--json']));
        expect(json.watcher).toEqual({ pid: w.pid, broken: expect.stringMatching(/^ENOSPC/) });
      });
    } finally {
      w.stop();
      await w.done;
    }
  }, 60_000);

  it('does not trust its journal once a folder above a watched one is renamed and another put in its place', async () => {
    const root = await makeTempDir('azbk-watch-');
    const site = path.join(root, 'site');
    const uploads = path.join(site, 'uploads');
    await fs.mkdir(path.join(uploads, 'sub'), { recursive: true });
    await fs.writeFile(path.join(uploads, 'sub', 'f'), 'v1\n');
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', uploads]), 0);
    const w = startWatch(m);
    await w.ready;
    expect((await backup(m, [uploads])).scan.mode).toBe('full');
    // The watches follow the old folder; the new one at the same path has none. The watcher is
    // held still meanwhile, so that the backup finds it out by itself.
    const r = await whileHeld(w.pid, async () => {
      await fs.rename(site, path.join(root, 'site.old'));
      await fs.mkdir(path.join(uploads, 'sub'), { recursive: true });
      await fs.writeFile(path.join(uploads, 'sub', 'f'), 'v2\n');
      return backup(m, [uploads]);
    });
    expect(r.scan.mode).toBe('full');
    expect(r.scan.reason).toContain(`${uploads}, which the change journal watches, was moved or replaced`);
    // The watcher sees it within seconds, and stops saying why.
    expect(await Promise.race([w.done, sleep(20_000).then(() => 'still running')])).toBe(2);
    expect(w.output()).toContain(`${uploads} was removed or replaced`);
    const target = path.join(root, 'out');
    expectExit(await m.run(['restore', '--point', r.point.id, '--target', target]), 0);
    expect(await fs.readFile(path.join(target, uploads, 'sub', 'f'), 'utf8')).toBe('v2\n');
  }, 60_000);

  const queueLimit = (() => {
    try {
      return Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
    } catch {
      return NaN;
    }
  })();
  // A backup while it is held asks it to catch up: that request's events are in the queue too.
  it.runIf(queueLimit > 0 && queueLimit <= 65_536).each([
    ['', false],
    [', a backup having asked it to catch up meanwhile', true],
  ])('sets up its watches anew when the kernel dropped events (more than its queue holds at once)%s', async (_, asked) => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'bulk'), { recursive: true });
    await fs.mkdir(path.join(src, 'keep'));
    await fs.writeFile(path.join(src, 'keep', 'c.txt'), 'before\n');
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    const w = startWatch(m);
    await w.ready;
    await backup(m, [src]);
    // Held still, the watcher reads nothing: each new file is two events (made, written), more
    // than the kernel queues, so the last change, the one that matters here, is dropped.
    await whileHeld(w.pid, async () => {
      if (asked) expect((await backup(m, [src])).scan.mode).toBe('full');
      const files = Math.ceil(queueLimit / 2) + 1000;
      for (let i = 0; i < files; i += 500) await Promise.all(Array.from({ length: Math.min(500, files - i) }, (_, j) => fs.writeFile(path.join(src, 'bulk', `f${i + j}`), 'x')));
      await fs.appendFile(path.join(src, 'keep', 'c.txt'), 'after\n');
    });
    await sleep(3000);
    const r = await backup(m, [src]);
    const target = path.join(root, 'out');
    expectExit(await m.run(['restore', '--point', r.point.id, '--target', target, '--path', path.join(src, 'keep')]), 0);
    expect(await fs.readFile(path.join(target, src, 'keep', 'c.txt'), 'utf8')).toBe('before\nafter\n');
  }, 120_000);

  it('watches every folder of a tree made in quick succession or copied in, so later changes in any of them are seen', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'x'), 'x\n');
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    await watching(m, async () => {
      await backup(m, [src]);
      // A folder's mode changed: the watches are set up anew (by a new chokidar watcher).
      await fs.mkdir(path.join(src, 'sub'));
      await sleep(1000);
      await fs.chmod(path.join(src, 'sub'), 0o700);
      await sleep(3000);
      await backup(m, [src]);
      // chokidar lists a new folder before it watches it: folders made in between got no watch.
      const made = spawnSync('sh', ['-c', 'for i in $(seq 50); do mkdir -p new/d$i/e/g/h && echo v1 > new/d$i/e/g/h/f; done; cp -r "$0" copy', path.join(REPO, 'src')], { cwd: src });
      expect(made.status).toBe(0);
      await sleep(3000);
      await backup(m, [src]);
      const files = (await fs.readdir(src, { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && e.parentPath !== src);
      for (const f of files) appendFileSync(path.join(f.parentPath, f.name), 'v2\n');
      await sleep(1500);
      const last = await backup(m, [src]);
      const target = path.join(root, 'out');
      expectExit(await m.run(['restore', '--point', last.point.id, '--target', target]), 0);
      const missed = [];
      for (const f of files) {
        const p = path.join(f.parentPath, f.name);
        if ((await fs.readFile(path.join(target, p), 'utf8')) !== (await fs.readFile(p, 'utf8'))) missed.push(path.relative(src, p));
      }
      expect(missed).toEqual([]);
    });
  }, 120_000);

  it('lets one of two watchers started at the same moment run; the other exits 11', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    const both = [startWatch(m), startWatch(m)];
    for (const w of both) w.ready.catch(() => undefined);
    const first = await Promise.race(both.map((w, i) => w.done.then((code) => ({ i, code }))));
    expect(first.code).toBe(11);
    expect(both[first.i]!.output()).toContain("already keeps this machine's change journal");
    expect(both[first.i]!.output()).toContain('hint: One watcher is enough');
    const other = both[1 - first.i]!;
    await other.ready;
    expect(JSON.parse(await fs.readFile(path.join(m.home, 'journal', 'session.json'), 'utf8')).pid).toBe(other.pid);
    other.stop();
    expect(await other.done).toBe(0);
    await expect(fs.stat(path.join(m.home, 'journal', 'session.json'))).rejects.toThrow();
    // The lock went with it: a watcher starts again.
    const again = startWatch(m);
    await again.ready;
    again.stop();
    expect(await again.done).toBe(0);
  }, 60_000);

  // Backed up at once, the cut is found by the backup's request to catch up, not by the check every 2 s.
  it.each([
    ['seconds later', 3000],
    ['at once', 0],
  ])('does not trust a journal cut in place, even once it has grown back past where the last backup read to (backed up %s)', async (_, wait) => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'fill'), { recursive: true });
    await fs.mkdir(path.join(src, 'keep'), { recursive: true });
    await fs.writeFile(path.join(src, 'keep', 'canary'), 'before\n');
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    const changes = path.join(m.home, 'journal', 'changes.log');
    await watching(m, async () => {
      for (let i = 0; i < 20; i++) await fs.writeFile(path.join(src, 'fill', `a${i}`), 'x');
      await sleep(500);
      await backup(m, [src]);
      const read = (await fs.stat(changes)).size;
      await fs.truncate(changes, 0);
      await fs.appendFile(path.join(src, 'keep', 'canary'), 'after\n');
      for (let i = 0; (await fs.stat(changes)).size <= read && i < 200; i++) await fs.writeFile(path.join(src, 'fill', `b${i}`), 'y');
      await sleep(wait);
      const r = await backup(m, [src]);
      expect(r.scan.mode).toBe('full');
      // The watcher saw it cut, and started a new run: not read past what the backup read to
      // (which could fall on the end of a line, as here it may not).
      expect(r.scan.reason).toBe('the change journal started after the last backup');
      const target = path.join(root, 'out');
      expectExit(await m.run(['restore', '--point', r.point.id, '--target', target, '--path', path.join(src, 'keep')]), 0);
      expect(await fs.readFile(path.join(target, src, 'keep', 'canary'), 'utf8')).toBe('before\nafter\n');
    });
  }, 60_000);

  it('drops the lines backups have read once they come to 1 MiB, and the backups after still see every change', async () => {
    const { root, src, m } = await watchedKeep();
    const changes = path.join(m.home, 'journal', 'changes.log');
    const base = () => (JSON.parse(readFileSync(path.join(m.home, 'journal', 'session.json'), 'utf8')) as { base?: number }).base ?? 0;
    await watching(m, async () => {
      await backup(m, [src]);
      // Weeks of changes in short: 1.2 MiB of lines, as the watcher writes them, then a real one.
      const line = `${JSON.stringify(path.join(src, 'keep', 'f'))}\n`;
      appendFileSync(changes, line.repeat(Math.ceil((1.2 * 1024 * 1024) / line.length)));
      await fs.writeFile(path.join(src, 'keep', 'f'), 'v2\n');
      const second = await backup(m, [src]);
      expect(second.scan.mode).toBe('optimized');
      const long = (await fs.stat(changes)).size;
      expect(long).toBeGreaterThan(1024 * 1024);
      expect(base()).toBe(0); // what the first backup read is far less than 1 MiB: kept

      // The next backup lets the watcher drop what the second read, and reads on from there.
      await fs.writeFile(path.join(src, 'keep', 'f'), 'v3\n');
      const third = await backup(m, [src]);
      expect(third.scan.mode).toBe('optimized');
      expect(third.scan.reason).toContain('1 path(s) changed');
      expect(base()).toBeGreaterThan(1024 * 1024);
      expect((await fs.stat(changes)).size).toBeLessThan(long - 1024 * 1024);
      // An azbk of an earlier version knows nothing of `base`: the session's `log` must not name
      // the file, so that one finds the journal replaced and scans everything.
      const st = await fs.stat(changes);
      const session = JSON.parse(readFileSync(path.join(m.home, 'journal', 'session.json'), 'utf8')) as { log?: string; file?: string };
      expect(session.file).toBe(`${st.dev}:${st.ino}`);
      expect(session.log).not.toBe(session.file);

      await fs.writeFile(path.join(src, 'keep', 'f'), 'v4\n');
      const fourth = await backup(m, [src]);
      expect(fourth.scan.mode).toBe('optimized');
      for (const [point, want] of [[second.point.id, 'v2\n'], [third.point.id, 'v3\n'], [fourth.point.id, 'v4\n']] as const) {
        expect(await keptIn(m, root, src, point)).toBe(want);
      }
    });
  }, 60_000);

  it('asks the watcher to catch up before a backup reads its journal, and scans everything when it does not answer', async () => {
    const { root, src, m } = await watchedKeep();
    const w = startWatch(m);
    await w.ready;
    await backup(m, [src]);
    // A change made just before the backup is in its point: the backup waits for the watcher.
    await fs.writeFile(path.join(src, 'keep', 'f'), 'v2\n');
    const caught = await backup(m, [src]);
    expect(caught.scan.mode).toBe('optimized');
    // Held still, the watcher records nothing: the backup does not take its journal as complete.
    const r = await whileHeld(w.pid, async () => {
      await fs.writeFile(path.join(src, 'keep', 'f'), 'v3\n');
      return backup(m, [src]);
    });
    expect(r.scan).toEqual({ mode: 'full', reason: 'the change journal did not answer in time (azbk watch is stopped or far behind)' });
    // Its request folder gone, the watcher cannot be asked to catch up: no more trusted than one that does not answer.
    await fs.rm(path.join(m.home, 'journal', 'sync'), { recursive: true });
    const unasked = await whileHeld(w.pid, async () => {
      await fs.writeFile(path.join(src, 'keep', 'f'), 'v4\n');
      return backup(m, [src]);
    });
    expect(unasked.scan.mode).toBe('full');
    for (const [point, want] of [[caught.point.id, 'v2\n'], [r.point.id, 'v3\n'], [unasked.point.id, 'v4\n']] as const) {
      expect(await keptIn(m, root, src, point)).toBe(want);
    }
    w.stop();
    expect(await w.done).toBe(0);
  }, 60_000);

  it('does not trust its journal for an included path reached through a symbolic link, or one the exclusions leave out', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'releases', 'v1', 'data'), { recursive: true });
    await fs.writeFile(path.join(src, 'releases', 'v1', 'data', 'file'), 'old\n');
    await fs.symlink(path.join('releases', 'v1'), path.join(src, 'current'));
    await fs.mkdir(path.join(src, 'cache', 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'cache', 'sub', 'file'), 'old\n');
    const m = await setupMachine(root);
    // The watcher watches src and leaves out `cache`, as these backups do.
    expectExit(await m.run(['policy', 'set', '--include', src, '--exclude', 'cache']), 0);
    const run = async (include: string) => parseJson(await m.run(['backup', '--now', '--json', '--include', include]));
    await watching(m, async () => {
      // The watcher records a change in the link's target under releases/, not under current/;
      // and it never watched cache/, which a backup still takes when told to include it.
      const cases = [
        { include: path.join(src, 'current', 'data'), changed: path.join(src, 'releases', 'v1', 'data', 'file'), below: 'file', why: /current\/data is reached through a symbolic link \(.*\/current\), which the change journal does not follow/ },
        { include: path.join(src, 'cache'), changed: path.join(src, 'cache', 'sub', 'file'), below: path.join('sub', 'file'), why: /the change journal does not watch .*cache, which the exclusions leave out/ },
      ];
      for (const { include, changed, below, why } of cases) {
        await run(include);
        await fs.writeFile(changed, `new for ${include}\n`);
        await sleep(500);
        const r = await run(include);
        expect(r.scan.mode).toBe('full');
        expect(r.scan.reason).toMatch(why);
        const target = path.join(root, `out-${r.point.id}`);
        expectExit(await m.run(['restore', '--point', r.point.id, '--target', target]), 0);
        expect(await fs.readFile(path.join(target, include, below), 'utf8')).toBe(`new for ${include}\n`);
      }
      // An included path that is itself a link is stored as a link, and its changes are seen.
      const link = path.join(src, 'current');
      await run(link);
      await fs.rm(link);
      await fs.symlink(path.join('releases', 'v2'), link);
      await sleep(500);
      const relinked = await run(link);
      expect(relinked.scan.mode).toBe('optimized');
      const target = path.join(root, 'out-link');
      expectExit(await m.run(['restore', '--point', relinked.point.id, '--target', target]), 0);
      expect(await fs.readlink(path.join(target, link))).toBe(path.join('releases', 'v2'));
    });
  }, 60_000);

  it.runIf(process.platform === 'linux')('answers a backup only once it has looked whether the events it read overflowed the queue', async () => {
    const limit = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
    const { root, src, m } = await watchedKeep();
    for (let i = 0; i < 300; i++) await fs.mkdir(path.join(src, 'many', `d${i}`), { recursive: true });
    const w = startWatch(m);
    await w.ready;
    await backup(m, [src]);
    await backup(m, [src]);
    // Held still, the watcher gets more events than the kernel queues for it: the rest, the change
    // to keep/f among them, are dropped. It goes on just after the backup starts: it reads the
    // queue, and the backup's request, and must not answer before the session says it is setting
    // its watches up anew.
    process.kill(w.pid, 'SIGSTOP');
    let job: Promise<any>;
    try {
      for (let i = 0; i < limit + 5000; i++) appendFileSync(path.join(src, 'many', `d${i % 300}`, 'f'), 'x');
      await fs.writeFile(path.join(src, 'keep', 'f'), 'v2\n');
      job = backup(m, [src]);
      await sleep(110);
    } finally {
      process.kill(w.pid, 'SIGCONT');
    }
    const r = await job;
    expect(r.scan.mode).toBe('full');
    expect(await keptIn(m, root, src, r.point.id)).toBe('v2\n');
    w.stop();
    expect(await w.done).toBe(0);
  }, 90_000);

  it('refuses at once (exit 2) a folder to watch that is not there, and keeps no journal', async () => {
    const root = await makeTempDir('azbk-watch-');
    const kept = path.join(root, 'kept');
    await fs.mkdir(kept);
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', kept, path.join(root, 'typo')]), 0);
    await fs.writeFile(path.join(root, 'file'), 'x\n');
    const w = startWatch(m);
    w.ready.catch(() => undefined); // it never gets ready
    expect(await Promise.race([w.done, sleep(20_000).then(() => 'still running')])).toBe(2);
    expect(w.output()).toContain(`AZBK_PATH_NOT_FOUND: Nothing to watch at ${path.join(root, 'typo')}: it does not exist.`);
    // Nor beneath a file: not there either.
    const under = spawnSync(process.execPath, [BIN, 'watch', '--include', path.join(root, 'file', 'sub')], { cwd: REPO, env: { ...process.env, AZBK_HOME: m.home }, encoding: 'utf8', timeout: 20_000 });
    expect(under.status).toBe(2);
    expect(under.stderr).toContain(`Nothing to watch at ${path.join(root, 'file', 'sub')}: it does not exist.`);
    // The root folder, as backup refuses it.
    const whole = spawnSync(process.execPath, [BIN, 'watch', '--include', '/'], { cwd: REPO, env: { ...process.env, AZBK_HOME: m.home }, encoding: 'utf8', timeout: 20_000 });
    expect(whole.status).toBe(2);
    expect(whole.stderr).toContain('AZBK_BAD_INPUT: The root folder / cannot be backed up as a whole.');
    expect(w.output()).not.toContain('Watching');
    await expect(fs.stat(path.join(m.home, 'journal', 'session.json'))).rejects.toThrow();
  }, 60_000);

  it('leaves out what the exclusions match also when only what changed is examined, and scans everything when they change', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'a'), { recursive: true });
    await fs.writeFile(path.join(src, 'a', 'kept.txt'), 'kept\n');
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src, '--exclude', '*.tmp']), 0);
    const files = async (point: string) => (await m.run(['ls', '--point', point, '-r', src])).stdout.split('\n').filter((l) => l.startsWith('-')).map((l) => path.basename(l.split(/\s+/).at(-1)!));
    await watching(m, async () => {
      expectExit(await m.run(['backup', '--now']), 0);
      await fs.writeFile(path.join(src, 'a', 'scratch.tmp'), 'left out\n');
      await fs.writeFile(path.join(src, 'a', 'new.txt'), 'new\n');
      await sleep(500);
      const optimized = parseJson(await m.run(['backup', '--now', '--json']));
      expect(optimized.scan.mode).toBe('optimized');
      expect(await files(optimized.point.id)).toEqual(['kept.txt', 'new.txt']);

      // Other exclusions: the folders the journal saw no change in may hold what they now let in.
      expectExit(await m.run(['policy', 'set', '--exclude', 'new.txt']), 0);
      const changed = parseJson(await m.run(['backup', '--now', '--json']));
      expect(changed.scan).toEqual({ mode: 'full', reason: 'the exclusions changed since the last backup' });
      expect(await files(changed.point.id)).toEqual(['kept.txt', 'scratch.tmp']);
      // The watcher still leaves out *.tmp, which backups now keep: a change to scratch.tmp would
      // go unseen, so its journal is not trusted until it is started again.
      await fs.writeFile(path.join(src, 'a', 'scratch.tmp'), 'left out, changed\n');
      await sleep(500);
      const after = parseJson(await m.run(['backup', '--now', '--json']));
      expect(after.scan).toEqual({ mode: 'full', reason: 'the change journal leaves out other paths than this backup (azbk watch was started with other exclusions: restart it)' });
      const target = path.join(root, 'out');
      expectExit(await m.run(['restore', '--point', after.point.id, '--target', target]), 0);
      expect(await fs.readFile(path.join(target, src, 'a', 'scratch.tmp'), 'utf8')).toBe('left out, changed\n');
    });
    // Started again, with the policy's exclusions now: trusted again.
    await watching(m, async () => {
      expectExit(await m.run(['backup', '--now']), 0);
      await fs.writeFile(path.join(src, 'a', 'scratch.tmp'), 'seen\n');
      await sleep(500);
      const seen = parseJson(await m.run(['backup', '--now', '--json']));
      expect(seen.scan.mode).toBe('optimized');
      expect(seen.scan.reason).toMatch(/; 1 path\(s\) changed/);
    });
  }, 60_000);

  it.runIf(process.platform === 'linux')('neither watches nor records what the exclusions leave out', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'keep'), { recursive: true });
    await fs.writeFile(path.join(src, 'keep', 'f'), 'v1\n');
    for (let d = 0; d < 30; d++) await fs.mkdir(path.join(src, 'node_modules', `pkg${d}`, 'lib'), { recursive: true });
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src, '--exclude', 'node_modules', '*.tmp']), 0);
    expectExit(await m.run(['backup', '--now']), 0);
    /** the inotify watches process `pid` holds (one line per watch in its inotify descriptors' fdinfo) */
    const inotifyWatches = async (pid: number) => {
      let n = 0;
      for (const fd of await fs.readdir(`/proc/${pid}/fdinfo`)) {
        const info = await fs.readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '');
        n += info.split('\n').filter((l) => l.startsWith('inotify wd:')).length;
      }
      return n;
    };
    const w = startWatch(m);
    await w.ready;
    try {
      // src and src/keep, and chokidar's watch of src's parent; none of node_modules' 61 folders
      const watches = await inotifyWatches(w.pid);
      expect(watches).toBeLessThanOrEqual(3);
      expectExit(await m.run(['backup', '--now']), 0);
      await fs.writeFile(path.join(src, 'node_modules', 'pkg3', 'lib', 'x.js'), 'x\n');
      await fs.writeFile(path.join(src, 'keep', 'scratch.tmp'), 'scratch\n');
      await fs.mkdir(path.join(src, 'keep', 'node_modules'));
      await fs.writeFile(path.join(src, 'keep', 'f'), 'v2\n');
      await sleep(500);
      const optimized = parseJson(await m.run(['backup', '--now', '--json']));
      expect(optimized.scan.mode).toBe('optimized');
      const log = await fs.readFile(path.join(m.home, 'journal', 'changes.log'), 'utf8');
      expect(log).toContain(JSON.stringify(path.join(src, 'keep', 'f')));
      expect(log).not.toMatch(/node_modules|scratch\.tmp/);
      expect(await inotifyWatches(w.pid), 'keep/node_modules, made since, is not watched either').toBe(watches);
      expect(await keptIn(m, root, src, optimized.point.id)).toBe('v2\n');
    } finally {
      w.stop();
      await w.done;
    }
  }, 60_000);

  it('prints its events as JSON Lines with --json, an error as one line too', async () => {
    const root = await makeTempDir('azbk-watch-');
    const kept = path.join(root, 'kept');
    await fs.mkdir(kept);
    const m = await setupMachine(root);
    const lines = (text: string) => text.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
    const w = startWatch(m, ['--json', '--include', kept], '"ready"');
    await w.ready;
    expect(lines(w.stdout())).toEqual([{ event: 'ready', paths: [kept] }]);
    w.stop();
    expect(await w.done).toBe(0);
    expect(lines(w.stdout())).toEqual([{ event: 'ready', paths: [kept] }, { event: 'stopped' }]);

    const missing = spawnSync(process.execPath, [BIN, 'watch', '--json', '--include', path.join(root, 'typo')], { cwd: REPO, env: { ...process.env, AZBK_HOME: m.home }, encoding: 'utf8', timeout: 20_000 });
    expect(missing.status).toBe(2);
    expect(lines(missing.stdout)).toEqual([{ error: expect.objectContaining({ code: 'AZBK_PATH_NOT_FOUND', exitCode: 2 }) }]);
  }, 60_000);

  it.skipIf(process.platform === 'win32')('re-examines folders with skipped entries, and sees writes through another hard link', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'a', 'pipes'), { recursive: true });
    await fs.mkdir(path.join(src, 'b'), { recursive: true });
    await fs.writeFile(path.join(src, 'a', 'pipes', 'x.txt'), 'x\n');
    expect(spawnSync('mkfifo', [path.join(src, 'a', 'pipes', 'fifo')]).status).toBe(0);
    await fs.writeFile(path.join(src, 'b', 'linked.txt'), 'version 1\n');
    const outside = path.join(root, 'outside-link.txt');
    await fs.link(path.join(src, 'b', 'linked.txt'), outside);
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    await backup(m, [src], 0);
    const w = startWatch(m);
    await w.ready;
    try {
      await backup(m, [src]);
      await fs.writeFile(outside, 'version 2\n');
      await sleep(500);
      const third = await backup(m, [src]);
      expect(third.scan.mode).toBe('optimized');
      expect(third.warnings.map((x: { path: string }) => path.basename(x.path)), 'the special file is reported again').toEqual(['fifo']);
      const target = path.join(root, 'restored');
      expectExit(await m.run(['restore', '--point', third.point.id, '--target', target, '--path', path.join(src, 'b')]), 0);
      expect(await fs.readFile(path.join(target, src, 'b', 'linked.txt'), 'utf8')).toBe('version 2\n');
    } finally {
      w.stop();
      await w.done;
    }
  }, 120_000);
  it.skipIf(process.platform === 'win32')('sees a write through a hard link made after its watches were set up, and keeps the names linked', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'x'), { recursive: true });
    await fs.mkdir(path.join(src, 'y'), { recursive: true });
    await fs.writeFile(path.join(src, 'x', 'a.txt'), 'original\n');
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    await watching(m, async () => {
      await backup(m, [src]);
      await fs.link(path.join(src, 'x', 'a.txt'), path.join(src, 'y', 'b.txt'));
      await sleep(1500); // the watches are set up anew once things are quiet
      const linked = await backup(m, [src]);
      expect(linked.scan.reason).toMatch(/hard link/);
      // Written through the new name: the old one, in a folder where nothing else happened, changed too.
      await fs.writeFile(path.join(src, 'y', 'b.txt'), 'changed through b\n');
      await sleep(500);
      const third = await backup(m, [src]);
      expect(third.scan.mode).toBe('optimized');
      const target = path.join(root, 'restored');
      expectExit(await m.run(['restore', '--point', third.point.id, '--target', target]), 0);
      for (const name of [['x', 'a.txt'], ['y', 'b.txt']]) expect(await fs.readFile(path.join(target, src, ...name), 'utf8')).toBe('changed through b\n');
      const [a, b] = await Promise.all([fs.stat(path.join(target, src, 'x', 'a.txt')), fs.stat(path.join(target, src, 'y', 'b.txt'))]);
      expect(a.ino, 'restored as one file with two names').toBe(b.ino);
    });
  }, 120_000);

  it('scans everything when its journal file was removed, makes a new one, and trusts that from the next backup on', async () => {
    const root = await makeTempDir('azbk-watch-');
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'f.txt'), 'v1\n');
    const m = await setupMachine(root);
    expectExit(await m.run(['policy', 'set', '--include', src]), 0);
    await watching(m, async () => {
      await backup(m, [src]);
      const journal = path.join(m.home, 'journal', 'changes.log');
      await fs.rm(journal);
      await fs.writeFile(path.join(src, 'f.txt'), 'v2\n');
      const missing = await backup(m, [src]);
      expect(missing.scan, missing.scan.reason).toMatchObject({ mode: 'full', reason: expect.stringMatching(/missing|started after/) });
      // Another file in its place is not the watcher's journal either.
      await fs.rm(journal, { force: true });
      await fs.writeFile(journal, '');
      const replaced = await backup(m, [src]);
      expect(replaced.scan.mode).toBe('full');
      // The watcher makes a new journal, as a new run: one backup scans, the next trusts it.
      for (let i = 0; i < 100; i++) {
        await sleep(100);
        if ((await backup(m, [src])).scan.reason.includes('started after')) break;
      }
      await fs.writeFile(path.join(src, 'f.txt'), 'v3\n');
      await sleep(500);
      const trusted = await backup(m, [src]);
      expect(trusted.scan.mode).toBe('optimized');
      const target = path.join(root, 'restored');
      expectExit(await m.run(['restore', '--point', trusted.point.id, '--target', target]), 0);
      expect(await fs.readFile(path.join(target, src, 'f.txt'), 'utf8')).toBe('v3\n');
    });
  }, 120_000);
});
