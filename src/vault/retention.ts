/**
 * The vault's side of retention. A machine states its policy (`policies/<machine>/<name>`, one
 * object per change, named by the vault's time); after each new point the vault moves the points
 * no policy in force keeps to `expired/<machine>/<day>/<id>`, where they wait SOFT_DELETE_DAYS
 * days before they are purged. Until then a point can be brought back by moving its object back
 * under `points/`. A machine without a policy keeps every point. Only points are removed: the
 * packs they share stay.
 */
import { isHex32, POINT_ID, type MachineId, type PointId } from '../core/ids.js';
import { DAY_MS, pickRetention, retainUnder, validRetention, type Retention } from '../core/retention.js';
import { AzbkError } from '../shared/errors.js';
import type { PointInfo, RetentionState } from './api.js';
import { baseName, layout, pointIdFor, timeOfPointId } from './layout.js';
import type { BlobStore } from './storage/blobstore.js';
import { byText } from '../shared/text-order.js';

export const SOFT_DELETE_DAYS = 14;
/** Policy records are named as points are: by the vault's time. */
const POLICY_NAME = POINT_ID;
const DAY = /^\d{8}$/;
/** a policy record is a few hundred bytes; anything much larger is not one */
const MAX_POLICY_BYTES = 4096;

/** YYYYMMDD of a time, in UTC. */
export const dayOf = (t: Date): string => t.toISOString().slice(0, 10).replace(/-/g, '');

/** The names of the machine's policy records, oldest first. */
async function policyNames(store: BlobStore, machine: MachineId): Promise<string[]> {
  const names: string[] = [];
  for await (const key of store.list(layout.policiesPrefix(machine))) {
    const name = baseName(key);
    if (POLICY_NAME.test(name)) names.push(name);
  }
  return names.sort();
}

/**
 * Stores `retention` as the machine's policy set at `now`, named by that time, or a millisecond
 * after the newest record when that is later (a clock set back, or two in one millisecond), so
 * that the newest name is always the policy set last.
 */
export async function writePolicy(store: BlobStore, machine: MachineId, retention: Retention, now: Date): Promise<void> {
  if (!validRetention(retention)) throw new AzbkError('AZBK_BAD_INPUT', 'The retention policy is out of range.');
  const newest = (await policyNames(store, machine)).at(-1);
  const after = newest === undefined ? 0 : Date.parse(timeOfPointId(newest)) + 1;
  const time = new Date(Math.max(now.getTime(), after));
  const record = { version: 1, time: time.toISOString(), retention: pickRetention(retention) };
  await store.put(layout.policy(machine, pointIdFor(time)), Buffer.from(JSON.stringify(record)));
}

/** The retention of a policy record, or null when it cannot be read. */
async function readRecord(store: BlobStore, machine: MachineId, name: string): Promise<Retention | null> {
  const data = await store.get(layout.policy(machine, name));
  if (data === null || data.length > MAX_POLICY_BYTES) return null;
  try {
    const r = (JSON.parse(data.toString('utf8')) as { version?: unknown; retention?: unknown }) ?? {};
    return r.version === 1 && validRetention(r.retention) ? r.retention : null;
  } catch {
    return null;
  }
}

/**
 * The policies in force at some time in the last SOFT_DELETE_DAYS days (`names`: the machine's
 * policy names, oldest first, when the caller has them): the one in force when
 * that window began and every one set since. Null means every point is kept: no policy was in
 * force when the window began (the machine kept everything then), or one of them cannot be read.
 * A point is removed only when all of them let it go, so a policy that keeps fewer points takes
 * effect SOFT_DELETE_DAYS days after it is set: a stolen or broken agent cannot have points
 * removed at once, and its owner has that long to notice and set the policy again.
 */
export async function policiesInForce(store: BlobStore, machine: MachineId, now: Date, names?: readonly string[]): Promise<Retention[] | null> {
  names ??= await policyNames(store, machine);
  const since = new Date(now.getTime() - SOFT_DELETE_DAYS * DAY_MS).toISOString();
  let first = -1;
  for (let i = 0; i < names.length && timeOfPointId(names[i]!) <= since; i++) first = i;
  if (first < 0) return null;
  const out = new Map<string, Retention>();
  for (const name of names.slice(first)) {
    const r = await readRecord(store, machine, name);
    if (r === null) return null;
    out.set(JSON.stringify(pickRetention(r)), r); // each distinct policy once
  }
  return [...out.values()];
}

/**
 * The machine's retention as it stands: the newest policy it set (null when none, or when that
 * record cannot be read) and the policies in force (see policiesInForce; null: every point kept).
 */
export async function retentionState(store: BlobStore, machine: MachineId, now: Date): Promise<RetentionState> {
  const names = await policyNames(store, machine);
  const newest = names.at(-1);
  return { newest: newest === undefined ? null : await readRecord(store, machine, newest), inForce: await policiesInForce(store, machine, now, names), now: now.toISOString() };
}

/** Points moved to soft delete in one pass at most; the rest wait for the next point. */
export const MAX_EXPIRED_PER_PASS = 200;

/**
 * Applies the machine's policies at `now` to its `points` (every one it has, as listed): moves
 * those that no policy in force keeps (see policiesInForce) to soft delete, at most
 * MAX_EXPIRED_PER_PASS, oldest first, and purges soft-deleted points older than SOFT_DELETE_DAYS.
 * Returns the ids moved. A point is removed only once a whole copy of it is in soft delete, so a
 * failure in between leaves it in both places, never in neither.
 */
export async function expirePoints(store: BlobStore, machine: MachineId, points: readonly PointInfo[], now: Date): Promise<PointId[]> {
  const policies = await policiesInForce(store, machine, now);
  const moved: PointId[] = [];
  if (policies !== null) {
    const day = dayOf(now);
    const kept = retainUnder(points, (x) => x.time, policies, now);
    const expired = [...points].filter((p) => !kept.has(p)).sort((a, b) => byText(a.id, b.id));
    for (const p of expired.slice(0, MAX_EXPIRED_PER_PASS)) {
      const data = await store.get(layout.point(machine, p.id));
      if (data === null) continue;
      const key = layout.expiredPoint(machine, day, p.id);
      if ((await store.put(key, data)) === 'exists' && !(await store.get(key))?.equals(data)) continue;
      await store.delete(layout.point(machine, p.id));
      moved.push(p.id);
    }
  }
  await purgeExpired(store, machine, now);
  return moved;
}

/**
 * Deletes soft-deleted points removed more than SOFT_DELETE_DAYS days before `now`: `machine`'s,
 * or every machine's (prune does this: a machine that no longer backs up would keep its expired
 * points, and the packs they name, for ever). Returns how many.
 */
export async function purgeExpired(store: BlobStore, machine: MachineId | undefined, now: Date): Promise<number> {
  const last = dayOf(new Date(now.getTime() - SOFT_DELETE_DAYS * DAY_MS));
  let purged = 0;
  for await (const key of store.list(machine === undefined ? layout.expiredRoot : layout.expiredPrefix(machine))) {
    const [m, day, id, extra] = key.slice(layout.expiredRoot.length).split('/');
    if (isHex32(m) && day !== undefined && DAY.test(day) && id !== undefined && POINT_ID.test(id) && extra === undefined && day < last) {
      await dropClaim(store, m as MachineId, key, id);
      await store.delete(key);
      purged++;
    }
  }
  return purged;
}

/** Deletes the claim of the job that made point `id` (the soft-deleted copy at `key` names the job), if it names that point. */
async function dropClaim(store: BlobStore, machine: MachineId, key: string, id: string): Promise<void> {
  const data = await store.get(key);
  let jobId: unknown;
  try {
    jobId = data === null ? undefined : (JSON.parse(data.toString('utf8')) as { jobId?: unknown }).jobId;
  } catch {
    return; // a damaged copy names no job
  }
  if (!isHex32(jobId)) return;
  const claim = layout.pointOfJob(machine, jobId);
  if ((await store.get(claim))?.toString('utf8') === id) await store.delete(claim);
}
