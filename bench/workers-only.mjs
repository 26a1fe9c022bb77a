#!/usr/bin/env node
/**
 * What a backup of a tree could take with azbk's chunk workers and the leanest main thread: the
 * main thread walks the tree (readdir, lstat), hands every regular file to the workers
 * (agent/pipeline/pool.js, as a backup does), and copies each new sealed chunk into 16 MiB packs,
 * which it hashes (SHA-256) and writes to a temporary folder. No folder listings, cache, index,
 * checkpoints or vault. Compare its time and CPU with a backup's: the difference is what the
 * backup's own bookkeeping costs. Build first (npm run build).
 *
 *   node bench/workers-only.mjs PATH
 *
 * Prints files, new chunks and packs; run it under /usr/bin/time for the time and CPU.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { ChunkPool } = await import(path.join(ROOT, 'dist', 'agent', 'pipeline', 'pool.js'));
const { DEFAULT_CHUNKER } = await import(path.join(ROOT, 'dist', 'core', 'chunker.js'));

const source = process.argv[2];
if (source === undefined || !fs.statSync(source, { throwIfNoEntry: false })?.isDirectory()) {
  process.stderr.write('usage: node bench/workers-only.mjs PATH (a folder)\n');
  process.exit(2);
}

const PACK = 16 * 1024 * 1024;
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'azbk-workers-only-'));
const pool = new ChunkPool({ master: randomBytes(32), chunker: DEFAULT_CHUNKER, level: 3 });
const seen = new Set();
const pack = Buffer.allocUnsafe(PACK);
let used = 0;
let packs = 0;
let files = 0;

function writePack() {
  if (used === 0) return;
  const data = pack.subarray(0, used);
  fs.writeFileSync(path.join(out, createHash('sha256').update(data).digest('hex')), data);
  used = 0;
  packs++;
}

/** Keeps each new sealed chunk (the workers' slabs go back once this returns, so it is copied). */
function onChunks(chunks) {
  for (const c of chunks) {
    if (c.sealed === undefined || seen.has(c.id)) continue;
    seen.add(c.id);
    if (used + c.sealed.length > PACK) writePack();
    pack.set(c.sealed, used);
    used += c.sealed.length;
  }
  return undefined;
}

const reads = [];
async function walk(dir) {
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p, { bigint: true });
    if (st.isDirectory()) await walk(p);
    else if (st.isFile()) {
      if (!pool.hasRoom) await pool.room();
      files++;
      reads.push(pool.read(p, 0, Number(st.size), onChunks));
      if (reads.length >= 4096) await Promise.all(reads.splice(0));
    }
  }
}

try {
  await walk(path.resolve(source));
  await Promise.all(reads);
  writePack();
  console.log(`${files} files, ${seen.size} new chunks, ${packs} packs`);
} finally {
  await pool.close();
  fs.rmSync(out, { recursive: true, force: true });
}
