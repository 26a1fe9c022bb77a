/**
 * What status believes of a running job (agent/running.ts): only a lock a live process holds is a
 * job running, and only that process's own, well-formed progress file is its progress.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { progressFile, runningJob } from '../../src/agent/running.js';
import { homePaths } from '../../src/shared/paths.js';
import { createMachine } from '../helpers/machine.js';
import { makeTempDir } from '../helpers/tmp.js';

const BACKUP = { kind: 'backup', files: 3, bytes: 300, readBytes: 200, newBytes: 100, uploadedBytes: 50 } as const;

describe('running job', () => {
  it('is named as the backup job its point and history name', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a.txt'), 'running\n');
    let locked: unknown;
    const r = await runBackup(m.ctx, {
      include: [src],
      onEvent: (e) => {
        if (e.type === 'start') locked = (JSON.parse(readFileSync(m.ctx.paths.lock, 'utf8')) as { jobId: unknown }).jobId;
      },
    });
    expect(locked).toBe(r.jobId);
  });

  it('is the live holder of the job lock, with its own progress file only', async () => {
    const paths = homePaths(await makeTempDir('azbk-running-'));
    expect(await runningJob(paths)).toBeNull();

    // A lock left by a process that is gone: no job runs.
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => gone.on('close', resolve));
    await fs.writeFile(paths.lock, JSON.stringify({ pid: gone.pid, jobId: 'j1', kind: 'backup', started: new Date().toISOString() }));
    await fs.writeFile(paths.progress, JSON.stringify({ pid: gone.pid, at: Date.now(), progress: BACKUP }));
    expect(await runningJob(paths)).toBeNull();

    // This process holds it: it runs; the progress file of the one that is gone is not its own.
    const started = new Date().toISOString();
    await fs.writeFile(paths.lock, JSON.stringify({ pid: process.pid, jobId: 'j2', kind: 'backup', started }));
    expect(await runningJob(paths)).toEqual({ pid: process.pid, jobId: 'j2', kind: 'backup', started, progress: null });

    const file = progressFile(paths);
    let files = 3;
    file.follow(() => ({ ...BACKUP, files }));
    for (let i = 0; i < 100 && !existsSync(paths.progress); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50)); // the first write ends
    expect(statSync(paths.progress).mode & 0o777).toBe(0o600);
    const job = await runningJob(paths);
    expect(job?.progress?.record).toEqual(BACKUP);
    expect(Math.abs(Date.now() - job!.progress!.at)).toBeLessThan(5000);
    files = 4;

    // A restore that plans says how many listings it has read.
    await fs.writeFile(paths.progress, JSON.stringify({ pid: process.pid, at: Date.now(), progress: { kind: 'planning', listings: 12 } }));
    expect((await runningJob(paths))?.progress?.record).toEqual({ kind: 'planning', listings: 12 });

    // A restore's record from an earlier version, without `planning`: one that planned everything first.
    const older = { kind: 'restore', files: 3, bytes: 30, totalFiles: 9, totalBytes: 90, since: Date.now() };
    await fs.writeFile(paths.progress, JSON.stringify({ pid: process.pid, at: Date.now(), progress: older }));
    expect((await runningJob(paths))?.progress?.record).toEqual({ ...older, planning: 0 });

    // A damaged or edited file is no progress (and no error).
    for (const bad of ['{', JSON.stringify({ pid: process.pid, at: Date.now(), progress: { ...BACKUP, files: -1 } }), JSON.stringify({ pid: process.pid, at: Date.now(), progress: { kind: 'other' } }), JSON.stringify({ pid: process.pid, at: 'now', progress: BACKUP })]) {
      await fs.writeFile(paths.progress, bad);
      expect((await runningJob(paths))?.progress).toBeNull();
    }

    // stop removes its own file, and never another process's.
    await fs.writeFile(paths.progress, JSON.stringify({ pid: process.pid + 1, at: Date.now(), progress: BACKUP }));
    await file.stop();
    expect(existsSync(paths.progress)).toBe(true);
    const mine = progressFile(paths);
    mine.follow(() => BACKUP);
    await mine.stop();
    expect(existsSync(paths.progress)).toBe(false);
    await fs.rm(path.dirname(paths.lock), { recursive: true, force: true });
  });
});
