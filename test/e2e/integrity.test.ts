/**
 * Damage in the vault: a flipped byte in a pack fails only the files whose data it holds (exit 3,
 * listed), a damaged directory listing or point manifest gives a clear error, never a stack trace,
 * and no file is ever restored with wrong content.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { backup, expectExit, expectNoStack, parseJson, setupMachine, show, tempDir } from '../helpers/cli.js';
import { exists, flipByte, listFiles, vaultObjects, walk } from '../helpers/fs-tree.js';

async function setup(ctx: Pick<TestContext, 'onTestFinished'>) {
  const root = await tempDir(ctx);
  const src = path.join(root, 'data');
  await fs.mkdir(path.join(src, 'sub'), { recursive: true });
  const files = ['a.bin', 'b.bin', 'c.bin', 'sub/d.bin'].map((f) => path.join(src, f));
  for (const f of files) await fs.writeFile(f, randomBytes(64 * 1024));
  const a = await setupMachine(root);
  await backup(a, [src]);
  // File data and folder listings go into packs of their own: one of each here.
  const packs = await vaultObjects(a.vault.dir, 'packs');
  expect(packs, 'the small backup fits one pack of data and one of listings').toHaveLength(2);
  const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(p)).size));
  const [listings, data] = sizes[0]! < sizes[1]! ? packs : [packs[1]!, packs[0]!];
  return { root, src, files, a, pack: data!, listings: listings! };
}

/** Asserts every file restored under `target` has the bytes of its source, and returns their sources. */
async function expectRestoredFilesCorrect(target: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of await listFiles(target)) {
    expect(path.basename(f)).not.toMatch(/^\.azbk-restore-/);
    const original = '/' + path.relative(target, f);
    expect((await fs.readFile(f)).equals(await fs.readFile(original)), `${original} restored with wrong content`).toBe(true);
    out.push(original);
  }
  return out.sort();
}

describe.concurrent('vault damage', () => {
  it('a flipped byte in a pack fails only the affected file; the rest is restored (exit 3)', async (ctx) => {
    const { root, files, a, pack } = await setup(ctx);
    await flipByte(pack, 20); // inside the first sealed blob, past its 12-byte nonce

    const target = path.join(root, 'target');
    const r = await a.run(['restore', '--point', 'latest', '--target', target, '--json']);
    expectExit(r, 3);
    expectNoStack(r);
    const res = parseJson(r);
    expect(res.status).toBe('partial');
    expect(res.failed, show(r)).toHaveLength(1);
    const failed = res.failed[0].path as string;
    expect(files).toContain(failed);
    expect(res.failed[0].reason).toMatch(/fail|damag|corrupt|authentic/i);
    const restored = await expectRestoredFilesCorrect(target);
    expect(restored).toEqual(files.filter((f) => f !== failed).sort());
    expect(await exists(path.join(target, failed))).toBe(false);

    // In text mode the damaged file is named too.
    const text = await a.run(['restore', '--point', 'latest', '--target', path.join(root, 'target2')]);
    expectExit(text, 3);
    expect(text.stdout + text.stderr).toContain(failed);
    expectNoStack(text);
  });

  it('a damaged directory listing gives a clear error and restores no wrong data', async (ctx) => {
    const { root, a, listings } = await setup(ctx);
    // The blob just before the listings pack's header is the last one written: the top listing.
    const data = await fs.readFile(listings);
    const headerLength = data.readUInt32LE(data.length - 12);
    const headerStart = data.length - 12 - headerLength;
    await flipByte(listings, headerStart - 1);

    const target = path.join(root, 'target');
    const r = await a.run(['restore', '--point', 'latest', '--target', target, '--json']);
    expectNoStack(r);
    expect([1, 3], show(r)).toContain(r.code);
    expect(r.stdout + r.stderr).toMatch(/damaged|corrupt|failed authentication/i);
    if (r.code === 1) expect(r.stderr).toMatch(/^azbk: error AZBK_VAULT_CORRUPT: .+\n  hint: .+\n$/);
    if (r.code === 3) expect(parseJson(r).failed.length).toBeGreaterThan(0);
    if (await exists(target)) await expectRestoredFilesCorrect(target);
  });

  it("a folder whose own listing is damaged is still given its mode and times, from its parent's listing", async (ctx) => {
    const root = await tempDir(ctx);
    const src = path.join(root, 'data');
    const sub = path.join(src, 'sub');
    await fs.mkdir(sub, { recursive: true });
    await fs.writeFile(path.join(sub, 'd.bin'), randomBytes(1000));
    await fs.writeFile(path.join(src, 'a.bin'), randomBytes(1000));
    await fs.chmod(sub, 0o750);
    const when = new Date('2001-02-03T04:05:06Z');
    await fs.utimes(sub, when, when);
    const a = await setupMachine(root);
    await backup(a, [src]);
    // Listings are sealed deepest first: the listings pack begins with sub's (past its nonce here).
    const packs = await vaultObjects(a.vault.dir, 'packs');
    const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(p)).size));
    const listings = sizes[0]! < sizes[1]! ? packs[0]! : packs[1]!;
    await flipByte(listings, 20);

    const target = path.join(root, 'target');
    const r = await a.run(['restore', '--point', 'latest', '--target', target, '--json']);
    expectExit(r, 3);
    expectNoStack(r);
    expect(parseJson(r).failed.map((f: { path: string }) => f.path)).toEqual([sub]);
    const st = await fs.stat(path.join(target, sub));
    expect((st.mode & 0o7777).toString(8)).toBe('750');
    expect(st.mtime.toISOString()).toBe(when.toISOString());
    expect(await fs.readdir(path.join(target, sub))).toEqual([]);
    await expectRestoredFilesCorrect(target);
  });

  it('a damaged index file is named when what it lists cannot be found, and verify --repair-index names its packs again', async (ctx) => {
    const { root, files, a, pack: dataPack } = await setup(ctx);
    const whole = await a.run(['verify', '--repair-index']);
    expectExit(whole, 0);
    expect(whole.stdout).toContain('Index: an intact index file names every pack of the vault: nothing to repair.');
    expect(await vaultObjects(a.vault.dir, 'index')).toHaveLength(1);
    const [index] = await vaultObjects(a.vault.dir, 'index');
    const name = path.basename(index!);
    await flipByte(index!, 100);
    // Another machine of the same key (the one that wrote it keeps a copy of its own).
    const b = await setupMachine(root, { name: 'B', vault: a.vault });
    const target = path.join(root, 'target');
    for (let run = 0; run < 2; run++) {
      const r = await b.run(['restore', '--point', 'latest', '--machine', 'A', '--passphrase-file', a.passphraseFile, '--target', target]);
      expectExit(r, 1);
      expectNoStack(r);
      expect(r.stderr).toMatch(new RegExp(`is named by no intact index file of the vault \\(index file ${name.slice(0, 12)} is damaged: azbk verify --repair-index names its packs again from their own headers\\)`));
    }
    const found = await b.run(['verify']);
    expectExit(found, 4);
    expect(found.stdout).toContain(`index ${name}: `);
    expect(found.stdout).toContain('(azbk verify --repair-index names its packs again from their own headers)');

    // A machine of another key shares the vault: its pack is not this key's to name.
    const other = await setupMachine(root, { name: 'C', vault: a.vault, passphrase: 'another passphrase of sixteen+' });
    const otherSrc = path.join(root, 'other');
    await fs.mkdir(otherSrc);
    await fs.writeFile(path.join(otherSrc, 'o.txt'), 'other key');
    await backup(other, [otherSrc]);
    const repaired = await b.run(['verify', '--repair-index', '--json']);
    expectExit(repaired, 0);
    const j = parseJson(repaired);
    // The two packs of A (data and listings) named again in one new index file; C's two left alone.
    expect(j.indexRepair).toMatchObject({ unnamed: 4, named: 2, foreign: 2, damaged: [], damagedIndex: [name] });
    expect(j.indexRepair.indexFiles).toHaveLength(1);
    expect(j.indexRepair.blobs).toBeGreaterThanOrEqual(5);
    expect(j.repairedIndex).toEqual([name]);
    expect(j.problems).toEqual([]);
    expect(await vaultObjects(a.vault.dir, 'index')).toHaveLength(3);
    // Restores work again, and a second repair finds nothing to name.
    expectExit(await b.run(['restore', '--point', 'latest', '--machine', 'A', '--passphrase-file', a.passphraseFile, '--target', target]), 0);
    expect(await expectRestoredFilesCorrect(target)).toEqual([...files].sort());
    const again = await b.run(['verify', '--repair-index']);
    expectExit(again, 0);
    expect(again.stdout).toContain('Index: 2 packs named by no intact index file of this key; 0 of this key named again from their headers in 0 new index files (0 blobs); 2 of another key, left to its machines.');
    expect(again.stdout).toContain('1 damaged index file whose packs a repair named again: not a problem.');
    // A pack lost after the repair is said to be missing, not blamed on the index file repaired around.
    await fs.rm(dataPack);
    // (the second run knows the pack is missing: its index leaves it out, so its chunks are named by none)
    for (const run of [1, 2]) {
      const lost = await b.run(['restore', '--point', 'latest', '--machine', 'A', '--passphrase-file', a.passphraseFile, '--target', path.join(root, `lost${run}`), '--json']);
      expectExit(lost, 3);
      const reasons = parseJson(lost).failed.map((f: { reason: string }) => f.reason).join('\n');
      expect(reasons, `run ${run}`).toContain('is missing from the vault');
      expect(reasons, `run ${run}`).not.toContain('no intact index file');
    }
  });

  it('verify --repair-index leaves a damaged index file a problem while a pack it named has a damaged header', async (ctx) => {
    const { root, a, listings } = await setup(ctx);
    const [index] = await vaultObjects(a.vault.dir, 'index');
    const name = path.basename(index!);
    await flipByte(index!, 100);
    // The last byte of the listings pack's header (before its length and the magic).
    await flipByte(listings, (await fs.stat(listings)).size - 13);
    const b = await setupMachine(root, { name: 'B', vault: a.vault });
    const r = await b.run(['verify', '--repair-index']);
    expectExit(r, 4);
    expect(r.stdout).toContain(`  pack ${path.basename(listings)}: its header is damaged; not named (what only it holds cannot be found)`);
    expect(r.stdout).toContain(`index ${name}: `);
    expect(r.stdout).not.toContain('whose packs a repair named again');
    const again = await b.run(['verify']);
    expectExit(again, 4);
    expect(again.stdout).toContain(`index ${name}: `);
  });

  it("a damaged point manifest gives a clear error (exit 1) and writes nothing", async (ctx) => {
    const { root, src, a } = await setup(ctx);
    const [pointFile] = await vaultObjects(a.vault.dir, 'points');
    const envelope = JSON.parse(await fs.readFile(pointFile!, 'utf8'));
    const manifest = Buffer.from(envelope.manifest, 'base64');
    const mid = Math.floor(manifest.length / 2);
    manifest[mid] = manifest[mid]! ^ 0x40;
    envelope.manifest = manifest.toString('base64');
    await fs.writeFile(pointFile!, JSON.stringify(envelope));

    const target = path.join(root, 'target');
    const r = await a.run(['restore', '--point', 'latest', '--target', target]);
    expectExit(r, 1);
    expectNoStack(r);
    expect(r.stderr).toMatch(/^azbk: error AZBK_VAULT_CORRUPT: .+\n  hint: .+\n$/);
    expect(await exists(target)).toBe(false);
    // Restoring into the original place leaves the source alone too.
    const before = await walk(src);
    expectExit(await a.run(['restore', '--point', 'latest', '--conflict', 'overwrite']), 1);
    expect(await walk(src)).toEqual(before);
    // Listing the points still works: it shows the damaged one as such, names it, and exits 3.
    const p = await a.run(['points']);
    expectExit(p, 3);
    expectNoStack(p);
    expect(p.stdout).toMatch(new RegExp(`^${envelope.id} .*\\[damaged: cannot be read\\]$`, 'm'));
    expect(p.stderr).toContain(`1 recovery point(s) cannot be read`);
    expect(p.stderr).toContain(`  ${envelope.id}: `);
    const pr = await a.run(['points', '--json']);
    expectExit(pr, 3);
    const pj = parseJson(pr);
    expect(pj.points.map((x: { id: string; damaged?: string }) => [x.id, typeof x.damaged])).toEqual([[envelope.id, 'string']]);
  });

  it('a damaged newest point is named when "latest" is asked for, with the point before it to give instead', async (ctx) => {
    const { root, src, a } = await setup(ctx);
    await fs.writeFile(path.join(src, 'e.bin'), randomBytes(1000));
    await backup(a, [src]);
    const points = (await vaultObjects(a.vault.dir, 'points')).sort();
    expect(points).toHaveLength(2);
    const [older, newest] = points.map((p) => path.basename(p)) as [string, string];
    const envelope = JSON.parse(await fs.readFile(points[1]!, 'utf8'));
    const manifest = Buffer.from(envelope.manifest, 'base64');
    manifest[manifest.length - 5] = manifest[manifest.length - 5]! ^ 0x01;
    envelope.manifest = manifest.toString('base64');
    await fs.writeFile(points[1]!, JSON.stringify(envelope));

    const target = path.join(root, 'target');
    for (const args of [['restore', '--point', 'latest', '--target', target], ['ls', '--point', 'latest']]) {
      const r = await a.run(args);
      expectExit(r, 1);
      expectNoStack(r);
      expect(r.stderr).toContain(`AZBK_VAULT_CORRUPT: Recovery point ${newest} is damaged`);
      expect(r.stderr).toContain(`hint: Give --point ${older}, the point before it`);
    }
    expect(await exists(target)).toBe(false);
    // The point the hint names restores.
    expectExit(await a.run(['restore', '--point', older, '--target', target]), 0);
    expect(await expectRestoredFilesCorrect(target)).toHaveLength(4);
  });
});
