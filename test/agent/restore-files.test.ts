/** Times a restore sets: the stored nanoseconds, to the microsecond (what Node can set), never the one before. */
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { toTime } from '../../src/agent/restore-files.js';
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
