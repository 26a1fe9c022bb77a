#!/usr/bin/env node
/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time,
 * and the same grouped by source file.
 *
 *   node bench/profile-top.mjs FILE.cpuprofile [--top N]
 *
 * To profile an azbk backup (one file per thread, the workers' too):
 *   AZBK_HOME=... node --cpu-prof --cpu-prof-dir=/tmp/prof bin/azbk backup --now --include PATH
 */
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const topIdx = args.indexOf('--top');
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
if (!file) {
  process.stderr.write('usage: node bench/profile-top.mjs FILE.cpuprofile [--top N]\n');
  process.exit(2);
}

const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map(); // node id -> microseconds
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);

const shortUrl = (u) => {
  if (!u) return '';
  const s = u.replace(/^file:\/\//, '');
  const i = s.indexOf('/node_modules/');
  if (i >= 0) return s.slice(i + 1);
  const d = s.indexOf('/dist/');
  return d >= 0 ? s.slice(d + 1) : s.startsWith('node:') ? s : path.basename(s);
};

const fnAgg = new Map();
const fileAgg = new Map();
for (const [id, us] of self) {
  const cf = byId.get(id).callFrame;
  const where = shortUrl(cf.url);
  const key = `${cf.functionName || '(anonymous)'}  ${where}${where ? `:${cf.lineNumber + 1}` : ''}`;
  fnAgg.set(key, (fnAgg.get(key) ?? 0) + us);
  const fk = where || cf.functionName || '(native)';
  fileAgg.set(fk, (fileAgg.get(fk) ?? 0) + us);
}

const print = (title, m) => {
  console.log(`\n${title} (of ${(total / 1e6).toFixed(1)} s sampled)`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1e6).toFixed(2).padStart(8)} s ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
};
print('top functions by self time', fnAgg);
print('by file', fileAgg);
