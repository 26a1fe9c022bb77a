/** The shared file helpers that are not covered by the commands' own tests. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { localIoError } from '../../src/shared/errors.js';
import { errnoCode, makeFoldersSync, readLocalJson, writeFileAtomic } from '../../src/shared/files.js';
import { makeTempDir } from '../helpers/tmp.js';

const code = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return errnoCode(err);
  }
  return 'none';
};

describe.each([
  ['makeFoldersSync', async (d: string, mode?: number) => makeFoldersSync(d, mode)],
] as const)('%s', (_name, make) => {
  it('makes the missing folders above, each with the mode, and takes a folder that is there', async () => {
    const base = await makeTempDir();
    const deep = path.join(base, 'a', 'b', 'c');
    await make(deep, 0o700);
    for (const d of [path.join(base, 'a'), path.join(base, 'a', 'b'), deep]) {
      expect(fs.statSync(d).isDirectory()).toBe(true);
      if (process.platform !== 'win32') expect(fs.statSync(d).mode & 0o777).toBe(0o700);
    }
    await make(deep); // there already
    await make(path.join(base, 'a', '.', 'b', '..', 'b2'));
    expect(fs.statSync(path.join(base, 'a', 'b2')).isDirectory()).toBe(true);
  });

  it('fails on a file in the way: EEXIST at the folder, ENOTDIR above it', async () => {
    const base = await makeTempDir();
    const file = path.join(base, 'f');
    fs.writeFileSync(file, 'x');
    await expect(make(file)).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(make(path.join(file, 'sub', 'deeper'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });

  it('takes a folder another makes at the same moment, as mkdir -p does', async () => {
    const base = await makeTempDir();
    for (let round = 0; round < 20; round++) {
      const top = path.join(base, `r${round}`);
      await Promise.all([make(path.join(top, 'a', 'b', 'c')), make(path.join(top, 'a', 'b', 'd')), fs.promises.mkdir(path.join(top, 'a', 'b', 'e'), { recursive: true })]);
      for (const leaf of ['c', 'd', 'e']) expect(fs.statSync(path.join(top, 'a', 'b', leaf)).isDirectory()).toBe(true);
    }
  });

  it.runIf(process.platform === 'linux')('ends with ENOENT where a folder takes no new folders (/proc), where Node\'s recursive mkdir never ends', async () => {
    await expect(make('/proc/azbk-no-such/sub')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(code(() => fs.statSync('/proc/azbk-no-such'))).toBe('ENOENT');
  });
});

describe('writeFileAtomic', () => {
  it('leaves neither the file nor its temporary file when the data cannot be written (a full disk)', async () => {
    const dir = await makeTempDir();
    const file = path.join(dir, 'state.json');
    const probe = await fs.promises.open(path.join(dir, 'probe'), 'w');
    const handle = Object.getPrototypeOf(probe) as { writeFile: (data: unknown) => Promise<void> };
    await probe.close();
    await fs.promises.rm(path.join(dir, 'probe'));
    const full = vi.spyOn(handle, 'writeFile').mockRejectedValueOnce(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    try {
      const err = await writeFileAtomic(file, '{"a":1}').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ENOSPC' });
      // The user is told which file: the one written, not its temporary file, nor only "write".
      expect(localIoError(err)?.message).toBe(`Cannot use ${file} (ENOSPC).`);
    } finally {
      full.mockRestore();
    }
    expect(fs.readdirSync(dir)).toEqual([]);
    await writeFileAtomic(file, '{"a":2}');
    expect(fs.readdirSync(dir)).toEqual(['state.json']);
  });
});

describe('readLocalJson', () => {
  const damaged = () => new Error('damaged');
  it('takes a file it cannot read for what it is (AZBK_LOCAL_IO, how to fix it), not for damaged', async () => {
    const dir = await makeTempDir('azbk-files-');
    const folder = path.join(dir, 'policy.json');
    fs.mkdirSync(folder);
    await expect(readLocalJson(folder, damaged)).rejects.toMatchObject({ code: 'AZBK_LOCAL_IO', message: expect.stringContaining('(EISDIR): the file cannot be read.') });
    // Unreadable by this user (not root, who reads it anyway): the same.
    if (process.getuid?.() !== 0 && process.platform !== 'win32') {
      const file = path.join(dir, 'secrets.json');
      fs.writeFileSync(file, '{}', { mode: 0o000 });
      await expect(readLocalJson(file, damaged)).rejects.toMatchObject({ code: 'AZBK_LOCAL_IO', hint: expect.stringContaining(`chmod 600 ${file}`) });
    }
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"version":');
    await expect(readLocalJson(bad, damaged)).rejects.toThrow('damaged');
    expect(await readLocalJson(path.join(dir, 'none.json'), damaged)).toBeNull();
  });
});
