/** --conflict skip (the default), overwrite and copy when a restored file already exists. */
import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, expectExit, parseJson, setupMachine, type Machine } from '../helpers/cli.js';
import { writeRandomFile } from '../helpers/fs-tree.js';
import { createTempDir, makeTempDir, type TempDir } from '../helpers/tmp.js';

const BACKED_UP = 'the content that was backed up\n';
const LOCAL = 'a local change made after the backup\n';
const T0 = 1_600_000_000.25;

let tmp: TempDir;
let machine: Machine;
let dir: string;
let file: string;
/** the folder as backed up */
let dirBackedUp: Stats;

// One machine and one point for all the tests; each test starts from the changed local file.
beforeAll(async () => {
  tmp = await createTempDir();
  dir = path.join(tmp.path, 'work');
  await fs.mkdir(dir);
  file = path.join(dir, 'notes.txt');
  await fs.writeFile(file, BACKED_UP);
  await fs.chmod(file, 0o640);
  await fs.utimes(file, T0, T0);
  machine = await setupMachine(tmp.path);
  await backup(machine, [dir]);
  dirBackedUp = await fs.stat(dir);
});

afterAll(() => tmp?.cleanup());

async function setup(): Promise<{ a: Machine; dir: string; file: string }> {
  for (const name of await fs.readdir(dir)) if (name !== 'notes.txt') await fs.rm(path.join(dir, name), { recursive: true });
  await fs.writeFile(file, LOCAL);
  await fs.chmod(file, 0o600);
  return { a: machine, dir, file };
}

const pad = (n: number) => String(n).padStart(2, '0');
const stamp = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}-${pad(d.getMinutes())}`;

describe('restore --conflict', () => {
  it('skip (the default) leaves an existing changed file untouched', async () => {
    const { a, dir, file } = await setup();
    const before = await fs.stat(file);
    const r = await a.run(['restore', '--point', 'latest', '--json']);
    expectExit(r, 0);
    expect(parseJson(r).conflicts).toEqual([{ path: file, action: 'skipped' }]);
    expect(await fs.readFile(file, 'utf8')).toBe(LOCAL);
    const after = await fs.stat(file);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.mode & 0o7777).toBe(0o600);
    expect(await fs.readdir(dir)).toEqual(['notes.txt']);

    const text = await a.run(['restore', '--point', 'latest', '--conflict', 'skip']);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/1 existing item\(s\) left as they were/);
    expect(await fs.readFile(file, 'utf8')).toBe(LOCAL);
  });

  it('overwrite replaces the existing file with the backed-up one, mode and time included', async () => {
    const { a, dir, file } = await setup();
    const r = await a.run(['restore', '--point', 'latest', '--conflict', 'overwrite', '--json']);
    expectExit(r, 0);
    expect(parseJson(r).conflicts).toEqual([]);
    expect(await fs.readFile(file, 'utf8')).toBe(BACKED_UP);
    const st = await fs.stat(file);
    expect(st.mode & 0o7777).toBe(0o640);
    expect(Math.abs(st.mtimeMs - T0 * 1000)).toBeLessThan(1);
    expect(await fs.readdir(dir)).toEqual(['notes.txt']);
  });

  it('copy keeps both: the restored file is named "YYYY-MM-DD HH-mm Copy of <name>"', async () => {
    const { a, dir, file } = await setup();
    const t1 = new Date();
    const r = await a.run(['restore', '--point', 'latest', '--conflict', 'copy', '--json']);
    const t2 = new Date();
    expectExit(r, 0);
    expect(await fs.readFile(file, 'utf8')).toBe(LOCAL);
    const names = (await fs.readdir(dir)).filter((n) => n !== 'notes.txt');
    expect(names).toHaveLength(1);
    const copy = names[0]!;
    expect(copy).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}-\d{2} Copy of notes\.txt$/);
    expect([stamp(t1), stamp(t2)]).toContain(copy.slice(0, 16)); // local time of the restore
    expect(await fs.readFile(path.join(dir, copy), 'utf8')).toBe(BACKED_UP);
    expect((await fs.stat(path.join(dir, copy))).mode & 0o7777).toBe(0o640);
    expect(parseJson(r).conflicts).toEqual([{ path: file, action: 'copied', restoredAs: path.join(dir, copy) }]);
  });

  it('copy fits a long name into the 255 bytes a name may have: the end of its stem gives way, its extension stays', async () => {
    const root = await createTempDir();
    try {
      const where = path.join(root.path, 'long');
      await fs.mkdir(where);
      const name = `${'é'.repeat(60)}${'n'.repeat(126)}.txt`; // 250 bytes of UTF-8
      const long = path.join(where, name);
      await fs.writeFile(long, BACKED_UP);
      const m = await setupMachine(root.path);
      await backup(m, [where]);
      await fs.writeFile(long, LOCAL);
      for (let round = 0; round < 2; round++) expectExit(await m.run(['restore', '--point', 'latest', '--conflict', 'copy']), 0);
      const copies = (await fs.readdir(where)).filter((n) => n !== name).sort();
      expect(copies).toHaveLength(2);
      for (const c of copies) {
        expect(Buffer.byteLength(c)).toBeLessThanOrEqual(255);
        expect(await fs.readFile(path.join(where, c), 'utf8')).toBe(BACKED_UP);
      }
      expect(copies.find((c) => c.endsWith('.txt'))).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}-\d{2} Copy of é+n*\.txt$/);
      // Copies of one name made in the same minute are told apart by a number.
      if (new Set(copies.map((c) => c.slice(0, 16))).size === 1) expect(copies.find((c) => c.endsWith('.txt (2)'))).toBeDefined();
      else expect(copies.every((c) => c.endsWith('.txt'))).toBe(true);
      expect(await fs.readFile(long, 'utf8')).toBe(LOCAL);
    } finally {
      await root.cleanup();
    }
  });

  it('copy gives two long names that are cut to the same copy name copies of their own', async () => {
    const root = await createTempDir();
    try {
      const where = path.join(root.path, 'two');
      await fs.mkdir(where);
      // Each 251 bytes: cut to fit the copy's prefix, both stems end in b's, and their ".txt" stays.
      const names = [`${'b'.repeat(245)}1.txt`, `${'b'.repeat(245)}2.txt`];
      for (const n of names) await fs.writeFile(path.join(where, n), `${n.slice(-5)} backed up\n`);
      const m = await setupMachine(root.path);
      await backup(m, [where]);
      for (const n of names) await fs.writeFile(path.join(where, n), 'local\n');
      const r = await m.run(['restore', '--point', 'latest', '--conflict', 'copy', '--json']);
      expectExit(r, 0);
      const conflicts = parseJson(r).conflicts as { path: string; restoredAs: string }[];
      expect(conflicts).toHaveLength(2);
      expect(new Set(conflicts.map((c) => c.restoredAs)).size).toBe(2);
      for (const c of conflicts) {
        expect(await fs.readFile(c.restoredAs, 'utf8')).toBe(`${c.path.slice(-5)} backed up\n`);
      }
      for (const n of names) expect(await fs.readFile(path.join(where, n), 'utf8')).toBe('local\n');
      expect(await fs.readdir(where)).toHaveLength(4);
    } finally {
      await root.cleanup();
    }
  });

  it('skip and copy leave an existing folder its own mode; overwrite gives it the backed-up one', async () => {
    const { a, dir } = await setup();
    const backedUp = dirBackedUp;
    expect(backedUp.mode & 0o777).not.toBe(0o700);
    const T1 = 1_700_000_000;
    try {
      for (const conflict of ['skip', 'copy'] as const) {
        // Made private since the backup: a restore into it must not open it to others.
        await fs.chmod(dir, 0o700);
        await fs.utimes(dir, T1, T1);
        expectExit(await a.run(['restore', '--point', 'latest', '--conflict', conflict]), 0);
        const now = await fs.stat(dir);
        expect(now.mode & 0o7777, conflict).toBe(0o700);
        expect(Math.abs(now.mtimeMs - backedUp.mtimeMs), `${conflict}: the backed-up time`).toBeLessThan(0.002);
      }
      await fs.chmod(dir, 0o700);
      expectExit(await a.run(['restore', '--point', 'latest', '--conflict', 'overwrite']), 0);
      expect((await fs.stat(dir)).mode & 0o7777).toBe(backedUp.mode & 0o7777);
    } finally {
      await fs.chmod(dir, backedUp.mode & 0o7777);
    }
  });

  it('refuses an unknown rule with exit 2', async () => {
    const { a, file } = await setup();
    const r = await a.run(['restore', '--point', 'latest', '--conflict', 'replace']);
    expectExit(r, 2);
    expect(await fs.readFile(file, 'utf8')).toBe(LOCAL);
  });
});

describe('restore --conflict, with a folder where the point has a file or link, or the reverse', () => {
  /**
   * A point of data/ holding folders `sub` and `linked` and a file `b` and a link `c`, and a
   * target where each of those names is of the other kind: a file at `sub`, a link at `linked`
   * (to a folder), a folder at `b` and at `c`. `ok.txt` has nothing in its way.
   */
  async function kindsCrossed(root: string): Promise<{ m: Machine; src: string; into: (target: string) => Promise<string> }> {
    const src = path.join(root, 'data');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.mkdir(path.join(src, 'linked'));
    await fs.writeFile(path.join(src, 'sub', 'a.txt'), 'a\n');
    await fs.writeFile(path.join(src, 'linked', 'x.txt'), 'x\n');
    await fs.writeFile(path.join(src, 'b'), 'b\n');
    await fs.symlink('b', path.join(src, 'c'));
    await fs.writeFile(path.join(src, 'ok.txt'), 'ok\n');
    const m = await setupMachine(root);
    await backup(m, [src]);
    const into = async (target: string) => {
      const at = path.join(target, src);
      await fs.mkdir(path.join(at, 'b', 'mine'), { recursive: true });
      await fs.mkdir(path.join(at, 'c'));
      await fs.mkdir(path.join(target, 'elsewhere'));
      await fs.writeFile(path.join(at, 'sub'), 'mine\n');
      await fs.symlink(path.join(target, 'elsewhere'), path.join(at, 'linked'));
      return at;
    };
    return { m, src, into };
  }

  /** What is in the way is as it was. */
  async function expectUntouched(at: string, target: string): Promise<void> {
    expect(await fs.readFile(path.join(at, 'sub'), 'utf8')).toBe('mine\n');
    expect(await fs.readlink(path.join(at, 'linked'))).toBe(path.join(target, 'elsewhere'));
    expect(await fs.readdir(path.join(target, 'elsewhere'))).toEqual([]);
    expect(await fs.readdir(path.join(at, 'b'))).toEqual(['mine']);
    expect(await fs.readdir(path.join(at, 'c'))).toEqual([]);
  }

  it('skip and overwrite leave each alone and name it as not restored, restore the rest, and exit 3', async () => {
    const root = await makeTempDir('azbk-kinds-');
    const { m, src, into } = await kindsCrossed(root);
    for (const conflict of ['skip', 'overwrite'] as const) {
      const target = path.join(root, `out-${conflict}`);
      const at = await into(target);
      const r = await m.run(['restore', '--point', 'latest', '--target', target, '--conflict', conflict, '--json']);
      expectExit(r, 3);
      const j = parseJson<{ failed: { path: string; reason: string }[]; conflicts: unknown[] }>(r);
      expect(j.conflicts, conflict).toEqual([]);
      const left = (there: string, backedUp: string) => `${there} is where the backup has ${backedUp}; the existing one was left alone`;
      expect([...j.failed].sort((x, y) => x.path.localeCompare(y.path)), conflict).toEqual([
        { path: path.join(src, 'b'), reason: left('a folder', 'a file') },
        { path: path.join(src, 'c'), reason: left('a folder', 'a link') },
        { path: path.join(src, 'linked'), reason: left('a link', 'a folder') },
        { path: path.join(src, 'sub'), reason: left('a file', 'a folder') },
      ]);
      await expectUntouched(at, target);
      expect(await fs.readFile(path.join(at, 'ok.txt'), 'utf8')).toBe('ok\n');
      expect((await fs.readdir(at)).sort()).toEqual(['b', 'c', 'linked', 'ok.txt', 'sub']);

      const text = await m.run(['restore', '--point', 'latest', '--target', target, '--conflict', conflict]);
      expectExit(text, 3);
      expect(text.stdout).toContain(`${path.join(src, 'sub')}: ${left('a file', 'a folder')}`);
    }
  });

  it('copy restores each beside what is in the way (exit 0)', async () => {
    const root = await makeTempDir('azbk-kinds-');
    const { m, src, into } = await kindsCrossed(root);
    const target = path.join(root, 'out');
    const at = await into(target);
    const r = await m.run(['restore', '--point', 'latest', '--target', target, '--conflict', 'copy', '--json']);
    expectExit(r, 0);
    const copies = new Map((parseJson(r).conflicts as { path: string; action: string; restoredAs: string }[]).map((c) => [path.basename(c.path), c]));
    expect([...copies.keys()].sort()).toEqual(['b', 'c', 'linked', 'sub']);
    for (const [name, c] of copies) {
      expect(c.path).toBe(path.join(src, name));
      expect(c.action).toBe('copied');
      expect(path.dirname(c.restoredAs)).toBe(at);
      expect(path.basename(c.restoredAs)).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2} \\d{2}-\\d{2} Copy of ${name}$`));
    }
    expect(await fs.readFile(path.join(copies.get('sub')!.restoredAs, 'a.txt'), 'utf8')).toBe('a\n');
    expect(await fs.readFile(path.join(copies.get('linked')!.restoredAs, 'x.txt'), 'utf8')).toBe('x\n');
    expect(await fs.readFile(copies.get('b')!.restoredAs, 'utf8')).toBe('b\n');
    expect(await fs.readlink(copies.get('c')!.restoredAs)).toBe('b');
    await expectUntouched(at, target);
  });
});

describe('restore --conflict skip, with another program writing in the folder', () => {
  it('keeps a file that appears at a name after the restore planned it, and says so (exit 3)', async () => {
    const root = await makeTempDir('azbk-race-');
    const src = path.join(root, 'data');
    await fs.mkdir(src);
    const names = ['a.bin', 'b.bin', 'c.bin', 'd.bin', 'e.bin', 'f.bin'];
    for (const n of names) await writeRandomFile(path.join(src, n), 3 * 1024 * 1024);
    const m = await setupMachine(root);
    await backup(m, [src]);
    // The folder is there before the restore: the restore finds nothing in the way when it plans,
    // and writes slowly (18 MiB at 2 MiB/s) while another program makes files at those names.
    const target = path.join(root, 'out');
    const into = path.join(target, src);
    await fs.mkdir(into, { recursive: true });
    const job = m.run(['restore', '--point', 'latest', '--target', target, '--limit-download', '2M', '--json']);
    for (let i = 0; i < 400 && !(await fs.readdir(into)).some((n) => n.startsWith('.azbk-restore-')); i++) await new Promise((r) => setTimeout(r, 25));
    const mine: string[] = [];
    for (const n of names) {
      try {
        await fs.writeFile(path.join(into, n), `mine: ${n}\n`, { flag: 'wx' });
        mine.push(n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // restored already
      }
    }
    expect(mine.length).toBeGreaterThanOrEqual(3);
    const r = await job;
    expectExit(r, 3);
    for (const n of mine) expect(await fs.readFile(path.join(into, n), 'utf8')).toBe(`mine: ${n}\n`);
    const failed = parseJson(r).failed as { path: string; reason: string }[];
    expect(failed.map((f) => f.path).sort()).toEqual(mine.map((n) => path.join(src, n)));
    for (const f of failed) expect(f.reason).toBe('something appeared at this path during the restore; left as it is');
    // No temporary file is left behind.
    expect((await fs.readdir(into)).filter((n) => n.startsWith('.azbk-restore-'))).toEqual([]);
  }, 60_000);
});
