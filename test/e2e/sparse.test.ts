/**
 * Files with holes (disk images, databases) come back with their holes where the file system has
 * them: chunks of zeros are not written, and the file gets its size at the end. Their content is
 * the same either way.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, expectExit, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

/** Bytes the file system holds for a file (st_blocks is in 512-byte units). */
const allocated = async (file: string) => (await fs.stat(file)).blocks * 512;

describe('sparse files', () => {
  it('restore leaves chunks of zeros as holes, inside a file and at its end, with the content unchanged', async () => {
    const tmp = await makeTempDir('azbk-sparse-');
    const src = path.join(tmp, 'src');
    await fs.mkdir(src);
    // A 64 MiB image with 5 MiB of data at 20 MiB (more than one restore range of 2 MiB holds, so
    // several write it and the main thread finishes it) and a hole at its end, and a 1.5 MiB file
    // of zeros only (one chunk, written and finished by one range).
    const image = path.join(src, 'disk.img');
    const data = randomBytes(5 * MiB);
    const fh = await fs.open(image, 'w');
    await fh.truncate(64 * MiB);
    await fh.write(data, 0, data.length, 20 * MiB);
    await fh.close();
    const zeros = path.join(src, 'zeros.bin');
    await fs.writeFile(zeros, Buffer.alloc(1.5 * MiB));
    const holes = (await allocated(image)) < 8 * MiB; // this file system keeps holes

    const m = await setupMachine(tmp);
    await backup(m, [src]);
    const out = path.join(tmp, 'out');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', out]), 0);

    const back = path.join(out, image);
    expect((await fs.stat(back)).size).toBe(64 * MiB);
    const content = await fs.readFile(back);
    expect(content.subarray(20 * MiB, 25 * MiB).equals(data)).toBe(true);
    expect(content.subarray(0, 20 * MiB).every((b) => b === 0) && content.subarray(25 * MiB).every((b) => b === 0)).toBe(true);
    const small = path.join(out, zeros);
    expect((await fs.readFile(small)).equals(Buffer.alloc(1.5 * MiB))).toBe(true);
    if (holes) {
      // Without holes the image would take 64 MiB and the zeros 1.5 MiB.
      expect(await allocated(back)).toBeLessThan(24 * MiB);
      expect(await allocated(small)).toBeLessThan(MiB);
    }
  }, 120_000);

  it('leaves the zeros around a little data inside a chunk as holes too (an image with a few blocks written here and there)', async () => {
    const tmp = await makeTempDir('azbk-sparse-');
    const src = path.join(tmp, 'src');
    await fs.mkdir(src);
    // 4 KiB of data every 16 MiB, off any boundary: each lies in a chunk of up to 8 MiB of zeros.
    const image = path.join(src, 'disk.img');
    const fh = await fs.open(image, 'w');
    await fh.truncate(64 * MiB);
    const blocks = [0, 1, 2, 3].map((i) => ({ at: i * 16 * MiB + 12_345, data: randomBytes(4096) }));
    for (const b of blocks) await fh.write(b.data, 0, b.data.length, b.at);
    await fh.close();
    const holes = (await allocated(image)) < MiB;

    const m = await setupMachine(tmp);
    await backup(m, [src]);
    const out = path.join(tmp, 'out');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', out]), 0);
    const back = path.join(out, image);
    const content = await fs.readFile(back);
    expect(content.length).toBe(64 * MiB);
    const expected = Buffer.alloc(64 * MiB);
    for (const b of blocks) b.data.copy(expected, b.at);
    expect(content.equals(expected)).toBe(true);
    // Whole chunks written would take 4 x 8 MiB here; the data's 64 KiB stretches take 4 x 128 KiB at most.
    if (holes) expect(await allocated(back)).toBeLessThan(2 * MiB);
  }, 120_000);
});
