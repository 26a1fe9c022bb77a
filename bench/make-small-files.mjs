#!/usr/bin/env node
/**
 * Makes a tree of many small files for the benchmark: F folders of M files each (100 per
 * folder-of-folders level), each file 100 to 398 hex characters of seeded keystream, so no two
 * files share content and the same arguments always give the same bytes. It measures what a
 * backup and a restore cost per file, where the kernel tree measures mostly bytes.
 *
 *   node bench/make-small-files.mjs DIR [--folders F] [--files M] [--seed S]
 *
 * Defaults: 5,000 folders of 100 files (500,000 files, about 95 MiB of data), seed 1. Files go
 * to DIR/dN/eK/fI.txt, a hundred folders eK under each dN. DIR must not exist or be empty.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { emptyDir, treeArgs } from './tree-args.mjs';

const { o, usage } = treeArgs('make-small-files', 'DIR [--folders F] [--files M] [--seed S]', { folders: 5000, files: 100, seed: '1' });
if (!Number.isInteger(o.folders) || o.folders < 1) usage('--folders must be a positive integer');
if (!Number.isInteger(o.files) || o.files < 1) usage('--files must be a positive integer');
emptyDir(o.dir, usage);

const key = createHash('sha256').update(`azbk-bench-small-files:${o.seed}`).digest();
const stream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
const zeros = Buffer.alloc(200);
for (let d = 0; d < o.folders; d++) {
  const folder = path.join(o.dir, `d${Math.floor(d / 100)}`, `e${d}`);
  fs.mkdirSync(folder, { recursive: true });
  for (let f = 0; f < o.files; f++) {
    fs.writeFileSync(path.join(folder, `f${f}.txt`), stream.update(zeros.subarray(0, 50 + (f % 150))).toString('hex'));
  }
}
process.stdout.write(`${o.folders * o.files} files in ${o.folders} folders under ${o.dir}\n`);
