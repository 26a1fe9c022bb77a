/**
 * Nothing readable in the vault: file contents, file and folder names and link targets never
 * appear in any vault object, and the only plain JSON objects are the documented envelopes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, expectExit, setupMachine, tempDir } from '../helpers/cli.js';
import { listFiles } from '../helpers/fs-tree.js';

const M = {
  content: 'QZX-CONTENT-MARKER-7f3a9c',
  small: 'QZX-SMALL-CONTENT-MARKER-51d0',
  fileName: 'QZX-FILENAME-MARKER-b81e',
  dirName: 'QZX-FOLDER-MARKER-c4d2',
  rootName: 'QZX-ROOT-MARKER-1d9e',
  linkTarget: 'QZX-LINK-TARGET-MARKER-e5a0',
  unicodeName: 'QZX-ÜNÎCÖDE-MARKER-ß',
} as const;

/** Byte patterns to look for: each marker as UTF-8 and UTF-16LE, and inside base64 at every alignment. */
function needles(): { label: string; bytes: Buffer }[] {
  const out: { label: string; bytes: Buffer }[] = [];
  for (const [k, v] of Object.entries(M)) {
    out.push({ label: `${k} (utf8)`, bytes: Buffer.from(v, 'utf8') });
    out.push({ label: `${k} (utf16le)`, bytes: Buffer.from(v, 'utf16le') });
    for (let shift = 0; shift < 3; shift++) {
      // The base64 of the marker after `shift` bytes of anything: drop the characters that
      // depend on the neighbours.
      const b64 = Buffer.concat([Buffer.alloc(shift), Buffer.from(v, 'utf8')]).toString('base64');
      const stable = b64.slice(Math.ceil((shift * 4) / 3) + 1, -4);
      out.push({ label: `${k} (base64, shift ${shift})`, bytes: Buffer.from(stable, 'latin1') });
    }
  }
  return out;
}

const ENVELOPE_KEY = /^(config|vault\/signing-key|vault\/tls|keys\/[0-9a-f]{32}|machines\/[0-9a-f]{32}|points\/[0-9a-f]{32}\/\d{8}T\d{9}Z-[0-9a-f]{8})$/;
const HEX = /^[0-9a-f]+$/;
const B64 = /^(?:[A-Za-z0-9+/]{4}){4,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/; // canonical, 16+ chars
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Every string in a JSON value. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (typeof v === 'object' && v !== null) return Object.values(v).flatMap(strings);
  return [];
}

describe.concurrent('vault secrecy', () => {
  it('keeps contents, names and link targets out of every vault object', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, M.rootName);
    const sub = path.join(src, M.dirName, `nested ${M.dirName}`);
    await fs.mkdir(sub, { recursive: true });
    // Compressible text: compression must not be what hides it, encryption must.
    const line = (i: number) => `${M.content} line ${i} of a very compressible file\n`;
    const big = Array.from({ length: 60_000 }, (_, i) => line(i)).join(''); // ~3.5 MB, several chunks
    await fs.writeFile(path.join(src, `${M.fileName}.txt`), big);
    await fs.writeFile(path.join(sub, `${M.fileName} 2.log`), M.small);
    await fs.writeFile(path.join(src, M.unicodeName), `${M.small}\n${M.small}\n`);
    await fs.writeFile(path.join(src, 'utf16.txt'), Buffer.from(`${M.small} in UTF-16`, 'utf16le'));
    await fs.mkdir(path.join(src, `${M.dirName} empty`));
    await fs.symlink(`../${M.linkTarget}/x`, path.join(src, 'link'));

    const a = await setupMachine(root);
    const b = await backup(a, [src]);
    expect(b.stats.files).toBe(4);
    // Check the restore works, so the vault really holds the data we look for.
    const target = path.join(root, 'restored');
    expectExit(await a.run(['restore', '--point', 'latest', '--target', target]), 0);
    expect(await fs.readFile(path.join(target, src, `${M.fileName}.txt`), 'utf8')).toBe(big);

    const files = await listFiles(a.vault.dir);
    const rels = files.map((f) => path.relative(a.vault.dir, f).split(path.sep).join('/'));
    expect(rels.some((r) => r.startsWith('packs/'))).toBe(true);
    expect(rels.some((r) => r.startsWith('points/'))).toBe(true);
    const pats = needles();
    let scanned = 0;
    for (const [i, file] of files.entries()) {
      const data = await fs.readFile(file);
      scanned += data.length;
      for (const n of pats) expect(data.includes(n.bytes), `${rels[i]} contains marker ${n.label}`).toBe(false);
      // Names of vault objects hold nothing either.
      for (const v of Object.values(M)) expect(rels[i]).not.toContain(v);
    }
    expect(scanned).toBeGreaterThan(10_000); // ~3.5 MB of text compresses to tens of KB
  });

  it('has no plain JSON besides config, keys, machines, points envelopes and the signing key', async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'src');
    await fs.mkdir(path.join(src, 'd'), { recursive: true });
    await fs.writeFile(path.join(src, 'd', 'f.json'), JSON.stringify({ hello: M.content }));
    await fs.writeFile(path.join(src, 'g.txt'), '{"also":"json-looking"}');
    const a = await setupMachine(root);
    await backup(a, [src]);
    await backup(a, [src]);

    const seen = new Set<string>();
    for (const file of await listFiles(a.vault.dir)) {
      const rel = path.relative(a.vault.dir, file).split(path.sep).join('/');
      if (rel.startsWith('.tmp/')) continue;
      const text = await fs.readFile(file, 'utf8');
      if (/^condemned\/\d{8}\/[0-9a-f]{64}$/.test(rel)) {
        expect(text, `${rel} is an empty marker`).toBe('');
        continue;
      }
      if (/^prune\/\d{8}$/.test(rel)) {
        expect(text, `${rel} holds a random nonce, nothing more`).toMatch(/^[0-9a-f]{32}$/);
        continue;
      }
      if (rel.startsWith('machine-names/')) {
        // A machine's name (lower case) holds the id of the machine registered under it, nothing more.
        expect(rel).toBe(`machine-names/${a.name.toLowerCase()}`);
        expect(text).toMatch(/^[0-9a-f]{32}$/);
        await fs.access(path.join(a.vault.dir, 'machines', text));
        continue;
      }
      if (rel.startsWith('point-jobs/')) {
        // A backup job's claim of its point: the point's id, nothing more.
        expect(rel).toMatch(/^point-jobs\/[0-9a-f]{32}\/[0-9a-f]{32}$/);
        await fs.access(path.join(a.vault.dir, 'points', rel.split('/')[1]!, text));
        continue;
      }
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        expect(rel, 'only packs and index files are opaque').toMatch(/^(packs\/[0-9a-f]{2}\/[0-9a-f]{64}|index\/[0-9a-f]{64})$/);
        continue;
      }
      expect(rel, `${rel} is plain JSON`).toMatch(ENVELOPE_KEY);
      seen.add(rel.split('/')[0]!);
      expect(typeof v === 'object' && v !== null).toBe(true);
      const o = v as Record<string, unknown>;
      if (rel.startsWith('points/')) {
        expect(Object.keys(o).sort()).toEqual(['id', 'jobId', 'keyId', 'machineId', 'manifest', 'packs', 'packsSha256', 'time', 'version']);
        expect(o.packsSha256).toMatch(/^[0-9a-f]{64}$/);
        // The packs the point's data is in, for prune: ids of packs in the vault, nothing more.
        expect(Array.isArray(o.packs) && o.packs.length > 0).toBe(true);
        for (const p of o.packs as string[]) await fs.access(path.join(a.vault.dir, 'packs', p.slice(0, 2), p));
        expect(o.id).toBe(rel.split('/')[2]);
        expect(o.machineId).toMatch(/^[0-9a-f]{32}$/);
        expect(o.keyId).toMatch(/^[0-9a-f]{32}$/);
        expect(o.jobId).toMatch(/^[0-9a-f]{32}$/);
        expect(o.time).toMatch(ISO);
        expect(o.manifest).toMatch(B64);
        const manifest = Buffer.from(o.manifest as string, 'base64');
        expect(manifest.includes(Buffer.from('"paths"')), 'manifest is not plain JSON').toBe(false);
        expect(manifest.includes(Buffer.from(M.content))).toBe(false);
        expect(manifest.includes(Buffer.from(src))).toBe(false);
      }
      if (rel.startsWith('keys/')) {
        // ids, times, base64 and algorithm names only
        for (const s of strings(o)) {
          const ok = HEX.test(s) || ISO.test(s) || B64.test(s) || ['scrypt', 'aes-256-gcm'].includes(s);
          expect(ok, `keys envelope string ${JSON.stringify(s)}`).toBe(true);
        }
      }
      for (const s of strings(o)) expect(s).not.toContain(M.content);
    }
    expect([...seen].sort()).toEqual(['config', 'keys', 'machines', 'points', 'vault']);
  });
});
