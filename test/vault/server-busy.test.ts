/**
 * A vault service that holds as many bodies as it may (see ByteBudget): uploads turned away are
 * sent again once it has room, no machine can take all of its room with uploads it never
 * finishes, and an agent that gives up stops asking.
 */
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { packIdOf } from '../../src/core/pack.js';
import { HttpVault } from '../../src/vault/http-client.js';
import { bearer } from '../../src/vault/http-protocol.js';
import { layout } from '../../src/vault/layout.js';
import { JSON_BODIES_BUDGET, type RunningServer } from '../../src/vault/server.js';
import type { ByteRange } from '../../src/vault/storage/keys.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { bytes, createTestVault, listen, testTls, type RawMachine, type TestVault } from '../helpers/vault-service.js';

const MiB = 1024 * 1024;

async function machine(t: TestVault, name: string): Promise<RawMachine> {
  const r = await t.vault.register({ token: t.token, machineName: name, os: 'linux-x64', hostname: name, reregister: false });
  return { ...r, auth: bearer(r.machineId, r.secret) };
}

/**
 * An upload of `declared` bytes that sends a few and then nothing: it holds that much of the
 * server's room until its connection goes. Resolves once the server has taken the request (its
 * headers are read: a later request finds the room taken).
 */
async function stalledUpload(server: RunningServer, m: RawMachine, declared: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(server.url).port), rejectUnauthorized: false });
  socket.on('error', () => undefined);
  await once(socket, 'secureConnect');
  const id = 'ab'.repeat(32);
  socket.write(`PUT /v1/packs/${id} HTTP/1.1\r\nHost: vault\r\nAuthorization: ${m.auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\nxyz`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  return socket;
}

/** `count` requests of `m` for the index file `name`, `gapMs` apart, whose replies are never read: each holds what the server took for it. */
async function unreadIndexReads(server: RunningServer, m: RawMachine, name: string, count: number, gapMs = 0): Promise<tls.TLSSocket[]> {
  const readers: tls.TLSSocket[] = [];
  for (let i = 0; i < count; i++) {
    const reader = tls.connect({ host: '127.0.0.1', port: Number(new URL(server.url).port), rejectUnauthorized: false });
    reader.on('error', () => undefined);
    await once(reader, 'secureConnect');
    reader.write(`GET /v1/index/${name} HTTP/1.1\r\nHost: vault\r\nAuthorization: ${m.auth}\r\n\r\n`);
    reader.pause();
    readers.push(reader);
    if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  return readers;
}

/** Uploads a pack of `size` bytes as `m`, failing if the server says to wait. */
async function uploadsAtOnce(server: RunningServer, m: RawMachine, size: number): Promise<void> {
  const client = new HttpVault(server.url, server.fingerprint, { attempts: 1, sleep: () => Promise.reject(new Error(`${m.machineId} was told to wait`)) });
  try {
    const pack = bytes(size);
    await (await client.session(m.machineId, m.secret)).putPack(packIdOf(pack), pack);
  } finally {
    await client.close();
  }
}

describe('a busy vault service', () => {
  it('has an upload it turned away sent again once it has room, not failed as a broken connection', async () => {
    const t = await createTestVault();
    const server = await listen(t, await testTls(), { memoryBudget: 32 * MiB });
    const [a, b] = [await machine(t, 'alpha'), await machine(t, 'beta')];
    const stalled = await stalledUpload(server, b, 32 * MiB);
    const waits: number[] = [];
    const client = new HttpVault(server.url, server.fingerprint, {
      attempts: 2,
      baseDelayMs: 1,
      sleep: async (ms) => {
        waits.push(ms);
        // the stalled upload goes away after the first busy answer
        stalled.destroy();
        await new Promise((resolve) => setTimeout(resolve, 50));
      },
    });
    try {
      const s = await client.session(a.machineId, a.secret);
      const pack = bytes(16 * MiB); // more than the socket takes before the server answers
      // from a file, as a backup sends its packs
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'azbk-busy-'));
      const file = path.join(dir, 'pack');
      await fs.writeFile(file, pack);
      await s.putPackFile!(packIdOf(pack), file, pack.length);
      await fs.rm(dir, { recursive: true });
      expect(await t.store.stat(layout.pack(packIdOf(pack)))).toMatchObject({ size: pack.length });
      expect(waits.length).toBeGreaterThanOrEqual(1);
      expect(waits[0]).toBeGreaterThanOrEqual(500); // Retry-After (1 s), not the back-off of a broken connection
    } finally {
      stalled.destroy();
      await client.close();
      await server.close(0);
    }
  });

  it('gives a machine whose uploads stall at most a quarter of its room: the others go on', async () => {
    const t = await createTestVault();
    const server = await listen(t, await testTls(), { memoryBudget: 64 * MiB });
    const [a, b] = [await machine(t, 'alpha'), await machine(t, 'beta')];
    // beta starts four uploads of 16 MiB (its share) and finishes none: only its first is taken
    const stalled = await Promise.all([1, 2, 3, 4].map(() => stalledUpload(server, b, 16 * MiB)));
    const client = new HttpVault(server.url, server.fingerprint, {
      attempts: 1,
      sleep: () => Promise.reject(new Error('alpha was told to wait')),
    });
    try {
      const s = await client.session(a.machineId, a.secret);
      const pack = bytes(16 * MiB);
      await s.putPack(packIdOf(pack), pack);
      expect(await t.store.stat(layout.pack(packIdOf(pack)))).toMatchObject({ size: pack.length });
      expect(t.logs.filter((l) => l.includes('request refused: busy'))).toHaveLength(3);
    } finally {
      for (const s of stalled) s.destroy();
      await client.close();
      await server.close(0);
    }
  });

  /** A connection from 127.0.0.1 that sends `head` and then `sent` bytes of the body it announces. */
  async function stranger(server: RunningServer, head: string, sent: number): Promise<tls.TLSSocket> {
    const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(server.url).port), rejectUnauthorized: false });
    socket.on('error', () => undefined);
    await once(socket, 'secureConnect');
    socket.write(head);
    if (sent > 0) socket.write(Buffer.alloc(sent, 0x20));
    return socket;
  }

  it.each([
    ['registrations', 'POST /v1/register', 'application/json'],
    ['registrations sent as uploads', 'POST /v1/register', 'application/octet-stream'],
    ['bodies to a path that is no route', 'POST /v1/nothing-here', 'application/octet-stream'],
    ['OPTIONS with a body', 'OPTIONS /v1/config', 'application/json'],
    ['DELETE with a body', 'DELETE /v1/packs/' + 'ab'.repeat(32), 'application/octet-stream'],
    ['PATCH with a body', 'PATCH /v1/index', 'application/json'],
  ])('holds the bodies of strangers (%s) within a budget of their own, counted as they arrive: uploads of machines go on', async (_, request, type) => {
    const t = await createTestVault();
    const server = await listen(t, await testTls(), { memoryBudget: 64 * MiB });
    const a = await machine(t, 'alpha');
    // Bodies of 1 MiB sent but for their last byte, without credentials: a quarter of the JSON
    // budget from this address is taken, then 503.
    const sockets: tls.TLSSocket[] = [];
    for (let i = 0; i < JSON_BODIES_BUDGET / MiB / 4 + 3; i++) {
      sockets.push(await stranger(server, `${request} HTTP/1.1\r\nHost: vault\r\nContent-Type: ${type}\r\nContent-Length: ${MiB}\r\n\r\n`, MiB - 1));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    try {
      expect(t.logs.filter((l) => l.includes('request refused: busy'))).toHaveLength(3);
      const client = new HttpVault(server.url, server.fingerprint, { attempts: 1, sleep: () => Promise.reject(new Error('alpha was told to wait')) });
      const s = await client.session(a.machineId, a.secret);
      const pack = bytes(16 * MiB);
      await s.putPack(packIdOf(pack), pack);
      await client.close();
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.close(0);
    }
  });

  it('is not kept from registering machines by strangers who announce bodies and send none, nor by bodies that never finish', async () => {
    const t = await createTestVault();
    const server = await listen(t, await testTls(), { jsonBodyMs: 1000 });
    // Announced: 64 MiB in all, twice the JSON budget, but nothing sent.
    const idle = await Promise.all(Array.from({ length: 64 }, () => stranger(server, `POST /v1/register HTTP/1.1\r\nHost: vault\r\nContent-Type: application/json\r\nContent-Length: ${MiB}\r\n\r\n`, 0)));
    // Sent but for a byte: the budget taken until the deadline closes them.
    const slow = await Promise.all(Array.from({ length: 7 }, () => stranger(server, `POST /v1/register HTTP/1.1\r\nHost: vault\r\nContent-Type: application/json\r\nContent-Length: ${MiB}\r\n\r\n`, MiB - 1)));
    try {
      await Promise.all(slow.map((socket) => once(socket, 'close')));
      const client = new HttpVault(server.url, server.fingerprint, { attempts: 1, sleep: () => Promise.reject(new Error('told to wait')) });
      const r = await client.register({ token: t.token, machineName: 'late', os: 'linux-x64', hostname: 'late', reregister: false });
      expect(r.machineId).toMatch(/^[0-9a-f]{32}$/);
      await client.close();
      expect(t.logs.filter((l) => l.includes('request refused: busy'))).toEqual([]);
    } finally {
      for (const socket of [...idle, ...slow]) socket.destroy();
      await server.close(0);
    }
  });

  it('counts the replies of objects it reads whole (an index file): a machine that never reads them holds its share, then 503', async () => {
    const t = await createTestVault();
    const server = await listen(t, await testTls(), { memoryBudget: 32 * MiB });
    const a = await machine(t, 'alpha');
    const name = 'cd'.repeat(32);
    await t.vault.session(a.machineId, a.secret).then((s) => s.putIndex(name, bytes(12 * MiB)));
    const readers = await unreadIndexReads(server, a, name, 3, 300);
    try {
      // 12 MiB is past alpha's share (8 MiB) of 32: its first reply is sent, the next two refused.
      expect(t.logs.filter((l) => l.includes('request refused: busy'))).toHaveLength(2);
    } finally {
      for (const r of readers) r.destroy();
      await server.close(0);
    }
  });

  it('takes the size of an object it reads whole from its room before reading it: a burst of reads of a large one reads it once', async () => {
    /** counts whole reads of index files from storage */
    class CountingStore extends MemoryBlobStore {
      indexReads = 0;
      override get(key: string, range?: ByteRange): Promise<Buffer | null> {
        if (key.startsWith(layout.indexPrefix)) this.indexReads++;
        return super.get(key, range);
      }
    }
    const t = await createTestVault({ store: new CountingStore() });
    const server = await listen(t, await testTls(), { memoryBudget: 32 * MiB });
    const a = await machine(t, 'alpha');
    const name = 'cd'.repeat(32);
    await t.vault.session(a.machineId, a.secret).then((s) => s.putIndex(name, bytes(24 * MiB)));
    // Eight at once, none read: the first is sent, the others refused before the store is read.
    const readers = await unreadIndexReads(server, a, name, 8);
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(t.logs.filter((l) => l.includes('request refused: busy'))).toHaveLength(7);
      expect(t.store.indexReads).toBe(1);
    } finally {
      for (const r of readers) r.destroy();
      await server.close(0);
    }
  });

  it('closes an upload too slow to arrive within the request timeout, which would fail it anyway: its room is free at once', async () => {
    const t = await createTestVault();
    const server = await listen(t, await testTls(), { memoryBudget: 32 * MiB, requestTimeoutMs: 3000 });
    const [a, b] = [await machine(t, 'alpha'), await machine(t, 'beta')];
    // All the room, and a few bytes of it sent: at that pace it would take days.
    const upload = await stalledUpload(server, b, 32 * MiB);
    try {
      await once(upload, 'close');
      expect(t.logs.some((l) => l.includes('upload closed: ') && l.includes(`of ${32 * MiB} bytes`))).toBe(true);
      // A pack that needs all of the room goes through at once, long before the request timeout.
      await uploadsAtOnce(server, a, 30 * MiB);
    } finally {
      upload.destroy();
      await server.close(0);
    }
  });

  it('closes a connection on which nothing moves: a stalled upload or an unread reply gives its room back', async () => {
    const t = await createTestVault();
    const server = await listen(t, await testTls(), { memoryBudget: 32 * MiB, idleTimeoutMs: 500 });
    const [a, b] = [await machine(t, 'alpha'), await machine(t, 'beta')];
    const pack = bytes(16 * MiB);
    await t.vault.session(a.machineId, a.secret).then((s) => s.putPack(packIdOf(pack), pack));
    const upload = await stalledUpload(server, b, 32 * MiB);
    // A download of the whole pack, never read (the socket is paused).
    const port = Number(new URL(server.url).port);
    const reader = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    reader.on('error', () => undefined);
    await once(reader, 'secureConnect');
    reader.write(`GET /v1/packs/${packIdOf(pack)} HTTP/1.1\r\nHost: vault\r\nAuthorization: ${a.auth}\r\n\r\n`);
    reader.pause();
    try {
      // The server closes both (the reader, paused, would see it only once it reads): their room is free again.
      await once(upload, 'close');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      // A pack that needs all of the room goes through at once.
      await uploadsAtOnce(server, b, 30 * MiB);
    } finally {
      upload.destroy();
      reader.destroy();
      await server.close(0);
    }
  });
});
