/**
 * azbk find with the built CLI: which points hold a file of a name or path, in which version;
 * one point; either case; another machine's points with its passphrase; bad input refused.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, expectExit, expectNoStack, parseJson, setupMachine, type Machine } from '../helpers/cli.js';
import { createTempDir, type TempDir } from '../helpers/tmp.js';

interface Match {
  point: string;
  path: string;
  type: string;
  size?: number;
}

let tmp: TempDir;
let a: Machine;
let src: string;
const ids: string[] = [];

beforeAll(async () => {
  tmp = await createTempDir();
  src = path.join(tmp.path, 'data');
  await fs.mkdir(path.join(src, 'docs', 'old'), { recursive: true });
  await fs.writeFile(path.join(src, 'docs', 'report.pdf'), 'version one');
  await fs.writeFile(path.join(src, 'docs', 'old', 'Report.PDF'), 'old');
  await fs.writeFile(path.join(src, 'notes.txt'), 'notes');
  await fs.mkdir(path.join(src, 'g', 'sub'), { recursive: true });
  for (const name of ['abx', 'a x', 'x', 'sub/x', 'sub/abx', '[']) await fs.writeFile(path.join(src, 'g', name), name);
  a = await setupMachine(tmp.path, { name: 'alpha' });
  ids.push((await backup(a, [src])).point.id);
  await fs.writeFile(path.join(src, 'docs', 'report.pdf'), 'version two, longer');
  ids.push((await backup(a, [src])).point.id);
  await fs.rm(path.join(src, 'docs', 'report.pdf'));
  ids.push((await backup(a, [src])).point.id);
});

afterAll(() => tmp?.cleanup());

const found = async (m: Machine, args: string[]): Promise<Match[]> => {
  const r = await m.run(['find', ...args, '--json']);
  expectExit(r, 0);
  return parseJson<{ matches: Match[] }>(r).matches;
};

describe.concurrent('azbk find', () => {
  it('names every point that holds a file of that name, with its size there', async () => {
    const r = await a.run(['find', 'report.pdf']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^${ids[0]}  -rw\\S+ +11  \\S+  ${path.join(src, 'docs', 'report.pdf')}$`));
    expect(lines[1]).toMatch(new RegExp(`^${ids[1]}  -rw\\S+ +19  `));
    expect(lines[2]).toBe('2 match(es) in 3 point(s) of alpha.');

    expect((await found(a, ['report.pdf', '-i'])).map((m) => [m.point, path.relative(src, m.path)])).toEqual([
      [ids[0], 'docs/old/Report.PDF'],
      [ids[0], 'docs/report.pdf'],
      [ids[1], 'docs/old/Report.PDF'],
      [ids[1], 'docs/report.pdf'],
      [ids[2], 'docs/old/Report.PDF'],
    ]);
  });

  it('matches whole paths, folders too, and one point', async () => {
    expect((await found(a, [`${src}/**/*.PDF`])).map((m) => m.point)).toEqual([ids[0], ids[1], ids[2]]);
    // ** with its / also stands for no folder at all.
    expect((await found(a, [`${src}/**/notes.txt`, '--point', 'latest'])).map((m) => m.path)).toEqual([path.join(src, 'notes.txt')]);
    expect((await found(a, ['**/docs/*.pdf', '--point', ids[0]!])).map((m) => m.path)).toEqual([path.join(src, 'docs', 'report.pdf')]);
    expect((await found(a, [`${src}/*.pdf`]))).toEqual([]);
    const dirs = await found(a, ['old', '--point', ids[1]!]);
    expect(dirs).toEqual([expect.objectContaining({ point: ids[1], path: path.join(src, 'docs', 'old'), type: 'dir' })]);
    expect(await found(a, ['*.txt', 'report.pdf', '--point', 'latest'])).toEqual([expect.objectContaining({ point: ids[2], path: path.join(src, 'notes.txt'), size: 5 })]);
  });

  it('matches **/x only with names that are x, at any depth', async () => {
    const paths = async (pattern: string) => (await found(a, [pattern, '--point', 'latest'])).map((m) => m.path).sort();
    const xs = [path.join(src, 'g', 'sub', 'x'), path.join(src, 'g', 'x')].sort();
    expect(await paths('**/x')).toEqual(xs);
    expect(await paths('/**/x')).toEqual(xs);
    expect(await paths(`${src}/**/x`)).toEqual(xs);
    expect(await paths(`${src}/g/**/x`)).toEqual(xs);
    expect(await paths('**/abx')).toEqual([path.join(src, 'g', 'abx'), path.join(src, 'g', 'sub', 'abx')].sort());
  });

  it("searches another machine's points with its passphrase", async () => {
    const b = await setupMachine(tmp.path, { name: 'bravo', vault: a.vault });
    const m = await found(b, ['report.pdf', '--machine', 'alpha', '--passphrase-file', b.passphraseFile]);
    expect(m.map((x) => x.point)).toEqual([ids[0], ids[1]]);
    const no = await b.run(['find', 'report.pdf', '--machine', 'alpha']);
    expectExit(no, 2);
    expectNoStack(no);
    // Another passphrase opens only its own key: wrong for alpha's points, not a partial search.
    const c = await setupMachine(tmp.path, { name: 'charlie', vault: a.vault, passphrase: 'a passphrase of another key family' });
    const wrong = await c.run(['find', 'report.pdf', '--machine', 'alpha', '--passphrase-file', c.passphraseFile]);
    expectExit(wrong, 12);
    expectNoStack(wrong);
  });

  it('refuses a bad pattern, an unknown point and no pattern with exit 2', async () => {
    for (const args of [['find', '[z-a]'], ['find', 'x', '--point', '20200101T000000000Z-00000000'], ['find'], ['find', 'docs/report.pdf']]) {
      const r = await a.run(args);
      expectExit(r, 2);
      expectNoStack(r);
    }
  });

  it('refuses an empty pattern and one that ends in a lone \\, and takes a [ without its ] as itself', async () => {
    for (const [pattern, says] of [['', /empty/], ['\\', /ends in a \\/], ['*.txt\\', /ends in a \\/]] as const) {
      const r = await a.run(['find', 'notes.txt', pattern, '--point', 'latest']);
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stderr).toMatch(says);
      expect(r.stdout).toBe('');
      // The hint reads as written (no backslash of it shown escaped).
      if (pattern !== '') expect(r.stderr).toContain('hint: Write two backslashes for a backslash itself (the first escapes the second), or leave it out.');
    }
    expect((await found(a, ['[', '--point', 'latest'])).map((m) => m.path)).toEqual([path.join(src, 'g', '[')]);
  });
});
