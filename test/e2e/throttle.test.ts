/**
 * Bandwidth limits through the CLI. Only lower bounds are asserted: a throttled transfer cannot
 * finish sooner than its size allows, however fast or loaded the machine is.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, parseJson, setupMachine, show } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

describe('bandwidth limits', () => {
  it('--limit-upload, --limit-download and the policy bandwidth slow transfers to their rate', async () => {
    const root = await makeTempDir('azbk-throttle-');
    const m = await setupMachine(root);
    const file = path.join(root, 'data.bin');
    await fs.writeFile(file, randomBytes(12 * MiB));

    const up = await m.run(['backup', '--now', '--include', file, '--limit-upload', '4M', '--json']);
    expectExit(up, 0);
    expect(parseJson(up).stats.uploadedBytes).toBeGreaterThan(12 * MiB);
    // 12 MiB at 4 MiB/s, with at most one second of credit: at least two seconds.
    expect(up.ms, show(up)).toBeGreaterThanOrEqual(2000);

    const target = path.join(root, 'out');
    const down = await m.run(['restore', '--point', 'latest', '--target', target, '--limit-download', '4M']);
    expectExit(down, 0);
    expect(down.ms, show(down)).toBeGreaterThanOrEqual(2000);
    expect((await fs.readFile(path.join(target, file))).equals(await fs.readFile(file))).toBe(true);

    // The policy's bandwidth applies when no option is given; all day, every day here.
    expectExit(await m.run(['policy', 'set', '--work-days', 'sun-sat', '--work-hours', '00:00-24:00', '--work-bandwidth', '4M', '--off-bandwidth', '4M']), 0);
    await fs.writeFile(file, randomBytes(12 * MiB));
    const byPolicy = await m.run(['backup', '--now', '--include', file]);
    expectExit(byPolicy, 0);
    expect(byPolicy.ms, show(byPolicy)).toBeGreaterThanOrEqual(2000);

    const bad = await m.run(['backup', '--now', '--include', file, '--limit-upload', 'fast']);
    expectExit(bad, 2);
    expect(bad.stderr).toMatch(/--limit-upload must be a rate/);

    // A limit under 64K (1 meant as 1M, say) would make a backup take days: refused, nothing changed.
    for (const args of [['policy', 'set', '--work-bandwidth', '0.4'], ['policy', 'set', '--off-bandwidth', '1'], ['backup', '--now', '--include', file, '--limit-upload', '63K']]) {
      const tiny = await m.run(args);
      expectExit(tiny, 2);
      expect(tiny.stderr, show(tiny)).toMatch(/ is [\d.]+ (B|KiB)\/s: a limit is at least 64K \(0 for no limit\)/);
    }
    const shown = await m.run(['policy', 'show']);
    expectExit(shown, 0);
    expect(shown.stdout).toMatch(/4\.0 MiB\/s/);
  }, 120_000);

  it('a malformed limit exits 2 before the vault is opened, and is not recorded as a job', async () => {
    const root = await makeTempDir('azbk-throttle-');
    const m = await setupMachine(root);
    const data = path.join(root, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'a.txt'), 'a\n');
    expectExit(await m.run(['backup', '--now', '--include', data]), 0);
    const jobs = () => fs.readFile(path.join(m.home, 'jobs.jsonl'), 'utf8').then((t) => t.trim().split('\n').length);
    const before = await jobs();
    // With the vault gone too: a bad flag is said first (it exited 10 before, after opening).
    await fs.rename(path.join(root, 'vault'), path.join(root, 'vault.away'));
    for (const args of [['backup', '--now', '--include', data, '--limit-upload', 'bogus'], ['restore', '--point', 'latest', '--target', path.join(root, 't'), '--limit-download', 'fast'], ['verify', '--limit-download', '-1']]) {
      const r = await m.run(args);
      expectExit(r, 2);
      expect(r.stderr, show(r)).toMatch(/--limit-(upload|download)/);
    }
    expect(await jobs()).toBe(before);
  });
});
