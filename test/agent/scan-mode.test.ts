/** Whether a backup scans everything or trusts the change journal, and why. */
import { describe, expect, it } from 'vitest';
import { excludesKey } from '../../src/core/exclude.js';
import { FULL_SCAN_EVERY_MS, fullScanDue, lastBackup, planScan, type JournalChanges, type ScanFacts } from '../../src/agent/scan-mode.js';

const now = new Date('2026-11-30T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();

describe('full scan', () => {
  it('is due after a day, with no full scan known, or with the clock set back', () => {
    expect(fullScanDue(ago(60_000), now)).toBe(false);
    expect(fullScanDue(ago(FULL_SCAN_EVERY_MS - 1000), now)).toBe(false);
    expect(fullScanDue(ago(FULL_SCAN_EVERY_MS + 1000), now)).toBe(true);
    expect(fullScanDue(null, now)).toBe(true);
    expect(fullScanDue(ago(-3_600_000), now)).toBe(true);
  });
});

describe('the last backup mark', () => {
  it('is read back as written, and a mark of an older version gets the defaults', () => {
    const mark = { started: ago(3_600_000), offset: 120, run: 'r1', paths: ['/data'], lastFull: ago(7_200_000), exclude: excludesKey(['*.tmp']), own: 'a,b' };
    expect(lastBackup(JSON.parse(JSON.stringify(mark)))).toEqual(mark);
    expect(lastBackup({ started: mark.started, offset: 0, paths: [] })).toEqual({ started: mark.started, offset: 0, run: null, paths: [], lastFull: null, exclude: excludesKey([]), own: null });
  });

  it('is none when it is not one', () => {
    for (const v of [undefined, null, 'x', {}, { started: 1, offset: 0, paths: [] }, { started: 's', offset: '0', paths: [] }, { started: 's', offset: 0, paths: [1] }]) {
      expect(lastBackup(v)).toBeNull();
    }
  });
});

describe('planScan', () => {
  const covered: JournalChanges = { ok: true, changed: new Set(['/data/a/f.txt']), trees: new Set() };
  const facts = (over: Partial<ScanFacts> = {}): ScanFacts => ({
    last: { started: ago(3_600_000), offset: 10, run: 'r1', paths: ['/data'], lastFull: ago(3_600_000), exclude: excludesKey([]), own: 'o' },
    exclude: excludesKey([]),
    own: 'o',
    sync: 'answered',
    journal: covered,
    included: ['/data'],
    now,
    ...over,
  });

  it('trusts a journal that covers the time since the last backup: only changed paths and the folders above them', () => {
    const plan = planScan(facts());
    expect(plan.scan).toEqual({ mode: 'optimized', reason: 'the change journal covers the time since the last backup; 1 path(s) changed' });
    expect([...plan.dirty!].sort()).toEqual(['/', '/data', '/data/a', '/data/a/f.txt']);
    expect(plan.movedTrees.size).toBe(0);
  });

  it('examines folders moved or made whole, and counts them', () => {
    const plan = planScan(facts({ journal: { ok: true, changed: new Set(), trees: new Set(['/data/new']) } }));
    expect(plan.scan.mode).toBe('optimized');
    expect(plan.scan.reason).toMatch(/0 path\(s\) changed, 1 folder\(s\) moved or made/);
    expect(plan.dirty!.has('/data/new')).toBe(true);
    expect([...plan.movedTrees]).toEqual(['/data/new']);
  });

  it('scans everything, saying why, whenever the journal cannot be trusted', () => {
    const full = (over: Partial<ScanFacts>) => {
      const plan = planScan(facts(over));
      expect(plan.scan.mode).toBe('full');
      expect(plan.dirty).toBeNull();
      return plan.scan.reason;
    };
    expect(full({ exclude: excludesKey(['*.tmp']) })).toMatch(/exclusions changed/);
    expect(full({ own: 'p' })).toMatch(/own folders/);
    expect(full({ journal: { ok: false, why: 'no change journal (azbk watch is not running)' } })).toBe('no change journal (azbk watch is not running)');
    expect(full({ sync: 'silent' })).toMatch(/did not answer in time/);
    expect(full({ last: { ...facts().last!, lastFull: ago(FULL_SCAN_EVERY_MS + 1) } })).toMatch(/more than a day old/);
    expect(full({ last: { ...facts().last!, lastFull: null } })).toMatch(/more than a day old/);
    expect(full({ journal: { ok: true, changed: new Set(), trees: new Set(['/']) } })).toMatch(/set up its watches anew/);
  });

  it('puts a change of exclusions before what the journal says', () => {
    const plan = planScan(facts({ exclude: excludesKey(['*.o']), sync: 'silent', journal: { ok: false, why: 'x' } }));
    expect(plan.scan.reason).toMatch(/exclusions changed/);
  });
});
