/**
 * azbk ls with the built CLI: a point's backed-up paths, a folder's entries, everything under a
 * path (the same entries, sizes, modes and times as the backed-up tree), a file alone, another
 * machine's point with its passphrase, names escaped, and bad input refused.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, expectExit, expectNoStack, parseJson, setupMachine, writePassphrase, type Machine } from '../helpers/cli.js';
import { createTempDir, type TempDir } from '../helpers/tmp.js';

interface Entry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  mtime: string;
  size?: number;
  target?: string;
}

let tmp: TempDir;
let a: Machine;
let src: string;

beforeAll(async () => {
  tmp = await createTempDir();
  src = path.join(tmp.path, 'data');
  await fs.mkdir(path.join(src, 'sub', 'deeper'), { recursive: true });
  await fs.writeFile(path.join(src, 'a.txt'), 'hello\n');
  await fs.writeFile(path.join(src, 'sub', 'b.bin'), Buffer.alloc(70_000, 7));
  await fs.writeFile(path.join(src, 'sub', 'deeper', 'c'), '');
  await fs.chmod(path.join(src, 'sub', 'b.bin'), 0o640);
  await fs.symlink('a.txt', path.join(src, 'link'));
  await fs.writeFile(path.join(src, 'odd\rname'), 'x');
  await fs.writeFile(path.join(src, 'report\u202eexe.txt'), 'x'); // shows as report"txt.exe" unescaped
  await fs.chmod(path.join(src, 'sub'), 0o1750);
  a = await setupMachine(tmp.path, { name: 'alpha' });
  await backup(a, [src]);
});

afterAll(() => tmp?.cleanup());

/** What lstat says of `p`, in the form ls gives it. */
async function expected(p: string): Promise<Entry> {
  const st = await fs.lstat(p, { bigint: true });
  const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
  const e: Entry = { path: p, type, mode: Number(st.mode & 0o7777n), mtime: new Date(Number(st.mtimeNs / 1_000_000n)).toISOString() };
  if (type === 'file') e.size = Number(st.size);
  if (type === 'symlink') e.target = await fs.readlink(p);
  return e;
}

describe.concurrent('azbk ls', () => {
  it('lists the backed-up paths, a folder, everything under it, or one file', async () => {
    const top = await a.run(['ls', '--point', 'latest']);
    expectExit(top, 0);
    expect(top.stdout.trim().split('\n')).toHaveLength(1);
    expect(top.stdout).toMatch(new RegExp(`^d\\S+ +- +\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ  ${src}\\n$`));

    const folder = await a.run(['ls', '--point', 'latest', src]);
    expectExit(folder, 0);
    const lines = folder.stdout.trim().split('\n');
    expect(lines.map((l) => l.split('  ').at(-1))).toEqual([`${src}/a.txt`, `${src}/link -> a.txt`, `${src}/odd\\x0dname`, `${src}/report\\u{202e}exe.txt`, `${src}/sub`]);
    expect(lines[0]).toMatch(/^-rw-r--r-- +6  /);
    expect(lines[4]).toMatch(/^drwxr-x--T +-  /);
    expect(folder.stdout).not.toMatch(/[\r\u202e]/);

    const all = await a.run(['ls', '--point', 'latest', '-r', src, '--json']);
    expectExit(all, 0);
    const got = parseJson<{ entries: Entry[]; machineName: string; status: string; failed: unknown[] }>(all);
    expect(got).toMatchObject({ machineName: 'alpha', status: 'ok', failed: [] });
    const names = (await fs.readdir(src, { recursive: true })).map((n) => path.join(src, String(n))).sort();
    expect(got.entries.map((e) => e.path).sort()).toEqual(names);
    for (const e of got.entries) expect(e, e.path).toEqual(await expected(e.path));
    // A folder before what it holds.
    const at = (p: string) => got.entries.findIndex((e) => e.path === p);
    expect(at(path.join(src, 'sub'))).toBeLessThan(at(path.join(src, 'sub', 'deeper', 'c')));

    const one = await a.run(['ls', '--point', 'latest', path.join(src, 'sub', 'b.bin'), '--json']);
    expectExit(one, 0);
    expect(parseJson<{ entries: Entry[] }>(one).entries).toEqual([await expected(path.join(src, 'sub', 'b.bin'))]);
  });

  it("lists another machine's point with its passphrase", async () => {
    const b = await setupMachine(tmp.path, { name: 'bravo', vault: a.vault });
    const r = await b.run(['ls', '--point', 'latest', '--machine', 'alpha', '--passphrase-file', b.passphraseFile, path.join(src, 'sub')]);
    expectExit(r, 0);
    expect(r.stdout).toContain(`${src}/sub/b.bin`);
    const wrong = await b.run(['ls', '--point', 'latest', '--machine', 'alpha', '--passphrase-file', await writePassphrase(tmp.path, 'not the passphrase of alpha')]);
    expectExit(wrong, 12);
    expectNoStack(wrong);
  });

  it('refuses a path not in the point, an unknown point, and --passphrase-file without --machine, with exit 2', async () => {
    for (const args of [
      ['ls', '--point', 'latest', path.join(src, 'nope')],
      ['ls', '--point', 'latest', tmp.path],
      ['ls', '--point', '20200101T000000000Z-00000000'],
      ['ls', '--point', 'latest', '--passphrase-file', a.passphraseFile],
    ]) {
      const r = await a.run(args);
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stdout).toBe('');
    }
    // The error names the point the path was looked for in ('latest' is resolved to one).
    const listed = parseJson(await a.run(['points', '--json'])).points as { id: string }[];
    const newest = listed[listed.length - 1]!.id;
    const notIn = await a.run(['ls', '--point', 'latest', path.join(src, 'nope')]);
    expect(notIn.stderr).toContain(`${path.join(src, 'nope')} is not in recovery point ${newest}.`);
    const restore = await a.run(['restore', '--point', 'latest', '--path', path.join(src, 'nope'), '--target', path.join(tmp.path, 'never')]);
    expectExit(restore, 2);
    expect(restore.stderr).toContain(`is not in recovery point ${newest}.`);
    expect(existsSync(path.join(tmp.path, 'never'))).toBe(false);
    // The root is above what a point holds: the error says what to name instead.
    for (const args of [['ls', '--point', 'latest', '/'], ['restore', '--point', 'latest', '--path', '/', '--target', path.join(tmp.path, 'never')]]) {
      const root = await a.run(args);
      expectExit(root, 2);
      expect(root.stderr).toMatch(/Cannot (list|restore) \/: it is the root above the folders the point holds/);
      expect(root.stderr).toContain('or no path at all for the whole point');
    }
    expect(existsSync(path.join(tmp.path, 'never'))).toBe(false);
  });
});
