/**
 * The machine's backup policy: what `azbk backup --now` backs up when it names nothing, and the
 * bandwidth limits for work hours and off hours.
 */
import path from 'node:path';
import type { BandwidthPolicy } from '../core/bandwidth.js';
import { AzbkError } from '../shared/errors.js';
import { readLocalJson, writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';

export interface Policy {
  readonly version: 1;
  readonly include: readonly string[];
  readonly bandwidth?: BandwidthPolicy;
}

const EMPTY: Policy = { version: 1, include: [] };

function damaged(file: string): AzbkError {
  return new AzbkError('AZBK_BAD_INPUT', `The policy file ${file} is damaged.`, { hint: 'Set it again: azbk policy set --include PATH.' });
}

const rate = (v: unknown) => v === null || (typeof v === 'number' && Number.isSafeInteger(v) && v > 0);

function validBandwidth(b: unknown): b is BandwidthPolicy {
  const p = b as BandwidthPolicy;
  return (
    typeof p === 'object' && p !== null && Array.isArray(p.workDays) && p.workDays.every((d) => Number.isInteger(d) && d >= 0 && d <= 6) &&
    Number.isInteger(p.workStart) && Number.isInteger(p.workEnd) && p.workStart >= 0 && p.workStart < p.workEnd && p.workEnd <= 1440 &&
    rate(p.work) && rate(p.off)
  );
}

export async function loadPolicy(paths: HomePaths): Promise<Policy> {
  const v = await readLocalJson(paths.policy, () => damaged(paths.policy));
  if (v === null) return EMPTY;
  const p = v as Policy;
  if (p.version !== 1 || !Array.isArray(p.include) || !p.include.every((x) => typeof x === 'string')) throw damaged(paths.policy);
  if (p.bandwidth !== undefined && !validBandwidth(p.bandwidth)) throw damaged(paths.policy);
  return p;
}

/** Changes the given parts of the policy and keeps the rest. */
export async function updatePolicy(paths: HomePaths, change: { include?: readonly string[]; bandwidth?: BandwidthPolicy }): Promise<Policy> {
  const old = await loadPolicy(paths);
  const policy: Policy = {
    version: 1,
    include: change.include === undefined ? old.include : [...new Set(change.include.map((p) => path.resolve(p)))],
    ...((change.bandwidth ?? old.bandwidth) === undefined ? {} : { bandwidth: change.bandwidth ?? old.bandwidth }),
  };
  await writeFileAtomic(paths.policy, JSON.stringify(policy, null, 2) + '\n', { mode: 0o600 });
  return policy;
}
