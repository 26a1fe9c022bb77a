/**
 * Streaming: a 1 GiB file goes through backup and restore with bounded memory (peak RSS measured
 * by GNU time) and comes back identical.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, GNU_TIME, parseJson, setupMachine } from '../helpers/cli.js';
import { expectSameBytes } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;
const MAX_RSS_MIB = 300;

/** 1 GiB quickly: one random MiB written 1024 times, each copy starting with its own 16-byte counter. */
async function writeGiB(file: string): Promise<void> {
  const block = randomBytes(MiB);
  const fh = await fs.open(file, 'w');
  try {
    for (let i = 0; i < SIZE / MiB; i++) {
      block.writeBigUInt64BE(BigInt(i), 0);
      block.writeBigUInt64BE(BigInt(i) ^ 0xa5a5a5a5a5a5a5a5n, 8);
      await fh.write(block, 0, MiB, i * MiB);
    }
  } finally {
    await fh.close();
  }
}

describe('large files', () => {
  it('backs up and restores a 1 GiB file with peak memory under 300 MiB', async (ctx) => {
    const started = Date.now();
    const root = await makeTempDir();
    const src = path.join(root, 'big');
    await fs.mkdir(src);
    const file = path.join(src, 'one GiB.bin');
    await writeGiB(file);
    const a = await setupMachine(root);
    const measure = GNU_TIME !== null;

    const b = await a.run(['backup', '--now', '--include', src, '--json'], { measure, timeout: 150_000 });
    expectExit(b, 0);
    const stats = parseJson(b).stats;
    expect(stats.bytes).toBe(SIZE);
    // Not deduplicated away: (almost) all of it is new data.
    expect(stats.newBytes).toBeGreaterThan(0.99 * SIZE);

    const target = path.join(root, 'restored');
    const r = await a.run(['restore', '--point', 'latest', '--target', target, '--json'], { measure, timeout: 150_000 });
    expectExit(r, 0);
    expect(parseJson(r).restored.bytes).toBe(SIZE);
    await expectSameBytes(file, path.join(target, file));
    ctx.annotate(`1 GiB round trip: backup ${b.ms} ms, restore ${r.ms} ms, whole test ${Date.now() - started} ms`);

    if (!measure) {
      ctx.skip('/usr/bin/time is not installed (apt-get install time): peak memory of backup and restore not checked');
      return;
    }
    ctx.annotate(`peak RSS: backup ${b.maxRssKiB} KiB, restore ${r.maxRssKiB} KiB`);
    expect(b.maxRssKiB, 'backup peak RSS (KiB)').toBeLessThan(MAX_RSS_MIB * 1024);
    expect(r.maxRssKiB, 'restore peak RSS (KiB)').toBeLessThan(MAX_RSS_MIB * 1024);
  }, 240_000);
});
