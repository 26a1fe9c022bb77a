/**
 * Interrupted backups through the CLI: killed with SIGKILL at random moments, cancelled with
 * SIGINT, and run twice at once. Each time the next backup continues from the last checkpoint
 * and the restored tree is byte-identical to the source.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, REPO, backup, expectExit, expectNoStack, parseJson, setupMachine, show, type Machine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

/** A tree of random (incompressible) files: a few large ones and many small ones. */
async function makeTree(dir: string, largeMiB: readonly number[], small: number): Promise<number> {
  await fs.mkdir(path.join(dir, 'small'), { recursive: true });
  let total = 0;
  for (const [i, mib] of largeMiB.entries()) {
    await fs.writeFile(path.join(dir, `large-${i}.bin`), randomBytes(mib * MiB));
    total += mib * MiB;
  }
  for (let i = 0; i < small; i++) {
    const data = randomBytes(1000 + i * 37);
    await fs.writeFile(path.join(dir, 'small', `s${i}.dat`), data);
    total += data.length;
  }
  return total;
}

/** Bytes of packs and index files in a vault folder. */
async function storedBytes(vaultDir: string): Promise<number> {
  let total = 0;
  for (const top of ['packs', 'index']) {
    const root = path.join(vaultDir, top);
    for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) {
      if (e.isFile()) total += (await fs.stat(path.join(e.parentPath, e.name))).size;
    }
  }
  return total;
}

/** Starts `azbk backup` as machine `m`; `stop(signal)` sends a signal; `done` resolves with the exit. */
function startBackup(m: Machine, args: readonly string[]) {
  const child = spawn(process.execPath, [BIN, 'backup', '--now', ...args], {
    cwd: REPO,
    env: { ...process.env, AZBK_HOME: m.home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { stop: (s: NodeJS.Signals) => child.kill(s), done, stderr: () => stderr };
}

/**
 * A backup of a tree of 128 MiB in files of 48, 48 and 32 MiB and 10 small ones, uploading at
 * `upload` per second, once its first checkpoint is in the vault (so that a test stopping it does
 * not race the job's start).
 */
async function backupUntilCheckpoint(prefix: string, upload: string, extra: readonly string[] = []) {
  const root = await makeTempDir(prefix);
  const src = path.join(root, 'src');
  const size = await makeTree(src, [48, 48, 32], 10);
  const m = await setupMachine(root);
  const job = startBackup(m, ['--include', src, '--checkpoint-bytes', '16M', '--limit-upload', upload, ...extra]);
  for (let i = 0; i < 200; i++) {
    const names = await fs.readdir(path.join(m.vault.dir, 'checkpoints'), { recursive: true }).catch(() => []);
    if (names.some((n) => /-000001$/.test(String(n)))) break;
    await sleep(25);
  }
  return { src, size, m, job };
}

async function expectSameTree(a: string, b: string): Promise<number> {
  const names = (await fs.readdir(a, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  for (const e of names) {
    const rel = path.relative(a, path.join(e.parentPath, e.name));
    const [x, y] = await Promise.all([fs.readFile(path.join(a, rel)), fs.readFile(path.join(b, rel))]);
    expect(x.equals(y), rel).toBe(true);
  }
  return names.length;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('checkpoints', () => {
  it('survives SIGKILL at random moments, many times, then restores byte-identically', async () => {
    const root = await makeTempDir('azbk-crash-');
    const src = path.join(root, 'src');
    const size = await makeTree(src, [40, 24, 24, 16, 16, 12, 8, 8, 4], 300);

    await fs.mkdir(path.join(root, 'clean'), { recursive: true });
    const clean = await setupMachine(path.join(root, 'clean'), { name: 'clean' });
    await backup(clean, [src]);
    const cleanBytes = await storedBytes(clean.vault.dir);

    await fs.mkdir(path.join(root, 'crash'), { recursive: true });
    const m = await setupMachine(path.join(root, 'crash'), { name: 'crash' });
    const interval = 8 * MiB;
    const deadline = Date.now() + 45_000;
    let kills = 0;
    for (let i = 0; i < 12 && Date.now() < deadline; i++) {
      // The upload limit stretches the job to several seconds, so the kills land at random
      // moments inside it however fast the machine is.
      const job = startBackup(m, ['--include', src, '--checkpoint-bytes', String(interval), '--limit-upload', '16M']);
      await sleep(300 + Math.floor(Math.random() * 2000));
      job.stop('SIGKILL');
      const r = await job.done;
      if (r.signal === 'SIGKILL') kills++;
      else {
        expect(r.code, r.stderr).toBe(0);
        break;
      }
    }
    expect(kills).toBeGreaterThan(2);
    const checkpoints = await fs.readdir(path.join(m.vault.dir, 'checkpoints')).catch(() => []);
    expect(checkpoints.length).toBeGreaterThan(0);

    const last = await backup(m, [src, '--checkpoint-bytes', String(interval)]);
    expect(last.stats.bytes).toBe(size);

    // Each kill can orphan at most the data read since the last checkpoint.
    const crashBytes = await storedBytes(m.vault.dir);
    expect(crashBytes, `clean ${cleanBytes}, after ${kills} kills ${crashBytes}`).toBeLessThanOrEqual(cleanBytes + kills * (interval + 2 * MiB) + 4 * MiB);

    const target = path.join(root, 'restored');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
    expect(await expectSameTree(src, path.join(target, src))).toBe(9 + 300);
  }, 180_000);

  // SIGHUP: the terminal the backup ran in closed.
  it.each(['SIGINT', 'SIGHUP'] as const)('saves a checkpoint on %s, exits 130, and the next run continues from it', async (signal) => {
    const { src, size, m, job } = await backupUntilCheckpoint('azbk-sigint-', '32M');
    job.stop(signal);
    const r = await job.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/checkpoint \d+ of job [0-9a-f]{32} saved/);
    expect(r.stderr).not.toMatch(/^\s+at /m);

    const next = await m.run(['backup', '--now', '--include', src, '--json']);
    expectExit(next, 0);
    const result = parseJson(next);
    expect(result.resumed, show(next)).not.toBeNull();
    expect(result.resumed.seq).toBeGreaterThanOrEqual(1);
    expect(result.stats.bytes).toBe(size);
    expect(result.stats.uploadedBytes).toBeLessThan(size - 8 * MiB);

    const jobs = (await fs.readFile(path.join(m.home, 'jobs.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(jobs.map((j) => j.status)).toEqual(['cancelled', 'ok']);
    expect(jobs[1].resumedFrom.jobId).toBe(result.jobId);
  }, 120_000);

  it('stops at once on a second SIGINT (130): gives up the lock and the progress file, records the job, and the next run continues', async () => {
    const { src, size, m, job } = await backupUntilCheckpoint('azbk-sigint2-', '16M', ['--json']);
    expect(await fs.stat(path.join(m.home, 'job.lock'))).toBeTruthy();
    job.stop('SIGINT');
    for (let i = 0; i < 400 && !job.stderr().includes('stopping'); i++) await sleep(5);
    job.stop('SIGINT');
    const r = await job.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    // With --json, the stop is the JSON error on stdout, as any other end without a result.
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.objectContaining({ code: 'AZBK_CANCELLED', message: 'Stopped at once.', exitCode: 130 }) });
    const left = await fs.readdir(m.home);
    expect(left).not.toContain('job.lock');
    expect(left).not.toContain('progress.json');
    const jobs = (await fs.readFile(path.join(m.home, 'jobs.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(jobs).toMatchObject([{ kind: 'backup', status: 'cancelled', error: 'AZBK_CANCELLED' }]);

    const next = await m.run(['backup', '--now', '--include', src, '--json']);
    expectExit(next, 0);
    expect(parseJson(next).resumed, show(next)).not.toBeNull();
    expect(parseJson(next).stats.bytes).toBe(size);
  }, 120_000);

  it('refuses a second job at once with exit 11, and a lock left by a killed job does not block', async () => {
    const root = await makeTempDir('azbk-lock-');
    const src = path.join(root, 'src');
    await makeTree(src, [64, 64], 0);
    const m = await setupMachine(root);

    const job = startBackup(m, ['--include', src, '--limit-upload', '16M']);
    for (let i = 0; i < 200; i++) {
      if (await fs.stat(path.join(m.home, 'job.lock')).catch(() => null)) break;
      await sleep(10);
    }
    const second = await m.run(['backup', '--now', '--include', src]);
    expectExit(second, 11);
    expectNoStack(second);
    expect(second.stderr).toMatch(/AZBK_JOB_RUNNING: Another backup job \([0-9a-f]{32}, process \d+\) is running/);
    job.stop('SIGKILL');
    await job.done;
    expect(await fs.stat(path.join(m.home, 'job.lock')).catch(() => null)).not.toBeNull();

    const third = await m.run(['backup', '--now', '--include', src, '--json']);
    expectExit(third, 0);
    expect(await fs.stat(path.join(m.home, 'job.lock')).catch(() => null)).toBeNull();
  }, 120_000);
});
