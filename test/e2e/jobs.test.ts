/** azbk jobs: the job history, read back through the CLI after real backups and restores. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, expectNoStack, parseJson, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('azbk jobs', () => {
  it('lists backups and restores with how they ended, oldest first (by start), and skips lines it cannot read', async () => {
    const tmp = await makeTempDir('azbk-jobs-');
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'a.txt'), 'job history\n');
    const m = await setupMachine(tmp);

    const none = await m.run(['jobs']);
    expectExit(none, 0);
    expect(none.stdout).toMatch(/No jobs recorded yet/);

    const ok = await m.run(['backup', '--now', '--include', data, '--json']);
    expectExit(ok, 0);
    const point = parseJson(ok).point.id as string;
    expectExit(await m.run(['backup', '--now', '--include', path.join(tmp, 'missing')]), 2);
    expectExit(await m.run(['restore', '--point', 'latest', '--target', path.join(tmp, 'out')]), 0);

    const all = parseJson(await m.run(['jobs', '--json']));
    expect(all.total).toBe(3);
    expect(all.jobs.map((j: { kind: string; status: string }) => `${j.kind} ${j.status}`)).toEqual(['backup ok', 'backup failed', 'restore ok']);
    expect(all.jobs[0]).toMatchObject({ point, stats: { files: 1 } });
    expect(all.jobs[1]).toMatchObject({ error: 'AZBK_PATH_NOT_FOUND' });
    const text = (await m.run(['jobs'])).stdout.trim().split('\n');
    expect(text).toHaveLength(3);
    expect(text[0]).toMatch(new RegExp(`backup\\s+ok\\s+\\d+\\.\\d s\\s+point ${point}; 1 file \\(12 B\\), 12 B read, [^;]+ uploaded`));
    expect(text[2]).toMatch(/restore\s+ok .*1 file, 12 B restored/);

    // A line cut short (a crash while it was written) is left out; the next job starts a line
    // of its own, and the rest are still listed.
    await fs.appendFile(path.join(m.home, 'jobs.jsonl'), '{"kind":"backup","sta');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', path.join(tmp, 'out2')]), 0);
    const damaged = await m.run(['jobs', '--last', '1']);
    expectExit(damaged, 0);
    expect(damaged.stdout).toMatch(/restore\s+ok/);
    expect(damaged.stdout).toMatch(/1 line\(s\) of .*jobs\.jsonl could not be read/);
    expect(parseJson(await m.run(['jobs', '--json']))).toMatchObject({ total: 4, unreadable: 1 });

    // A restore that fails is recorded too; a line too long to be a record, or one whose fields are
    // not what azbk writes (a point id or code with a control character), is left out.
    expectExit(await m.run(['restore', '--point', '20200101T000000000Z-00000000', '--target', path.join(tmp, 'none')]), 2);
    const now = new Date().toISOString();
    await fs.appendFile(
      path.join(m.home, 'jobs.jsonl'),
      `${'x'.repeat(200_000)}\n${JSON.stringify({ kind: 'backup', status: 'failed', started: now, finished: now, error: 'AZBK_\u001b[2J' })}\n`,
    );
    const after = parseJson(await m.run(['jobs', '--json', '--last', '1']));
    expect(after).toMatchObject({ total: 5, unreadable: 3 });
    expect(after.jobs[0]).toMatchObject({ kind: 'restore', status: 'failed', error: 'AZBK_POINT_NOT_FOUND' });

    // A backup recorded before the data read was counted: its files, their size and the upload.
    const old = { kind: 'backup', status: 'ok', started: now, finished: now, point: '20200101T000000000Z-0a0b0c0d', stats: { files: 3, bytes: 3072, uploadedBytes: 2048 } };
    await fs.appendFile(path.join(m.home, 'jobs.jsonl'), `${JSON.stringify(old)}\n`);
    const last = (await m.run(['jobs', '--last', '1'])).stdout.split('\n')[0];
    expect(last).toMatch(/backup\s+ok .*point 20200101T000000000Z-0a0b0c0d; 3 files \(3\.0 KiB\), 2\.0 KiB uploaded$/);

    // Listed by when each started, not by when each ended (the order of the file): a job that
    // started before the last one but ended after it comes first.
    const started = new Date(Date.parse(now) - 60_000).toISOString();
    const long = { kind: 'backup', status: 'cancelled', started, finished: new Date().toISOString(), error: 'AZBK_CANCELLED' };
    await fs.appendFile(path.join(m.home, 'jobs.jsonl'), `${JSON.stringify(long)}\n`);
    const two = parseJson(await m.run(['jobs', '--json', '--last', '2'])).jobs as { started: string; status: string }[];
    expect(two.map((j) => j.status)).toEqual(['cancelled', 'ok']);
    expect(two[0]!.started).toBe(started);

    const bad = await m.run(['jobs', '--last', 'all']);
    expectExit(bad, 2);
    expectNoStack(bad);
  }, 60_000);
});
