/**
 * backup --now --catch-up, which the hourly scheduled check runs: it backs up only when the last
 * scheduled run due did not end well (the machine was off or asleep then), and otherwise does
 * nothing, not even a line in the job history.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, parseJson, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('catching up a missed scheduled backup', () => {
  it('backs up once for the run missed, then finds nothing missed', async () => {
    const tmp = await makeTempDir('azbk-catch-up-');
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'f.txt'), 'backed up late\n');
    const m = await setupMachine(tmp);

    const none = await m.run(['backup', '--now', '--catch-up', '--json']);
    expectExit(none, 0);
    expect(parseJson(none)).toEqual({ status: 'nothing missed' }); // no schedule
    expect((await m.run(['backup', '--now', '--catch-up'])).stdout).toContain('No backups are scheduled');

    // Due two hours ago, every day, and no backup since. The schedule is written into policy.json
    // as policy set writes it, so that this test leaves the crontab to the schedule test.
    const now = new Date();
    const due = (now.getHours() * 60 + now.getMinutes() - 120 + 1440) % 1440;
    await fs.writeFile(path.join(m.home, 'policy.json'), JSON.stringify({ version: 1, include: [data], schedule: { times: [due], days: [0, 1, 2, 3, 4, 5, 6] } }), { mode: 0o600 });
    const caught = await m.run(['backup', '--now', '--catch-up']);
    expectExit(caught, 0);
    expect(caught.stdout).toMatch(/did not run: backing up now[^]*Recovery point \S+ created/);

    // It makes up the policy's backup, so other paths are refused, and nothing is backed up.
    const other = await m.run(['backup', '--now', '--catch-up', '--include', data]);
    expectExit(other, 2);
    expect(other.stderr).toContain('takes no --include');

    const again = await m.run(['backup', '--now', '--catch-up', '--json']);
    expectExit(again, 0);
    expect(parseJson(again)).toEqual({ status: 'nothing missed' });
    expect(parseJson(await m.run(['points', '--json'])).points).toHaveLength(1);
    const jobs = parseJson(await m.run(['jobs', '--json'])).jobs as { kind: string; status: string }[];
    expect(jobs).toEqual([expect.objectContaining({ kind: 'backup', status: 'ok', policyPaths: true })]);

    // A backup of other paths does not stand for the policy's; and runs due before a schedule was
    // set were never missed (policy set records when).
    expectExit(await m.run(['backup', '--now', '--include', path.join(data, 'f.txt')]), 0);
    const policy = JSON.parse(await fs.readFile(path.join(m.home, 'policy.json'), 'utf8'));
    await fs.writeFile(path.join(m.home, 'jobs.jsonl'), (await fs.readFile(path.join(m.home, 'jobs.jsonl'), 'utf8')).split('\n')[1] + '\n'); // the --include one only
    expectExit(await m.run(['backup', '--now', '--catch-up']), 0);
    expect(parseJson(await m.run(['points', '--json'])).points).toHaveLength(3);
    await fs.writeFile(path.join(m.home, 'jobs.jsonl'), '');
    await fs.writeFile(path.join(m.home, 'policy.json'), JSON.stringify({ ...policy, scheduleSet: new Date().toISOString() }), { mode: 0o600 });
    expect(parseJson(await m.run(['backup', '--now', '--catch-up', '--json']))).toEqual({ status: 'nothing missed' });
    expect(parseJson(await m.run(['points', '--json'])).points).toHaveLength(3);

    // A backup made while the clock was ahead (started in a month) covers no run due since.
    const ahead = new Date(Date.now() + 30 * 86_400_000).toISOString();
    await fs.writeFile(path.join(m.home, 'policy.json'), JSON.stringify(policy), { mode: 0o600 });
    await fs.writeFile(path.join(m.home, 'jobs.jsonl'), `${JSON.stringify({ kind: 'backup', status: 'ok', policyPaths: true, started: ahead, finished: ahead })}\n`);
    const afterAhead = await m.run(['backup', '--now', '--catch-up']);
    expectExit(afterAhead, 0);
    expect(afterAhead.stdout).toMatch(/did not run: backing up now/);
    expect(parseJson(await m.run(['points', '--json'])).points).toHaveLength(4);
  }, 60_000);
});
