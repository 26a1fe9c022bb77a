/**
 * The HTTPS client of the vault service against a real TLS server: the whole session API, the
 * errors it maps, certificate pinning, retries, and a hostile server whose replies it must refuse.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import fs from 'node:fs/promises';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { generate } from 'selfsigned';
import { afterEach, describe, expect, it } from 'vitest';
import type { KeyId, MachineId, PackId, PointId } from '../../src/core/ids.js';
import { packIdOf } from '../../src/core/pack.js';
import { errorRegistry, isAzbkError } from '../../src/shared/errors.js';
import { HttpVault } from '../../src/vault/http-client.js';
import { HttpTransport } from '../../src/vault/http-transport.js';
import type { RunningServer } from '../../src/vault/server.js';
import { parseTlsIdentity, type TlsIdentity } from '../../src/vault/tls.js';
import { makeTempDir } from '../helpers/tmp.js';
import { bytes, createTestVault, listen, testTls } from '../helpers/vault-service.js';

const fast = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function service(o: { maxMachines?: number; tls?: TlsIdentity } = {}): Promise<{ server: RunningServer; token: string; client: HttpVault }> {
  const t = await createTestVault(o);
  const server = await listen(t, o.tls);
  const client = new HttpVault(server.url, server.fingerprint, fast);
  cleanups.push(() => server.close(), () => client.close());
  return { server, token: t.token, client };
}

const reg = (token: string, machineName: string, reregister = false) => ({ token, machineName, os: 'linux-x64', hostname: 'h', reregister });

/** The AzbkError code `p` rejects with. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isAzbkError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('HttpVault against a vault server', () => {
  it('runs the whole session API, with several requests in flight', async () => {
    const { client, token } = await service();
    expect((await client.config()).name).toBe('Service');
    expect(await client.listKeysForRegistration(token)).toEqual([]);
    const a = await client.register(reg(token, 'alpha'));
    const b = await client.register(reg(token, 'beta'));
    const sa = await client.session(a.machineId, a.secret);
    const sb = await client.session(b.machineId, b.secret);
    expect((await sa.listMachines()).map((m) => m.name)).toEqual(['alpha', 'beta']);

    const packs = Array.from({ length: 6 }, () => bytes(200_000));
    await Promise.all(packs.map((p) => sa.putPack(packIdOf(p), p)));
    await sa.putPack(packIdOf(packs[0]!), packs[0]!); // again: a no-op
    const reads = await Promise.all(packs.map((p) => sb.readPack(packIdOf(p), 1000, 5000)));
    reads.forEach((r, i) => expect(r.equals(packs[i]!.subarray(1000, 6000))).toBe(true));
    expect(await sb.statPack(packIdOf(packs[1]!))).toBe(200_000);
    expect(await sb.statPack('00'.repeat(32) as PackId)).toBeNull();
    // Every pack the vault holds, of either machine, sorted.
    expect(await sb.listPacks()).toEqual(packs.map((p) => packIdOf(p)).sort());
    expect(await sb.readPack(packIdOf(packs[1]!), 10, 0)).toHaveLength(0);
    // Into a buffer of the caller's when the range fits, else into one of its own.
    const into = Buffer.alloc(6000);
    const viewed = await sb.readPack(packIdOf(packs[2]!), 1000, 5000, into);
    expect(viewed.buffer).toBe(into.buffer);
    expect(viewed.equals(packs[2]!.subarray(1000, 6000))).toBe(true);
    const own = await sb.readPack(packIdOf(packs[2]!), 0, 7000, into);
    expect(own.buffer).not.toBe(into.buffer);
    expect(own.equals(packs[2]!.subarray(0, 7000))).toBe(true);

    const index = bytes(1234);
    await sa.putIndex('12'.repeat(32), index);
    await sa.putIndex('12'.repeat(32), index); // a retry after a lost reply
    expect(await sb.listIndex()).toEqual(['12'.repeat(32)]);
    expect((await sb.readIndex('12'.repeat(32))).equals(index)).toBe(true);

    const manifest = bytes(300);
    const named = [packIdOf(packs[3]!), packIdOf(packs[1]!)];
    // A point naming a pack the vault does not hold is refused, and nothing is written.
    const missing = { keyId: '34'.repeat(16) as KeyId, jobId: '56'.repeat(16), manifest, packs: [...named, '00'.repeat(32) as PackId] };
    expect(await codeOf(sa.putPoint(missing))).toBe('AZBK_PACK_GONE');
    expect(await sb.listPoints(a.machineId)).toEqual([]);
    const p = { keyId: '34'.repeat(16) as KeyId, jobId: '56'.repeat(16), manifest, packs: named };
    const point = await sa.putPoint(p);
    expect(await sa.putPoint(p)).toEqual(point);
    // Another point of the same job (a copied registration that resumed it) is refused, saying why.
    await expect(sa.putPoint({ ...p, manifest: bytes(300) })).rejects.toMatchObject({
      code: 'AZBK_FORBIDDEN',
      message: expect.stringContaining(`made recovery point ${point.id} already: another copy of this machine's registration`),
      hint: expect.stringContaining('--reregister --machine-name'),
    });
    // The day's first point ran a prune pass, which condemned the packs no point names.
    expect(await sa.listPrunedPacks()).toEqual({ condemned: packs.map(packIdOf).filter((id) => !named.includes(id)).sort(), gone: [] });
    expect(point.expired).toEqual([]);
    expect(await sb.listPoints(a.machineId)).toEqual([{ id: point.id, machineId: point.machineId, time: point.time }]);
    const rec = await sb.readPoint(a.machineId, point.id);
    expect(rec).toMatchObject({ id: point.id, machineId: point.machineId, time: point.time, keyId: p.keyId, jobId: p.jobId });
    expect(rec.manifest.equals(manifest)).toBe(true);

    const cp = await sa.putCheckpoint({ jobId: '78'.repeat(16), seq: 1, data: bytes(50) });
    expect(await sa.listCheckpoints()).toEqual([cp]);
    expect(await sb.listCheckpoints()).toEqual([]);
    expect(await sa.readCheckpoint(cp.name)).toHaveLength(50);
  });

  it('maps error replies to the codes of the embedded vault', async () => {
    const { client, token } = await service({ maxMachines: 2 });
    const a = await client.register(reg(token, 'alpha'));
    expect(await codeOf(client.register(reg(token, 'alpha')))).toBe('AZBK_MACHINE_NAME_TAKEN');
    await client.register(reg(token, 'beta'));
    expect(await codeOf(client.register(reg(token, 'gamma')))).toBe('AZBK_VAULT_LIMIT');
    expect(await codeOf(client.register(reg(`${token}x`, 'gamma')))).toBe('AZBK_CREDENTIALS_INVALID');
    expect(await codeOf(client.session(a.machineId, Buffer.alloc(32).toString('base64')))).toBe('AZBK_CREDENTIALS_INVALID');
    const s = await client.session(a.machineId, a.secret);
    await s.putIndex('ab'.repeat(32), bytes(10));
    expect(await codeOf(s.putIndex('ab'.repeat(32), bytes(10)))).toBe('AZBK_FORBIDDEN');
    expect(await codeOf(s.readIndex('cd'.repeat(32)))).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.readPack('cd'.repeat(32) as PackId, 0, 10))).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.readPoint(a.machineId, '20200101T000000000Z-00000000' as PointId))).toBe('AZBK_POINT_NOT_FOUND');
    const data = bytes(10);
    expect(await codeOf(s.putPack('ef'.repeat(32) as PackId, data))).toBe('AZBK_BAD_INPUT');
  });

  it('refuses a server whose certificate is not the pinned one, at once and clearly', async () => {
    const { server } = await service();
    const wrong = new HttpVault(server.url, 'ab'.repeat(32), { attempts: 5, baseDelayMs: 500 });
    cleanups.push(() => wrong.close());
    const started = Date.now();
    const err = await wrong.config().catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')).toBe(true);
    expect((err as Error).message).toMatch(/certificate/);
    expect((err as Error).message).toContain(server.fingerprint);
    expect((err as { hint: string }).hint).toMatch(/pinned/);
    expect(Date.now() - started).toBeLessThan(400); // not retried
    // Without a pin, a self-signed certificate fails the CA checks.
    const unpinned = new HttpVault(server.url, null, fast);
    cleanups.push(() => unpinned.close());
    expect(await codeOf(unpinned.config())).toBe('AZBK_VAULT_UNREACHABLE');
  });

  it('accepts a CA-signed certificate with its chain, pinned by the leaf fingerprint', async () => {
    const ca = await generate([{ name: 'commonName', value: 'azbk test CA' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
    });
    const leaf = await generate([{ name: 'commonName', value: 'vault.test' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      ca: { key: ca.private, cert: ca.cert },
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    const tls = parseTlsIdentity(`${leaf.cert}\n${ca.cert}`, leaf.private);
    expect(tls.fingerprint).toBe(createHash('sha256').update(Buffer.from(leaf.cert.replace(/-----[^-]+-----|\s/g, ''), 'base64')).digest('hex'));
    const { client, token } = await service({ tls });
    const a = await client.register(reg(token, 'alpha'));
    expect((await client.session(a.machineId, a.secret)).machineId).toBe(a.machineId);
  });

  it('starts no retry once a request has taken three minutes', async () => {
    const { server } = await service();
    const url = server.url;
    await server.close();
    // Each attempt seems to take 100 s (as one ended by a timeout would).
    let clock = 0;
    const delays: number[] = [];
    const client = new HttpVault(url, server.fingerprint, { attempts: 5, baseDelayMs: 10, sleep: async (ms) => void delays.push(ms), now: () => (clock += 50_000) });
    cleanups.push(() => client.close());
    const err = await client.config().catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')).toBe(true);
    expect(delays.length).toBeLessThan(4);
  });

  it('once the job is asked to stop, ends the pause under way and tries at most the usual 5 times in all, with the usual pauses', async () => {
    // A server that drops every connection at once, counting them: one per try.
    let connections = 0;
    const dropper = net.createServer((socket) => {
      connections++;
      socket.destroy();
    });
    dropper.listen(0, '127.0.0.1');
    await once(dropper, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => dropper.close(() => resolve())));
    const url = `https://127.0.0.1:${(dropper.address() as AddressInfo).port}`;
    const stopping = new AbortController();
    let tries = 0;
    // The third pause would last for ever: the job is asked to stop during it. The pauses after
    // it are as usual (here, none at all).
    const client = new HttpVault(url, null, {
      attempts: 16,
      stopping: stopping.signal,
      sleep: () => {
        if (++tries !== 3) return Promise.resolve();
        setTimeout(() => stopping.abort(), 20);
        return new Promise<void>(() => undefined);
      },
    });
    cleanups.push(() => client.close());
    const err = await client.config().catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')).toBe(true);
    // The third pause ended at once; the fourth came as usual, then the fifth try, and no sixth.
    expect(tries).toBe(4);
    expect(connections).toBe(5);
  });

  it('retries connection failures with back-off, then reports AZBK_VAULT_UNREACHABLE', async () => {
    const { server } = await service();
    const url = server.url;
    await server.close();
    const delays: number[] = [];
    const client = new HttpVault(url, server.fingerprint, { attempts: 4, baseDelayMs: 10, sleep: async (ms) => void delays.push(ms) });
    cleanups.push(() => client.close());
    const err = await client.config().catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')).toBe(true);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
    expect(delays).toHaveLength(3);
    expect(delays[2]!).toBeGreaterThanOrEqual(20);
    // A registration never sent (tried again, as anything not sent): unreachable, no more.
    const reg1 = await client.register(reg('t', 'alpha')).catch((e: unknown) => e);
    expect(reg1).toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE', message: expect.stringMatching(/^Cannot reach the vault .*ECONNREFUSED/) });
  });
});

describe('HttpVault against a hostile server', () => {
  /** An HTTPS server with the test certificate that answers with `handler`. */
  async function hostile(handler: (req: IncomingMessage, res: ServerResponse) => void, options: typeof fast & { sleep?: (ms: number, signal: AbortSignal) => Promise<void>; replyTimeoutMs?: number; stopping?: AbortSignal; stopGraceMs?: number } = fast) {
    const tls = await testTls();
    const server = https.createServer({ cert: tls.cert, key: tls.key }, handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(async () => {
      server.closeAllConnections();
      server.close();
    });
    const client = new HttpVault(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, tls.fingerprint, options);
    cleanups.push(() => client.close());
    return client;
  }

  /** A server whose every reply promises 4 KiB and sends a byte every `everyMs`; `onRequest` runs as each request comes. */
  async function trickling(everyMs: number, options: Parameters<typeof hostile>[1], onRequest: () => void = () => undefined) {
    let requests = 0;
    const timers = new Set<NodeJS.Timeout>();
    cleanups.push(async () => timers.forEach((t) => clearInterval(t)));
    const client = await hostile((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' });
      const t = setInterval(() => res.write(' '), everyMs);
      timers.add(t);
      res.on('close', () => clearInterval(t));
      onRequest();
    }, options);
    return { client, requests: () => requests };
  }

  const machine = 'aa'.repeat(16) as MachineId;
  const secret = Buffer.alloc(32, 1).toString('base64');

  it('refuses malformed replies with AZBK_VAULT_CORRUPT', async () => {
    let calls = 0;
    let policyCalls = 0;
    let prunedCalls = 0;
    const client = await hostile((req, res) => {
      calls++;
      const url = req.url ?? '';
      if (url === '/v1/config') return res.end('{"format": "azbk-vault"');
      if (url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      if (url === '/v1/index') return res.end(JSON.stringify({ names: ['../../config'] }));
      if (url === '/v1/machines') return res.end(JSON.stringify({ machines: [{ id: machine, name: 7 }] }));
      // A pack id that is none: refused; the second time well formed, so that the point's own reply is what is judged.
      if (url === '/v1/pruned-packs') return res.end(JSON.stringify(prunedCalls++ === 0 ? { condemned: ['../x'], gone: [] } : { condemned: [], gone: [] }));
      if (url.startsWith('/v1/packs/')) {
        // Short, or far longer than the range asked for (refused before it is read).
        const long = req.headers.range === 'bytes=0-9';
        res.writeHead(206, long ? { 'content-length': String(64 * 1024 * 1024) } : {});
        if (long) return res.end(Buffer.alloc(64 * 1024)); // then stalls: the client must not wait for the rest
        return res.end(Buffer.alloc(5));
      }
      if (url.endsWith('/policy')) {
        // In turn: a policy out of range, no policy in force but not null, no clock.
        const week = { daily: 7, weekly: 0, monthly: 0, yearly: 0 };
        const replies = [
          { newest: { ...week, daily: 1 }, inForce: null, now: '2026-01-01T00:00:00.000Z' },
          { newest: week, inForce: [], now: '2026-01-01T00:00:00.000Z' },
          { newest: week, inForce: [week] },
        ];
        return res.end(JSON.stringify(replies[policyCalls++]));
      }
      if (req.method === 'POST' && url.endsWith('/points')) {
        // A well-formed point whose list of expired points names something else.
        return res.end(JSON.stringify({ id: '20200101T000000000Z-00000000', machineId: machine, time: '2020-01-01T00:00:00.000Z', expired: ['../../config'] }));
      }
      if (url.endsWith('/points')) return res.end(JSON.stringify({ points: [{ id: '20200101T000000000Z-00000000', machineId: 'bb'.repeat(16), time: 'x' }] }));
      res.writeHead(200);
      res.end('[]');
    });
    expect(await codeOf(client.config())).toBe('AZBK_VAULT_CORRUPT');
    const s = await client.session(machine, secret);
    expect(await codeOf(s.listIndex())).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.listPacks())).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.listMachines())).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.readPack('cd'.repeat(32) as PackId, 0, 100))).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.readPack('cd'.repeat(32) as PackId, 0, 10))).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.listPoints(machine))).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.listKeys())).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.listPrunedPacks())).toBe('AZBK_VAULT_CORRUPT');
    expect(await codeOf(s.putPoint({ keyId: '34'.repeat(16) as KeyId, jobId: '56'.repeat(16), manifest: Buffer.alloc(10), packs: [] }))).toBe('AZBK_VAULT_CORRUPT');
    for (let i = 0; i < 3; i++) expect(await codeOf(s.readRetention(machine))).toBe('AZBK_VAULT_CORRUPT');
    expect(calls).toBe(15); // none of these is retried
  });

  it('takes a point from a server that sends no list of expired points as one that expired none', async () => {
    const client = await hostile((req, res) => {
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      if (req.url === '/v1/pruned-packs') return res.end(JSON.stringify({ condemned: [], gone: [] }));
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: '20200101T000000000Z-00000000', machineId: machine, time: '2020-01-01T00:00:00.000Z' }));
    });
    const s = await client.session(machine, secret);
    const point = await s.putPoint({ keyId: '34'.repeat(16) as KeyId, jobId: '56'.repeat(16), manifest: Buffer.alloc(10), packs: [] });
    expect(point).toEqual({ id: '20200101T000000000Z-00000000', machineId: machine, time: '2020-01-01T00:00:00.000Z', expired: [] });
  });

  it('restores from a server of an earlier version, which never prunes, but writes it no point', async () => {
    const posts: string[] = [];
    const client = await hostile((req, res) => {
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      if (req.method === 'POST') posts.push(req.url ?? '');
      res.writeHead(404, { 'content-type': 'application/json' });
      // As an earlier server answers a route it lacks.
      res.end(JSON.stringify({ statusCode: 404, code: 'AZBK_BAD_INPUT', error: 'Not Found', message: `No such route: ${req.method} ${req.url}.` }));
    });
    const s = await client.session(machine, secret);
    expect(await s.listPrunedPacks()).toEqual({ condemned: [], gone: [] });
    // A backup learns it at once, before it uploads anything.
    expect(await codeOf(s.listPrunedPacks({ forBackup: true }))).toBe('AZBK_VAULT_TOO_OLD');
    expect(await codeOf(s.putPoint({ keyId: '34'.repeat(16) as KeyId, jobId: '56'.repeat(16), manifest: Buffer.alloc(10), packs: [] }))).toBe('AZBK_VAULT_TOO_OLD');
    expect(posts).toEqual([]);
  });

  it('retries 5xx for idempotent requests only, and takes the server error code', async () => {
    let configCalls = 0;
    let registerCalls = 0;
    const client = await hostile((req, res) => {
      if (req.url === '/v1/register') {
        registerCalls++;
        res.writeHead(503, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ statusCode: 503, code: 'AZBK_VAULT_UNREACHABLE', error: 'Service Unavailable', message: 'storage down\u001b[31m' }));
      }
      if (++configCalls < 3) {
        res.writeHead(502);
        return res.end('bad gateway');
      }
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ statusCode: 500, code: 'AZBK_NO_SUCH_CODE', message: 'x' }));
    });
    const err = await client.register(reg('t', 'alpha')).catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')).toBe(true);
    expect((err as Error).message).toBe('storage down [31m');
    expect(registerCalls).toBe(1);
    expect(await codeOf(client.config())).toBe('AZBK_VAULT_UNREACHABLE');
    expect(configCalls).toBe(3);
  });

  it('refuses a list of points, packs, index files, checkpoints or machines that names one twice (or, where a vault sorts them, out of order)', async () => {
    const id = '20260102T030405678Z-0123abcd';
    const time = '2026-01-02T03:04:05.678Z';
    const client = await hostile((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      if (req.url === '/v1/index') return res.end(JSON.stringify({ names: ['cd'.repeat(32), 'ab'.repeat(32)] }));
      if (req.url === '/v1/packs') return res.end(JSON.stringify({ ids: ['ab'.repeat(32), 'ab'.repeat(32)] }));
      if (req.url === '/v1/checkpoints') return res.end(JSON.stringify({ checkpoints: Array.from({ length: 2 }, () => ({ name: `20260102T030405678Z-${'ef'.repeat(16)}-000001`, time, jobId: 'ef'.repeat(16), seq: 1 })) }));
      if (req.url === '/v1/machines') return res.end(JSON.stringify({ machines: Array.from({ length: 2 }, () => ({ id: machine, name: 'a', os: 'linux-x64', hostname: 'h', registered: time })) }));
      res.end(JSON.stringify({ points: Array.from({ length: 3 }, () => ({ id, machineId: machine, time })) }));
    });
    const s = await client.session(machine, secret);
    const calls = [[() => s.listPoints(machine), 'points'], [() => s.listIndex(), 'index'], [() => s.listPacks(), 'pack'], [() => s.listCheckpoints(), 'checkpoints'], [() => s.listMachines(), 'machines']] as const;
    for (const [call, what] of calls) {
      const err = await call().catch((e: unknown) => e);
      expect(isAzbkError(err, 'AZBK_VAULT_CORRUPT'), what).toBe(true);
      expect((err as Error).message).toContain(`${what} list (not in order, or one twice)`);
    }
  });

  it('takes at most 1 MiB for a reply that is not a list (a dripping server holds a command for minutes, not hours), lists more', async () => {
    const big = JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) });
    const client = await hostile((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url === '/v1/config') return res.end(big);
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      res.end(JSON.stringify({ names: [], pad: 'x'.repeat(2 * 1024 * 1024) }));
    });
    const err = await client.config().catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_CORRUPT')).toBe(true);
    expect((err as Error).message).toMatch(/larger reply than GET \/v1\/config allows/);
    const s = await client.session(machine, secret);
    expect(await s.listIndex()).toEqual([]);
  });

  it('takes a 408 for a vault out of reach, tried again; a redirect too; another status no vault sends for an invalid reply, never for bad input', async () => {
    let calls = 0;
    const client = await hostile((req, res) => {
      calls++;
      if (req.url === '/v1/config' && calls < 3) {
        // as vault serve answers a request that took too long to arrive
        res.writeHead(408, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ statusCode: 408, code: 'AZBK_VAULT_UNREACHABLE', error: 'Request Timeout', message: 'The request took too long to arrive.' }));
      }
      if (req.url === '/v1/config') return res.writeHead(408).end();
      if (req.url === '/v1/register') return res.writeHead(302, { location: 'https://portal.example/' }).end();
      res.writeHead(418).end();
    });
    expect(await codeOf(client.config())).toBe('AZBK_VAULT_UNREACHABLE');
    expect(calls).toBe(3); // tried again, as for a 5xx
    const redirect = await client.register(reg('t', 'alpha')).catch((e: unknown) => e);
    expect(isAzbkError(redirect, 'AZBK_VAULT_UNREACHABLE')).toBe(true);
    expect((redirect as Error).message).toMatch(/answered 302, a redirect no vault service sends/);
    const teapot = await client.listKeysForRegistration('t').catch((e: unknown) => e);
    expect(isAzbkError(teapot, 'AZBK_VAULT_CORRUPT')).toBe(true);
    expect((teapot as Error).message).toMatch(/answered 418, which no vault service sends/);
  });

  it("takes from a server only the error codes a vault server sends: another of azbk's, which would pick the agent's exit code, is an invalid reply", async () => {
    // Codes that would make a job look partial, cancelled, locked, or the passphrase wrong.
    const foreign = ['AZBK_PARTIAL', 'AZBK_CANCELLED', 'AZBK_JOB_RUNNING', 'AZBK_WRONG_PASSPHRASE', 'AZBK_LOCAL_IO', 'AZBK_NOT_REGISTERED'];
    let next = '';
    const client = await hostile((req, res) => {
      req.resume();
      res.writeHead(next === 'AZBK_MACHINE_NAME_TAKEN' ? 409 : 400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ statusCode: 400, code: next, error: 'Bad Request', message: 'as you wish', hint: 'exit as told' }));
    });
    for (const code of foreign) {
      next = code;
      const err = await client.register(reg('t', 'alpha')).catch((e: unknown) => e);
      expect(err, code).toMatchObject({ code: 'AZBK_VAULT_CORRUPT', exitCode: 1, hint: errorRegistry.AZBK_VAULT_CORRUPT.hint });
      expect((err as Error).message, code).toBe(`The vault server sent an invalid error reply: ${code}, which no vault server sends (as you wish).`);
    }
    // One the vault sends, as it is, with its hint.
    next = 'AZBK_MACHINE_NAME_TAKEN';
    expect(await client.register(reg('t', 'alpha')).catch((e: unknown) => e)).toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', exitCode: 2, hint: 'exit as told' });
  });

  it('says a registration whose reply was lost may have been made, and to register again with --reregister', async () => {
    let registers = 0;
    const client = await hostile((req, res) => {
      registers++;
      req.resume();
      req.on('end', () => res.socket?.destroy()); // the whole request read, then no reply
    });
    const err = await client.register(reg('t', 'alpha')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE', message: expect.stringMatching(/^The vault's reply to the registration was lost \(.+\): the machine may have been registered\.$/), hint: expect.stringContaining('--reregister') });
    expect(registers).toBe(1); // and not sent again
  });

  it('tries a small range again after a 5xx whose body is longer than the range, and reads only the start of a huge error body', async () => {
    let reads = 0;
    const data = bytes(10);
    const client = await hostile((req, res) => {
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      reads++;
      if (reads === 1) {
        res.writeHead(503, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ statusCode: 503, code: 'AZBK_VAULT_UNREACHABLE', message: `storage down ${'.'.repeat(200)}` }));
      }
      if (reads === 2) {
        // Declares far more than it sends, then stalls: the client must not wait for the rest.
        res.writeHead(502, { 'content-length': String(64 * 1024 * 1024) });
        return res.write(Buffer.alloc(128 * 1024, 0x20));
      }
      res.writeHead(206, { 'content-length': '10', 'content-range': 'bytes 0-9/10' });
      res.end(data);
    });
    const s = await client.session(machine, secret);
    const got = await s.readPack('cd'.repeat(32) as PackId, 0, 10);
    expect(Buffer.compare(got, data)).toBe(0);
    expect(reads).toBe(3);
  });

  it('gives up a request a vault leaves unanswered once the job has been asked to stop, without trying it again', async () => {
    let requests = 0;
    const stopping = new AbortController();
    // Takes the upload, then answers nothing (a frozen service): only the reply timeout, 10 minutes, would end it.
    const client = await hostile(
      (req) => {
        requests++;
        req.resume();
        req.on('end', () => setTimeout(() => stopping.abort(), 50));
      },
      { ...fast, stopping: stopping.signal, stopGraceMs: 1000 },
    );
    const started = Date.now();
    const err = await client.session(machine, secret).catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/answered nothing and took almost nothing for 1 s after the stop: GET \/v1\/session is given up/);
    expect(requests).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('once the job has been asked to stop, lets a slow upload go on past the grace, and a request queued behind it', async () => {
    const tls = await testTls();
    const stopping = new AbortController();
    let received = 0;
    // Reads each piece of a body 5 ms after the one before: slow, but moving.
    const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      req.on('data', (b: Buffer) => {
        received += b.length;
        req.pause();
        setTimeout(() => req.resume(), 5);
      });
      req.on('end', () => res.end('{}'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(async () => {
      server.closeAllConnections();
      server.close();
    });
    const url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`);
    // (the grace is more than the sockets' buffers take to drain at that pace: what the client
    // hands on is what it counts, and the last of it then leaves at the server's pace)
    const transport = new HttpTransport(url, tls.fingerprint, { ...fast, connections: 1, stopping: stopping.signal, stopGraceMs: 3000 });
    cleanups.push(() => transport.close());
    const body = Buffer.alloc(24 * 1024 * 1024, 7);
    const started = Date.now();
    const upload = transport.request({ method: 'PUT', path: '/upload', body, limit: 1024, idempotent: true });
    // A small request waits for the one connection, past the grace too.
    const queued = transport.request({ method: 'PUT', path: '/checkpoint', body: '{}', limit: 1024, idempotent: true });
    setTimeout(() => stopping.abort(), 100);
    expect((await upload).status).toBe(200);
    expect((await queued).status).toBe(200);
    expect(received).toBe(body.length + 2);
    // (else the test says nothing: the upload must outlast the grace after the stop)
    expect(Date.now() - started).toBeGreaterThan(3600);
  });

  it('once the job has been asked to stop, gives up a reply that comes as a trickle within a few graces, not the reply timeout', async () => {
    const stopping = new AbortController();
    const t = await trickling(100, { ...fast, stopping: stopping.signal, stopGraceMs: 1000 }, () => setTimeout(() => stopping.abort(), 50));
    const started = Date.now();
    const err = await t.client.config().catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/took almost nothing for 1 s after the stop/);
    expect(t.requests()).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('gives up on a reply that keeps coming as a trickle, once it has taken the reply timeout', async () => {
    // A byte every 20 ms: the body timeout (the gap between pieces) never fires.
    const t = await trickling(20, { ...fast, replyTimeoutMs: 300 });
    const started = Date.now();
    const err = await t.client.config().catch((e: unknown) => e);
    expect(isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')).toBe(true);
    expect((err as Error).message).toMatch(/its reply came slower than 1 KiB\/s/);
    expect(t.requests()).toBe(fast.attempts);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('asks a busy server again after the time it names, beyond the usual attempts', async () => {
    let puts = 0;
    const waits: number[] = [];
    const client = await hostile(
      (req, res) => {
        if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
        req.resume();
        req.on('end', () => {
          if (++puts <= 6) {
            res.writeHead(503, { 'retry-after': '2', 'content-type': 'application/json' });
            return res.end(JSON.stringify({ statusCode: 503, code: 'AZBK_VAULT_UNREACHABLE', error: 'Service Unavailable', message: 'The vault server is busy; try again shortly.' }));
          }
          res.writeHead(204);
          res.end();
        });
      },
      { ...fast, sleep: async (ms) => void waits.push(ms) },
    );
    const s = await client.session(machine, secret);
    const pack = bytes(1000);
    await s.putPack(packIdOf(pack), pack); // 6 busy answers, twice the attempts
    expect(puts).toBe(7);
    expect(waits).toHaveLength(6);
    for (const w of waits) expect(w).toBeGreaterThanOrEqual(1000);
  });

  it('asks a busy server again for a registration too: turned away before its body was read, it was not taken', async () => {
    let registers = 0;
    const waits: number[] = [];
    const client = await hostile(
      (req, res) => {
        req.resume();
        req.on('end', () => {
          if (++registers <= 2) {
            res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' });
            return res.end(JSON.stringify({ statusCode: 503, code: 'AZBK_VAULT_UNREACHABLE', error: 'Service Unavailable', message: 'The vault server is busy; try again shortly.' }));
          }
          res.writeHead(201, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ machineId: machine, secret }));
        });
      },
      { ...fast, sleep: async (ms) => void waits.push(ms) },
    );
    expect(await client.register(reg('t', 'alpha'))).toMatchObject({ machineId: machine });
    expect(registers).toBe(3);
    expect(waits).toHaveLength(2);
  });

  it("shows the vault's own hint for an error, its control characters taken out", async () => {
    const { client, token } = await service();
    await client.register({ ...reg(token, 'alpha'), keyProof: 'ab'.repeat(32) });
    const err = await client.register({ ...reg(token, 'alpha', true), keyProof: 'cd'.repeat(32) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', hint: 'Give the passphrase that machine was registered with (--passphrase-file), or register under another --machine-name.' });
    // Without a hint of its own, the code's.
    expect(await client.register(reg(token, 'alpha')).catch((e: unknown) => e)).toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', hint: errorRegistry.AZBK_MACHINE_NAME_TAKEN.hint });
    const hostileHint = await hostile((req, res) => {
      req.resume();
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ statusCode: 409, code: 'AZBK_MACHINE_NAME_TAKEN', error: 'Conflict', message: 'taken', hint: 'run \u001b]0;x\u0007this' }));
    });
    expect(await hostileHint.register(reg('t', 'alpha')).catch((e: unknown) => e)).toMatchObject({ hint: 'run  ]0;x this' });
  });

  it('ends a request waiting on a busy server at once when the client is closed, its timer too (a command that is over stops asking)', async () => {
    let puts = 0;
    const pauses: (AbortSignal | undefined)[] = [];
    const client = await hostile((req, res) => {
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      req.resume();
      req.on('end', () => {
        puts++;
        res.writeHead(503, { 'retry-after': '30', 'content-type': 'application/json' });
        res.end(JSON.stringify({ statusCode: 503, code: 'AZBK_VAULT_UNREACHABLE', error: 'Service Unavailable', message: 'The vault server is busy; try again shortly.' }));
      });
    }, { ...fast, sleep: (ms, signal) => (pauses.push(signal), delay(ms, undefined, { signal }).catch(() => undefined)) });
    const s = await client.session(machine, secret);
    const pack = bytes(1000);
    const put = s.putPack(packIdOf(pack), pack);
    put.catch(() => undefined);
    while (puts === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const started = Date.now();
    await client.close();
    await expect(put).rejects.toMatchObject({ code: 'AZBK_CANCELLED' });
    expect(Date.now() - started).toBeLessThan(2000); // not the 15-30 s the server asked to wait
    // Nor does its timer keep the process up until then: the pause was told to end.
    expect(pauses.map((p) => p?.aborted)).toEqual([true]);
    expect(puts).toBe(1);
    await client.close(); // closing twice is harmless
  });

  it('sends a large body in pieces, whole again on a retry, also from a file', async () => {
    const received: Buffer[] = [];
    const hashes: unknown[] = [];
    const client = await hostile((req, res) => {
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      const parts: Buffer[] = [];
      hashes.push(req.headers['x-azbk-content-sha256']);
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        received.push(Buffer.concat(parts));
        if (received.length % 2 === 1) {
          res.writeHead(503);
          return res.end('busy');
        }
        res.writeHead(204);
        res.end();
      });
    });
    const s = await client.session(machine, secret);
    const pack = bytes(1_000_003);
    await s.putPack(packIdOf(pack), pack);
    expect(received).toHaveLength(2);
    for (const r of received) expect(r.equals(pack)).toBe(true);

    // From a file (a spooled pack): read again for the retry, sent with its hash.
    const other = bytes(2_500_001);
    const file = path.join(await makeTempDir('azbk-http-'), 'pack');
    await fs.writeFile(file, other);
    await s.putPackFile!(packIdOf(other), file, other.length);
    expect(received).toHaveLength(4);
    for (const r of received.slice(2)) expect(r.equals(other)).toBe(true);
    expect(hashes.slice(2)).toEqual([packIdOf(other), packIdOf(other)]);

    // A file missing or shorter than its length is this machine's failure: said so, not retried.
    await fs.truncate(file, 1000);
    expect(await codeOf(s.putPackFile!(packIdOf(other), file, other.length))).toBe('AZBK_LOCAL_IO');
    await fs.rm(file);
    const missing = s.putPackFile!(packIdOf(other), file, other.length);
    await expect(missing).rejects.toThrow(file);
    expect(await codeOf(missing)).toBe('AZBK_LOCAL_IO');
    expect(received).toHaveLength(4);
  });

  it('retries a file body whose connection broke while it was sent, and says the vault is unreachable, not the file unreadable, when it keeps breaking', async () => {
    // The connection closes once part of the body has come: the client's file stream ends with
    // the connection's error (a vault service stopped or restarted during an upload).
    let breakUntil = 2;
    let puts = 0;
    const received: Buffer[] = [];
    const client = await hostile((req, res) => {
      if (req.url === '/v1/session') return res.end(JSON.stringify({ machineId: machine }));
      puts++;
      const parts: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        parts.push(c);
        size += c.length;
        if (puts <= breakUntil && size > 300_000) req.socket.destroy();
      });
      req.on('end', () => {
        received.push(Buffer.concat(parts));
        res.writeHead(204);
        res.end();
      });
    });
    const s = await client.session(machine, secret);
    const pack = bytes(2_000_003);
    const file = path.join(await makeTempDir('azbk-http-'), 'pack');
    await fs.writeFile(file, pack);
    await s.putPackFile!(packIdOf(pack), file, pack.length);
    expect(puts).toBe(3);
    expect(received).toHaveLength(1);
    expect(received[0]!.equals(pack)).toBe(true);

    breakUntil = Infinity;
    expect(await codeOf(s.putPackFile!(packIdOf(pack), file, pack.length))).toBe('AZBK_VAULT_UNREACHABLE');
    expect(puts).toBe(3 + fast.attempts);
  });
});

