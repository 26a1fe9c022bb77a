/**
 * The blob index with its local cache: index files read once are kept in a compact form, give the
 * same locations as the vault's copies, are not read from the vault again, and a damaged cached
 * copy is ignored in favour of the vault's.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { BlobWriter } from '../../src/agent/blob-writer.js';
import { FileCache } from '../../src/agent/file-cache.js';
import type { BlobId, PackId } from '../../src/core/ids.js';
import { encodeIndex } from '../../src/core/index-file.js';
import type { VaultSession } from '../../src/vault/api.js';
import { layout } from '../../src/vault/layout.js';
import { createMachine, withMethods } from '../helpers/machine.js';

/** The session, counting index reads. */
function counting(inner: VaultSession): { session: VaultSession; reads: () => number } {
  let reads = 0;
  const session = withMethods(inner, (s) => ({ readIndex: (name) => (reads++, s.readIndex(name)) }));
  return { session, reads: () => reads };
}

describe('blob index', () => {
  it('finds every one of many blobs by type and id, and no other', () => {
    const index = new BlobIndex();
    const entries = Array.from({ length: 5000 }, (_, i) => ({
      type: (i % 3 === 0 ? 'tree' : 'data') as 'tree' | 'data',
      id: randomBytes(32).toString('hex') as BlobId,
      offset: i * 100,
      length: 100,
      rawLength: 200 + i,
    }));
    // Several packs, and one blob stored twice: the later location wins.
    for (let i = 0; i < entries.length; i += 700) index.addPack(`${String(i).padStart(64, '0')}` as PackId, entries.slice(i, i + 700));
    const again = { ...entries[42]!, offset: 7 };
    index.addPack('f'.repeat(64) as PackId, [again]);
    expect(index.size).toBe(5000);
    entries.forEach((e, i) => {
      const loc = index.get(e.type, e.id);
      expect(loc?.entry).toEqual(i === 42 ? again : e);
      expect(index.has(e.type === 'tree' ? 'data' : 'tree', e.id)).toBe(false);
    });
    expect(index.get('data', entries[42]!.id)?.pack ?? index.get('tree', entries[42]!.id)?.pack).toBe('f'.repeat(64));
    for (let i = 0; i < 1000; i++) expect(index.has('data', randomBytes(32).toString('hex') as BlobId)).toBe(false);
    expect(index.has('data', 'not hex' as BlobId)).toBe(false);
  });

  it('tells apart blobs whose ids share their first bytes', () => {
    const index = new BlobIndex();
    const head = randomBytes(8).toString('hex');
    const entries = Array.from({ length: 50 }, (_, i) => ({ type: 'data' as const, id: (head + randomBytes(24).toString('hex')) as BlobId, offset: i, length: 1, rawLength: 1 }));
    index.addPack('a'.repeat(64) as PackId, entries);
    expect(index.size).toBe(50);
    entries.forEach((e) => expect(index.get('data', e.id)?.entry.offset).toBe(e.offset));
    expect(index.has('data', (head + randomBytes(24).toString('hex')) as BlobId)).toBe(false);
  });
});

describe('packs found damaged', () => {
  // A blob of a damaged pack stored again elsewhere is read there; one stored nowhere else is still
  // read from the damaged pack (it may be whole); a backup counts on none of them.
  it('come last in a restore\'s index, whatever order the index files load in, and not at all in a backup\'s', async () => {
    const m = await createMachine();
    const first = new BlobWriter(m.ctx.session, m.keys, new BlobIndex(), { packSize: 1 << 20 });
    const a = await first.add('data', Buffer.from('stored twice '.repeat(50)));
    const c = await first.add('data', Buffer.from('stored once '.repeat(50)));
    await first.flush();
    const second = new BlobWriter(m.ctx.session, m.keys, new BlobIndex(), { packSize: 1 << 20 });
    expect(await second.add('data', Buffer.from('stored twice '.repeat(50)))).toBe(a);
    await second.flush();
    const plain = await BlobIndex.load(m.ctx.session, m.keys);
    const once = plain.get('data', c)!.pack;
    // The pack the index file read last gives `a` (their names are random): taken as the damaged
    // one, so that loading it last is what makes the difference.
    const damaged = plain.get('data', a)!.pack;
    expect((await m.ctx.session.listIndex()).length).toBe(2);

    const cache = FileCache.open(path.join(m.dir, 'cache.sqlite'));
    try {
      for (const [how, load] of [
        ['given', () => BlobIndex.load(m.ctx.session, m.keys, undefined, { last: [damaged] })],
        ['given, through the cache', () => BlobIndex.load(m.ctx.session, m.keys, cache, { last: [damaged] })],
        ['recorded in the cache', async () => {
          cache.addDamagedPacks([damaged]);
          return BlobIndex.load(m.ctx.session, m.keys, cache);
        }],
      ] as const) {
        const index = await load();
        expect(index.get('data', a)!.pack, how).not.toBe(damaged);
        expect(index.get('data', c)!.pack, how).toBe(once);
      }
      const forBackup = await BlobIndex.load(m.ctx.session, m.keys, cache, { forBackup: true });
      expect(forBackup.get('data', a)!.pack).not.toBe(damaged);
      expect(forBackup.has('data', c), 'a backup stores it again when it was in the damaged pack').toBe(once !== damaged);
    } finally {
      cache.close();
    }
  });
});

describe('blob index cache', () => {
  it('keeps index files locally and gives the same locations without reading the vault again', async () => {
    const m = await createMachine();
    const writer = new BlobWriter(m.ctx.session, m.keys, new BlobIndex(), { packSize: 4096 });
    const ids: { type: 'data' | 'tree'; id: BlobId }[] = [];
    for (let i = 0; i < 40; i++) {
      const type = i % 5 === 0 ? 'tree' : 'data';
      ids.push({ type, id: await writer.add(type, Buffer.from(`blob ${i} `.repeat(100 + i))) });
      if (i % 13 === 12) await writer.flush();
    }
    await writer.flush();
    const fromVault = await BlobIndex.load(m.ctx.session, m.keys);
    expect(fromVault.size).toBe(40);

    const cache = FileCache.open(path.join(m.dir, 'cache.sqlite'));
    try {
      const first = counting(m.ctx.session);
      await BlobIndex.load(first.session, m.keys, cache);
      expect(first.reads()).toBe(writer.stats.indexFiles);

      const second = counting(m.ctx.session);
      const cached = await BlobIndex.load(second.session, m.keys, cache);
      expect(second.reads(), 'every index file came from the cache').toBe(0);
      expect(cached.size).toBe(40);
      for (const { type, id } of ids) expect(cached.get(type, id)).toEqual(fromVault.get(type, id));
      expect(cached.has('tree', ids[1]!.id), 'a data blob is not a tree').toBe(false);

      // A damaged cached copy is not used: the vault's is read again.
      const [name] = await m.ctx.session.listIndex();
      cache.putIndex(name!, Buffer.from([1, 0, 0, 0, 9]));
      const third = counting(m.ctx.session);
      const repaired = await BlobIndex.load(third.session, m.keys, cache);
      expect(third.reads()).toBe(1);
      for (const { type, id } of ids) expect(repaired.get(type, id)).toEqual(fromVault.get(type, id));
    } finally {
      cache.close();
    }
  });

  it('reads an index file of another key family, or one that is not an index file, once: the cache remembers that it gives nothing', async () => {
    const m = await createMachine();
    const writer = new BlobWriter(m.ctx.session, m.keys, new BlobIndex(), { packSize: 4096 });
    const id = await writer.add('data', Buffer.from('a blob '.repeat(100)));
    await writer.flush();
    // Any machine may put bytes under any new name: here 1 MiB of noise, and a file with this
    // key family's header and a damaged body.
    const noise = randomBytes(1024 * 1024);
    const forged = Buffer.concat([(await m.ctx.session.readIndex((await m.ctx.session.listIndex())[0]!)).subarray(0, 64), randomBytes(500)]);
    const bad = [noise, forged].map((bytes) => createHash('sha256').update(bytes).digest('hex'));
    for (const [i, bytes] of [noise, forged].entries()) await m.ctx.session.putIndex(bad[i]!, bytes);
    const cache = FileCache.open(path.join(m.dir, 'cache.sqlite'));
    try {
      const first = counting(m.ctx.session);
      const index = await BlobIndex.load(first.session, m.keys, cache);
      expect(first.reads()).toBe(3);
      expect(index.size).toBe(1);
      expect(index.has('data', id)).toBe(true);
      // Both are damaged for this key, and named where a blob is not found.
      expect([...index.damaged].sort()).toEqual([...bad].sort());
      expect(index.unindexed('chunk 0123456789ab')).toMatch(/^chunk 0123456789ab is named by no intact index file of the vault \(index file [0-9a-f]{12} and 1 more are damaged: azbk verify --repair-index names/);
      const second = counting(m.ctx.session);
      const again = await BlobIndex.load(second.session, m.keys, cache);
      expect(again.size).toBe(1);
      expect(second.reads()).toBe(0);
      expect([...again.damaged].sort()).toEqual([...bad].sort());
    } finally {
      cache.close();
    }
  });

  it('has the index files a backup wrote in the cache already: the next one reads none', async () => {
    const m = await createMachine();
    const cache = FileCache.open(path.join(m.dir, 'cache.sqlite'));
    try {
      const writer = new BlobWriter(m.ctx.session, m.keys, new BlobIndex(), { packSize: 4096, indexCache: cache });
      const ids: BlobId[] = [];
      for (let i = 0; i < 20; i++) {
        ids.push(await writer.add('data', Buffer.from(`written ${i} `.repeat(200))));
        if (i % 7 === 6) await writer.flush();
      }
      await writer.flush();
      expect(writer.stats.indexFiles).toBeGreaterThan(1);
      const next = counting(m.ctx.session);
      const index = await BlobIndex.load(next.session, m.keys, cache);
      expect(next.reads()).toBe(0);
      for (const id of ids) expect(index.has('data', id)).toBe(true);
    } finally {
      cache.close();
    }
  });

  it('keeps the whole index as a snapshot: the next load copies it, and falls back when it is stale, damaged or malformed', async () => {
    const m = await createMachine();
    const file = path.join(m.dir, 'cache.sqlite');
    const cache = FileCache.open(file);
    try {
      const ids: { type: 'data' | 'tree'; id: BlobId }[] = [];
      const write = async (from: number, to: number) => {
        const index = await BlobIndex.load(m.ctx.session, m.keys, cache);
        const writer = new BlobWriter(m.ctx.session, m.keys, index, { packSize: 4096, indexCache: cache });
        for (let i = from; i < to; i++) {
          const type = i % 4 === 0 ? 'tree' : 'data';
          ids.push({ type, id: await writer.add(type, Buffer.from(`snapshot ${i} `.repeat(150))) });
          if (i % 9 === 8) await writer.flush();
        }
        await writer.flush();
        index.saveSnapshot(cache);
      };
      await write(0, 30);
      const names = await m.ctx.session.listIndex();
      expect(cache.getIndexSnapshot()?.names.slice().sort()).toEqual([...names].sort());

      // Loaded from the snapshot: no index file is read, from the vault or from the local copies.
      const copies = vi.spyOn(cache, 'getIndex');
      const reads = counting(m.ctx.session);
      const fromVault = await BlobIndex.load(m.ctx.session, m.keys);
      const loaded = await BlobIndex.load(reads.session, m.keys, cache);
      expect(reads.reads()).toBe(0);
      expect(copies).not.toHaveBeenCalled();
      expect(loaded.size).toBe(30);
      for (const { type, id } of ids) expect(loaded.get(type, id)).toEqual(fromVault.get(type, id));
      expect(loaded.has('data', ids[0]!.id), 'a tree is not a data blob').toBe(false);

      // More index files: only those are read, and the snapshot saved again covers them too.
      await write(30, 45);
      const more = await m.ctx.session.listIndex();
      expect(cache.getIndexSnapshot()?.names.length).toBe(more.length);
      copies.mockClear();
      const grown = await BlobIndex.load(m.ctx.session, m.keys, cache);
      expect(copies).not.toHaveBeenCalled();
      expect(grown.size).toBe(45);
      for (const { type, id } of ids) expect(grown.has(type, id)).toBe(true);

      // A snapshot naming an index file the vault does not list, one whose bytes changed, and one
      // that is no index at all are each left alone: the index is built from the local copies.
      const snap = cache.getIndexSnapshot()!;
      const fallsBack = async () => {
        copies.mockClear();
        const index = await BlobIndex.load(m.ctx.session, m.keys, cache);
        expect(copies).toHaveBeenCalledTimes(more.length);
        expect(index.size).toBe(45);
        for (const { type, id } of ids) expect(index.get(type, id)).toEqual(grown.get(type, id));
      };
      cache.putIndexSnapshot([...snap.names, 'f'.repeat(64)], snap.data, snap.skip);
      await fallsBack();
      cache.putIndexSnapshot(snap.names, Buffer.from('not an index'), snap.skip);
      await fallsBack();
      cache.putIndexSnapshot(snap.names, snap.data, snap.skip);
      const snapFile = file.replace(/\.sqlite$/, '.index');
      const flipped = await fs.readFile(snapFile);
      flipped[flipped.length - 1]! ^= 1;
      await fs.writeFile(snapFile, flipped);
      expect(cache.getIndexSnapshot(), 'its checksum no longer matches').toBeUndefined();
      await fallsBack();
      await fs.writeFile(snapFile, flipped.subarray(0, 30));
      expect(cache.getIndexSnapshot(), 'too short').toBeUndefined();
      await fallsBack();
      // A snapshot of the first version (columns without spare rows) is refused; so is one that
      // says it has fewer rows than blobs.
      const v1 = Buffer.from(snap.data);
      v1.writeUInt32LE(1, 4);
      cache.putIndexSnapshot(snap.names, v1, snap.skip);
      await fallsBack();
      const fewRows = Buffer.from(snap.data);
      fewRows.writeUInt32LE(fewRows.readUInt32LE(8) - 1, 12);
      cache.putIndexSnapshot(snap.names, fewRows, snap.skip);
      await fallsBack();
      // A slot of the table pointing past the last blob: the layout check refuses it.
      const badSlot = Buffer.from(snap.data);
      badSlot.writeUInt32LE(46, badSlot.length - 4);
      cache.putIndexSnapshot(snap.names, badSlot, snap.skip);
      await fallsBack();

      // Loaded from a snapshot, the index still grows past its table (rehashed) and finds everything.
      cache.putIndexSnapshot(snap.names, snap.data, snap.skip);
      const big = await BlobIndex.load(m.ctx.session, m.keys, cache);
      const extra = Array.from({ length: 3000 }, (_, i) => ({ type: 'data' as const, id: randomBytes(32).toString('hex') as BlobId, offset: i, length: 1, rawLength: 1 }));
      big.addPack('e'.repeat(64) as PackId, extra);
      expect(big.size).toBe(3045);
      for (const e of extra) expect(big.has('data', e.id)).toBe(true);
      for (const { type, id } of ids) expect(big.get(type, id)).toEqual(grown.get(type, id));
      // A pack added on its own is named by no index file: such an index is not kept, also when
      // index files were added too.
      const more2 = new BlobWriter(m.ctx.session, m.keys, big, { packSize: 4096, indexCache: cache });
      await more2.add('data', Buffer.from('one more '.repeat(100)));
      await more2.flush();
      big.saveSnapshot(cache);
      expect(cache.getIndexSnapshot()?.data.equals(snap.data)).toBe(true);
    } finally {
      cache.close();
    }
  });

  it('a few index files added to a large index go into no new snapshot: the next load reads their local copies after it', async () => {
    const m = await createMachine();
    const cache = FileCache.open(path.join(m.dir, 'cache.sqlite'));
    try {
      const ids: BlobId[] = [];
      /** loads the index, adds `count` blobs in one index file, and saves the snapshot as a backup does */
      const add = async (count: number) => {
        const index = await BlobIndex.load(m.ctx.session, m.keys, cache);
        const writer = new BlobWriter(m.ctx.session, m.keys, index, { packSize: 1 << 20, indexCache: cache });
        for (let i = 0; i < count; i++) ids.push(await writer.add('data', Buffer.from(`few ${ids.length} `.repeat(50))));
        await writer.flush();
        index.saveSnapshot(cache);
        return index;
      };
      await add(80);
      const first = cache.getIndexSnapshot()!;
      expect(first.names).toHaveLength(1);

      // 4 blobs in one more index file, then 5 more (9 of 89: under an eighth): the snapshot stays.
      await add(4);
      await add(5);
      expect(cache.getIndexSnapshot()!.data.equals(first.data)).toBe(true);
      const copies = vi.spyOn(cache, 'getIndex');
      const reads = counting(m.ctx.session);
      const loaded = await BlobIndex.load(reads.session, m.keys, cache);
      expect(reads.reads(), 'nothing is read from the vault').toBe(0);
      expect(copies).toHaveBeenCalledTimes(2);
      expect(loaded.size).toBe(89);
      for (const id of ids) expect(loaded.has('data', id)).toBe(true);
      // The 9 went into the snapshot's spare rows: its columns are still views of what was read.
      const columns = loaded as unknown as { ids: Buffer; table: Int32Array };
      expect(columns.ids.buffer, 'no column was copied to grow').toBe(columns.table.buffer);

      // 3 more (12 of 92, more than an eighth): a new snapshot covers every index file.
      copies.mockClear();
      await add(3);
      const names = await m.ctx.session.listIndex();
      expect(cache.getIndexSnapshot()!.names.slice().sort()).toEqual([...names].sort());
      copies.mockClear();
      const all = await BlobIndex.load(m.ctx.session, m.keys, cache);
      expect(copies).not.toHaveBeenCalled();
      expect(all.size).toBe(92);
      for (const id of ids) expect(all.has('data', id)).toBe(true);
    } finally {
      cache.close();
    }
  });

  it('drops the snapshot table of an older cache with its space, and removes what a killed save left', async () => {
    const m = await createMachine();
    const file = path.join(m.dir, 'cache.sqlite');
    FileCache.open(file).close();
    const raw = new Database(file);
    raw.exec('CREATE TABLE index_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), names TEXT NOT NULL, sum BLOB NOT NULL, data BLOB NOT NULL)');
    raw.prepare('INSERT INTO index_snapshot VALUES (1, ?, ?, ?)').run('[]', Buffer.alloc(32), randomBytes(4 << 20));
    raw.close();
    expect((await fs.stat(file)).size).toBeGreaterThan(4 << 20);
    const cache = FileCache.open(file);
    try {
      // A temporary file of a save killed an hour ago goes; one that may be being written stays.
      const snap = file.replace(/\.sqlite$/, '.index');
      const [stale, fresh] = [`${snap}.0123456789ab.tmp`, `${snap}.ba9876543210.tmp`];
      await fs.writeFile(stale, 'killed');
      await fs.writeFile(fresh, 'writing');
      const hourAgo = new Date(Date.now() - 3_600_000);
      await fs.utimes(stale, hourAgo, hourAgo);
      cache.putIndexSnapshot(['a'.repeat(64)], Buffer.alloc(24), 'skip');
      expect((await fs.readdir(m.dir)).filter((n) => n.startsWith('cache.index')).sort()).toEqual(['cache.index', path.basename(fresh)]);
      expect(cache.getIndexSnapshot()).toEqual({ names: ['a'.repeat(64)], data: Buffer.alloc(24), skip: 'skip' });
    } finally {
      cache.close();
    }
    expect((await fs.stat(file)).size, 'the table and its space are gone').toBeLessThan(1 << 20);
  });

  it('a snapshot never holds the blobs of an index file that could not be written', async () => {
    const m = await createMachine({ attempts: 1 });
    const cache = FileCache.open(path.join(m.dir, 'cache.sqlite'));
    try {
      const index = await BlobIndex.load(m.ctx.session, m.keys, cache);
      const writer = new BlobWriter(m.ctx.session, m.keys, index, { packSize: 4096, indexCache: cache });
      const stored = await writer.add('data', Buffer.from('stored '.repeat(300)));
      await writer.flush();
      m.faulty.fail('put', { match: (key) => key.startsWith('index/'), times: Infinity });
      const lost = await writer.add('data', Buffer.from('lost '.repeat(300)));
      await expect(writer.flush()).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
      index.saveSnapshot(cache);
      const again = await BlobIndex.load(m.ctx.session, m.keys, cache);
      expect(again.has('data', stored)).toBe(true);
      expect(again.has('data', lost), 'its pack is named by no index file').toBe(false);
    } finally {
      cache.close();
    }
  });

  it('a backup leaves a snapshot of the index for the next command', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(src);
    for (let i = 0; i < 20; i++) await fs.writeFile(path.join(src, `f${i}.txt`), `file ${i}\n`.repeat(100 + i));
    await runBackup(m.ctx, { include: [src] });
    const cache = FileCache.forVault(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId);
    try {
      expect(cache.getIndexSnapshot()?.names.slice().sort()).toEqual((await m.ctx.session.listIndex()).slice().sort());
      // Beside the database, readable by the owner only, with no temporary file left behind.
      const dir = path.dirname(cache.file);
      expect((await fs.readdir(dir)).filter((n) => !/\.sqlite(-wal|-shm)?$/.test(n))).toEqual([path.basename(cache.file).replace(/\.sqlite$/, '.index')]);
      if (process.platform !== 'win32') expect((await fs.stat(cache.file.replace(/\.sqlite$/, '.index'))).mode & 0o777).toBe(0o600);
      const copies = vi.spyOn(cache, 'getIndex');
      const index = await BlobIndex.load(m.ctx.session, m.keys, cache);
      expect(copies).not.toHaveBeenCalled();
      expect(index.size).toBe((await BlobIndex.load(m.ctx.session, m.keys)).size);
    } finally {
      cache.close();
    }
  });

  it('leaves out the blobs of packs prune deleted, and for a backup those it condemned, wherever the index files put them', async () => {
    const id = randomBytes(32).toString('hex') as BlobId;
    const other = randomBytes(32).toString('hex') as BlobId;
    const [deleted, live, condemned] = ['a', 'b', 'c'].map((c) => c.repeat(64) as PackId) as [PackId, PackId, PackId];
    // The same blob in a deleted pack and a live one (stored again after its pack was condemned):
    // the index file naming the deleted pack sorts first in one vault and last in the other.
    for (const deletedFirst of [true, false]) {
      const m = await createMachine();
      const put = (name: string, pack: PackId, blob: BlobId, offset: number) =>
        m.ctx.session.putIndex(name, encodeIndex(m.keys, name, [{ id: pack, blobs: [{ type: 'data', id: blob, offset, length: 60, rawLength: 40 }] }]));
      await put((deletedFirst ? '0' : 'f').repeat(64), deleted, id, 0);
      await put('8'.repeat(64), live, id, 100);
      await put('9'.repeat(64), condemned, other, 0);
      await m.base.put(layout.gone(deleted), Buffer.from('{}'));
      await m.base.put(layout.condemned('20260101', condemned), Buffer.alloc(0));
      const cache = FileCache.open(path.join(m.dir, 'cache.sqlite'));
      try {
        for (let round = 0; round < 2; round++) {
          // Each load leaves out other packs than the snapshot the one before saved: it is not used.
          const forRestore = await BlobIndex.load(m.ctx.session, m.keys, cache);
          expect(forRestore.get('data', id)?.pack).toBe(live);
          expect(forRestore.has('data', other)).toBe(true);
          forRestore.saveSnapshot(cache);
          const forBackup = await BlobIndex.load(m.ctx.session, m.keys, cache, { forBackup: true });
          expect(forBackup.get('data', id)?.pack).toBe(live);
          expect(forBackup.has('data', other)).toBe(false);
          expect([...forBackup.leftOut].sort()).toEqual([deleted, condemned].sort());
          forBackup.saveSnapshot(cache);
        }
      } finally {
        cache.close();
      }
    }
  });

  it('holds back a damaged pack of 200,000 blobs (more than a call takes arguments), then adds them', () => {
    const pack = 'd'.repeat(64) as PackId;
    const entries = Array.from({ length: 200_000 }, (_, i) => ({ type: 'data' as const, id: randomBytes(32).toString('hex') as BlobId, offset: i * 60, length: 60, rawLength: 40 }));
    const index = new BlobIndex();
    index.deferPacks([pack]);
    index.addPack(pack, entries);
    expect(index.has('data', entries[0]!.id)).toBe(false);
    index.addDeferred();
    expect(index.size).toBe(200_000);
    expect(index.get('data', entries[199_999]!.id)?.pack).toBe(pack);
  });
});
