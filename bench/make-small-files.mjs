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

function usage(msg) {
  if (msg) process.stderr.write(`make-small-files: ${msg}\n`);
  process.stderr.write('usage: node bench/make-small-files.mjs DIR [--folders F] [--files M] [--seed S]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const o = { dir: null, folders: 5000, files: 100, seed: '1' };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const val = () => args[++i] ?? usage(`${a} needs a value`);
  if (a === '--folders') o.folders = Number(val());
  else if (a === '--files') o.files = Number(val());
  else if (a === '--seed') o.seed = val();
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else if (o.dir === null) o.dir = path.resolve(a);
  else usage('only one DIR');
}
if (o.dir === null) usage('DIR is required');
if (!Number.isInteger(o.folders) || o.folders < 1) usage('--folders must be a positive integer');
if (!Number.isInteger(o.files) || o.files < 1) usage('--files must be a positive integer');

fs.mkdirSync(o.dir, { recursive: true });
if (fs.readdirSync(o.dir).length > 0) usage(`${o.dir} is not empty`);

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
