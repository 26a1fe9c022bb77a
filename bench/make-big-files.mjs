#!/usr/bin/env node
/**
 * Makes a tree of a few big files for the benchmark: K files of N GiB each, semi-compressible and
 * without repeats (nothing to deduplicate inside or across files), from a seeded generator, so
 * the same arguments always give the same bytes.
 *
 *   node bench/make-big-files.mjs DIR [--files K] [--gib N] [--compressible F] [--seed S]
 *
 * Defaults: 2 files of 2 GiB, F = 0.5, seed 1. Each 1 MiB block is AES-256-CTR keystream (key from
 * the seed, a counter block per file): the first (1 - F) of the block is left as it is
 * (incompressible), the rest is mapped to 16 letters (4 bits of entropy per byte, which zstd
 * halves). With F = 0.5 zstd -3 makes the data about 75% of its size.
 * DIR must not exist or be empty.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { emptyDir, treeArgs } from './tree-args.mjs';

const { o, usage } = treeArgs('make-big-files', 'DIR [--files K] [--gib N] [--compressible F] [--seed S]', { files: 2, gib: 2, compressible: 0.5, seed: '1' });
if (!Number.isInteger(o.files) || o.files < 1) usage('--files must be a positive integer');
if (!(o.gib > 0)) usage('--gib must be positive');
if (!(o.compressible >= 0 && o.compressible <= 1)) usage('--compressible must be from 0 to 1');
emptyDir(o.dir, usage);

const BLOCK = 1 << 20;
const size = Math.round(o.gib * 1024 ** 3);
const key = createHash('sha256').update(`azbk-bench-big-files:${o.seed}`).digest();
const zeros = Buffer.alloc(BLOCK);
const plainFrom = Math.floor((BLOCK * (1 - o.compressible)) / 4) * 4;
const width = String(o.files).length;

for (let f = 0; f < o.files; f++) {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(f, 0); // each file its own counter range: no block repeats across files
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const file = path.join(o.dir, `big-${String(f).padStart(width, '0')}.bin`);
  const fd = fs.openSync(file, 'wx');
  const t0 = Date.now();
  let left = size;
  while (left > 0) {
    const n = Math.min(BLOCK, left);
    let block = cipher.update(zeros.subarray(0, n));
    if (block.byteOffset % 4 !== 0) block = Buffer.from(block); // Uint32Array needs alignment
    // the compressible part: every byte becomes one of the 16 letters A..P
    if (n - plainFrom >= 4) {
      const words = new Uint32Array(block.buffer, block.byteOffset + plainFrom, Math.floor((n - plainFrom) / 4));
      for (let i = 0; i < words.length; i++) words[i] = (words[i] & 0x0f0f0f0f) | 0x41414141;
    }
    fs.writeSync(fd, block);
    left -= n;
  }
  fs.closeSync(fd);
  process.stderr.write(`${file}: ${(size / 1024 ** 3).toFixed(2)} GiB in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
