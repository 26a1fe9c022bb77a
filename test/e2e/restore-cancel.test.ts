/**
 * Ctrl-C during a restore with the built CLI: the files being written are finished, unfinished
 * ones are removed (no temporary file is left anywhere), the folders get their own modes, the
 * command exits 130, and the same restore run again restores the rest. A restore killed outright
 * leaves its temporary files, and the next restore removes them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, REPO, backup, expectExit, parseJson, setupMachine, tempDir } from '../helpers/cli.js';
import { expectSameTree, writeRandomFile } from '../helpers/fs-tree.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every entry under `dir`, relative, with its stat; one gone before it was looked at (a restore's temporary file renamed into place while it runs) is left out. */
async function entries(dir: string): Promise<{ rel: string; st: import('node:fs').Stats }[]> {
  const names = await fs.readdir(dir, { recursive: true });
  const found = await Promise.all(names.map(async (n) => ({ rel: String(n), st: await fs.lstat(path.join(dir, String(n))).catch(() => null) })));
  return found.filter((e): e is { rel: string; st: import('node:fs').Stats } => e.st !== null);
}

/** `azbk restore --point latest ARGS` as machine `home` in the background: its exit code, and what it said on stderr so far. */
function spawnRestore(home: string, args: readonly string[]): { child: ReturnType<typeof spawn>; done: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, 'restore', '--point', 'latest', ...args], { cwd: REPO, env: { ...process.env, AZBK_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, done, stderr: () => stderr };
}

describe('a restore stopped with Ctrl-C', () => {
  it('finishes the files being written, leaves nothing half-written, and the next run restores the rest', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    for (let d = 0; d < 12; d++) for (let f = 0; f < 3; f++) await writeRandomFile(path.join(src, `d${d}`, `f${f}.bin`), MiB);
    await writeRandomFile(path.join(src, 'ro', 'kept.bin'), MiB);
    await fs.chmod(path.join(src, 'ro'), 0o555);
    ctx.onTestFinished(() => fs.chmod(path.join(src, 'ro'), 0o755));
    const m = await setupMachine(root);
    await backup(m, [src]);

    // 37 MiB at 4 MiB/s: about nine seconds, stopped once the first files are in place.
    const target = path.join(root, 'out');
    const { child, done, stderr: said } = spawnRestore(m.home, ['--target', target, '--limit-download', '4M']);
    const restored = path.join(target, src);
    for (let i = 0; i < 400; i++) {
      const found = await entries(restored).catch(() => []);
      if (found.some((e) => e.st.isFile() && !path.basename(e.rel).startsWith('.azbk-restore-'))) break;
      await sleep(25);
    }
    child.kill('SIGINT');
    const code = await done;
    const stderr = said();
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/Restore stopped: \d+ file\(s\) and \d+ folder\(s\) were restored/);
    expect(stderr).toMatch(/--conflict skip/);
    expect(stderr).not.toMatch(/^\s+at /m);

    const after = await entries(restored);
    expect(after.filter((e) => path.basename(e.rel).startsWith('.azbk-restore-'))).toEqual([]);
    const files = after.filter((e) => e.st.isFile());
    expect(files.length).toBeGreaterThan(0);
    expect(files.length).toBeLessThan(37);
    for (const f of files) expect((await fs.readFile(path.join(restored, f.rel))).equals(await fs.readFile(path.join(src, f.rel))), f.rel).toBe(true);
    // Folders are not left owner-only: each has its own mode.
    for (const d of after.filter((e) => e.st.isDirectory())) expect(d.st.mode & 0o777, d.rel).toBe((await fs.stat(path.join(src, d.rel))).mode & 0o777);
    const jobs = (await fs.readFile(path.join(m.home, 'jobs.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { kind: string; status: string });
    expect(jobs.at(-1)).toMatchObject({ kind: 'restore', status: 'cancelled' });

    expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
    await expectSameTree(src, restored);
  }, 90_000);

  it('under a low --limit-download, stops on Ctrl-C at once rather than after the reads waiting for their turn', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    await writeRandomFile(path.join(src, 'big.bin'), 3 * MiB);
    const m = await setupMachine(root);
    await backup(m, [src]);

    // 3 MiB at 64 KiB/s: most of a minute of waiting for the bandwidth.
    const target = path.join(root, 'out');
    const { child, done, stderr: said } = spawnRestore(m.home, ['--target', target, '--limit-download', '64K']);
    // Stopped once it writes (its data phase has begun: the progress file says so).
    const progress = path.join(m.home, 'progress.json');
    for (let i = 0; i < 600; i++) {
      if ((await fs.readFile(progress, 'utf8').catch(() => '')).includes('"restore"')) break;
      await sleep(25);
    }
    const stoppedAt = Date.now();
    child.kill('SIGINT');
    const code = await done;
    const stderr = said();
    expect(code, stderr).toBe(130);
    expect(Date.now() - stoppedAt, stderr).toBeLessThan(20_000);
    expect(stderr).toMatch(/Restore stopped: 0 file\(s\)/);
    expect(stderr).not.toMatch(/^\s+at /m);
    const left = await entries(target).catch(() => []);
    expect(left.filter((e) => e.st.isFile())).toEqual([]);
    const jobs = (await fs.readFile(path.join(m.home, 'jobs.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { kind: string; status: string });
    expect(jobs.at(-1)).toMatchObject({ kind: 'restore', status: 'cancelled' });
  }, 90_000);

  it('with --conflict overwrite, says to go on with that rule, which then replaces every changed file', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    for (let d = 0; d < 8; d++) for (let f = 0; f < 3; f++) await writeRandomFile(path.join(src, `d${d}`, `f${f}.bin`), MiB);
    const m = await setupMachine(root);
    await backup(m, [src]);
    const target = path.join(root, 'out');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
    const restored = path.join(target, src);
    // Every restored file changed since: all of them are in the way of the next restore.
    for (const f of await fs.readdir(restored, { recursive: true })) {
      const p = path.join(restored, String(f));
      if ((await fs.lstat(p)).isFile()) await fs.writeFile(p, 'changed');
    }
    const { child, done, stderr: said } = spawnRestore(m.home, ['--target', target, '--conflict', 'overwrite', '--limit-download', '4M']);
    const replaced = async () => {
      let n = 0;
      for (const e of await entries(restored)) if (e.st.isFile() && e.st.size === MiB) n++;
      return n;
    };
    for (let i = 0; i < 400 && (await replaced()) === 0; i++) await sleep(25);
    child.kill('SIGINT');
    const code = await done;
    const stderr = said();
    expect(code, stderr).toBe(130);
    expect(await replaced()).toBeLessThan(24);
    expect(stderr).toContain('hint: Run the same restore again with --conflict overwrite to restore the rest');
    expect(stderr).not.toContain('--conflict skip');

    expectExit(await m.run(['restore', '--point', 'latest', '--target', target, '--conflict', 'overwrite']), 0);
    await expectSameTree(src, restored);
  }, 90_000);

  it('killed, leaves temporary files that the next restore removes, and only those', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    for (let f = 0; f < 4; f++) await writeRandomFile(path.join(src, 'big', `f${f}.bin`), 6 * MiB);
    await writeRandomFile(path.join(src, 'small.bin'), 1000);
    const m = await setupMachine(root);
    await backup(m, [src]);

    // 24 MiB at 2 MiB/s: a file is being written for seconds; killed once one is.
    const target = path.join(root, 'out');
    const child = spawn(process.execPath, [BIN, 'restore', '--point', 'latest', '--target', target, '--limit-download', '2M'], {
      cwd: REPO,
      env: { ...process.env, AZBK_HOME: m.home },
      stdio: 'ignore',
    });
    const done = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    const restored = path.join(target, src);
    const temps = async () => (await entries(restored).catch(() => [])).filter((e) => path.basename(e.rel).startsWith('.azbk-restore-'));
    for (let i = 0; i < 800 && (await temps()).length === 0; i++) await sleep(10);
    child.kill('SIGKILL');
    expect(await done).toBe('SIGKILL');
    const left = await temps();
    expect(left.length).toBeGreaterThan(0);
    // Folders are made owner-only and get their modes at the end, which the killed one never reached.
    const mode = async (p: string) => (await fs.stat(p)).mode & 0o777;
    expect(await mode(path.join(restored, 'big'))).toBe(0o700);
    // A file of the user's named like a temporary file of that restore, but not one: kept.
    const lookalike = path.join(restored, 'big', `${path.basename(left[0]!.rel)}-mine`);
    await fs.writeFile(lookalike, 'mine');

    const r = await m.run(['restore', '--point', 'latest', '--target', target, '--json']);
    expectExit(r, 0);
    expect(parseJson<{ leftoversRemoved: number }>(r).leftoversRemoved).toBe(left.length);
    expect((await temps()).map((e) => e.rel)).toEqual([path.relative(restored, lookalike)]);
    await fs.rm(lookalike);
    // The mark of each restore is gone with it.
    expect(await fs.readdir(path.join(m.home, 'restores'))).toEqual([]);
    // The same restore run again finished what the killed one made: its folders have their modes.
    for (const d of [src, path.join(src, 'big')]) expect(await mode(path.join(target, d)), d).toBe(await mode(d));

    // (Over the lookalike's removal, which changed its folder's time.)
    const again = await m.run(['restore', '--point', 'latest', '--target', target, '--conflict', 'overwrite']);
    expectExit(again, 0);
    expect(again.stdout).not.toMatch(/earlier restore/);
    await expectSameTree(src, restored);
  }, 90_000);

  it('killed twice, or followed by another restore, still leaves the folders it made their modes, and gives an existing read-only folder its mode back', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    for (let f = 0; f < 3; f++) await writeRandomFile(path.join(src, 'big', `f${f}.bin`), 6 * MiB);
    await writeRandomFile(path.join(src, 'ro', 'inside.bin'), 6 * MiB);
    await writeRandomFile(path.join(src, 'small.bin'), 1000);
    await fs.chmod(path.join(src, 'big'), 0o750);
    await fs.chmod(path.join(src, 'ro'), 0o555);
    ctx.onTestFinished(() => fs.chmod(path.join(src, 'ro'), 0o755));
    const m = await setupMachine(root);
    await backup(m, [src]);
    const mode = async (p: string) => (await fs.stat(p)).mode & 0o777;
    const folders = [src, path.join(src, 'big'), path.join(src, 'ro')];
    /** Starts a restore into `target` at 2 MiB/s and kills it once it writes a file. */
    const killWhileWriting = async (target: string) => {
      const child = spawn(process.execPath, [BIN, 'restore', '--point', 'latest', '--target', target, '--limit-download', '2M'], { cwd: REPO, env: { ...process.env, AZBK_HOME: m.home }, stdio: 'ignore' });
      const done = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
      const temps = async () => (await entries(path.join(target, src)).catch(() => [])).filter((e) => path.basename(e.rel).startsWith('.azbk-restore-'));
      for (let i = 0; i < 800 && (await temps()).length === 0; i++) await sleep(10);
      child.kill('SIGKILL');
      expect(await done).toBe('SIGKILL');
    };

    // Killed twice: the second one listed what the first had made, and the third gives them their modes.
    const twice = path.join(root, 'twice');
    await killWhileWriting(twice);
    await killWhileWriting(twice);
    expect(await mode(path.join(twice, src, 'big'))).toBe(0o700);
    expectExit(await m.run(['restore', '--point', 'latest', '--target', twice]), 0);
    for (const d of folders) expect(await mode(path.join(twice, d)), d).toBe(await mode(d));

    // Killed, then another restore (elsewhere), then the same one again.
    const other = path.join(root, 'other');
    await killWhileWriting(other);
    expectExit(await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'elsewhere'), '--path', path.join(src, 'small.bin')]), 0);
    expectExit(await m.run(['restore', '--point', 'latest', '--target', other]), 0);
    for (const d of folders) expect(await mode(path.join(other, d)), d).toBe(await mode(d));
    expect(await fs.readdir(path.join(m.home, 'restores'))).toEqual([]);

    // A restore into an existing read-only folder opens it to its owner while it writes there; killed
    // then, the next restore gives the folder its own mode back (it kept the opened one).
    const ro = path.join(twice, src, 'ro');
    await fs.rm(path.join(ro, 'inside.bin'));
    await killWhileWriting(twice);
    expect(await mode(ro)).toBe(0o755);
    expectExit(await m.run(['restore', '--point', 'latest', '--target', twice]), 0);
    expect(await mode(ro)).toBe(0o555);
    await expectSameTree(src, path.join(twice, src));
  }, 120_000);
});
