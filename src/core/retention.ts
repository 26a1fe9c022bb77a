/**
 * Which recovery points a retention policy keeps, as the MARS agent has it: every point of the
 * last days, and the newest point of each of the last weeks, months and years. Pure: the caller
 * passes the points' times and the vault's clock. Weeks, months and years are calendar periods in
 * UTC (the vault dates points in UTC); weeks start on Monday.
 */

export interface Retention {
  /** every point younger than this many days is kept */
  readonly daily: number;
  /** the newest point of each of this many calendar weeks, this one included */
  readonly weekly: number;
  /** the newest point of each of this many calendar months, this one included */
  readonly monthly: number;
  /** the newest point of each of this many calendar years, this one included */
  readonly yearly: number;
}

/**
 * The range of each count. A vault keeps at least a week of daily points whatever a machine asks,
 * so that a stolen or broken agent cannot have recent points removed (the MARS agent's floor is
 * the same); the upper bounds are MARS's.
 */
export const RETENTION_RANGE: { readonly [K in keyof Retention]: readonly [number, number] } = {
  daily: [7, 9999],
  weekly: [0, 5163],
  monthly: [0, 1188],
  yearly: [0, 99],
};

/** The four counts of `r` and nothing else (`r` may come from the network with more in it). */
export function pickRetention(r: Retention): Retention {
  return { daily: r.daily, weekly: r.weekly, monthly: r.monthly, yearly: r.yearly };
}

export function validRetention(v: unknown): v is Retention {
  if (typeof v !== 'object' || v === null) return false;
  return (Object.keys(RETENTION_RANGE) as (keyof Retention)[]).every((k) => {
    const n = (v as Record<string, unknown>)[k];
    const [lo, hi] = RETENTION_RANGE[k];
    return Number.isInteger(n) && (n as number) >= lo && (n as number) <= hi;
  });
}

/**
 * Why a point is kept: the newest is always kept, and so is one dated after the vault's clock or
 * one whose date cannot be read.
 */
export type KeptBy = 'newest' | 'future' | 'undated' | 'daily' | 'weekly' | 'monthly' | 'yearly';

export interface Verdict<T> {
  /** the points kept, with every rule that keeps each */
  readonly keep: Map<T, KeptBy[]>;
  /** the others, oldest first */
  readonly remove: T[];
}

export const DAY_MS = 86_400_000;

/** Calendar periods of a time, numbered so that consecutive periods differ by one. */
function periods(ms: number): { weekly: number; monthly: number; yearly: number } {
  const d = new Date(ms);
  // 1970-01-01 was a Thursday: days since the Monday before it, in weeks.
  return { weekly: Math.floor((Math.floor(ms / DAY_MS) + 3) / 7), monthly: d.getUTCFullYear() * 12 + d.getUTCMonth(), yearly: d.getUTCFullYear() };
}

/**
 * Applies `r` at `now` to points dated by `time` (an ISO time). A point whose time cannot be read
 * is kept: nothing is removed that the rules cannot place.
 */
export function retain<T>(points: readonly T[], time: (p: T) => string, r: Retention, now: Date): Verdict<T> {
  const nowMs = now.getTime();
  const all = points.map((p) => ({ p, ms: Date.parse(time(p)) }));
  const dated = all.filter(({ ms }) => !Number.isNaN(ms)).sort((a, b) => b.ms - a.ms);
  const keep = new Map<T, KeptBy[]>();
  const mark = (p: T, why: KeptBy) => {
    const reasons = keep.get(p);
    if (reasons === undefined) keep.set(p, [why]);
    else if (!reasons.includes(why)) reasons.push(why);
  };
  const current = periods(nowMs);
  const seen = { weekly: new Set<number>(), monthly: new Set<number>(), yearly: new Set<number>() };
  let newest = true;
  for (const { p, ms } of all) if (Number.isNaN(ms)) mark(p, 'undated');
  for (const { p, ms } of dated) {
    if (newest) mark(p, 'newest');
    newest = false;
    if (ms > nowMs) mark(p, 'future');
    if (ms > nowMs - r.daily * DAY_MS) mark(p, 'daily');
    const of = periods(ms);
    for (const rule of ['weekly', 'monthly', 'yearly'] as const) {
      // Newest first: the first point met in a period is its newest.
      if (of[rule] > current[rule] - r[rule] && !seen[rule].has(of[rule])) {
        seen[rule].add(of[rule]);
        mark(p, rule);
      }
    }
  }
  const remove = dated.filter(({ p }) => !keep.has(p)).map(({ p }) => p).reverse();
  return { keep, remove };
}

/**
 * Applies several policies at once, as the vault does with those in force: a point is kept when
 * any of them keeps it, for every reason any of them has. The points not in the map go.
 */
export function retainUnder<T>(points: readonly T[], time: (p: T) => string, policies: readonly Retention[], now: Date): Map<T, KeptBy[]> {
  const out = new Map<T, KeptBy[]>();
  for (const policy of policies) {
    for (const [p, why] of retain(points, time, policy, now).keep) out.set(p, [...new Set([...(out.get(p) ?? []), ...why])]);
  }
  return out;
}
