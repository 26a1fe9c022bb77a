#!/usr/bin/env node
/**
 * Bundles the built CLI (dist/, from tsc) into dist/bundle/, which bin/azbk runs: the command's
 * code in a few files instead of about 80 modules, so that every command starts sooner (an
 * unchanged kernel-tree backup about 20 ms, `azbk backup --help` 152 -> 128 ms at the median of
 * 15 runs). The workers are entry points of their own, beside the shared code (worker-url.ts
 * finds them there); packages stay in node_modules, loaded as they are.
 *
 *   node scripts/bundle.mjs        (part of `npm run build`, after tsc)
 */
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const OUT = path.join(DIST, 'bundle');

// every worker module: each is started by file name, beside the module that starts it
const workers = [];
for (const dir of ['agent', 'agent/pipeline']) {
  for (const name of fs.readdirSync(path.join(DIST, dir))) {
    if (name.endsWith('-worker.js')) workers.push(path.join(DIST, dir, name));
  }
}
const names = workers.map((w) => path.basename(w));
if (new Set(names).size !== names.length) throw new Error(`two worker modules share a name: ${names.join(', ')}`);

fs.rmSync(OUT, { recursive: true, force: true });
await build({
  entryPoints: [path.join(DIST, 'cli', 'main.js'), ...workers],
  outdir: OUT,
  // flat, so that a worker is beside the shared code that starts it, and at the depth of dist/*/
  // (worker-url.ts finds the repository root two folders up)
  entryNames: '[name]',
  chunkNames: 'shared-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
