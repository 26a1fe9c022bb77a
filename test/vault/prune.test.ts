/**
 * The vault's prune pass over a store: which packs it condemns, when it deletes them, and what
 * stops it. Points are written as the vault writes them (JSON records naming their packs).
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { MachineId, PackId, PointId } from '../../src/core/ids.js';
import { layout, pointIdFor } from '../../src/vault/layout.js';
import { dailyPrune, prune, prunedPacks, PRUNE_GRACE_DAYS, revive, withPacks } from '../../src/vault/prune.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { FaultyBlobStore } from '../../src/vault/storage/faulty-store.js';
import { RetryingBlobStore } from '../../src/vault/storage/retrying-store.js';
import { packIdOf } from '../../src/core/pack.js';
import { createMachine } from '../helpers/machine.js';

const DAY = 86_400_000;
const machine = 'ab'.repeat(16) as MachineId;
const start = new Date('2026-03-01T12:00:00Z');
const daysLater = (n: number) => new Date(start.getTime() + n * DAY);

async function addPack(store: MemoryBlobStore, size = 100): Promise<PackId> {
  const data = randomBytes(size);
  const id = createHash('sha256').update(data).digest('hex') as PackId;
  await store.put(layout.pack(id), data);
  return id;
}

let seq = 0;
/** A point record naming `packs` (or none, as an earlier version wrote them), under points/ or expired/, dated `time`. */
async function addPoint(store: MemoryBlobStore, packs: PackId[] | undefined, where: 'points' | 'expired' = 'points', time = start): Promise<string> {
  const id = pointIdFor(new Date(time.getTime() + seq++)) as PointId;
  const record = { version: 1, id, machineId: machine, time: start.toISOString(), keyId: 'cd'.repeat(16), jobId: 'ef'.repeat(16), manifest: '', ...(packs === undefined ? {} : { packs }) };
  const key = where === 'points' ? layout.point(machine, id) : layout.expiredPoint(machine, '20260301', id);
  await store.put(key, Buffer.from(JSON.stringify(record)));
  return key;
}

async function packsIn(store: MemoryBlobStore): Promise<PackId[]> {
  const out: PackId[] = [];
  for await (const key of store.list(layout.packsPrefix)) out.push(key.split('/').at(-1) as PackId);
  return out.sort();
}

describe('prune', () => {
  it('condemns the packs no point names, and deletes them once the grace period has passed', async () => {
    const store = new MemoryBlobStore();
    const [kept, alsoKept, dropped] = [await addPack(store), await addPack(store), await addPack(store, 5000)];
    await addPoint(store, [kept]);
    await addPoint(store, [alsoKept], 'expired'); // a soft-deleted point can still come back: its packs stay

    const first = await prune(store, start);
    expect(first).toMatchObject({ skipped: null, points: 2, named: 2, packs: 3, condemned: 1, waiting: 1, purged: 0 });
    expect(await prunedPacks(store)).toEqual({ condemned: [dropped], gone: [] });
    expect(await packsIn(store)).toEqual([kept, alsoKept, dropped].sort());

    // Within the grace period nothing more happens, however often prune runs.
    expect(await prune(store, daysLater(PRUNE_GRACE_DAYS))).toMatchObject({ condemned: 0, waiting: 1, purged: 0 });
    expect(await packsIn(store)).toHaveLength(3);

    // The soft-deleted point is 15 days old now: purged (its machine makes no more backups, which
    // would purge it otherwise), and the pack only it named is condemned in turn.
    const last = await prune(store, daysLater(PRUNE_GRACE_DAYS + 1));
    expect(last).toMatchObject({ points: 1, condemned: 1, waiting: 1, purged: 1, purgedBytes: 5000 });
    expect(await packsIn(store)).toEqual([kept, alsoKept].sort());
    expect(await prunedPacks(store)).toEqual({ condemned: [alsoKept], gone: [dropped] });
    const left: string[] = [];
    for await (const key of store.list(layout.expiredRoot)) left.push(key);
    expect(left).toEqual([]);
  });

  it('keeps a condemned pack that a point names again, and takes the condemnation back', async () => {
    const store = new MemoryBlobStore();
    const pack = await addPack(store);
    await addPoint(store, []);
    expect((await prune(store, start)).condemned).toBe(1);
    // A backup that began before the pack was condemned names it in its point: the vault revives it.
    await addPoint(store, [pack]);
    expect(await revive(store, [pack])).toBe(1);
    expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [] });
    expect(await prune(store, daysLater(30))).toMatchObject({ condemned: 0, purged: 0 });
    expect(await packsIn(store)).toEqual([pack]);

    // Had the revival been missed, the next pass takes the condemnation back itself.
    const other = await addPack(store);
    await prune(store, daysLater(31));
    await addPoint(store, [pack, other]);
    expect(await prune(store, daysLater(60))).toMatchObject({ revived: 1, purged: 0, waiting: 0 });
    expect(await packsIn(store)).toEqual([pack, other].sort());
  });

  it('removes nothing while any point names no packs, or cannot be read', async () => {
    const store = new MemoryBlobStore();
    await addPack(store);
    const old = await addPoint(store, undefined);
    const r = await prune(store, start);
    expect(r.skipped).toMatch(/1 recovery point\(s\) or checkpoint\(s\) name no packs/);
    expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [] });
    await store.delete(old);
    await store.put(old, Buffer.from('{ not json'));
    expect((await prune(store, start)).skipped).toMatch(/name no packs/);
    await store.delete(old);
    await store.put(old, Buffer.from(JSON.stringify({ packs: ['not a pack id'] })));
    expect((await prune(store, start)).skipped).toMatch(/name no packs/);
    expect(await packsIn(store)).toHaveLength(1);
  });

  it('removes nothing while the pack list of a point fails its check sum: a flipped digit that still spells a pack id', async () => {
    const store = new MemoryBlobStore();
    const [kept, other] = [await addPack(store), await addPack(store)];
    const key = await addPoint(store, undefined);
    const record = JSON.parse((await store.get(key))!.toString('utf8')) as Record<string, unknown>;
    const flipped = (kept.startsWith('0') ? '1' : '0') + kept.slice(1);
    await store.delete(key);
    await store.put(key, Buffer.from(JSON.stringify({ ...withPacks(record, [kept]), packs: [flipped] })));
    const r = await prune(store, start);
    expect(r.skipped).toMatch(/1 recovery point\(s\) or checkpoint\(s\) name no packs .* or are damaged, points\/.* among them/);
    expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [] });
    // A record of another version is not read as this one.
    await store.delete(key);
    await store.put(key, Buffer.from(JSON.stringify({ ...withPacks(record, [kept]), version: 2 })));
    expect((await prune(store, start)).skipped).toMatch(/are damaged/);
    // Intact, it keeps its pack; the other is condemned.
    await store.delete(key);
    await store.put(key, Buffer.from(JSON.stringify(withPacks(record, [kept]))));
    expect(await prune(store, start)).toMatchObject({ skipped: null, points: 1, condemned: 1 });
    expect(await prunedPacks(store)).toEqual({ condemned: [other], gone: [] });
  });

  it('passes over objects among the points that are not named as points: they neither stop it nor keep packs', async () => {
    const store = new MemoryBlobStore();
    const [kept, dropped] = [await addPack(store), await addPack(store)];
    await addPoint(store, [kept]);
    // Put there by something else: before, each stopped every prune ("name no packs") for good.
    await store.put(`points/${machine}/garbage`, Buffer.from('junk'));
    await store.put(`expired/${machine}/x/y`, Buffer.from('junk'));
    const r = await prune(store, start);
    expect(r).toMatchObject({ skipped: null, points: 1, condemned: 1 });
    expect(await prunedPacks(store)).toEqual({ condemned: [dropped], gone: [] });
  });

  it('finishes the work of a pass that stopped between deleting a pack and its marker', async () => {
    const store = new MemoryBlobStore();
    const pack = await addPack(store);
    await addPoint(store, []);
    await prune(store, start);
    // As if the pass had stopped right after deleting the pack.
    await store.put(layout.gone(pack), Buffer.from('{}'));
    await store.delete(layout.pack(pack));
    expect(await prune(store, daysLater(20))).toMatchObject({ purged: 0, waiting: 0 });
    expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [pack] });
  });

  it('runs by itself once a day', async () => {
    const store = new MemoryBlobStore();
    await addPack(store);
    await addPoint(store, []);
    expect(await dailyPrune(store, start)).toMatchObject({ condemned: 1 });
    await addPack(store);
    expect(await dailyPrune(store, new Date(start.getTime() + 3_600_000))).toBeNull();
    expect(await dailyPrune(store, daysLater(1))).toMatchObject({ condemned: 1, waiting: 2 });
  });

  it("runs the day's pass when the reply to its marker was lost and the retry finds the marker there", async () => {
    const inner = new MemoryBlobStore();
    await addPack(inner);
    await addPoint(inner, []);
    const faulty = new FaultyBlobStore(inner).fail('put', { mode: 'lost-reply', match: (k) => k.startsWith('prune/') });
    const store = new RetryingBlobStore(faulty, { sleep: async () => undefined });
    expect(await dailyPrune(store, start)).toMatchObject({ condemned: 1 });
    expect(faulty.faults.put).toBe(1);
    // Another server's pass the same day still finds the marker another wrote.
    expect(await dailyPrune(inner, new Date(start.getTime() + 60_000))).toBeNull();
  });

  it('keeps the packs a checkpoint names, as a job that stopped needs them when it resumes', async () => {
    const store = new MemoryBlobStore();
    const [resumed, dropped] = [await addPack(store), await addPack(store)];
    await addPoint(store, []);
    const name = '20260301T120000000Z-' + 'ab'.repeat(16) + '-000001';
    await store.put(layout.checkpointPacks(machine, name), Buffer.from(JSON.stringify({ version: 1, packs: [resumed] })));
    await store.put(layout.checkpoint(machine, name), Buffer.from('sealed'));
    await prune(store, start);
    expect(await prunedPacks(store)).toEqual({ condemned: [dropped], gone: [] });
    await prune(store, daysLater(30));
    expect(await packsIn(store)).toEqual([resumed]);
  });

  it('takes back at once the condemnation of a pack that a point written while the pass ran names', async () => {
    const store = new RacingStore();
    const pack = await addPack(store);
    await addPoint(store, []);
    // A backup's point naming the pack lands after the pass read the points, and its own
    // revive ran before the pass marked the pack condemned (it found nothing to take back).
    store.onCondemned = () => addPoint(store, [pack]);
    const r = await prune(store, start);
    expect(r).toMatchObject({ condemned: 0, waiting: 0 });
    expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [] });
    expect(await packsIn(store)).toEqual([pack]);
  });

  it('condemns nothing in a pass during which a point naming no packs was written, and counts nothing as named for it', async () => {
    const store = new RacingStore();
    await addPack(store);
    await addPack(store);
    await addPoint(store, []);
    store.onCondemned = () => addPoint(store, undefined);
    const r = await prune(store, start);
    expect(r).toMatchObject({ skipped: null, named: 0, condemned: 0, waiting: 0, revived: 0 });
    expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [] });
  });

  // The point is found where it is: still kept, or already moved to soft delete by a later point.
  it.each(['points', 'expired'] as const)('does not delete a pack that a point written while the pass runs names (in %s/)', async (where) => {
    const store = new RacingStore();
    const pack = await addPack(store);
    await addPoint(store, []);
    await prune(store, start);
    // As the pass marks the pack gone, a backup that began before it was condemned writes its point.
    const later = daysLater(PRUNE_GRACE_DAYS + 1);
    store.onGone = () => addPoint(store, [pack], where, later);
    const r = await prune(store, later);
    expect(r).toMatchObject({ purged: 0, waiting: 0 });
    expect(await packsIn(store)).toEqual([pack]);
    expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [] });
  });

  it('leaves out the pack list of a checkpoint that is not there, and deletes it once a day old', async () => {
    const store = new MemoryBlobStore();
    const pack = await addPack(store);
    await addPoint(store, []);
    const name = (t: Date) => `${pointIdFor(t).slice(0, 19)}-${'ab'.repeat(16)}-000001`;
    const [old, fresh] = [name(start), name(daysLater(2))];
    for (const n of [old, fresh]) await store.put(layout.checkpointPacks(machine, n), Buffer.from(JSON.stringify({ version: 1, packs: [pack] })));
    expect(await prune(store, daysLater(2))).toMatchObject({ condemned: 1 });
    const left: string[] = [];
    for await (const key of store.list(layout.checkpointPacksPrefix)) left.push(key);
    expect(left).toEqual([layout.checkpointPacks(machine, fresh)]);
  });

  it('works on many packs at once, the steps of each pack in their order', async () => {
    const store = new SlowStore();
    const packs = new Set<PackId>();
    for (let i = 0; i < 40; i++) packs.add(await addPack(store));
    await addPoint(store, [...packs].slice(0, 5));
    expect(await prune(store, start)).toMatchObject({ condemned: 35, purged: 0 });
    expect(store.most).toBeGreaterThan(4);
    expect(store.most).toBeLessThanOrEqual(16);

    store.most = 0;
    store.log.length = 0;
    expect(await prune(store, daysLater(PRUNE_GRACE_DAYS + 1))).toMatchObject({ condemned: 0, waiting: 0, purged: 35 });
    expect(store.most).toBeGreaterThan(4);
    expect(store.most).toBeLessThanOrEqual(16);
    expect(await packsIn(store)).toHaveLength(5);
    // Each pack: marked gone, then deleted, then its condemnation forgotten (the gone marker stays).
    for (const pack of packs) {
      const steps = store.log.filter((l) => l.endsWith(pack) && !l.startsWith('stat '));
      if (steps.length === 0) continue;
      expect(steps.map((l) => l.split(/[ /]/).slice(0, 2).join(' '))).toEqual(['put gone', 'delete packs', 'delete condemned']);
    }
    expect(store.log.filter((l) => l.startsWith('delete packs/'))).toHaveLength(35);
  });

  it('takes back a point naming a pack a pass is deleting, and refuses one naming a pack the vault lacks', async () => {
    const m = await createMachine();
    const data = randomBytes(100);
    const id = packIdOf(data);
    await m.ctx.session.putPack(id, data);
    await m.base.put(layout.gone(id), Buffer.from('{}'));
    const point = { keyId: m.keys.keyId, jobId: 'ab'.repeat(16), manifest: Buffer.alloc(10) };
    await expect(m.ctx.session.putPoint({ ...point, packs: [id] })).rejects.toMatchObject({ code: 'AZBK_PACK_GONE' });
    await expect(m.ctx.session.putPoint({ ...point, packs: ['00'.repeat(32) as PackId] })).rejects.toMatchObject({ code: 'AZBK_PACK_GONE' });
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toEqual([]);
    await m.base.delete(layout.gone(id));
    const written = await m.ctx.session.putPoint({ ...point, packs: [id] });
    expect(written).toMatchObject({ machineId: m.ctx.registration.machineId });
    // The record carries its pack list's check sum, which prune reads it by.
    const record = JSON.parse((await m.base.get(layout.point(m.ctx.registration.machineId, written.id)))!.toString('utf8')) as Record<string, unknown>;
    expect(record.packsSha256).toBe(createHash('sha256').update(id).digest('hex'));
    expect(await prune(m.base, new Date())).toMatchObject({ skipped: null, points: 1, named: 1 });
  });
});

/** A store that runs `onGone` once, right after the first gone marker is written. */
class RacingStore extends MemoryBlobStore {
  onGone: (() => Promise<unknown>) | undefined;
  onCondemned: (() => Promise<unknown>) | undefined;

  override async put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
    const r = await super.put(key, data);
    let run: (() => Promise<unknown>) | undefined;
    if (key.startsWith('gone/')) [run, this.onGone] = [this.onGone, undefined];
    if (key.startsWith('condemned/')) [run, this.onCondemned] = [this.onCondemned, undefined];
    if (run !== undefined) await run();
    return r;
  }
}

/** A store whose every request takes a few milliseconds, which counts the most it had in flight at once and logs what it did. */
class SlowStore extends MemoryBlobStore {
  most = 0;
  readonly log: string[] = [];
  private now = 0;

  private async slow<T>(what: string, work: () => Promise<T>): Promise<T> {
    this.most = Math.max(this.most, ++this.now);
    try {
      await new Promise((resolve) => setTimeout(resolve, 2));
      const r = await work();
      this.log.push(what);
      return r;
    } finally {
      this.now--;
    }
  }

  override put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
    return this.slow(`put ${key}`, () => super.put(key, data));
  }

  override stat(key: string): Promise<{ size: number } | null> {
    return this.slow(`stat ${key}`, () => super.stat(key));
  }

  override delete(key: string): Promise<void> {
    return this.slow(`delete ${key}`, () => super.delete(key));
  }
}
