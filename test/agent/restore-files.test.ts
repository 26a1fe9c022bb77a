/**
 * Times a restore sets: the stored nanoseconds, to the microsecond (what Node can set), never the
 * one before. The mode an existing folder is opened to while a restore writes in it.
 */
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openedToOwner, settleDir, toTime } from '../../src/agent/restore-files.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('toTime', () => {
  it('sets a file time to the microsecond of the nanoseconds stored', async () => {
    const file = path.join(await makeTempDir('azbk-times-'), 'f');
    fs.writeFileSync(file, 'x');
    for (let i = 0; i < 500; i++) {
      const seconds = BigInt(randomInt(1, 2 ** 32 - 1)); // 1970 to 2106
      const ns = (seconds * 1_000_000_000n + BigInt(randomInt(0, 1_000_000_000))).toString();
      const t = toTime(ns);
      fs.utimesSync(file, t, t);
      expect(fs.statSync(file, { bigint: true }).mtimeNs / 1000n, ns).toBe(BigInt(ns) / 1000n);
    }
  });

  it('sets a time before 1970 to the microsecond too', async () => {
    const file = path.join(await makeTempDir('azbk-times-'), 'f');
    fs.writeFileSync(file, 'x');
    const cases = ['-1000001000', '-999999000', '-1000000', '-315619199876543211'];
    for (let i = 0; i < 500; i++) cases.push((-BigInt(randomInt(0, 2 ** 31 - 1)) * 1_000_000_000n - BigInt(randomInt(0, 1_000_000_000))).toString());
    for (const ns of cases) {
      const t = toTime(ns);
      fs.utimesSync(file, t, t);
      expect(fs.statSync(file, { bigint: true }).mtimeNs / 1000n, ns).toBe(BigInt(ns) / 1000n);
    }
  });
});

describe('openedToOwner', () => {
  it('lets the owner list, write in and go through a folder of any mode, and changes no other bit', () => {
    for (let mode = 0; mode <= 0o7777; mode++) {
      const opened = openedToOwner(mode);
      expect(opened & 0o700, mode.toString(8)).toBe(0o700);
      expect(opened & ~0o700, mode.toString(8)).toBe(mode & ~0o700);
    }
    // What the owner has all of needs no opening: a restore leaves such a folder's mode alone.
    for (const mode of [0o700, 0o755, 0o2770, 0o1777]) expect(openedToOwner(mode)).toBe(mode);
    for (const mode of [0o000, 0o100, 0o300, 0o500, 0o600]) expect(openedToOwner(mode)).not.toBe(mode);
  });

  // Root may do all of this whatever the mode: only another user sees what the mode denies.
  it.skipIf(process.platform === 'win32' || process.getuid?.() === 0)('opens a folder of mode 000, 100 or 300 so a restore can write in it, list it and give it its mode back', async () => {
    const root = await makeTempDir('azbk-opened-');
    for (const mode of [0o000, 0o100, 0o300]) {
      const dir = path.join(root, mode.toString(8));
      fs.mkdirSync(dir);
      fs.chmodSync(dir, openedToOwner(mode));
      fs.writeFileSync(path.join(dir, 'f'), 'x');
      expect(fs.readdirSync(dir)).toEqual(['f']);
      settleDir(dir, mode, '1600000000000000000');
      expect(fs.statSync(dir).mode & 0o7777).toBe(mode);
      fs.chmodSync(dir, 0o700); // for its removal
    }
  });
});
