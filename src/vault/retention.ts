/**
 * The vault's side of retention. A machine states its policy (`policies/<machine>/<name>`, the
 * newest in force); after each new point the vault moves the points the policy no longer keeps to
 * `expired/<machine>/<day>/<id>`, where they wait SOFT_DELETE_DAYS days before they are purged.
 * Until then a point can be brought back by moving its object back under `points/`. A machine
 * without a policy keeps every point. Only points are removed: the packs they share stay.
 */
import type { MachineId, PointId } from '../core/ids.js';
import { retain, validRetention, type Retention } from '../core/retention.js';
import { AzbkError } from '../shared/errors.js';
import type { PointInfo } from './api.js';
import { baseName, layout } from './layout.js';
import type { BlobStore } from './storage/blobstore.js';

export const SOFT_DELETE_DAYS = 14;
const POLICY_NAME = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;
const DAY = /^\d{8}$/;
const POINT_ID = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;
/** a policy record is a few hundred bytes; anything much larger is not one */
const MAX_POLICY_BYTES = 4096;

/** YYYYMMDD of a time, in UTC. */
const dayOf = (t: Date) => t.toISOString().slice(0, 10).replace(/-/g, '');

/** Stores `retention` as the machine's policy under `name` (a name that sorts by time). */
export async function writePolicy(store: BlobStore, machine: MachineId, name: string, retention: Retention, time: Date): Promise<void> {
  if (!validRetention(retention)) throw new AzbkError('AZBK_BAD_INPUT', 'The retention policy is out of range.');
  const { daily, weekly, monthly, yearly } = retention;
  const record = { version: 1, time: time.toISOString(), retention: { daily, weekly, monthly, yearly } };
  await store.put(layout.policy(machine, name), Buffer.from(JSON.stringify(record)));
}

/**
 * The machine's policy in force, or null when it has none. A damaged newest record also gives
 * null: keeping every point is the safe reading of a policy that cannot be read.
 */
export async function readPolicy(store: BlobStore, machine: MachineId): Promise<Retention | null> {
  let newest: string | undefined;
  for await (const key of store.list(layout.policiesPrefix(machine))) {
    const name = baseName(key);
    if (POLICY_NAME.test(name) && (newest === undefined || name > newest)) newest = name;
  }
  if (newest === undefined) return null;
  const data = await store.get(layout.policy(machine, newest));
  if (data === null || data.length > MAX_POLICY_BYTES) return null;
  try {
    const r = (JSON.parse(data.toString('utf8')) as { version?: unknown; retention?: unknown }) ?? {};
    return r.version === 1 && validRetention(r.retention) ? r.retention : null;
  } catch {
    return null;
  }
}

/**
 * Applies the machine's policy at `now` to its `points` (every one it has, as listed): moves those
 * it does not keep to soft delete, and purges soft-deleted points older than SOFT_DELETE_DAYS.
 * Returns the ids moved. A point is first copied, then removed, so a failure in between leaves
 * it in both places, never in neither.
 */
export async function expirePoints(store: BlobStore, machine: MachineId, points: readonly PointInfo[], now: Date): Promise<PointId[]> {
  const policy = await readPolicy(store, machine);
  const moved: PointId[] = [];
  if (policy !== null) {
    const day = dayOf(now);
    for (const p of retain(points, (x) => x.time, policy, now).remove) {
      const data = await store.get(layout.point(machine, p.id));
      if (data === null) continue;
      await store.put(layout.expiredPoint(machine, day, p.id), data);
      await store.delete(layout.point(machine, p.id));
      moved.push(p.id);
    }
  }
  await purgeExpired(store, machine, now);
  return moved;
}

/** Deletes soft-deleted points removed more than SOFT_DELETE_DAYS days before `now`. */
async function purgeExpired(store: BlobStore, machine: MachineId, now: Date): Promise<void> {
  const last = dayOf(new Date(now.getTime() - SOFT_DELETE_DAYS * 86_400_000));
  const prefix = layout.expiredPrefix(machine);
  for await (const key of store.list(prefix)) {
    const [day, id, extra] = key.slice(prefix.length).split('/');
    if (day !== undefined && DAY.test(day) && id !== undefined && POINT_ID.test(id) && extra === undefined && day < last) await store.delete(key);
  }
}
