/**
 * The vault service over real TLS connections: raw bytes on the socket (truncated uploads, wrong
 * lengths, chunked bodies, oversized declarations), raw undici requests with the pinned
 * certificate, and a shutdown with an upload in flight.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { packIdOf } from '../../src/core/pack.js';
import { bearer, HEADER } from '../../src/vault/http-protocol.js';
import { layout } from '../../src/vault/layout.js';
import { bytes, createTestVault, listen, type RawMachine, type TestVault } from '../helpers/vault-service.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function setup(): Promise<{ t: TestVault; a: RawMachine }> {
  const t = await createTestVault();
  const r = await t.vault.register({ token: t.token, machineName: 'alpha', os: 'linux-x64', hostname: 'h', reregister: false });
  return { t, a: { ...r, auth: bearer(r.machineId, r.secret) } };
}

/** A TLS connection to 127.0.0.1:`port` that accepts any certificate, collecting what it receives. */
async function connect(port: number): Promise<{ socket: tls.TLSSocket; received: () => string }> {
  const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  const got: Buffer[] = [];
  socket.on('data', (d: Buffer) => got.push(d));
  socket.on('error', () => undefined);
  return { socket, received: () => Buffer.concat(got).toString('latin1') };
}

/** Writes `parts` on a new TLS connection, optionally half-closes, and returns what came back. */
async function raw(port: number, parts: (string | Buffer)[], o: { end?: boolean; waitMs?: number } = {}): Promise<string> {
  const { socket, received } = await connect(port);
  for (const p of parts) socket.write(p);
  if (o.end) socket.end();
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, o.waitMs ?? 1500))]);
  socket.destroy();
  return received();
}

const head = (method: string, path: string, auth: string, headers: Record<string, string | number>) =>
  `${method} ${path} HTTP/1.1\r\nHost: vault\r\nAuthorization: ${auth}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

describe('over a real TLS connection', () => {
  it('never creates an object from a truncated upload or a wrong Content-Length', async () => {
    const { t, a } = await setup();
    const server = await listen(t);
    const port = Number(new URL(server.url).port);
    try {
      const data = bytes(64 * 1024);
      const name = '77'.repeat(32);
      const hdrs = { 'Content-Type': 'application/octet-stream', [HEADER.sha256]: sha(data) };
      // Cut off half-way: the client goes away.
      await raw(port, [head('PUT', `/v1/index/${name}`, a.auth, { ...hdrs, 'Content-Length': data.length }), data.subarray(0, 30_000)], { end: true });
      expect(await t.store.stat(layout.index(name))).toBeNull();
      // A Content-Length shorter than the body: the stored part would not match its hash.
      const short = await raw(port, [head('PUT', `/v1/index/${name}`, a.auth, { ...hdrs, 'Content-Length': 1000, Connection: 'close' }), data]);
      expect(short).toMatch(/^HTTP\/1.1 400/);
      expect(short).toContain('AZBK_BAD_INPUT');
      expect(await t.store.stat(layout.index(name))).toBeNull();
      // No Content-Length at all (chunked): 411 before anything is read.
      const chunked = await raw(port, [head('PUT', `/v1/packs/${packIdOf(data)}`, a.auth, { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' }), `10\r\n${'x'.repeat(16)}\r\n0\r\n\r\n`]);
      expect(chunked).toMatch(/^HTTP\/1.1 411/);
      // A pack declared larger than 256 MiB: 413 at once, without sending it.
      const big = await raw(port, [head('PUT', `/v1/packs/${packIdOf(data)}`, a.auth, { 'Content-Type': 'application/octet-stream', 'Content-Length': 256 * 1024 * 1024 + 1 })]);
      expect(big).toMatch(/^HTTP\/1.1 413/);
      expect(big).toContain('"code":"AZBK_BAD_INPUT"');
      expect(await t.store.stat(layout.pack(packIdOf(data)))).toBeNull();
    } finally {
      await server.close();
    }
  });

  it('answers raw undici requests with the pinned certificate: 401, 403, and idempotent retries', async () => {
    const { t, a } = await setup();
    const server = await listen(t);
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const peer = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: Number(new URL(server.url).port), rejectUnauthorized: false }, () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.destroy();
        });
        s.on('error', reject);
      });
      expect(peer.replace(/:/g, '').toLowerCase()).toBe(server.fingerprint);
      const data = bytes(2048);
      const name = '99'.repeat(32);
      const put = (body: Buffer, auth = a.auth) =>
        request(`${server.url}/v1/index/${name}`, {
          method: 'PUT',
          dispatcher,
          headers: { authorization: auth, 'content-type': 'application/octet-stream', [HEADER.sha256]: sha(body) },
          body,
        });
      const unauth = await put(data, `Bearer ${a.machineId}:${Buffer.alloc(32).toString('base64')}`);
      expect(unauth.statusCode).toBe(401);
      expect(await unauth.body.json()).toMatchObject({ statusCode: 401, code: 'AZBK_CREDENTIALS_INVALID', error: 'Unauthorized' });
      expect((await put(data)).statusCode).toBe(204);
      expect((await put(data)).statusCode).toBe(204);
      const over = await put(bytes(2048));
      expect(over.statusCode).toBe(403);
      expect(await over.body.json()).toMatchObject({ code: 'AZBK_FORBIDDEN' });
      expect((await t.store.get(layout.index(name)))!.equals(data)).toBe(true);
    } finally {
      await dispatcher.close();
      await server.close();
    }
  });
  it('lets an upload in flight finish on close, and cuts off one that stalls past the grace time', async () => {
    const { t, a } = await setup();
    const server = await listen(t);
    const port = Number(new URL(server.url).port);
    const data = bytes(200_000);
    const name = '55'.repeat(32);
    const stalled = '66'.repeat(32);
    const hdrs = { 'Content-Type': 'application/octet-stream', [HEADER.sha256]: sha(data), 'Content-Length': data.length };
    const slow = await connect(port);
    slow.socket.write(head('PUT', `/v1/index/${name}`, a.auth, hdrs));
    slow.socket.write(data.subarray(0, 100_000));
    const stuck = await connect(port);
    stuck.socket.write(head('PUT', `/v1/index/${stalled}`, a.auth, hdrs));
    stuck.socket.write(data.subarray(0, 50_000));
    await sleep(200);
    const closing = server.close(1500);
    await sleep(200);
    slow.socket.write(data.subarray(100_000));
    await closing;
    expect(slow.received()).toMatch(/^HTTP\/1.1 204/);
    expect((await t.store.get(layout.index(name)))!.equals(data)).toBe(true);
    expect(await t.store.stat(layout.index(stalled))).toBeNull();
    await expect(connect(port)).rejects.toThrow(/ECONNREFUSED/);
    slow.socket.destroy();
    stuck.socket.destroy();
  });
});
