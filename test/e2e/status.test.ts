/** azbk status: the machine at a glance, from its local state, through the CLI. */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, BIN, expectExit, expectNoStack, parseJson, runCli, setupMachine } from '../helpers/cli.js';
import { writeRandomFile } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('azbk status', () => {
  it.runIf(process.platform === 'linux')('works, and fails cleanly, when its log cannot be written (a full disk)', async () => {
    const tmp = await makeTempDir('azbk-status-');
    const m = await setupMachine(tmp);
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    await fs.rm(path.join(m.home, 'logs', 'azbk.log'), { force: true });
    await fs.symlink('/dev/full', path.join(m.home, 'logs', 'azbk.log'));
    const ok = await m.run(['status']);
    expectExit(ok, 0);
    expect(ok.stdout).toMatch(/Machine/);
    const failed = await m.run(['restore', '--point', '20200101T000000000Z-00000000', '--target', path.join(tmp, 'x')]);
    expectExit(failed, 2);
    expectNoStack(failed);
    expect(failed.stderr).toMatch(/20200101T000000000Z-00000000/);
  });

  it('says an AZBK_HOME is not registered, then what a registered machine has and last did', async () => {
    const tmp = await makeTempDir('azbk-status-');
    const fresh = await runCli(['status', '--json'], { home: path.join(tmp, 'nobody') });
    expectExit(fresh, 0);
    expect(parseJson(fresh)).toMatchObject({ registered: false });

    const m = await setupMachine(tmp);
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'a.txt'), 'status\n');
    expectExit(await m.run(['policy', 'set', '--include', data]), 0);
    const done = await backup(m, [data]);
    expectExit(await m.run(['restore', '--point', '20200101T000000000Z-00000000', '--target', path.join(tmp, 'x')]), 2);

    const r = await m.run(['status', '--json']);
    expectExit(r, 0);
    const s = parseJson(r);
    expect(s).toMatchObject({
      registered: true,
      machine: { name: 'A' },
      vault: { endpoint: expect.stringContaining(m.vault.dir) },
      secrets: { store: 'file', path: path.join(m.home, 'secrets.json') },
      policy: { include: [data] },
      watcher: null,
      lastJob: { kind: 'restore', status: 'failed', error: 'AZBK_POINT_NOT_FOUND' },
      lastBackup: { kind: 'backup', status: 'ok', point: done.point.id },
    });
    const text = (await m.run(['status'])).stdout;
    expect(text).toMatch(/^Machine A \(/m);
    expect(text).toMatch(new RegExp(`Last backup: backup ok at .*point ${done.point.id}`));
    // Secrets are named by path, never shown.
    const secrets = JSON.parse(await fs.readFile(path.join(m.home, 'secrets.json'), 'utf8')) as Record<string, string>;
    for (const v of Object.values(secrets)) if (typeof v === 'string' && v.length > 16) expect(r.stdout + text).not.toContain(v);
  }, 60_000);

  // Status said all was well ('readable by its owner only, so jobs need no passphrase') of a secrets
  // file every job refused, and ended with exit 2 at a damaged policy or registration.
  it('reports each local file a job would fail on, shows the rest, and exits 1', async () => {
    const tmp = await makeTempDir('azbk-status-');
    const m = await setupMachine(tmp);
    expectExit(await m.run(['policy', 'set', '--include', tmp]), 0);
    const secrets = path.join(m.home, 'secrets.json');
    const policy = path.join(m.home, 'policy.json');

    await fs.chmod(secrets, 0o644);
    let r = await m.run(['status']);
    expectExit(r, 1);
    expect(r.stdout).toContain(`Secrets: ${secrets} is not private`);
    expect(r.stdout).not.toContain('so jobs need no passphrase');
    expect(r.stdout).toContain(`Include: ${tmp}`);
    expect(r.stderr).toContain('1 problem(s) found');
    await fs.chmod(secrets, 0o600);

    const kept = await fs.readFile(policy);
    await fs.writeFile(secrets, '');
    await fs.writeFile(policy, '');
    r = await m.run(['status', '--json']);
    expectExit(r, 1);
    const s = parseJson(r);
    expect(s).toMatchObject({ registered: true, machine: { name: 'A' }, policy: null });
    expect(s.problems.map((p: { where: string; code: string }) => `${p.where} ${p.code}`)).toEqual(['Policy AZBK_BAD_INPUT', 'Secrets AZBK_NOT_REGISTERED']);
    await fs.writeFile(policy, kept);
    // Edited by hand to what policy set refuses (a relative path, the root): damaged as well.
    for (const include of [['relative/path'], ['/']]) {
      await fs.writeFile(policy, JSON.stringify({ ...JSON.parse(kept.toString('utf8')), include }));
      r = await m.run(['status', '--json']);
      expectExit(r, 1);
      expect(parseJson(r).problems.map((p: { where: string }) => p.where), include[0]).toContain('Policy');
    }
    await fs.writeFile(policy, kept);

    // A job history that cannot be read (a folder in its place) is one more problem; the rest shows.
    const jobs = path.join(m.home, 'jobs.jsonl');
    await fs.rm(jobs, { force: true }); // none yet: no job ran
    await fs.mkdir(jobs);
    r = await m.run(['status']);
    expectExit(r, 1);
    expectNoStack(r);
    expect(r.stdout).toContain(`Job history: The job history ${jobs} cannot be read`);
    expect(r.stdout).toContain(`Include: ${tmp}`);
    expect(r.stdout).toContain('Last job: not known');
    await fs.rmdir(jobs);

    await fs.writeFile(path.join(m.home, 'registration.json'), '');
    r = await m.run(['status']);
    expectExit(r, 1);
    expect(r.stdout).toMatch(/^Registration: The local registration in .+ is damaged\./);
  });
  it('names the job running now, and how far it got, from another process; nothing once it is over', async () => {
    const tmp = await makeTempDir('azbk-status-');
    const m = await setupMachine(tmp);
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    await writeRandomFile(path.join(data, 'big.bin'), 4 * 1024 * 1024);
    await fs.writeFile(path.join(data, 'small.txt'), 'small\n');
    // The upload limit stretches the backup over about eight seconds; nothing watches its output.
    const child = spawn(process.execPath, [BIN, 'backup', '--now', '--include', data, '--limit-upload', '512K', '--json'], { env: { ...process.env, AZBK_HOME: m.home }, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const progress = path.join(m.home, 'progress.json');
    for (let i = 0; i < 200 && !existsSync(progress); i++) await sleep(50);
    expect(statSync(progress).mode & 0o777).toBe(0o600);
    await sleep(1500);

    const r = await m.run(['status', '--json']);
    expectExit(r, 0);
    const running = parseJson(r).running;
    expect(running).toMatchObject({ kind: 'backup', pid: child.pid, progress: { kind: 'backup' } });
    expect(running.progress.files).toBeLessThanOrEqual(2);
    expect(running.progress.uploadedBytes).toBeLessThan(4 * 1024 * 1024);
    const text = (await m.run(['status'])).stdout;
    expect(text).toMatch(new RegExp(`^Running now: backup [0-9a-f]+ \\(process ${child.pid}\\), since `, 'm'));
    expect(text).toMatch(/^ {2}\d+:\d\d {2}\d files \([^)]*\) examined, .* uploaded \(\d+ s ago\)$/m);

    expect(await exited).toBe(0);
    expect(existsSync(progress)).toBe(false);
    const after = parseJson(await m.run(['status', '--json']));
    expect(after.running).toBeNull();
    expect(after.lastJob).toMatchObject({ kind: 'backup', status: 'ok' });
  }, 60_000);
});
