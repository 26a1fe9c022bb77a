/**
 * Retention as the vault applies it: a machine states its policy (POST /v1/policy), and after
 * each new point the vault moves the points the policy no longer keeps to soft delete, then
 * purges them 14 days later. Driven through the service's routes with the vault's clock moved.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { HEADER } from '../../src/vault/http-protocol.js';
import { appFor, bytes, createTestVault, registerRaw, type RawMachine } from '../helpers/vault-service.js';

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
  const point = async (m: RawMachine, jobId = (++job).toString(16).padStart(32, '0')) => {
    const manifest = bytes(64);
    const res = await app.inject({
      method: 'POST',
      url: `/v1/machines/${m.machineId}/points`,
      headers: {
        authorization: m.auth,
        'content-type': 'application/octet-stream',
        [HEADER.sha256]: createHash('sha256').update(manifest).digest('hex'),
        [HEADER.keyId]: '11'.repeat(16),
        [HEADER.jobId]: jobId,
        [HEADER.packCount]: '0',
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
  return { t, app, a, b, point, policy, keys, advance: (ms: number) => (now = new Date(now.getTime() + ms)) };
}

describe('retention in the vault', () => {
  it('keeps every point without a policy, then expires what no policy in force keeps, only for that machine', async () => {
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
    // Until it has been set for 14 days, the machine's earlier state (keep everything) still holds.
    expect((await policy(a, { daily: 7, weekly: 3, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    const newest = await point(a); // Saturday 31 January, 09:00
    expect(newest.expired).toEqual([]);
    advance(14 * DAY);
    const next = await point(a); // Saturday 14 February, 09:00
    const left = (await keys(`points/${a.machineId}/`)).map((k) => k.split('/').at(-1)!);
    // None of January's points is younger than seven days. Of the three weeks, that of 9 to 15
    // February has the new point, that of 2 to 8 February none, and that of 26 January to
    // 1 February the one of the 31st: every point made in the loop expires.
    expect(left.sort()).toEqual([newest.id, next.id].sort());
    const expiredKeys = await keys(`expired/${a.machineId}/`);
    expect(expiredKeys.map((k) => k.split('/').at(-1)).sort()).toEqual(made.map((p) => p.id).sort());
    expect(next.expired).toHaveLength(90);
    // Each expired object holds the point as it was, under the day it expired.
    expect(expiredKeys.every((k) => k.startsWith(`expired/${a.machineId}/20260214/`))).toBe(true);
    // The other machine keeps all of its points.
    expect(await keys(`points/${b.machineId}/`)).toHaveLength(90);
    expect(await keys(`expired/${b.machineId}/`)).toEqual([]);
    // 14 days on, they are purged, and so are the claims of the jobs that made them.
    expect(await keys(`point-jobs/${a.machineId}/`)).toHaveLength(92);
    advance(15 * DAY);
    await point(a);
    const stillExpired = await keys(`expired/${a.machineId}/`);
    expect(stillExpired.filter((k) => k.includes('/20260214/'))).toEqual([]);
    // A claim for each point left, and for each expired one not yet purged.
    expect(await keys(`point-jobs/${a.machineId}/`)).toHaveLength((await keys(`points/${a.machineId}/`)).length + stillExpired.length);
    expect(await keys(`point-jobs/${b.machineId}/`)).toHaveLength(90);
  });

  it('takes a policy that keeps fewer points 14 days after it is set, one that keeps more at once', async () => {
    const { a, point, policy, keys, advance } = await setup();
    expect((await policy(a, { daily: 30, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    advance(15 * DAY);
    const old = await point(a); // day 15
    advance(10 * DAY);
    // Shortened to a week: for 14 days the 30 days still hold.
    expect((await policy(a, { daily: 7, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    expect((await point(a)).expired).toEqual([]); // day 25: `old` is 10 days old
    advance(13 * DAY);
    expect((await point(a)).expired).toEqual([]); // day 38: the week's policy is 13 days old
    // Lengthened again: in force at once, so the week alone never takes effect.
    expect((await policy(a, { daily: 60, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    advance(2 * DAY);
    expect((await point(a)).expired).toEqual([]); // day 40: 60 days keep `old`
    advance(20 * DAY);
    expect((await point(a)).expired).toEqual([]); // day 60: the week's policy is no longer in force
    advance(16 * DAY);
    const late = await point(a); // day 76: `old` is 61 days old
    expect(late.expired).toEqual([old.id]);
    expect(await keys(`points/${a.machineId}/`)).toHaveLength(5);
  });

  it('tells any machine a machine\'s retention: the newest policy and those in force', async () => {
    const { app, a, b, policy, advance } = await setup();
    const state = async (m: RawMachine, of: string) => {
      const res = await app.inject({ method: 'GET', url: `/v1/machines/${of}/policy`, headers: { authorization: m.auth } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };
    expect(await state(b, a.machineId)).toEqual({ newest: null, inForce: null, now: '2026-01-01T09:00:00.000Z' });
    const week = { daily: 7, weekly: 0, monthly: 0, yearly: 0 };
    const month = { daily: 31, weekly: 0, monthly: 0, yearly: 0 };
    await policy(a, week);
    expect(await state(b, a.machineId)).toMatchObject({ newest: week, inForce: null });
    advance(15 * DAY);
    // Set in the same millisecond, the one set last is still the newest.
    await policy(a, month);
    await policy(a, week);
    expect(await state(a, a.machineId)).toMatchObject({ newest: week });
    await policy(a, month);
    expect(await state(a, a.machineId)).toMatchObject({ newest: month });
    // Each distinct policy once.
    expect(await state(a, a.machineId)).toEqual({ newest: month, inForce: [week, month], now: '2026-01-16T09:00:00.000Z' });
    expect(await state(a, 'ab'.repeat(16))).toMatchObject({ newest: null, inForce: null });
    const bad = await app.inject({ method: 'GET', url: '/v1/machines/..%2Fvault/policy', headers: { authorization: a.auth } });
    expect(bad.statusCode).toBe(400);
  });

  it('counts the 14 days to the millisecond', async () => {
    const { a, point, policy, advance } = await setup();
    const old = await point(a);
    expect((await policy(a, { daily: 7, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    advance(14 * DAY - 1);
    expect((await point(a)).expired).toEqual([]);
    advance(1);
    expect((await point(a)).expired).toEqual([old.id]);
  });

  it('purges soft-deleted points 14 days after they expired, and not before', async () => {
    const { a, point, policy, keys, advance } = await setup();
    expect((await policy(a, { daily: 7, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    const first = await point(a);
    advance(20 * DAY);
    const second = await point(a);
    expect(second.expired).toEqual([first.id]);
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

  it('moves at most 200 points in one pass, oldest first; the next point moves the rest', async () => {
    const { a, point, policy, keys, advance } = await setup();
    expect((await policy(a, { daily: 7, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    advance(15 * DAY);
    const made: string[] = [];
    for (let i = 0; i < 230; i++) {
      made.push((await point(a)).id);
      advance(1000);
    }
    advance(8 * DAY);
    const next = await point(a);
    expect(next.expired).toEqual(made.slice(0, 200));
    expect((await point(a)).expired).toEqual(made.slice(200));
    expect(await keys(`points/${a.machineId}/`)).toHaveLength(2);
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

  it('drops the checkpoints of a finished job, and of jobs no newer than the point, whole; only the machine\'s own', async () => {
    const { app, a, b, point, keys, advance } = await setup();
    const checkpoint = async (m: RawMachine, job: string, seq: number) => {
      // A sealed checkpoint of 32 bytes, then the one pack it names.
      const data = bytes(64);
      const res = await app.inject({
        method: 'PUT',
        url: `/v1/checkpoints/${job}/${seq}`,
        headers: { authorization: m.auth, 'content-type': 'application/octet-stream', [HEADER.sha256]: createHash('sha256').update(data).digest('hex'), [HEADER.packCount]: '1' },
        payload: data,
      });
      expect(res.statusCode, res.body).toBe(201);
    };
    // The checkpoints' jobs; each checkpoint's pack list goes with it.
    const names = async (m: RawMachine) => {
      const job = (k: string) => k.split('/').at(-1)!.split('-')[1];
      const jobs = (await keys(`checkpoints/${m.machineId}/`)).map(job);
      expect((await keys(`checkpoint-packs/${m.machineId}/`)).map(job)).toEqual(jobs);
      return jobs;
    };
    // A killed job (aa), another machine's (bb), then a job of other paths (cc) that finishes.
    await checkpoint(a, 'aa'.repeat(16), 1);
    await checkpoint(a, 'aa'.repeat(16), 2);
    await checkpoint(b, 'bb'.repeat(16), 1);
    advance(1000);
    await checkpoint(a, 'cc'.repeat(16), 1);
    advance(1000);
    await point(a, 'cc'.repeat(16));
    expect(await names(a)).toEqual([]);
    expect(await names(b)).toEqual(['bb'.repeat(16)]);

    // A job with a checkpoint after the point (dd, its clock ahead) keeps all of its checkpoints,
    // also the one before; the job that writes the point loses its own even when dated after it.
    await checkpoint(a, 'dd'.repeat(16), 1);
    advance(2000);
    await checkpoint(a, 'dd'.repeat(16), 2);
    await checkpoint(a, 'ee'.repeat(16), 1);
    advance(-1000);
    await point(a, 'ee'.repeat(16));
    expect(await names(a)).toEqual(['dd'.repeat(16), 'dd'.repeat(16)]);
    advance(5000);
    await point(a);
    expect(await names(a)).toEqual([]);
  });

  it('keeps every point when a policy in force cannot be read', async () => {
    const { t, a, point, policy, keys, advance } = await setup();
    expect((await policy(a, { daily: 7, weekly: 0, monthly: 0, yearly: 0 })).statusCode).toBe(204);
    await point(a);
    advance(30 * DAY);
    await t.store.put(`policies/${a.machineId}/29991231T000000000Z-00000000`, Buffer.from('{"version":1,"retention":{"daily":0}}'));
    expect((await point(a)).expired).toEqual([]);
    expect(await keys(`points/${a.machineId}/`)).toHaveLength(2);
  });
});
