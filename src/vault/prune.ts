/**
 * Prune: the vault frees the space of packs no recovery point needs any more, without reading a
 * byte of them (it holds no key). Every point names, in plain text, the packs its trees and
 * chunks are in (written once with the point, see Session.putPoint). A pass:
 * - reads the pack lists of every point of every machine, kept (`points/`) or soft-deleted
 *   (`expired/`, which can still be brought back), and of every checkpoint; when any names no
 *   packs (written by an earlier version) or cannot be read, or its list fails its check sum
 *   (a flipped bit that still spells a pack id would free a pack a kept point needs), it stops
 *   and removes nothing;
 * - condemns each pack none of them names: `condemned/<day>/<pack>`, an empty marker;
 * - deletes a pack condemned more than PRUNE_GRACE_DAYS days ago that still none names: it
 *   writes `gone/<pack>` first, looks again (below), then deletes the pack, then the marker;
 * - forgets the condemnation of a pack a point names again, and that a pack is gone when it is
 *   back in the vault (put back by hand).
 * Agents leave condemned and gone packs out of what they deduplicate against (listPrunedPacks), so a
 * new point names a condemned pack only when the backup that wrote it began before the pack was
 * condemned; writing that point takes the condemnation back. The grace period also covers a
 * backup still running, whose packs no point names yet, and checkpoints name the packs their job
 * stored, so a job that stops keeps them until it resumes. A pass marks a pack gone before it
 * deletes it, then looks once more for points and checkpoints written since it began: a pack one
 * of them names stays. Writing a point checks the gone markers after the point is written: so of
 * a point and a pass at the same time, one always sees the other.
 */
import { createHash, randomBytes } from 'node:crypto';
import { isHex64, POINT_ID, type PackId } from '../core/ids.js';
import { DAY_MS } from '../core/retention.js';
import { baseName, layout, pointIdFor } from './layout.js';
import { dayOf, purgeExpired, SOFT_DELETE_DAYS } from './retention.js';
import type { PrunedPacks } from './api.js';
import { putOwn, type BlobStore } from './storage/blobstore.js';
import { eachAtOnce } from '../shared/each-at-once.js';

/**
 * Storage requests a pass makes at once; the steps of each pack stay in their order, and packs do
 * not wait for each other. One request after another, a store 20 ms away took 23 s to condemn
 * 1,000 packs and 87 s to delete them (four requests a pack); 16 at once, 2.1 s and 6.3 s.
 */
const REQUESTS_AT_ONCE = 16;

/** Days a pack stays condemned before it is deleted. */
export const PRUNE_GRACE_DAYS = SOFT_DELETE_DAYS;
const DAY = /^\d{8}$/;

export interface PruneResult {
  /** why nothing was removed or condemned, or null when the pass ran */
  readonly skipped: string | null;
  /** points read, and the packs they and the checkpoints name */
  readonly points: number;
  readonly named: number;
  /** packs in the vault when the pass began */
  readonly packs: number;
  /** packs condemned in this pass, and condemned in all after it */
  readonly condemned: number;
  readonly waiting: number;
  /** packs deleted in this pass, and their bytes */
  readonly purged: number;
  readonly purgedBytes: number;
  /** condemnations taken back: a point names the pack again */
  readonly revived: number;
}

/**
 * The check sum a point record or a checkpoint's pack list carries beside its packs
 * (`packsSha256`): the SHA-256 of their ids, one per line.
 */
export function packsSum(packs: readonly PackId[]): string {
  return createHash('sha256').update(packs.join('\n')).digest('hex');
}

/** A record's fields with its pack list and the list's check sum (see packsSum). */
export function withPacks<T extends object>(fields: T, packs: readonly PackId[]): T & { packs: readonly PackId[]; packsSha256: string } {
  return { ...fields, packs, packsSha256: packsSum(packs) };
}

/**
 * The packs named by a point record's JSON or a checkpoint's pack list (see withPacks), or null
 * when it names none or is damaged: not version 1, or its list fails its check sum (records
 * written before they carried one are taken as they are).
 */
export function packsOfRecord(data: Buffer): readonly PackId[] | null {
  try {
    const r = JSON.parse(data.toString('utf8')) as { version?: unknown; packs?: unknown; packsSha256?: unknown } | null;
    if (r?.version !== 1 || !Array.isArray(r.packs) || !r.packs.every(isHex64)) return null;
    const packs = r.packs as PackId[];
    return r.packsSha256 === undefined || r.packsSha256 === packsSum(packs) ? packs : null;
  } catch {
    return null;
  }
}

/** Condemnations by pack: the days (YYYYMMDD) of its markers. */
async function condemnations(store: BlobStore): Promise<Map<PackId, string[]>> {
  const out = new Map<PackId, string[]>();
  for await (const key of store.list(layout.condemnedPrefix)) {
    const [day, pack, extra] = key.slice(layout.condemnedPrefix.length).split('/');
    if (day === undefined || !DAY.test(day) || !isHex64(pack) || extra !== undefined) continue;
    out.set(pack as PackId, [...(out.get(pack as PackId) ?? []), day]);
  }
  return out;
}

/** The packs marked gone. */
export async function gonePacks(store: BlobStore): Promise<PackId[]> {
  const out: PackId[] = [];
  for await (const key of store.list(layout.gonePrefix)) {
    const pack = baseName(key);
    if (isHex64(pack) && key === layout.gone(pack as PackId)) out.push(pack as PackId);
  }
  return out;
}

/** The packs prune condemned and those gone, each sorted. */
export async function prunedPacks(store: BlobStore): Promise<PrunedPacks> {
  const condemned = [...(await condemnations(store)).keys()].sort();
  return { condemned, gone: (await gonePacks(store)).sort() };
}



/** Takes back the condemnation of any of `packs` (a point just written names them). */
export async function revive(store: BlobStore, packs: readonly PackId[]): Promise<number> {
  const named = new Set(packs);
  let n = 0;
  for (const [pack, days] of await condemnations(store)) {
    if (!named.has(pack)) continue;
    for (const day of days) await store.delete(layout.condemned(day, pack));
    n++;
  }
  return n;
}

/**
 * Every pack named by a point in `points/` or `expired/` or by a checkpoint (the packs its job
 * stored), or the reason none can be trusted. With `since` (a vault time stamp, as object names
 * begin), only the points and checkpoints written since (a point soft-deleted meanwhile is
 * found in `expired/` under its own name).
 * A checkpoint's pack list whose checkpoint is gone (a write or delete that failed half way) is
 * left out, and deleted once a day old.
 */
async function namedPacks(store: BlobStore, now: Date, since?: string): Promise<{ named: Set<PackId>; points: number } | { skipped: string }> {
  const named = new Set<PackId>();
  let points = 0;
  const unnamed: string[] = [];
  const dayAgo = pointIdFor(new Date(now.getTime() - DAY_MS)).slice(0, 19);
  for (const prefix of ['points/', 'expired/', layout.checkpointPacksPrefix]) {
    const keys: string[] = [];
    for await (const key of store.list(prefix)) if (since === undefined || baseName(key) >= since) keys.push(key);
    await eachAtOnce(keys, REQUESTS_AT_ONCE, async (key) => {
      // Something else's object among the points (not named as a point is) names nothing to keep,
      // and must not hold every prune back.
      if (prefix !== layout.checkpointPacksPrefix && !POINT_ID.test(baseName(key))) return;
      if (prefix === layout.checkpointPacksPrefix && (await store.stat(`checkpoints/${key.slice(prefix.length)}`)) === null) {
        if (baseName(key) < dayAgo) await store.delete(key);
        return;
      }
      const data = await store.get(key);
      if (data === null) return; // moved to soft delete, purged or finished while listed: read under its other name, or needed no more
      const packs = packsOfRecord(data);
      if (prefix !== layout.checkpointPacksPrefix) points++;
      if (packs === null) unnamed.push(key);
      else for (const p of packs) named.add(p);
    });
  }
  if (unnamed.length > 0) {
    return { skipped: `${unnamed.length} recovery point(s) or checkpoint(s) name no packs (written by an earlier version) or are damaged, ${unnamed.sort()[0]} among them; nothing is pruned while they are kept` };
  }
  return { named, points };
}

/**
 * How far before a pass began its second look for new points reaches: vault servers sharing a
 * store date points by their own clocks.
 */
const CLOCK_MARGIN_MS = 10 * 60_000;

/**
 * One prune pass at `now` (see the top of this file). A failure part way leaves every step done
 * so far sound: a marker without its deletion is finished by the next pass.
 */
export async function prune(store: BlobStore, now: Date): Promise<PruneResult> {
  // Points soft-deleted 14 days ago go first, also those of a machine that no longer backs up
  // (its own backups purge them otherwise): the packs only they named are condemned below.
  await purgeExpired(store, undefined, now);
  const since = pointIdFor(new Date(now.getTime() - CLOCK_MARGIN_MS)).slice(0, 19);
  const condemned = await condemnations(store);
  const found = await namedPacks(store, now);
  const none = { points: 0, named: 0, packs: 0, condemned: 0, waiting: condemned.size, purged: 0, purgedBytes: 0, revived: 0 };
  if ('skipped' in found) return { skipped: found.skipped, ...none };
  const { named, points } = found;
  const today = dayOf(now);
  const last = dayOf(new Date(now.getTime() - PRUNE_GRACE_DAYS * DAY_MS));
  const inVault = new Set<PackId>();
  let condemnedNow = 0;
  let purged = 0;
  let purgedBytes = 0;
  for await (const key of store.list(layout.packsPrefix)) {
    const pack = baseName(key);
    if (!isHex64(pack) || key !== layout.pack(pack as PackId)) continue;
    inVault.add(pack as PackId);
  }
  const doomed = new Map<PackId, number>();
  const listed = inVault.size;
  const fresh: PackId[] = [];
  const expired: PackId[] = [];
  for (const pack of inVault) {
    if (named.has(pack)) continue;
    const days = condemned.get(pack);
    if (days === undefined) fresh.push(pack);
    else if (days.some((d) => d < last)) expired.push(pack);
  }
  // (eachAtOnce lets go of the items it is given: the packs are looked at again below)
  await eachAtOnce([...fresh], REQUESTS_AT_ONCE, async (pack) => {
    await store.put(layout.condemned(today, pack), Buffer.alloc(0));
    condemned.set(pack, [today]);
    condemnedNow++;
  });
  await eachAtOnce(expired, REQUESTS_AT_ONCE, async (pack) => {
    // Marked gone before anything is deleted: a point written from now on that names it is
    // taken back by the vault (Session.putPoint), and one written before is found below.
    const size = (await store.stat(layout.pack(pack)))?.size ?? 0;
    await store.put(layout.gone(pack), Buffer.from(JSON.stringify({ version: 1, time: now.toISOString(), size })));
    doomed.set(pack, size);
  });
  if (doomed.size > 0 || fresh.length > 0) {
    // A second look at the points and checkpoints written since the pass began. One written
    // before its packs were marked condemned (whose own revive found nothing to take back) names
    // them: the condemnation is taken back now, not a day later, so that nothing (verify among
    // them) takes a pack a kept point names for one no point names.
    const recent = await namedPacks(store, now, since);
    // (a point written meanwhile that names no packs: none of them is condemned or deleted now,
    // though none counts as named)
    const namedSince = (pack: PackId) => 'skipped' in recent || recent.named.has(pack);
    const keep = (pack: PackId) => {
      if (!('skipped' in recent)) named.add(pack);
    };
    await eachAtOnce(fresh.filter(namedSince), REQUESTS_AT_ONCE, async (pack) => {
      await store.delete(layout.condemned(today, pack));
      condemned.delete(pack);
      keep(pack);
      condemnedNow--;
    });
    await eachAtOnce([...doomed], REQUESTS_AT_ONCE, async ([pack, size]) => {
      if (namedSince(pack)) {
        await store.delete(layout.gone(pack)); // named again while the pass ran: kept
        keep(pack);
        return;
      }
      await store.delete(layout.pack(pack));
      for (const d of condemned.get(pack) ?? []) await store.delete(layout.condemned(d, pack));
      condemned.delete(pack);
      inVault.delete(pack);
      purged++;
      purgedBytes += size;
    });
  }
  // Markers of packs named again, or gone already (a pass stopped between deleting a pack and its marker).
  let revived = 0;
  const settled = [...condemned].filter(([pack]) => named.has(pack) || !inVault.has(pack));
  await eachAtOnce(settled, REQUESTS_AT_ONCE, async ([pack, days]) => {
    for (const d of days) await store.delete(layout.condemned(d, pack));
    condemned.delete(pack);
    if (named.has(pack)) revived++;
  });
  // A pack marked gone that is in the vault again (put back by hand), and not about to be
  // deleted, is no longer gone; asked again now, as another pass may have deleted it meanwhile.
  const back = (await gonePacks(store)).filter((pack) => inVault.has(pack) && !condemned.has(pack));
  await eachAtOnce(back, REQUESTS_AT_ONCE, async (pack) => {
    if ((await store.stat(layout.pack(pack))) !== null) await store.delete(layout.gone(pack));
  });
  return { skipped: null, points, named: named.size, packs: listed, condemned: condemnedNow, waiting: condemned.size, purged, purgedBytes, revived };
}

/**
 * Runs a prune pass at most once a day (UTC), the first time a point is written that day: the
 * `prune/<day>` marker is made before the pass, so a failed pass waits for the next day (or for
 * `azbk vault prune`). Null when this day's pass ran already.
 */
export async function dailyPrune(store: BlobStore, now: Date): Promise<PruneResult | null> {
  // The marker holds a nonce: a retried put whose first try made it (its reply lost) finds 'exists'
  // and its own nonce, and runs the pass, rather than leaving the day without one.
  if (!(await putOwn(store, layout.pruneRun(dayOf(now)), Buffer.from(randomBytes(16).toString('hex'))))) return null;
  return prune(store, now);
}
