/** Choosing the recovery point: latest, an exact id, or an ISO time (newest at or before it). */
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { backup, expectExit, expectNoStack, parseJson, setupMachine, type Machine } from '../helpers/cli.js';
import { createTempDir, type TempDir } from '../helpers/tmp.js';

let tmp: TempDir;
let a: Machine;
let file: string;
const points: { id: string; time: string }[] = [];
let n = 0;

beforeAll(async () => {
  tmp = await createTempDir();
  const dir = path.join(tmp.path, 'data');
  await fs.mkdir(dir);
  file = path.join(dir, 'version.txt');
  a = await setupMachine(tmp.path);
  for (const v of ['one', 'two', 'three']) {
    await fs.writeFile(file, `version ${v}\n`);
    points.push((await backup(a, [dir])).point);
    await new Promise((r) => setTimeout(r, 20));
  }
});

afterAll(() => tmp?.cleanup());

async function restoredVersion(spec: string): Promise<string> {
  const target = path.join(tmp.path, `t${++n}`);
  const r = await a.run(['restore', '--point', spec, '--target', target, '--json']);
  expectExit(r, 0);
  return fs.readFile(path.join(target, file), 'utf8');
}

describe('restore --point', () => {
  it('points lists the points oldest first', async () => {
    const r = await a.run(['points', '--json']);
    expectExit(r, 0);
    const listed = parseJson(r).points as { id: string; time: string; paths: string[] }[];
    expect(listed.map((p) => p.id)).toEqual(points.map((p) => p.id));
    expect(listed.map((p) => p.time)).toEqual(points.map((p) => p.time));
    expect(listed[0]!.paths).toEqual([path.dirname(file)]);
    const text = await a.run(['points']);
    expectExit(text, 0);
    for (const p of points) expect(text.stdout).toContain(p.id);
  });

  it('latest is the newest point', async () => {
    expect(await restoredVersion('latest')).toBe('version three\n');
  });

  it('an exact id picks that point', async () => {
    expect(await restoredVersion(points[0]!.id)).toBe('version one\n');
    expect(await restoredVersion(points[1]!.id)).toBe('version two\n');
  });

  it('an ISO time between two points picks the older one', async () => {
    const t1 = Date.parse(points[0]!.time);
    const t2 = Date.parse(points[1]!.time);
    expect(t2 - t1).toBeGreaterThanOrEqual(2);
    const between = new Date(Math.floor((t1 + t2) / 2)).toISOString();
    expect(await restoredVersion(between)).toBe('version one\n');
    // At exactly a point's time, that point.
    expect(await restoredVersion(points[1]!.time)).toBe('version two\n');
    // A time after the last point: the last one.
    expect(await restoredVersion(new Date(Date.parse(points[2]!.time) + 60_000).toISOString())).toBe('version three\n');
  });

  it('a time before the first point, an unknown id or a bad time exit 2 and write nothing', async () => {
    const before = new Date(Date.parse(points[0]!.time) - 60_000).toISOString();
    // A day no calendar has is not rolled over into the next month (2099-11-31 would be 2099-12-01, after every point).
    for (const spec of [before, '20200101T000000000Z-00000000', 'yesterday', '2026-13-45T99:00:00Z', '2099-11-31T23:00', '2099-02-29']) {
      const target = path.join(tmp.path, `bad${++n}`);
      const r = await a.run(['restore', '--point', spec, '--target', target]);
      expectExit(r, 2);
      expectNoStack(r);
      await expect(fs.stat(target)).rejects.toThrow();
    }
  });
});
