#!/usr/bin/env node
/**
 * The CPU a backup of a tree cannot go below with azbk's formats: one thread does, per file, only
 * what the data path must (lstat, open, read, the chunker, HMAC-SHA256, zstd, AES-256-GCM under
 * the blob's own key, fstat, close), with azbk's own core modules, and nothing else: no packs, no
 * listings, no cache, no threads. Sealed blobs are dropped. Build first (npm run build).
 *
 *   node bench/cpu-floor.mjs PATH [--level N] [--no-seal]
 *
 * --no-seal leaves out zstd and AES-GCM (what is left: walking, reading, chunking, hashing).
 * Prints files, bytes and the process's user and system CPU.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { Chunker, DEFAULT_CHUNKER } = await import(path.join(ROOT, 'dist', 'core', 'chunker.js'));
const { deriveKeys } = await import(path.join(ROOT, 'dist', 'core', 'keys.js'));
const { blobId, encodeBlob } = await import(path.join(ROOT, 'dist', 'core', 'blob.js'));

function usage(msg) {
  process.stderr.write(`cpu-floor: ${msg}\nusage: node bench/cpu-floor.mjs PATH [--level N] [--no-seal]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let source = null;
let level = 3;
let seal = true;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--level') level = Number(args[++i]);
  else if (args[i] === '--no-seal') seal = false;
  else if (args[i].startsWith('--')) usage(`unknown option ${args[i]}`);
  else source = path.resolve(args[i]);
}
if (source === null) usage('PATH is missing');
if (!Number.isInteger(level) || level < 1 || level > 19) usage('--level takes 1 to 19');
if (!fs.statSync(source, { throwIfNoEntry: false })?.isDirectory()) usage(`${source} is not a folder`);

const keys = deriveKeys(crypto.randomBytes(32));
const chunker = new Chunker(DEFAULT_CHUNKER, keys.chunkerSeed);
const buf = Buffer.allocUnsafe(1024 * 1024);
const out = Buffer.allocUnsafe(16 * 1024 * 1024);
const into = (n) => out.subarray(0, n);
let files = 0;
let bytes = 0;
let skipped = 0;

function blob(chunk) {
  const id = blobId(keys, chunk);
  if (seal) encodeBlob(keys, 'data', chunk, { id, level, into });
}

function readFile(p, size) {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  try {
    chunker.reset();
    for (let pos = 0; pos < size; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
      if (n === 0) break;
      pos += n;
      bytes += n;
      // a whole small file in its first read is one chunk, sealed in place (as the chunk workers do)
      if (pos === n && pos >= size && n < DEFAULT_CHUNKER.min) {
        blob(buf.subarray(0, n));
        break;
      }
      for (const c of chunker.cut(buf.subarray(0, n))) blob(c);
    }
    for (const c of chunker.end()) blob(c);
    fs.fstatSync(fd, { bigint: true });
  } finally {
    fs.closeSync(fd);
  }
}

function walk(dir) {
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    skipped++;
    return;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    try {
      const st = fs.lstatSync(p, { bigint: true });
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        files++;
        readFile(p, Number(st.size));
      }
    } catch {
      skipped++;
    }
  }
}

const before = process.cpuUsage();
walk(source);
const cpu = process.cpuUsage(before);
const s = (us) => (us / 1e6).toFixed(2);
process.stdout.write(
  `${files} files, ${(bytes / 2 ** 20).toFixed(0)} MiB${skipped > 0 ? `, ${skipped} skipped` : ''}; ` +
    `${seal ? `zstd level ${level} and AES-256-GCM` : 'no sealing'}: user ${s(cpu.user)} s, system ${s(cpu.system)} s\n`,
);
