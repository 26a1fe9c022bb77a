/**
 * Retention as the vault applies it: a machine states its policy (POST /v1/policy), and after
 * each new point the vault moves the points the policy no longer keeps to soft delete, then
 * purges them 14 days later. Driven through the service's routes with the vault's clock moved.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { HEADER } from '../../src/vault/http-protocol.js';
import { appFor, bytes, createTestVault, registerRaw, type RawMachine, type TestVault } from '../helpers/vault-service.js';

const DAY = 86_400_000;
let apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  apps = [];
});

async function setup() {
  let now = new Date('2026-01-01T09:00:00.000Z'); // a Thursday
  const t = await createTestVault({ now: () => now });
  const app = await appFor(t);
  apps.push(app);
  const a = await registerRaw(app, t.token, 'alpha');
  const b = await registerRaw(app, t.token, 'beta');
  let job = 0;
  const point = async (m: RawMachine) => {
    const manifest = bytes(64);
    const res = await app.inject({
      method: 'POST',
      url: `/v1/machines/${m.machineId}/points`,
      headers: {
        authorization: m.auth,
        'content-type': 'application/octet-stream',
        [HEADER.sha256]: createHash('sha256').update(manifest).digest('hex'),
        [HEADER.keyId]: '11'.repeat(16),
        [HEADER.jobId]: (++job).toString(16).padStart(32, '0'),
      },
      payload: manifest,
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; time: string; expired: string[] };
  };
  const policy = (m: RawMachine, retention: unknown) => app.inject({ method: 'POST', url: '/v1/policy', headers: { authorization: m.auth }, payload: { retention } });
  const keys = async (prefix: string) => {
    const out: string[] = [];
    for await (const k of t.store.list(prefix)) out.push(k);
    return out.sort();
  };
  return { t, app, a, b, point, policy, keys, advance: (ms: number) => (now = new Date(now.getTime() + ms)), now: () => now };
}

describe('retention in the vault', () => {
  it('keeps every point without a policy, then expires what the policy does not keep, only for that machine', async () => {
    const { a, b, point, policy, keys, advance } = await setup();
    const made: { id: string; time: string }[] = [];
    // Three points a day (09:00, 13:00, 21:00) from 1 to 30 January, for both machines.
    for (let d = 0; d < 30; d++) {
      for (const hours of [4, 8, 12]) {
        const p = await point(a);
        expect(p.expired).toEqual([]);
        made.push(p);
        await point(b);
        advance(hours * 3600_000);
      }
    }
    expect(await keys(`points/${a.machineId}/`)).toHaveLength(90);

    // Seven days of every point, and the newest of each of 3 weeks (this one and the two before).
    expect((await policy(a, { daily: 7, weekly: 3, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    const next = await point(a); // Saturday 31 January, 09:00
    const left = (await keys(`points/${a.machineId}/`)).map((k) => k.split('/').at(-1)!);
    // After 24 January 09:00: two that day, three a day from the 25th to the 30th, the new one (21);
    // the newest of the week of 12 to 18 January (the 18th, 21:00); the other weeks' are daily.
    expect(left.sort()).toEqual([...made.filter((p) => p.time > '2026-01-24T09:00:00.000Z' || p.time === '2026-01-18T21:00:00.000Z').map((p) => p.id), next.id].sort());
    expect(left).toHaveLength(22);
    expect(next.expired).toHaveLength(90 + 1 - 22);
    const expiredKeys = await keys(`expired/${a.machineId}/`);
    expect(expiredKeys.map((k) => k.split('/').at(-1)).sort()).toEqual([...next.expired].sort());
    // Nothing is lost: each expired object holds the point as it was.
    expect(expiredKeys.every((k) => /^expired\/[0-9a-f]{32}\/\d{8}\/\d{8}T\d{9}Z-[0-9a-f]{8}$/.test(k))).toBe(true);
    // The other machine keeps all of its points.
    expect(await keys(`points/${b.machineId}/`)).toHaveLength(90);
    expect(await keys(`expired/${b.machineId}/`)).toEqual([]);
  });

  it('purges soft-deleted points 14 days after they expired, and not before', async () => {
    const { a, point, policy, keys, advance } = await setup();
    const first = await point(a);
    advance(20 * DAY);
    expect((await policy(a, { daily: 7, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    const second = await point(a);
    expect(second.expired).toHaveLength(1);
    advance(14 * DAY);
    await point(a); // expired the second; the first is 14 days in soft delete: kept
    expect(await keys(`expired/${a.machineId}/`)).toHaveLength(2);
    advance(DAY + 1);
    await point(a);
    const soft = await keys(`expired/${a.machineId}/`);
    expect(soft).toHaveLength(1);
    expect(soft[0]!.endsWith(second.id)).toBe(true);
    expect(soft.some((k) => k.endsWith(first.id))).toBe(false);
  });

  it('refuses a policy out of range or malformed, and keeps the one in force', async () => {
    const { a, point, policy, keys, advance } = await setup();
    for (const bad of [{ daily: 1, weekly: 0, monthly: 0, yearly: 0 }, { daily: 7, weekly: 0, monthly: 0 }, { daily: 7, weekly: 0, monthly: 0, yearly: 0, extra: 1 }, { daily: '30', weekly: 0, monthly: 0, yearly: 0 }, { daily: 7.5, weekly: 0, monthly: 0, yearly: 0 }, null]) {
      const res = await policy(a, bad);
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
      expect(res.json().code).toBe('AZBK_BAD_INPUT');
    }
    expect(await keys('policies/')).toEqual([]);
    expect((await policy(a, { daily: 30, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    await point(a);
    advance(10 * DAY);
    expect((await point(a)).expired).toEqual([]); // 10 days < 30
  });

  it('drops a machine\'s checkpoints once a newer point makes them useless, and only its own', async () => {
    const { app, a, b, point, keys, advance } = await setup();
    const checkpoint = async (m: RawMachine, job: string, seq: number) => {
      const data = bytes(32);
      const res = await app.inject({
        method: 'PUT',
        url: `/v1/checkpoints/${job}/${seq}`,
        headers: { authorization: m.auth, 'content-type': 'application/octet-stream', [HEADER.sha256]: createHash('sha256').update(data).digest('hex') },
        payload: data,
      });
      expect(res.statusCode, res.body).toBe(201);
    };
    await checkpoint(a, 'aa'.repeat(16), 1);
    await checkpoint(a, 'aa'.repeat(16), 2);
    await checkpoint(b, 'bb'.repeat(16), 1);
    advance(1000);
    await point(a);
    expect(await keys(`checkpoints/${a.machineId}/`)).toEqual([]);
    expect(await keys(`checkpoints/${b.machineId}/`)).toHaveLength(1);
    // A job after that point keeps its checkpoints until a point of its own or a later one.
    advance(1000);
    await checkpoint(a, 'cc'.repeat(16), 1);
    expect(await keys(`checkpoints/${a.machineId}/`)).toHaveLength(1);
    advance(1000);
    await point(a);
    expect(await keys(`checkpoints/${a.machineId}/`)).toEqual([]);
  });

  it('keeps every point when the newest policy record is damaged', async () => {
    const { t, a, point, policy, keys, advance } = await setup();
    await point(a);
    advance(30 * DAY);
    expect((await policy(a, { daily: 7, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    await t.store.put(`policies/${a.machineId}/29991231T000000000Z-00000000`, Buffer.from('{"version":1,"retention":{"daily":0}}'));
    expect((await point(a)).expired).toEqual([]);
    expect(await keys(`points/${a.machineId}/`)).toHaveLength(2);
  });
});
