/**
 * The vault service's routes, in-process with fastify's inject: the error shape, validation,
 * authentication, registration limits and the append-only rules, all with raw requests.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { packIdOf } from '../../src/core/pack.js';
import { errorRegistry } from '../../src/shared/errors.js';
import { HEADER } from '../../src/vault/http-protocol.js';
import { layout } from '../../src/vault/layout.js';
import { dayOf } from '../../src/vault/retention.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { parseListen } from '../../src/vault/server.js';
import { Vault } from '../../src/vault/vault.js';
import { appFor, bytes, createTestVault, registerRaw, type RawMachine, type TestVault } from '../helpers/vault-service.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const octet = (auth: string, data: Buffer, extra: Record<string, string> = {}) => ({
  headers: { authorization: auth, 'content-type': 'application/octet-stream', [HEADER.sha256]: sha(data), ...extra },
  payload: data,
});

let apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  apps = [];
});

async function setup(o: { now?: () => Date; maxMachines?: number } = {}): Promise<{ t: TestVault; app: FastifyInstance; a: RawMachine; b: RawMachine }> {
  const t = await createTestVault(o);
  const app = await appFor(t);
  apps.push(app);
  return { t, app, a: await registerRaw(app, t.token, 'alpha'), b: await registerRaw(app, t.token, 'beta') };
}

/** Asserts the one error shape, and returns the code. */
function expectError(res: { statusCode: number; json: () => unknown; body: string }, status: number, code: string): void {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json() as Record<string, unknown>;
  expect(Object.keys(body).filter((k) => k !== 'hint').sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  // a hint of the vault's own, when it has one
  if (Object.hasOwn(body, 'hint')) expect(String(body.hint).length).toBeGreaterThan(5);
  expect(body.statusCode).toBe(status);
  expect(body.code).toBe(code);
  expect(Object.hasOwn(errorRegistry, body.code as string)).toBe(true);
  expect(typeof body.error).toBe('string');
  expect(String(body.message).length).toBeGreaterThan(5);
}

describe('public routes and registration', () => {
  it('serves the config without credentials', async () => {
    const { t, app } = await setup();
    const res = await app.inject({ method: 'GET', url: '/v1/config' });
    expect(res.statusCode).toBe(200);
    expect(res.json().id).toBe((await t.vault.config()).id);
  });

  it('gives each machine a random 256-bit secret and keeps only its hash', async () => {
    const { t, a } = await setup();
    expect(Buffer.from(a.secret, 'base64')).toHaveLength(32);
    const record = (await t.store.get(layout.machine(a.machineId)))!.toString();
    expect(record).not.toContain(a.secret);
    expect(JSON.parse(record).secretHash).toBe(sha(Buffer.from(a.secret, 'base64')));
  });

  it('refuses altered, foreign and expired tokens with 401 and AZBK_CREDENTIALS_*', async () => {
    const { t, app } = await setup();
    const reg = (token: string) =>
      app.inject({ method: 'POST', url: '/v1/register', payload: { token, machineName: 'gamma', os: 'x', hostname: 'h', reregister: false } });
    const [payload, sig] = t.token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const altered = `${Buffer.from(JSON.stringify({ ...claims, expires: '2099-01-01T00:00:00.000Z' })).toString('base64url')}.${sig}`;
    expectError(await reg(altered), 401, 'AZBK_CREDENTIALS_INVALID');
    expectError(await reg('not-a-token'), 401, 'AZBK_CREDENTIALS_INVALID');
    expectError(await reg((await createTestVault()).token), 401, 'AZBK_CREDENTIALS_INVALID');
    const later = await Vault.open(t.store, { now: () => new Date(Date.now() + 11 * 24 * 3600 * 1000) });
    const lateApp = await appFor({ ...t, vault: later });
    apps.push(lateApp);
    const res = await lateApp.inject({ method: 'POST', url: '/v1/register/keys', payload: { token: t.token } });
    expectError(res, 401, 'AZBK_CREDENTIALS_EXPIRED');
    expect((await app.inject({ method: 'GET', url: '/v1/machines', headers: {} })).statusCode).toBe(401);
  });

  it('refuses a taken name unless reregister, which replaces the secret', async () => {
    const { t, app, a } = await setup();
    const body = { token: t.token, machineName: 'ALPHA', os: 'x', hostname: 'h', reregister: false };
    expectError(await app.inject({ method: 'POST', url: '/v1/register', payload: body }), 409, 'AZBK_MACHINE_NAME_TAKEN');
    const res = await app.inject({ method: 'POST', url: '/v1/register', payload: { ...body, reregister: true } });
    expect(res.statusCode).toBe(201);
    expect(res.json().machineId).toBe(a.machineId);
    const fresh = await appFor(t); // no cached session
    apps.push(fresh);
    expectError(await fresh.inject({ method: 'GET', url: '/v1/session', headers: { authorization: a.auth } }), 401, 'AZBK_CREDENTIALS_INVALID');
  });

  it('registers 50 machines and refuses the 51st with AZBK_VAULT_LIMIT', async () => {
    const t = await createTestVault();
    const app = await appFor(t);
    apps.push(app);
    for (let i = 0; i < 50; i++) await registerRaw(app, t.token, `m${i}`);
    const res = await app.inject({ method: 'POST', url: '/v1/register', payload: { token: t.token, machineName: 'm50', os: 'x', hostname: 'h', reregister: false } });
    expectError(res, 409, 'AZBK_VAULT_LIMIT');
    expect(res.json().message).toMatch(/50 machines/);
    expect(errorRegistry.AZBK_VAULT_LIMIT.exit).toBe(14);
  });

  it('validates JSON bodies: malformed 400, oversized 413, wrong shape 400, bad names 400', async () => {
    const { t, app } = await setup();
    const post = (payload: string, type = 'application/json') => app.inject({ method: 'POST', url: '/v1/register', headers: { 'content-type': type }, payload });
    expectError(await post('{"token": '), 400, 'AZBK_BAD_INPUT');
    expectError(await post(JSON.stringify({ token: 'x'.repeat(1100 * 1024) })), 413, 'AZBK_BAD_INPUT');
    expectError(await post(JSON.stringify({ token: t.token })), 400, 'AZBK_BAD_INPUT');
    expectError(await post(JSON.stringify({ token: t.token, machineName: 'a', os: 'x', hostname: 'h', reregister: 'yes' })), 400, 'AZBK_BAD_INPUT');
    expectError(await post(JSON.stringify({ token: t.token, machineName: '../../etc', os: 'x', hostname: 'h', reregister: false })), 400, 'AZBK_BAD_INPUT');
    expect((await t.vault.machines()).map((m) => m.name).sort()).toEqual(['alpha', 'beta']);
  });
});

describe('authenticated routes', () => {
  it('answers 401 without a valid secret, before reading the body', async () => {
    const { t, app, a } = await setup();
    const wrong = `Bearer ${a.machineId}:${Buffer.alloc(32, 7).toString('base64')}`;
    for (const authorization of [undefined, 'Basic abc', `Bearer ${a.machineId}`, wrong, `Bearer ${'0'.repeat(32)}:${a.secret}`]) {
      const res = await app.inject({ method: 'GET', url: '/v1/machines', headers: authorization ? { authorization } : {} });
      expectError(res, 401, 'AZBK_CREDENTIALS_INVALID');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    const data = bytes(100);
    const res = await app.inject({ method: 'PUT', url: `/v1/packs/${packIdOf(data)}`, ...octet(wrong, data) });
    expectError(res, 401, 'AZBK_CREDENTIALS_INVALID');
    expect(await t.store.stat(layout.pack(packIdOf(data)))).toBeNull();
  });

  it('stores packs by content: same bytes again succeed, other bytes under that id are 403', async () => {
    const { t, app, a } = await setup();
    const data = bytes(5000);
    const id = packIdOf(data);
    const put = (body: Buffer, pid: string = id) => app.inject({ method: 'PUT', url: `/v1/packs/${pid}`, ...octet(a.auth, body) });
    expect((await put(data)).statusCode).toBe(204);
    expect((await put(data)).statusCode).toBe(204);
    expectError(await put(bytes(5000)), 403, 'AZBK_FORBIDDEN');
    expect((await t.store.get(layout.pack(id)))!.equals(data)).toBe(true);
    expectError(await put(bytes(10), 'ab'.repeat(32)), 400, 'AZBK_BAD_INPUT'); // not its hash
    expect(await t.store.stat(layout.pack('ab'.repeat(32) as never))).toBeNull();

    const head = await app.inject({ method: 'HEAD', url: `/v1/packs/${id}`, headers: { authorization: a.auth } });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('5000');
    expect((await app.inject({ method: 'HEAD', url: `/v1/packs/${'cd'.repeat(32)}`, headers: { authorization: a.auth } })).statusCode).toBe(404);

    const range = await app.inject({ method: 'GET', url: `/v1/packs/${id}`, headers: { authorization: a.auth, range: 'bytes=100-199' } });
    expect(range.statusCode).toBe(206);
    expect(range.rawPayload.equals(data.subarray(100, 200))).toBe(true);
    const whole = await app.inject({ method: 'GET', url: `/v1/packs/${id}`, headers: { authorization: a.auth } });
    expect(whole.rawPayload.equals(data)).toBe(true);
    expectError(await app.inject({ method: 'GET', url: `/v1/packs/${id}`, headers: { authorization: a.auth, range: 'bytes=4990-5009' } }), 404, 'AZBK_VAULT_CORRUPT');
    expectError(await app.inject({ method: 'GET', url: `/v1/packs/${id}`, headers: { authorization: a.auth, range: 'bytes=-5' } }), 416, 'AZBK_BAD_INPUT');
    expectError(await app.inject({ method: 'GET', url: `/v1/packs/${'cd'.repeat(32)}`, headers: { authorization: a.auth, range: 'bytes=0-9' } }), 404, 'AZBK_VAULT_CORRUPT');
  });

  it('refuses to overwrite an index file with other bytes (403), accepts the same bytes again', async () => {
    const { t, app, a, b } = await setup();
    const name = 'ef'.repeat(32);
    const data = bytes(3000);
    const put = (auth: string, body: Buffer, extra: Record<string, string> = {}) => app.inject({ method: 'PUT', url: `/v1/index/${name}`, ...octet(auth, body, extra) });
    expect((await put(a.auth, data)).statusCode).toBe(204);
    expect((await put(b.auth, data)).statusCode).toBe(204);
    expectError(await put(b.auth, bytes(3000)), 403, 'AZBK_FORBIDDEN');
    expect((await t.store.get(layout.index(name)))!.equals(data)).toBe(true);
    const other = 'aa'.repeat(32);
    const damaged = await app.inject({ method: 'PUT', url: `/v1/index/${other}`, ...octet(a.auth, data, { [HEADER.sha256]: sha(bytes(3)) }) });
    expectError(damaged, 400, 'AZBK_BAD_INPUT');
    const noHash = await app.inject({ method: 'PUT', url: `/v1/index/${other}`, headers: { authorization: a.auth, 'content-type': 'application/octet-stream' }, payload: data });
    expectError(noHash, 400, 'AZBK_BAD_INPUT');
    const asJson = await app.inject({ method: 'PUT', url: `/v1/index/${other}`, headers: { authorization: a.auth, 'content-type': 'application/json', [HEADER.sha256]: sha(data) }, payload: '{}' });
    expectError(asJson, 415, 'AZBK_BAD_INPUT');
    expect(await t.store.stat(layout.index(other))).toBeNull();
    const list = await app.inject({ method: 'GET', url: '/v1/index', headers: { authorization: a.auth } });
    expect(list.json()).toEqual({ names: [name] });
    expect((await app.inject({ method: 'GET', url: `/v1/index/${name}`, headers: { authorization: b.auth } })).rawPayload.equals(data)).toBe(true);
  });

  it('rejects object names that try to leave their folder and touches nothing', async () => {
    const { t, app, a } = await setup();
    const before = await keys(t);
    const data = bytes(10);
    for (const url of ['/v1/index/..%2F..%2Fconfig', '/v1/index/..%2Fconfig', `/v1/packs/..%2F${'a'.repeat(61)}`, '/v1/checkpoints/..%2Fx/1', `/v1/checkpoints/${'a'.repeat(32)}/..`]) {
      const res = await app.inject({ method: 'PUT', url, ...octet(a.auth, data) });
      // Refused either way; `..` may also be resolved by URL normalisation to a route that does not exist.
      expect([400, 403, 404], `${url}: ${res.body}`).toContain(res.statusCode);
      if (res.statusCode === 400) expectError(res, 400, 'AZBK_BAD_INPUT');
    }
    expectError(await app.inject({ method: 'GET', url: '/v1/index/..%2F..%2Fconfig', headers: { authorization: a.auth } }), 400, 'AZBK_BAD_INPUT');
    expectError(await app.inject({ method: 'GET', url: `/v1/machines/..%2Fvault/points`, headers: { authorization: a.auth } }), 400, 'AZBK_BAD_INPUT');
    expect(await keys(t)).toEqual(before);
  });

  it('writes points only under the own machine id, once per job, and serves them to every machine', async () => {
    const { t, app, a, b } = await setup();
    const manifest = bytes(700);
    const heads = { [HEADER.keyId]: '11'.repeat(16), [HEADER.jobId]: '22'.repeat(16), [HEADER.packCount]: '0' };
    const post = (auth: string, machine: string, body = manifest) => app.inject({ method: 'POST', url: `/v1/machines/${machine}/points`, ...octet(auth, body, heads) });
    expectError(await post(a.auth, b.machineId), 403, 'AZBK_FORBIDDEN');
    expect(await keys(t, 'points/')).toEqual([]);
    const first = await post(a.auth, a.machineId);
    expect(first.statusCode, first.body).toBe(201);
    const info = first.json();
    expect(info.machineId).toBe(a.machineId);
    // A retry after a lost reply returns the same point instead of making a second one.
    expect((await post(a.auth, a.machineId)).json()).toEqual(info);
    expect(await keys(t, 'points/')).toHaveLength(1);
    const list = await app.inject({ method: 'GET', url: `/v1/machines/${a.machineId}/points`, headers: { authorization: b.auth } });
    const { expired, ...listed } = info;
    expect(expired).toEqual([]); // no retention policy: nothing expires
    expect(list.json()).toEqual({ points: [listed] });
    const read = await app.inject({ method: 'GET', url: `/v1/machines/${a.machineId}/points/${info.id}`, headers: { authorization: b.auth } });
    expect(read.rawPayload.equals(manifest)).toBe(true);
    expect(read.headers[HEADER.keyId]).toBe(heads[HEADER.keyId]);
    expect(read.headers[HEADER.pointTime]).toBe(info.time);
    const missing = await app.inject({ method: 'GET', url: `/v1/machines/${a.machineId}/points/20200101T000000000Z-00000000`, headers: { authorization: a.auth } });
    expectError(missing, 404, 'AZBK_POINT_NOT_FOUND');
    // Nothing may overwrite or delete it.
    for (const method of ['PUT', 'DELETE', 'PATCH'] as const) {
      const res = await app.inject({ method, url: `/v1/machines/${a.machineId}/points/${info.id}`, ...octet(a.auth, bytes(5)) });
      expectError(res, 403, 'AZBK_FORBIDDEN');
    }
    await expect((await t.vault.session(a.machineId, a.secret)).readPoint(a.machineId, info.id)).resolves.toMatchObject({ manifest });
  });

  it('takes a point with the packs it names after its manifest, and only packs the vault holds', async () => {
    const { t, app, a } = await setup();
    const pack = bytes(100);
    const id = packIdOf(pack);
    await app.inject({ method: 'PUT', url: `/v1/packs/${id}`, ...octet(a.auth, pack) });
    const manifest = bytes(300);
    const heads = (n: number) => ({ [HEADER.keyId]: '11'.repeat(16), [HEADER.jobId]: '22'.repeat(16), [HEADER.packCount]: String(n) });
    const post = (body: Buffer, n: number) => app.inject({ method: 'POST', url: `/v1/machines/${a.machineId}/points`, ...octet(a.auth, body, heads(n)) });
    // More packs than the body holds, a pack the vault does not have, a count that is no number.
    expectError(await post(Buffer.concat([manifest.subarray(0, 10)]), 1), 400, 'AZBK_BAD_INPUT');
    expectError(await post(Buffer.concat([manifest, Buffer.from(id, 'hex'), Buffer.alloc(32, 7)]), 2), 400, 'AZBK_PACK_GONE');
    expectError(await post(manifest, -1 as number), 400, 'AZBK_BAD_INPUT');
    expect(await keys(t, 'points/')).toEqual([]);
    const ok = await post(Buffer.concat([manifest, Buffer.from(id, 'hex')]), 1);
    expect(ok.statusCode, ok.body).toBe(201);
    const record = JSON.parse((await t.store.get((await keys(t, 'points/'))[0]!))!.toString('utf8'));
    expect(record.packs).toEqual([id]);
    expect(Buffer.from(record.manifest, 'base64').equals(manifest)).toBe(true);
    // Which packs prune took away is for machines only.
    expectError(await app.inject({ method: 'GET', url: '/v1/pruned-packs' }), 401, 'AZBK_CREDENTIALS_INVALID');
    expect((await app.inject({ method: 'GET', url: '/v1/pruned-packs', headers: { authorization: a.auth } })).json()).toEqual({ condemned: [], gone: [] });
    // A count past the most a point may name is refused before any id is read.
    expectError(await post(Buffer.alloc(64), 1_000_001), 400, 'AZBK_BAD_INPUT');
    // An agent of an earlier version names no packs, and does not know which packs prune deleted:
    // its points and checkpoints are refused, with what to do.
    const old = await app.inject({ method: 'POST', url: `/v1/machines/${a.machineId}/points`, ...octet(a.auth, manifest, { [HEADER.keyId]: '11'.repeat(16), [HEADER.jobId]: '33'.repeat(16) }) });
    expectError(old, 400, 'AZBK_BAD_INPUT');
    expect(old.json().message).toMatch(/upgrade azbk on this machine/);
    expectError(await app.inject({ method: 'PUT', url: `/v1/checkpoints/${'33'.repeat(16)}/1`, ...octet(a.auth, manifest) }), 400, 'AZBK_BAD_INPUT');
    expect(await keys(t, 'points/')).toHaveLength(1);
    expect(await keys(t, 'checkpoints/')).toEqual([]);
  });

  it("answers a new point before the day's prune, which runs after the reply and is waited for on close", async () => {
    /** A store whose daily prune cannot begin (its marker cannot be written) until `open()`. */
    class GatedStore extends MemoryBlobStore {
      open!: () => void;
      readonly gate = new Promise<void>((resolve) => (this.open = resolve));
      override async put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
        if (key.startsWith('prune/')) await this.gate;
        return super.put(key, data);
      }
    }
    const t = await createTestVault({ store: new GatedStore() });
    const app = await appFor(t);
    const a = await registerRaw(app, t.token, 'alpha');
    const heads = { [HEADER.keyId]: '11'.repeat(16), [HEADER.jobId]: '22'.repeat(16), [HEADER.packCount]: '0' };
    const reply = app.inject({ method: 'POST', url: `/v1/machines/${a.machineId}/points`, ...octet(a.auth, bytes(300), heads) });
    const first = await Promise.race([reply, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000))]);
    expect(first?.statusCode, 'the reply waited for the prune').toBe(201);
    const marker = layout.pruneRun(dayOf(new Date()));
    expect(await t.store.stat(marker)).toBeNull();
    // Closing waits for it.
    let closed = false;
    const closing = app.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(closed).toBe(false);
    t.store.open();
    await closing;
    expect(await t.store.stat(marker)).not.toBeNull();
    expect(t.logs.some((line) => line.includes('done after a reply') && line.includes('daily prune'))).toBe(true);
  });

  it('refuses every delete with 403 once authenticated (401 before), and nothing changes', async () => {
    const { t, app, a } = await setup();
    const data = bytes(100);
    const id = packIdOf(data);
    await app.inject({ method: 'PUT', url: `/v1/packs/${id}`, ...octet(a.auth, data) });
    const before = await keys(t);
    for (const url of [`/v1/packs/${id}`, `/v1/machines/${a.machineId}`, '/v1/config', '/v1/index', `/v1/keys/${'1'.repeat(32)}`]) {
      expectError(await app.inject({ method: 'DELETE', url, headers: { authorization: a.auth } }), 403, 'AZBK_FORBIDDEN');
      expectError(await app.inject({ method: 'DELETE', url }), 401, 'AZBK_CREDENTIALS_INVALID');
    }
    expectError(await app.inject({ method: 'PUT', url: '/v1/config', ...octet(a.auth, data) }), 403, 'AZBK_FORBIDDEN');
    expect(await keys(t)).toEqual(before);
  });

  it('keeps checkpoints per machine', async () => {
    const { app, a, b } = await setup();
    const job = '33'.repeat(16);
    const data = bytes(400);
    const res = await app.inject({ method: 'PUT', url: `/v1/checkpoints/${job}/1`, ...octet(a.auth, data, { [HEADER.packCount]: '0' }) });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ jobId: job, seq: 1 });
    const mine = await app.inject({ method: 'GET', url: '/v1/checkpoints', headers: { authorization: a.auth } });
    expect(mine.json().checkpoints).toEqual([res.json()]);
    expect((await app.inject({ method: 'GET', url: '/v1/checkpoints', headers: { authorization: b.auth } })).json()).toEqual({ checkpoints: [] });
    const read = await app.inject({ method: 'GET', url: `/v1/checkpoints/${res.json().name}`, headers: { authorization: a.auth } });
    expect(read.rawPayload.equals(data)).toBe(true);
    expectError(await app.inject({ method: 'GET', url: `/v1/checkpoints/${res.json().name}`, headers: { authorization: b.auth } }), 404, 'AZBK_VAULT_CORRUPT');
    expectError(await app.inject({ method: 'PUT', url: `/v1/checkpoints/${job}/0`, ...octet(a.auth, data) }), 400, 'AZBK_BAD_INPUT');
  });

  it('lists machines without their secret hashes, and keys', async () => {
    const { app, a } = await setup();
    const res = await app.inject({ method: 'GET', url: '/v1/machines', headers: { authorization: a.auth } });
    expect(res.json().machines.map((m: { name: string }) => m.name)).toEqual(['alpha', 'beta']);
    expect(res.body).not.toContain('secretHash');
    expect((await app.inject({ method: 'GET', url: '/v1/keys', headers: { authorization: a.auth } })).json()).toEqual({ keys: [] });
    expectError(await app.inject({ method: 'POST', url: '/v1/keys', headers: { authorization: a.auth }, payload: { id: 'x' } }), 400, 'AZBK_BAD_INPUT');
  });

  it('logs every request without secrets, tokens or the Authorization header', async () => {
    const { t, app, a } = await setup();
    await app.inject({ method: 'GET', url: '/v1/machines', headers: { authorization: a.auth } });
    await app.inject({ method: 'GET', url: '/v1/machines', headers: { authorization: 'Bearer garbage' } });
    const text = t.logs.join('\n');
    expect(t.logs.filter((l) => l.includes('request completed')).length).toBeGreaterThanOrEqual(4);
    expect(text).not.toContain(a.secret);
    expect(text).not.toContain(t.token.split('.')[1]!);
    expect(text).not.toContain(a.auth);
    expect(text).not.toContain('garbage');
  });
});

describe('parseListen', () => {
  it('takes HOST:PORT and [IPv6]:PORT', () => {
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListen('[::1]:8443')).toEqual({ host: '::1', port: 8443 });
    expect(() => parseListen('localhost')).toThrow(/HOST:PORT/);
    expect(() => parseListen('a:70000')).toThrow(/HOST:PORT/);
  });
});

async function keys(t: TestVault, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const k of t.store.list(prefix)) out.push(k);
  return out.sort();
}
