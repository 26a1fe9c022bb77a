/**
 * The blob writer's index order: an index file never names a pack while a pack started before it
 * is still being stored, so nothing indexed can refer to a blob that might still be lost. File
 * data and folder listings go into packs of their own.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { BlobWriter, type PackSlot } from '../../src/agent/blob-writer.js';
import { openSpool } from '../../src/agent/spool.js';
import { throttleSession } from '../../src/agent/throttle.js';
import { decodeBlob } from '../../src/core/blob.js';
import type { PackId } from '../../src/core/ids.js';
import { packIdOf, readPackHeader } from '../../src/core/pack.js';
import type { VaultSession } from '../../src/vault/api.js';
import { FsBlobStore } from '../../src/vault/storage/fs-store.js';
import { listAll } from '../vault/storage-conformance.js';
import { createMachine } from '../helpers/machine.js';

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** `session` with one method replaced by `fn` (which gets the original, bound). */
function replacing<K extends 'putPack' | 'putIndex'>(session: VaultSession, key: K, fn: (inner: VaultSession[K], ...args: Parameters<VaultSession[K]>) => ReturnType<VaultSession[K]>): VaultSession {
  return new Proxy(session, {
    get(target, k) {
      const v = Reflect.get(target, k) as unknown;
      const bound = typeof v === 'function' ? v.bind(target) : v;
      return k === key ? (...args: Parameters<VaultSession[K]>) => fn(bound as VaultSession[K], ...args) : bound;
    },
  });
}

describe('blob writer', () => {
  it('indexes only packs whose predecessors are all stored', async () => {
    const m = await createMachine();
    const index = new BlobIndex();
    // Every blob fills a pack; several uploads may run at once.
    const writer = new BlobWriter(m.ctx.session, m.keys, index, { packSize: 1000, uploads: 4 });
    const gates = [gate(), gate()];
    let n = 0;
    m.hooks.beforePutPack = async () => {
      const i = n++;
      if (i < gates.length) await gates[i]!.wait;
    };
    const a = await writer.add('data', randomBytes(2000)); // pack 1: held
    const flushing = writer.flush();
    await setImmediate(); // the flush now waits for pack 1 only
    const b = await writer.add('data', randomBytes(2000)); // pack 2: held
    const c = await writer.add('tree', randomBytes(2000)); // pack 3: stored at once
    gates[0]!.open();
    await flushing;
    expect(index.has('data', a)).toBe(true);
    expect(index.has('data', b)).toBe(false);
    expect(index.has('tree', c), 'pack 3 waits for pack 2').toBe(false);

    gates[1]!.open();
    await writer.flush();
    expect(index.has('data', b)).toBe(true);
    expect(index.has('tree', c)).toBe(true);
    expect(writer.stats.indexFiles).toBe(2);
  });

  it('names a pack of this job by its id alone once it is indexed: a folder that keeps its packs keeps none of their blobs', async () => {
    const m = await createMachine();
    const writer = new BlobWriter(m.ctx.session, m.keys, new BlobIndex(), { packSize: 1000, uploads: 1 });
    const ids = [];
    for (let i = 0; i < 12; i++) ids.push(await writer.add('data', randomBytes(100)));
    const ref = writer.packRef('data', ids[0]!);
    expect(typeof ref).not.toBe('string'); // this job's pack, open when asked for
    await writer.flush();
    const slot = ref as PackSlot;
    expect(slot.pack?.id).toMatch(/^[0-9a-f]{64}$/);
    expect(slot.pack?.blobs).toEqual([]);
  });

  it('keeps file data and listings in packs of their own; a flush without listings leaves them in the open pack', async () => {
    const m = await createMachine();
    const index = new BlobIndex();
    const writer = new BlobWriter(m.ctx.session, m.keys, index);
    const listing = randomBytes(300);
    const d1 = await writer.add('data', randomBytes(3000));
    const t1 = await writer.add('tree', listing);
    const d2 = await writer.add('data', randomBytes(3000));
    await writer.flush(false);
    expect(index.has('data', d1) && index.has('data', d2)).toBe(true);
    expect(index.has('tree', t1)).toBe(false);
    expect(writer.stats.packs).toBe(1);
    // Still known to the job: added again, it is not stored twice.
    expect(await writer.add('tree', listing)).toBe(t1);
    expect(writer.stats.newBlobs).toBe(3);
    await writer.flush();
    expect(index.has('tree', t1)).toBe(true);
    const packOf = (type: 'data' | 'tree', id: typeof d1) => index.get(type, id)!.pack;
    expect(packOf('data', d1)).toBe(packOf('data', d2));
    expect(packOf('tree', t1)).not.toBe(packOf('data', d1));
    expect(writer.stats.packs).toBe(2);
  });

  it('never indexes a listing before the chunks it may name: a full listings pack starts after the open data pack', async () => {
    const m = await createMachine();
    const index = new BlobIndex();
    const writer = new BlobWriter(m.ctx.session, m.keys, index, { packSize: 1000, uploads: 4 });
    const held = gate();
    let n = 0;
    m.hooks.beforePutPack = async () => {
      if (n++ === 0) await held.wait;
    };
    await writer.add('data', randomBytes(2000)); // pack 1, full: held
    const checkpoint = writer.flush(false); // waits for pack 1
    await setImmediate();
    const chunk = await writer.add('data', randomBytes(100)); // the open data pack
    const listing = await writer.add('tree', randomBytes(2000)); // fills the listings pack: it goes now
    await setImmediate();
    held.open();
    await checkpoint;
    // The listings pack may be indexed only together with the pack of the chunk it could name.
    expect(!index.has('tree', listing) || index.has('data', chunk)).toBe(true);
    await writer.flush();
    expect(index.has('tree', listing) && index.has('data', chunk)).toBe(true);
  });

  it('fills the buffer of a stored pack again, and every pack keeps its own bytes', async () => {
    const m = await createMachine();
    const index = new BlobIndex();
    const buffers = new Set<ArrayBufferLike>();
    const session = replacing(m.ctx.session, 'putPack', (putPack, id, data) => {
      buffers.add(data.buffer);
      return putPack(id, data);
    });
    // Every blob fills a pack; at most two are being stored at once.
    const writer = new BlobWriter(session, m.keys, index, { packSize: 1000, uploads: 2 });
    const blobs = Array.from({ length: 12 }, (_, i) => randomBytes(1500 + i));
    const ids = [];
    for (const b of blobs) ids.push(await writer.add('data', b));
    await writer.flush();
    expect(writer.stats.packs).toBe(12);
    expect(buffers.size).toBeLessThanOrEqual(3);
    for (const [i, id] of ids.entries()) {
      const at = index.get('data', id)!;
      const sealed = await m.ctx.session.readPack(at.pack, at.entry.offset, at.entry.length);
      expect(decodeBlob(m.keys, 'data', id, sealed).equals(blobs[i]!)).toBe(true);
    }
  });

  it('streams data packs into a disk vault, named by the SHA-256 of their bytes; listings packs go whole', async () => {
    const outer = await createMachine(); // only for its temporary folder
    const root = path.join(outer.dir, 'vault');
    await fs.mkdir(root);
    const m = await createMachine({ base: new FsBlobStore(root) });
    const index = new BlobIndex();
    const whole: PackId[] = [];
    const session = replacing(m.ctx.session, 'putPack', (putPack, id, data) => {
      whole.push(id);
      return putPack(id, data);
    });
    const writer = new BlobWriter(session, m.keys, index, { packSize: 2 * 1024 * 1024 });
    const blobs = Array.from({ length: 12 }, () => randomBytes(300 * 1024 + 17)); // incompressible: 3.6 MiB in 2 MiB packs
    const ids = [];
    for (const b of blobs) ids.push(await writer.add('data', b));
    const listing = await writer.add('tree', randomBytes(500));
    await writer.flush();
    expect(writer.stats.packs).toBe(3);
    expect(whole).toEqual([index.get('tree', listing)!.pack]);
    const packs = new Set(ids.map((id) => index.get('data', id)!.pack));
    expect(packs.size).toBe(2);
    for (const pack of packs) {
      const bytes = await fs.readFile(path.join(root, 'packs', pack.slice(0, 2), pack));
      expect(packIdOf(bytes)).toBe(pack);
      expect(readPackHeader(m.keys, bytes).length).toBeGreaterThan(0);
    }
    for (const [i, id] of ids.entries()) {
      const at = index.get('data', id)!;
      const sealed = await m.ctx.session.readPack(at.pack, at.entry.offset, at.entry.length);
      expect(decodeBlob(m.keys, 'data', id, sealed).equals(blobs[i]!)).toBe(true);
    }
    expect(await fs.readdir(path.join(root, '.tmp'))).toEqual([]);
  });

  it('sends data packs to a vault that takes packs from files through the spool, also when throttled; listings packs go whole', async () => {
    const m = await createMachine(); // in memory: whole packs only, so the spool is the way for data packs
    const spool = path.join(m.dir, 'spool');
    await openSpool(spool);
    const whole: PackId[] = [];
    const fromFile: PackId[] = [];
    const service = new Proxy(m.ctx.session, {
      get(target, k) {
        if (k === 'putPack') return (id: PackId, data: Uint8Array) => (whole.push(id), target.putPack(id, data));
        if (k === 'putPackFile') {
          return async (id: PackId, file: string, length: number) => {
            expect(path.dirname(file)).toBe(spool);
            const data = await fs.readFile(file);
            expect(data.length).toBe(length);
            fromFile.push(id);
            return target.putPack(id, data);
          };
        }
        const v = Reflect.get(target, k) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as VaultSession;
    const session = throttleSession(service, { upload: () => 64 * 1024 * 1024, download: () => null });
    const index = new BlobIndex();
    const writer = new BlobWriter(session, m.keys, index, { packSize: 2 * 1024 * 1024, spool });
    const blobs = Array.from({ length: 12 }, () => randomBytes(300 * 1024 + 17));
    const ids = [];
    for (const b of blobs) ids.push(await writer.add('data', b));
    const listing = await writer.add('tree', randomBytes(500));
    await writer.flush();
    expect(whole).toEqual([index.get('tree', listing)!.pack]);
    expect(new Set(fromFile)).toEqual(new Set(ids.map((id) => index.get('data', id)!.pack)));
    expect(fromFile).toHaveLength(2);
    for (const [i, id] of ids.entries()) {
      const at = index.get('data', id)!;
      const sealed = await m.ctx.session.readPack(at.pack, at.entry.offset, at.entry.length);
      expect(decodeBlob(m.keys, 'data', id, sealed).equals(blobs[i]!)).toBe(true);
    }
    expect(await fs.readdir(spool)).toEqual([]);
  });

  it('indexes stored packs between flushes once enough wait, and a flush waits for that index', async () => {
    const m = await createMachine();
    const index = new BlobIndex();
    const held = gate();
    let indexCalls = 0;
    const session = replacing(m.ctx.session, 'putIndex', async (putIndex, ...args) => {
      if (indexCalls++ === 0) await held.wait;
      return putIndex(...args);
    });
    const writer = new BlobWriter(session, m.keys, index, { packSize: 1000, uploads: 1, indexEvery: 2 });
    const a = await writer.add('data', randomBytes(2000));
    const b = await writer.add('data', randomBytes(2000));
    const c = await writer.add('data', randomBytes(2000)); // packs a and b are stored: their index is being written
    await setImmediate();
    expect(indexCalls).toBe(1);
    expect(index.has('data', a)).toBe(false);
    const flushing = writer.flush();
    await setImmediate();
    expect(index.has('data', c)).toBe(false);
    held.open();
    await flushing;
    expect([a, b, c].every((id) => index.has('data', id))).toBe(true);
    expect(writer.stats.indexFiles).toBe(2);
    // Without a flush: once two more packs are stored, they are indexed.
    const d = await writer.add('data', randomBytes(2000));
    const e = await writer.add('data', randomBytes(2000));
    await writer.add('data', randomBytes(2000));
    for (let i = 0; i < 5 && !index.has('data', e); i++) await setImmediate();
    expect(index.has('data', d) && index.has('data', e)).toBe(true);
  });

  it('writes one index file at a time: none starts while a flush writes one, and none after a failed one', async () => {
    const m = await createMachine();
    const index = new BlobIndex();
    const held = gate();
    let calls = 0;
    let inFlight = 0;
    let most = 0;
    const session = replacing(m.ctx.session, 'putIndex', async (putIndex, ...args) => {
      const first = calls++ === 0;
      most = Math.max(most, ++inFlight);
      try {
        if (first) {
          await held.wait;
          throw new Error('index upload lost');
        }
        return await putIndex(...args);
      } finally {
        inFlight--;
      }
    });
    const writer = new BlobWriter(session, m.keys, index, { packSize: 1000, uploads: 1, indexEvery: 2 });
    await writer.add('data', randomBytes(2000));
    const checkpoint = writer.flush(false); // its index file is held, then lost
    await setImmediate();
    expect(calls).toBe(1);
    // Meanwhile more packs are stored: enough for an index file of their own, which must wait.
    const later = [await writer.add('data', randomBytes(2000)), await writer.add('data', randomBytes(2000)), await writer.add('data', randomBytes(2000))];
    await setImmediate();
    expect(calls).toBe(1);
    held.open();
    await expect(checkpoint).rejects.toThrow('index upload lost');
    for (let i = 0; i < 5; i++) await setImmediate();
    expect(most).toBe(1);
    expect(calls, 'no index file after the lost one').toBe(1);
    expect(later.some((id) => index.has('data', id))).toBe(false);
    await expect(writer.add('data', randomBytes(2000))).rejects.toThrow('index upload lost');
  });
});


describe('a pack streamed into a disk vault', () => {
  async function diskMachine() {
    const outer = await createMachine(); // only for its temporary folder
    const root = path.join(outer.dir, 'vault');
    await fs.mkdir(root);
    return { root, m: await createMachine({ base: new FsBlobStore(root) }) };
  }

  it('is named by the SHA-256 of the bytes written, in the order of the writes', async () => {
    const { root, m } = await diskMachine();
    const stream = m.ctx.session.startPack()!;
    const pieces = [randomBytes(1000), randomBytes(70_000), randomBytes(5)];
    await Promise.all(pieces.map((p) => stream.write(p)));
    const id = await stream.end();
    expect(id).toBe(packIdOf(Buffer.concat(pieces)));
    expect((await m.ctx.session.readPack(id, 1000, 70_000)).equals(pieces[1]!)).toBe(true);
    expect(await fs.readdir(path.join(root, '.tmp'))).toEqual([]);
  });

  it('is never named when one of its writes failed, even one the disk never saw', async () => {
    const { root, m } = await diskMachine();
    const stream = m.ctx.session.startPack()!;
    await stream.write(randomBytes(100));
    m.faulty.fail('write'); // fails before the disk: the file itself has no gap to notice
    await expect(stream.write(randomBytes(100))).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    await stream.write(randomBytes(100));
    await expect(stream.end()).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    expect(await listAll(m.base, 'packs/')).toEqual([]);
    expect(await fs.readdir(path.join(root, '.tmp'))).toEqual([]);
  });

  it('through the upload throttle, ends only once the writes waiting for their turn have reached the vault', async () => {
    const { m } = await diskMachine();
    const throttled = throttleSession(m.ctx.session, { upload: () => 4 * 1024 * 1024, download: () => null });
    const stream = throttled.startPack()!;
    const pieces = [randomBytes(3 * 1024 * 1024), randomBytes(3 * 1024 * 1024), randomBytes(1000)];
    for (const p of pieces) void stream.write(p); // the later ones wait for the bucket
    const id = await stream.end();
    expect(id).toBe(packIdOf(Buffer.concat(pieces)));
    expect(await m.ctx.session.statPack(id)).toBe(6 * 1024 * 1024 + 1000);
  });

  it('is not offered by a vault that takes whole packs only', async () => {
    const m = await createMachine(); // in memory
    expect(m.ctx.session.startPack()).toBeNull();
  });
});
