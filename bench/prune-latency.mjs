#!/usr/bin/env node
/**
 * How long the vault's prune passes take when every storage request takes a round trip: a vault
 * in a temporary folder gets N packs that no point names; one pass condemns them, a second one
 * (dated past the grace period) deletes them. Each request the passes make waits MS milliseconds
 * first, as a request to a remote store does. Build first (npm run build).
 *
 *   node bench/prune-latency.mjs [N] [MS]      (defaults: 1000 packs, 20 ms)
 *
 * Prints each pass's time and the requests it made.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const load = (p) => import(path.join(ROOT, 'dist', ...p.split('/')));
const { FsBlobStore } = await load('vault/storage/fs-store.js');
const { Vault } = await load('vault/vault.js');
const { prune, PRUNE_GRACE_DAYS } = await load('vault/prune.js');
const { layout } = await load('vault/layout.js');

const N = Number(process.argv[2] ?? 1000);
const MS = Number(process.argv[3] ?? 20);
if (!Number.isInteger(N) || N < 1 || !(MS >= 0)) {
  console.error('usage: node bench/prune-latency.mjs [N] [MS]');
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'azbk-prune-'));
try {
  const inner = new FsBlobStore(dir);
  let requests = 0;
  const late = async () => {
    requests++;
    await new Promise((resolve) => setTimeout(resolve, MS));
  };
  const store = {
    put: async (key, data) => (await late(), inner.put(key, data)),
    get: async (key, range) => (await late(), inner.get(key, range)),
    stat: async (key) => (await late(), inner.stat(key)),
    delete: async (key) => (await late(), inner.delete(key)),
    list: async function* (prefix) {
      await late();
      yield* inner.list(prefix);
    },
  };
  await Vault.create(inner, { name: 'prune-latency' });
  const data = randomBytes(1024);
  for (let i = 0; i < N; i++) await inner.put(layout.pack(randomBytes(32).toString('hex')), data);
  const now = new Date();
  for (const [what, at] of [['condemn', now], ['delete', new Date(now.getTime() + (PRUNE_GRACE_DAYS + 1) * 86_400_000)]]) {
    requests = 0;
    const started = performance.now();
    const r = await prune(store, at);
    const s = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`${what} pass: ${s} s, ${requests} requests (condemned ${r.condemned}, deleted ${r.purged})`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
