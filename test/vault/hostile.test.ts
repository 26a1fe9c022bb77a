/**
 * The vault service against machines and clients that push its limits: registrations at once,
 * a re-registration that fails half way, planted key envelopes, storage errors that must not name
 * the storage, bodies beyond what the server holds at once, and a server that sends more than asked.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { generateMasterKey, MAX_KEY_ENVELOPES, wrapMasterKey } from '../../src/core/keys.js';
import { packIdOf } from '../../src/core/pack.js';
import { AzbkError } from '../../src/shared/errors.js';
import { HEADER, sha256Hex } from '../../src/vault/http-protocol.js';
import { layout } from '../../src/vault/layout.js';
import { openVaultStore } from '../../src/vault/open-store.js';
import { buildServer } from '../../src/vault/server.js';
import { ByteBudget } from '../../src/vault/server-routes.js';
import { FaultyBlobStore } from '../../src/vault/storage/faulty-store.js';
import { FsBlobStore, TEMP_DIR } from '../../src/vault/storage/fs-store.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { RetryingBlobStore } from '../../src/vault/storage/retrying-store.js';
import { Vault } from '../../src/vault/vault.js';
import { makeTempDir } from '../helpers/tmp.js';
import { appFor, bytes, createTestVault, registerRaw } from '../helpers/vault-service.js';

let apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  apps = [];
});

const reg = (token: string, machineName: string, reregister = false) => ({ token, machineName, os: 'linux-x64', hostname: 'h', reregister });

describe('vault service limits', () => {
  it('registers one at a time: a name once, and never past the machine limit', async () => {
    const t = await createTestVault({ maxMachines: 5 });
    const same = await Promise.allSettled(Array.from({ length: 8 }, () => t.vault.register(reg(t.token, 'dup'))));
    expect(same.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const many = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => t.vault.register(reg(t.token, `m${i}`))));
    expect(many.filter((r) => r.status === 'fulfilled')).toHaveLength(4);
    expect(await t.vault.machines()).toHaveLength(5);
  });

  it('says what holds a name whose machine record was removed from the storage, and leaves no record behind', async () => {
    const t = await createTestVault();
    const gone = await t.vault.register(reg(t.token, 'gone'));
    await t.store.delete(layout.machine(gone.machineId));
    for (const again of [false, true]) {
      await expect(t.vault.register(reg(t.token, 'Gone', again))).rejects.toMatchObject({
        code: 'AZBK_MACHINE_NAME_TAKEN',
        message: `The name Gone is held by machine ${gone.machineId}, whose record is no longer in the vault (removed from its storage by hand?).`,
        hint: expect.stringContaining('machine-names/gone'),
      });
    }
    expect(await t.vault.machines()).toEqual([]);
    // Once the owner removes the claim, the name is free.
    await t.store.delete(layout.machineName('gone'));
    expect((await t.vault.register(reg(t.token, 'gone'))).machineId).not.toBe(gone.machineId);
  });

  it('registers a name once when several vault servers share one store, and claims it for the machine', async () => {
    const t = await createTestVault();
    const servers = [t.vault, await Vault.open(t.store), await Vault.open(t.store)];
    // Each server takes its own requests one at a time, but the servers do not wait for each other.
    const same = await Promise.allSettled(servers.map((v) => v.register(reg(t.token, 'Dup'))));
    const won = same.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of same) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', message: expect.stringContaining('at the same time') });
    const machines = await t.vault.machines();
    expect(machines.map((m) => m.name)).toEqual(['Dup']);
    expect((await t.store.get(layout.machineName('dup')))?.toString('utf8')).toBe(machines[0]!.id);
    // Registered again (also on another server), it keeps its id and its name.
    const again = await servers[2]!.register(reg(t.token, 'dup', true));
    expect(again.machineId).toBe(machines[0]!.id);
    await expect(servers[1]!.register(reg(t.token, 'DUP'))).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN' });
  });

  it('claims the name of a machine an earlier version registered when it is registered again', async () => {
    const t = await createTestVault();
    const first = await t.vault.register(reg(t.token, 'older'));
    await t.store.delete(layout.machineName('older')); // as an earlier version left it
    expect((await t.vault.register(reg(t.token, 'older', true))).machineId).toBe(first.machineId);
    expect((await t.store.get(layout.machineName('older')))?.toString('utf8')).toBe(first.machineId);
  });

  it('lets a machine be registered again only with the passphrase (key family) it was registered with', async () => {
    const t = await createTestVault();
    const [p1, p2] = ['1'.repeat(64), '2'.repeat(64)];
    const first = await t.vault.register({ ...reg(t.token, 'web'), keyProof: p1 });
    await expect(t.vault.register({ ...reg(t.token, 'web', true), keyProof: p2 })).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', message: expect.stringContaining('another passphrase') });
    await expect(t.vault.register(reg(t.token, 'web', true))).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN' });
    await expect(t.vault.session(first.machineId, first.secret)).resolves.toBeDefined(); // still its own
    const again = await t.vault.register({ ...reg(t.token, 'web', true), keyProof: p1 });
    expect(again.machineId).toBe(first.machineId);
    // A machine registered before proofs were kept can be registered again, and keeps one from then on.
    const old = await t.vault.register(reg(t.token, 'old'));
    await t.vault.register({ ...reg(t.token, 'old', true), keyProof: p2 });
    await expect(t.vault.register({ ...reg(t.token, 'old', true), keyProof: p1 })).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN' });
    expect((await t.vault.machines()).find((m) => m.id === old.machineId)).toBeDefined();
    const listed = JSON.stringify(await (await t.vault.session(again.machineId, again.secret)).listMachines());
    expect(listed).not.toContain('proofHash');
  });

  it('keeps a machine whose re-registration could not be written', async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    const vault = await Vault.create(faulty, { name: 'V' });
    const { token } = await vault.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    const first = await vault.register(reg(token, 'keep'));
    faulty.fail('put', { match: (k) => k === layout.machine(first.machineId), times: 1 });
    await expect(vault.register(reg(token, 'keep', true))).rejects.toThrow();
    await expect(vault.session(first.machineId, first.secret)).resolves.toBeDefined();
  });

  it('keeps a machine, its name and its proof when storage fails for good between removing its record and writing the new one', async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    const vault = await Vault.create(faulty, { name: 'V' });
    const { token } = await vault.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    const proof = 'cd'.repeat(32);
    const first = await vault.register({ ...reg(token, 'keep'), keyProof: proof });
    // Every later write of the machine's record fails, as when the storage goes away (or the
    // process is killed) just after the old record was deleted.
    faulty.fail('put', { match: (k) => k === layout.machine(first.machineId), times: Infinity });
    await expect(vault.register({ ...reg(token, 'keep', true), keyProof: proof })).rejects.toThrow();
    expect(await faulty.get(layout.machine(first.machineId))).toBeNull();
    // The machine is still registered, under its name, with its old secret.
    const reopened = await Vault.open(faulty);
    await expect(reopened.session(first.machineId, first.secret)).resolves.toBeDefined();
    expect((await reopened.machines()).map((m) => [m.id, m.name])).toEqual([[first.machineId, 'keep']]);
    // Only its passphrase registers it again; then it has one record, its id and the new secret.
    await expect(reopened.register({ ...reg(token, 'keep', true), keyProof: 'ef'.repeat(32) })).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN' });
    faulty.clearFaults();
    const again = await reopened.register({ ...reg(token, 'keep', true), keyProof: proof });
    expect(again.machineId).toBe(first.machineId);
    await expect(reopened.session(first.machineId, first.secret)).rejects.toMatchObject({ code: 'AZBK_CREDENTIALS_INVALID' });
    await expect(reopened.session(again.machineId, again.secret)).resolves.toBeDefined();
    expect(await faulty.get(layout.machineBefore(first.machineId))).toBeNull();
    expect(await reopened.machines()).toHaveLength(1);
  });

  it('takes two re-registrations of one machine through two servers one at a time, so that neither removes what the other kept', async () => {
    const base = new MemoryBlobStore();
    const store = new FaultyBlobStore(base);
    const one = await Vault.create(store, { name: 'V' });
    const { token } = await one.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    const proof = 'cd'.repeat(32);
    const first = await one.register({ ...reg(token, 'web1'), keyProof: proof });
    // Server one's re-registration stops short of its last step, its copy of the old record kept.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let paused!: () => void;
    const reached = new Promise<void>((resolve) => (paused = resolve));
    const slowed = { ...store, put: store.put.bind(store), get: store.get.bind(store), stat: store.stat.bind(store), list: store.list.bind(store),
      delete: async (key: string) => {
        if (key === layout.machineBefore(first.machineId)) {
          paused();
          await held;
        }
        return store.delete(key);
      },
    };
    const slow = (await Vault.open(slowed as unknown as FaultyBlobStore)).register({ ...reg(token, 'web1', true), keyProof: proof });
    await reached;
    // Server two, meanwhile, is refused instead of interleaving (it would have copied server one's
    // new record over the kept one, which server one then deletes).
    const two = await Vault.open(store);
    await expect(two.register({ ...reg(token, 'web1', true), keyProof: proof })).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', message: expect.stringContaining('being registered again elsewhere') });
    await expect(one.register({ ...reg(token, 'web1', true), keyProof: proof })).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN' });
    release();
    const last = await slow;
    // One record, the one registration's that ran: its secret works, the first one's no longer does.
    expect(await two.machines()).toHaveLength(1);
    await expect(two.session(last.machineId, last.secret)).resolves.toBeDefined();
    await expect(two.session(first.machineId, first.secret)).rejects.toMatchObject({ code: 'AZBK_CREDENTIALS_INVALID' });
    expect(await base.get(layout.machineLock(first.machineId))).toBeNull();
    expect(await base.get(layout.machineBefore(first.machineId))).toBeNull();
    // Then it registers again as usual.
    await expect(two.register({ ...reg(token, 'web1', true), keyProof: proof })).resolves.toMatchObject({ machineId: first.machineId });
  });

  it('takes over the lock of a re-registration that was stopped, once it is 2 minutes old', async () => {
    let now = Date.parse('2026-12-03T10:00:00Z');
    const t = await createTestVault();
    const vault = await Vault.open(t.store, { now: () => new Date(now) });
    const proof = 'cd'.repeat(32);
    const first = await vault.register({ ...reg(t.token, 'web1'), keyProof: proof });
    // What a process killed during its re-registration leaves.
    await t.store.put(layout.machineLock(first.machineId), Buffer.from(JSON.stringify({ time: new Date(now).toISOString(), nonce: 'x' })));
    now += 60_000;
    await expect(vault.register({ ...reg(t.token, 'web1', true), keyProof: proof })).rejects.toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', hint: expect.stringContaining('2 minutes') });
    await expect(vault.session(first.machineId, first.secret)).resolves.toBeDefined();
    now += 61_000;
    const again = await vault.register({ ...reg(t.token, 'web1', true), keyProof: proof });
    await expect(vault.session(again.machineId, again.secret)).resolves.toBeDefined();
    expect(await t.store.get(layout.machineLock(first.machineId))).toBeNull();
  });

  it('lets one of two that find the same given-up lock take it over, never both', async () => {
    let now = Date.parse('2026-12-03T10:00:00Z');
    const t = await createTestVault();
    const clock = { now: () => new Date(now) };
    const [one, two] = [await Vault.open(t.store, clock), await Vault.open(t.store, clock)];
    const proof = 'cd'.repeat(32);
    const first = await one.register({ ...reg(t.token, 'web1'), keyProof: proof });
    await t.store.put(layout.machineLock(first.machineId), Buffer.from(JSON.stringify({ time: new Date(now).toISOString(), nonce: 'x' })));
    now += 3 * 60_000;
    const both = await Promise.allSettled([one, two].map((v) => v.register({ ...reg(t.token, 'web1', true), keyProof: proof })));
    const won = both.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(won).toHaveLength(1);
    for (const r of both) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'AZBK_MACHINE_NAME_TAKEN', message: expect.stringContaining('being registered again elsewhere') });
    await expect(one.session(won[0]!.machineId, won[0]!.secret)).resolves.toBeDefined();
    // Nothing of the locks is left.
    const left: string[] = [];
    for await (const k of t.store.list('machine-locks/')) left.push(k);
    expect(left).toEqual([]);
  });

  it('keeps one point per backup job, whichever points came between, and also when two write one at once', async () => {
    const t = await createTestVault();
    const [one, two] = [t.vault, await Vault.open(t.store)];
    const r = await one.register(reg(t.token, 'm'));
    const [a, b] = [await one.session(r.machineId, r.secret), await two.session(r.machineId, r.secret)];
    const point = (jobId: string, text: string) => ({ keyId: '01'.repeat(16), jobId, manifest: Buffer.from(text), packs: [] }) as never;
    const jobJ = 'aa'.repeat(16);
    const p1 = await a.putPoint(point(jobJ, 'first'));
    await a.putPoint(point('bb'.repeat(16), 'another job'));
    // The same job again: the same point when it is the same manifest, refused when it is another.
    expect((await a.putPoint(point(jobJ, 'first'))).id).toBe(p1.id);
    await expect(b.putPoint(point(jobJ, 'a copy that resumed the job'))).rejects.toMatchObject({ code: 'AZBK_FORBIDDEN', message: expect.stringContaining(`made recovery point ${p1.id} already`) });
    // Two copies at once: one point of the job stands.
    const jobK = 'cc'.repeat(16);
    const both = await Promise.allSettled([a.putPoint(point(jobK, 'copy one')), b.putPoint(point(jobK, 'copy two'))]);
    expect(both.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    const jobs = await Promise.all((await a.listPoints(r.machineId)).map(async (p) => (await a.readPoint(r.machineId, p.id)).jobId));
    expect(jobs.filter((j) => j === jobK)).toHaveLength(1);
    expect(jobs.filter((j) => j === jobJ)).toHaveLength(1);
  });

  it("does not take a job's point that the storage could not read for one that is not there", async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    const vault = await Vault.create(faulty, { name: 'V' });
    const { token } = await vault.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    const r = await vault.register(reg(token, 'm'));
    const session = await vault.session(r.machineId, r.secret);
    const point = (text: string) => ({ keyId: '01'.repeat(16), jobId: 'aa'.repeat(16), manifest: Buffer.from(text), packs: [] }) as never;
    const made = await session.putPoint(point('first'));
    // The first read (of the newest point's packs) goes through; the job's point then cannot be read.
    faulty.fail('get', { match: (k) => k === layout.point(r.machineId, made.id), after: 1, times: Infinity });
    await expect(session.putPoint(point('a copy that resumed the job'))).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    faulty.clearFaults();
    expect(await session.listPoints(r.machineId)).toHaveLength(1);
    await expect(session.putPoint(point('a copy that resumed the job'))).rejects.toMatchObject({ code: 'AZBK_FORBIDDEN' });
  });

  it(`holds at most ${MAX_KEY_ENVELOPES} passphrase envelopes`, async () => {
    const t = await createTestVault();
    const cheap = { N: 1024, r: 8, p: 1 };
    const envelopes = await Promise.all(Array.from({ length: MAX_KEY_ENVELOPES - (await t.vault.readKeys()).length }, () => wrapMasterKey(generateMasterKey(), 'a passphrase of some length', { cost: cheap })));
    const more = await Promise.all(Array.from({ length: 8 }, () => wrapMasterKey(generateMasterKey(), 'a passphrase of some length', { cost: cheap })));
    // All at once: the count and the write are one step, so the limit holds.
    const added = await Promise.allSettled([...envelopes, ...more].map((e) => t.vault.addKey(e)));
    expect(added.filter((r) => r.status === 'rejected')).toHaveLength(more.length);
    expect(await t.vault.readKeys()).toHaveLength(MAX_KEY_ENVELOPES);
    await t.vault.addKey(envelopes[0]!); // the same one again is no new envelope
    await expect(t.vault.addKey(more[0]!)).rejects.toMatchObject({ code: 'AZBK_VAULT_LIMIT' });
    // A registration with a new passphrase then says why, and what to do.
    await expect(t.vault.register({ ...reg(t.token, 'late'), newKey: more[1]! })).rejects.toMatchObject({ code: 'AZBK_VAULT_LIMIT', hint: expect.stringContaining('passphrase already in use') });
  });

  it('answers a storage failure without naming the storage, and logs it', async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    const vault = await Vault.create(faulty, { name: 'V' });
    const { token } = await vault.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    const logs: string[] = [];
    const app = await appFor({ store: new MemoryBlobStore(), vault, token, logs });
    apps.push(app);
    const a = await registerRaw(app, token, 'a');
    faulty.fail('put', { error: new AzbkError('AZBK_VAULT_UNREACHABLE', 'Cannot put vault object in /srv/secret/vault-folder: ENOSPC.'), times: Infinity });
    const data = bytes(1000);
    const res = await app.inject({ method: 'PUT', url: `/v1/packs/${packIdOf(data)}`, headers: { authorization: a.auth, 'content-type': 'application/octet-stream', [HEADER.sha256]: sha256Hex(data) }, payload: data });
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('AZBK_VAULT_UNREACHABLE');
    expect(res.body).not.toContain('/srv/secret');
    expect(logs.join('\n')).toContain('/srv/secret/vault-folder');
  });

  it('forgets remembered sessions when a machine registers again: the old secret is refused at once', async () => {
    const t = await createTestVault();
    const app = await buildServer({ vault: t.vault, sessionCacheMs: 60_000 });
    apps.push(app);
    const a = await registerRaw(app, t.token, 'a');
    const ask = () => app.inject({ method: 'GET', url: '/v1/session', headers: { authorization: a.auth } });
    expect((await ask()).statusCode).toBe(200); // now remembered
    const again = await app.inject({ method: 'POST', url: '/v1/register', payload: reg(t.token, 'a', true) });
    expect(again.statusCode).toBe(201);
    expect((await ask()).statusCode).toBe(401);
  });
});

describe('vault storage', () => {
  it.skipIf(process.platform === 'win32')('keeps the signing key and every object owner-only on disk', async () => {
    const dir = await makeTempDir('azbk-vault-');
    await fs.chmod(dir, 0o755); // an existing folder that others may read
    await Vault.create(new FsBlobStore(dir), { name: 'V' });
    expect((await fs.stat(path.join(dir, layout.signingKey))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.dirname(path.join(dir, layout.signingKey)))).mode & 0o777).toBe(0o700);
  });

  it.skipIf(process.platform === 'win32')('makes the secrets of a vault made before owner-only when it is opened', async () => {
    const dir = await makeTempDir('azbk-vault-');
    await Vault.create(new FsBlobStore(dir), { name: 'V' });
    const key = path.join(dir, layout.signingKey);
    await fs.chmod(key, 0o644);
    await fs.chmod(path.dirname(key), 0o755);
    await openVaultStore({ kind: 'fs', dir });
    expect((await fs.stat(key)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.dirname(key))).mode & 0o777).toBe(0o700);
  });

  it('refuses to finish a create with a left signing key that is not an ed25519 key', async () => {
    const store = new MemoryBlobStore();
    await store.put(layout.signingKey, Buffer.from(JSON.stringify({ alg: 'ed25519', privateKey: 'not a key' })));
    await expect(Vault.create(store, { name: 'V' })).rejects.toMatchObject({ code: 'AZBK_VAULT_CORRUPT' });
  });

  it('a create that stopped after its signing key is done again with that key, and its credentials work', async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    faulty.fail('put', { match: (k) => k === layout.config, times: 1 });
    await expect(Vault.create(faulty, { name: 'V' })).rejects.toThrow();
    const vault = await Vault.create(faulty, { name: 'V' });
    const { token } = await vault.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    await expect(vault.register(reg(token, 'a'))).resolves.toMatchObject({ machineId: expect.any(String) });
    await expect(Vault.create(faulty, { name: 'V' })).rejects.toMatchObject({ code: 'AZBK_VAULT_EXISTS' });
  });

  it('a registration whose reply was lost, and so was written again, succeeds', async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    const vault = await Vault.create(new RetryingBlobStore(faulty, { sleep: async () => undefined }), { name: 'V' });
    const { token } = await vault.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    faulty.fail('put', { match: (k) => k.startsWith('machines/'), mode: 'lost-reply', times: 1 });
    const r = await vault.register(reg(token, 'a'));
    await expect(vault.session(r.machineId, r.secret)).resolves.toBeDefined();
    expect(await vault.machines()).toHaveLength(1);
  });

  it('writes nothing into an empty folder left where the vault was, and tells machines the vault is not found', async () => {
    const base = await makeTempDir('azbk-vault-');
    const dir = path.join(base, 'vault');
    await fs.mkdir(dir);
    const vault = await Vault.create(new FsBlobStore(dir), { name: 'V' });
    const { token } = await vault.credentials({ endpoint: 'https://v.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
    const r = await vault.register(reg(token, 'a'));
    const session = await vault.session(r.machineId, r.secret);
    // The disk unmounted: its mount point, empty, in its place.
    await fs.rename(dir, path.join(base, 'away'));
    await fs.mkdir(dir);
    const gone = { code: 'AZBK_VAULT_NOT_FOUND' };
    await expect(session.putIndex('cd'.repeat(32), Buffer.from('index'))).rejects.toMatchObject(gone);
    await expect(session.putCheckpoint({ jobId: 'ef'.repeat(16), seq: 1, data: Buffer.from('checkpoint') })).rejects.toMatchObject(gone);
    await expect(session.putPoint({ keyId: '01'.repeat(16), jobId: 'ef'.repeat(16), manifest: Buffer.from('m'), packs: [] } as never)).rejects.toMatchObject(gone);
    await expect(vault.register(reg(token, 'b'))).rejects.toMatchObject(gone);
    await expect(vault.session(r.machineId, r.secret)).rejects.toMatchObject(gone);
    expect(await fs.readdir(dir)).toEqual([]);
    // Back in place: as before.
    await fs.rmdir(dir);
    await fs.rename(path.join(base, 'away'), dir);
    await session.putIndex('cd'.repeat(32), Buffer.from('index'));
    await expect(vault.session(r.machineId, 'AAAA')).rejects.toMatchObject({ code: 'AZBK_CREDENTIALS_INVALID' });
  });

  it('sweeps stale temporary files when a vault service only puts', async () => {
    const dir = await makeTempDir('azbk-vault-');
    const store = new FsBlobStore(dir);
    await fs.mkdir(path.join(dir, TEMP_DIR), { recursive: true });
    const stale = path.join(dir, TEMP_DIR, 'left-by-a-crash.tmp');
    await fs.writeFile(stale, 'half a pack');
    const old = new Date(Date.now() - 3 * 24 * 3600 * 1000);
    await fs.utimes(stale, old, old);
    await store.put('index/' + 'ab'.repeat(32), Buffer.from('x'));
    await expect.poll(() => fs.stat(stale).then(() => true, () => false)).toBe(false);
  });
});

describe('checkpoints', () => {
  it('are never overwritten with other bytes, even under the same name', async () => {
    const fixed = new Date('2026-11-30T10:00:00.000Z');
    const t = await createTestVault({ now: () => fixed });
    const { machineId, secret } = await t.vault.register(reg(t.token, 'a'));
    const s = await t.vault.session(machineId, secret);
    const job = 'ab'.repeat(16);
    await s.putCheckpoint({ jobId: job, seq: 1, data: Buffer.from('one') });
    await s.putCheckpoint({ jobId: job, seq: 1, data: Buffer.from('one') }); // a retry: the same bytes
    await expect(s.putCheckpoint({ jobId: job, seq: 1, data: Buffer.from('two') })).rejects.toMatchObject({ code: 'AZBK_FORBIDDEN' });
    const [only] = await s.listCheckpoints();
    expect((await s.readCheckpoint(only!.name)).toString()).toBe('one');
  });
});

describe('byte budget', () => {
  const reply = () => {
    const raw = new EventEmitter();
    return { r: { raw } as unknown as FastifyReply, done: () => raw.emit('close') };
  };

  it('refuses what does not fit with 503 until bodies are done, and always lets one through', () => {
    const budget = new ByteBudget(1000, 1);
    const big = reply();
    budget.take(big.r, 5000, 'a'); // alone: taken, however large
    expect(() => budget.take(reply().r, 1, 'b')).toThrow(expect.objectContaining({ statusCode: 503 }));
    big.done();
    expect(budget.used).toBe(0);
    const [x, y] = [reply(), reply()];
    budget.take(x.r, 600, 'a');
    expect(() => budget.take(y.r, 600, 'b')).toThrow(expect.objectContaining({ statusCode: 503 }));
    budget.take(y.r, 400, 'b');
    expect(budget.used).toBe(1000);
    x.done();
    y.done();
    expect(budget.used).toBe(0);
  });

  it('lets one machine hold at most its share, beyond one request of any size while at most half is held', () => {
    const budget = new ByteBudget(1000); // a quarter each: 250
    const [a1, a2, a3, b1, c1] = [reply(), reply(), reply(), reply(), reply()];
    budget.take(a1.r, 600, 'a'); // its first, however large
    expect(() => budget.take(a2.r, 1, 'a')).toThrow(expect.objectContaining({ statusCode: 503 }));
    // Another machine's first past its share would take more than half: two such uploads, stalled,
    // would hold everything. Within its share it still gets the rest.
    expect(() => budget.take(b1.r, 400, 'b')).toThrow(expect.objectContaining({ statusCode: 503 }));
    budget.take(b1.r, 250, 'b');
    budget.take(c1.r, 150, 'c');
    expect(budget.used).toBe(1000);
    a1.done();
    c1.done();
    budget.take(a2.r, 200, 'a');
    budget.take(a3.r, 50, 'a'); // 250: its share, whole
    expect(() => budget.take(reply().r, 1, 'a')).toThrow(expect.objectContaining({ statusCode: 503 }));
    for (const r of [a2, a3, b1]) r.done();
    expect(budget.used).toBe(0);
    budget.take(reply().r, 250, 'a'); // nothing of a's is remembered once its bodies are done
  });
});
