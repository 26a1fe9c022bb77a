/**
 * Every point names, for the vault's prune, exactly the packs its trees and chunks are in: after
 * a first backup, after changes (unchanged folders reused from the cache), unchanged, and after
 * prune condemned a pack that unchanged files are in (those are stored again, not counted on).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { BlobIndex } from '../../src/agent/blob-index.js';
import type { PackId } from '../../src/core/ids.js';
import type { PointInfo } from '../../src/vault/api.js';
import { layout } from '../../src/vault/layout.js';
import { prune, prunedPacks } from '../../src/vault/prune.js';
import { createMachine, readPoint, rootTree, withMethods, type TestMachine } from '../helpers/machine.js';
import { settled } from '../helpers/racy.js';

const MiB = 1024 * 1024;

async function named(m: TestMachine, point: PointInfo): Promise<PackId[]> {
  const data = await m.base.get(layout.point(point.machineId, point.id));
  return (JSON.parse(data!.toString('utf8')) as { packs: PackId[] }).packs;
}

/** The packs the point's trees and chunks are in, found where a backup would look (condemned packs left out). */
async function referenced(m: TestMachine, point: PointInfo): Promise<PackId[]> {
  const c = await readPoint(m, point);
  const index = await BlobIndex.load(m.ctx.session, m.keys, undefined, { forBackup: true });
  const out = new Set<PackId>();
  for (const t of c.trees) out.add(index.get('tree', t)!.pack);
  for (const f of c.files.values()) for (const id of f.content) out.add(index.get('data', id)!.pack);
  return [...out].sort();
}

async function write(file: string, data: string | Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, data);
}

describe('the packs a point names', () => {
  it('are the packs its blobs are in, through changes, reused folders and a condemned pack', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (const f of ['a/1.bin', 'b/3.bin', 'b/c/4.bin', 'd/5.bin']) await write(path.join(src, f), randomBytes(7 * MiB));
    await write(path.join(src, 'a/2.txt'), 'small\n');

    const first = await runBackup(m.ctx, { include: [src] });
    const firstPacks = await named(m, first.point);
    expect(firstPacks.length).toBeGreaterThanOrEqual(3); // two data packs and the listings' own
    expect(firstPacks).toEqual(await referenced(m, first.point));

    await fs.rm(path.join(src, 'b/3.bin'));
    await write(path.join(src, 'a/2.txt'), 'changed\n');
    await write(path.join(src, 'e/6.txt'), 'new\n');
    const second = await runBackup(m.ctx, { include: [src] });
    expect(await named(m, second.point)).toEqual(await referenced(m, second.point));

    // Nothing changed: nothing new, and the same packs. When the folders above src changed
    // meanwhile (see rootTree), once more.
    let prev = second;
    let third = await runBackup(m.ctx, { include: [src] });
    for (let i = 1; i < 5 && (await rootTree(m, third.point)) !== (await rootTree(m, prev.point)); i++) {
      prev = third;
      third = await runBackup(m.ctx, { include: [src] });
    }
    expect(await rootTree(m, third.point), 'the folders above src kept changing').toBe(await rootTree(m, prev.point));
    expect(third.stats.newBlobs).toBe(0);
    expect(await named(m, third.point)).toEqual(await named(m, prev.point));

    // Prune condemns the pack that d/5.bin's first chunk is in: the next backup stores what it
    // needs of that pack again, although the folder has not changed, and does not name it.
    const c = await readPoint(m, third.point);
    const pack = c.index.get('data', c.files.get(path.join(src, 'd/5.bin'))!.content[0]!)!.pack;
    await m.base.put(layout.condemned('20260101', pack), Buffer.alloc(0));
    const fourth = await runBackup(m.ctx, { include: [src] });
    expect(fourth.stats.newBlobs).toBeGreaterThan(0);
    const fourthPacks = await named(m, fourth.point);
    expect(fourthPacks).not.toContain(pack);
    expect(fourthPacks).toEqual(await referenced(m, fourth.point));
  });

  it('are right when the cache lost the packs of the trees (a backup killed after its point): those folders are stored anew', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (let i = 0; i < 4; i++) await write(path.join(src, `d${i}`, 'f.txt'), `small ${i}\n`);
    // Files changed less than two seconds before they are read are read again next time.
    await settled();
    await runBackup(m.ctx, { include: [src] });
    const cacheDir = path.join(m.ctx.paths.home, 'cache');
    for (const name of (await fs.readdir(cacheDir)).filter((n) => n.endsWith('.sqlite'))) {
      const db = new Database(path.join(cacheDir, name));
      expect(db.prepare('DELETE FROM tree_packs').run().changes).toBeGreaterThan(0);
      db.close();
    }
    await write(path.join(src, 'new.txt'), 'new\n');
    const again = await runBackup(m.ctx, { include: [src] });
    expect(again.stats.newBlobs).toBeGreaterThan(0);
    expect(await named(m, again.point)).toEqual(await referenced(m, again.point));
  });

  it('of a job stopped after a checkpoint are kept by prune until it resumes, which uploads them no more', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (const f of ['a.bin', 'b.bin', 'c.bin', 'd.bin']) await write(path.join(src, f), randomBytes(9 * MiB));
    const ac = new AbortController();
    const stopped = await runBackup(m.ctx, { include: [src], checkpointBytes: 8 * MiB, signal: ac.signal, onEvent: (e) => e.type === 'checkpoint' && ac.abort() }).catch((e: unknown) => e);
    expect(stopped).toMatchObject({ code: 'AZBK_CANCELLED' });

    // The checkpoints name the packs their job stored; a prune pass now condemns none of them.
    const kept = new Set<PackId>();
    for await (const key of m.base.list('checkpoint-packs/')) for (const p of JSON.parse((await m.base.get(key))!.toString()).packs as PackId[]) kept.add(p);
    let keptBytes = 0;
    for (const p of kept) keptBytes += (await m.base.stat(layout.pack(p)))!.size;
    expect(keptBytes).toBeGreaterThanOrEqual(8 * MiB);
    const pass = await prune(m.base, new Date());
    expect(pass.skipped).toBeNull();
    const { condemned } = await prunedPacks(m.base);
    expect(condemned.filter((p) => kept.has(p))).toEqual([]);

    // The resumed job counts on what those packs hold (random data: their size is what it stores again without them).
    const resumed = await runBackup(m.ctx, { include: [src], checkpointBytes: 8 * MiB });
    expect(resumed.resumed).not.toBeNull();
    expect(resumed.stats.newBytes).toBeLessThan(36 * MiB - keptBytes + MiB);
    expect(await named(m, resumed.point)).toEqual(await referenced(m, resumed.point));
    // The point is written: the checkpoints and their pack lists went.
    const left: string[] = [];
    for await (const key of m.base.list('checkpoint-packs/')) left.push(key);
    expect(left).toEqual([]);
  });

  it('of a backup whose point the vault takes back, as prune is deleting a pack it names, are stored again at once', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (const f of ['a.bin', 'b.bin']) await write(path.join(src, f), randomBytes(3 * MiB));
    // Files changed within two seconds before a backup read them are read again by the next one:
    // here only a lost pack may make the retry read them again.
    await settled();
    // As the backup writes its point, a prune pass marks the pack of the files' data gone (the
    // largest of the packs the point names: the others hold listings).
    let doomed: PackId | undefined;
    const session = withMethods(m.ctx.session, (s) => ({
      putPoint: async (p) => {
        if (doomed === undefined) {
          const sizes = await Promise.all(p.packs.map(async (id) => [id, (await s.statPack(id)) ?? 0] as const));
          doomed = sizes.reduce((a, b) => (b[1] > a[1] ? b : a))[0];
          await m.base.put(layout.gone(doomed), Buffer.from('{}'));
        }
        return s.putPoint(p);
      },
    }));
    const events: unknown[] = [];
    const res = await runBackup({ ...m.ctx, session }, { include: [src], onEvent: (e) => e.type === 'retry' && events.push(e) });
    expect(doomed).toBeDefined();
    expect(events).toEqual([{ type: 'retry', why: 'packs gone' }]);
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toEqual([{ id: res.point.id, machineId: res.point.machineId, time: res.point.time }]);
    const packs = await named(m, res.point);
    expect(packs).not.toContain(doomed);
    expect(packs).toEqual(await referenced(m, res.point));
    // The files were read twice, first for the point refused, then to store their data again,
    // and their data (random: it does not compress) went up twice.
    expect(res.stats.readBytes).toBe(12 * MiB);
    expect(res.stats.uploadedBytes).toBeGreaterThan(12 * MiB);
  });
});
