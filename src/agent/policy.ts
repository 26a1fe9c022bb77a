/**
 * The machine's backup policy: what `azbk backup --now` backs up when it names nothing, the
 * bandwidth limits for work hours and off hours, when scheduled backups run, and the retention
 * the vault applies to this machine's points (the vault keeps its own copy of that).
 */
import path from 'node:path';
import type { BandwidthPolicy } from '../core/bandwidth.js';
import { compileExcludes } from '../core/exclude.js';
import { validRetention, type Retention } from '../core/retention.js';
import { validSchedule, type Schedule } from '../core/schedule.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { readLocalJson, writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';
import type { MachineId } from '../core/ids.js';
import type { RetentionState, VaultSession } from '../vault/api.js';
import { toSegments } from './fspath.js';

export interface Policy {
  readonly version: 1;
  readonly include: readonly string[];
  /** what backups leave out under the included paths (see core/exclude.ts) */
  readonly exclude?: readonly string[];
  readonly bandwidth?: BandwidthPolicy;
  readonly schedule?: Schedule;
  /** when the schedule was set (ISO time): runs due before it were never missed */
  readonly scheduleSet?: string;
  readonly retention?: Retention;
}

const EMPTY: Policy = { version: 1, include: [] };

/**
 * AZBK_BAD_INPUT when a path to back up is the root folder whole: a backup refuses it, and so does
 * a policy that every scheduled backup would fail with.
 */
export function refuseWholeRoot(include: readonly string[]): void {
  if (include.some((p) => toSegments(p).length === 0)) {
    throw new AzbkError('AZBK_BAD_INPUT', 'The root folder / cannot be backed up as a whole.', { hint: 'Include the folders under it to back up, e.g. --include /etc /home /srv.' });
  }
}

function damaged(file: string): AzbkError {
  return new AzbkError('AZBK_BAD_INPUT', `The policy file ${file} is damaged.`, {
    hint: 'Remove it and set the policy again with azbk policy set (--include, --exclude, bandwidth, --schedule, --keep-*); until then the vault keeps the retention last set, and crontab the schedule.',
  });
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

function validExcludes(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  try {
    compileExcludes(v as string[]); // none at all is valid too: nothing is left out
    return true;
  } catch {
    return false;
  }
}

export async function loadPolicy(paths: HomePaths): Promise<Policy> {
  const v = await readLocalJson(paths.policy, () => damaged(paths.policy));
  if (v === null) return EMPTY;
  const p = v as Policy;
  // Written by policy set: absolute paths, and never the root (a relative one would be taken from
  // wherever a scheduled job runs).
  const includable = (x: unknown) => typeof x === 'string' && path.isAbsolute(x) && toSegments(x).length > 0;
  if (p.version !== 1 || !Array.isArray(p.include) || !p.include.every(includable)) throw damaged(paths.policy);
  if (p.exclude !== undefined && !validExcludes(p.exclude)) throw damaged(paths.policy);
  if (p.bandwidth !== undefined && !validBandwidth(p.bandwidth)) throw damaged(paths.policy);
  if (p.schedule !== undefined && !validSchedule(p.schedule)) throw damaged(paths.policy);
  if (p.scheduleSet !== undefined && !(typeof p.scheduleSet === 'string' && Number.isFinite(Date.parse(p.scheduleSet)))) throw damaged(paths.policy);
  if (p.retention !== undefined && !validRetention(p.retention)) throw damaged(paths.policy);
  return p;
}

export interface PolicyChange {
  readonly include?: readonly string[];
  /** empty: leave nothing out */
  readonly exclude?: readonly string[];
  readonly bandwidth?: BandwidthPolicy;
  /** null: no scheduled backups */
  readonly schedule?: Schedule | null;
  readonly retention?: Retention;
}

/** Changes the given parts of the policy and keeps the rest. */
export async function updatePolicy(paths: HomePaths, change: PolicyChange): Promise<Policy> {
  const old = await loadPolicy(paths);
  const bandwidth = change.bandwidth ?? old.bandwidth;
  const schedule = change.schedule === undefined ? old.schedule : change.schedule;
  const same = JSON.stringify(schedule) === JSON.stringify(old.schedule);
  const scheduleSet = schedule === undefined || schedule === null ? undefined : same && old.scheduleSet !== undefined ? old.scheduleSet : new Date().toISOString();
  const retention = change.retention ?? old.retention;
  const exclude = change.exclude === undefined ? old.exclude : [...new Set(change.exclude)];
  const policy: Policy = {
    version: 1,
    include: change.include === undefined ? old.include : [...new Set(change.include.map((p) => path.resolve(p)))],
    ...(exclude === undefined || exclude.length === 0 ? {} : { exclude }),
    ...(bandwidth === undefined ? {} : { bandwidth }),
    ...(schedule === undefined || schedule === null ? {} : { schedule, ...(scheduleSet === undefined ? {} : { scheduleSet }) }),
    ...(retention === undefined ? {} : { retention }),
  };
  await writeFileAtomic(paths.policy, JSON.stringify(policy, null, 2) + '\n', { mode: 0o600 });
  return policy;
}

/** The retention the vault holds for `machine`, or null from a vault service of an earlier version, which has no such route. */
export async function vaultRetention(session: VaultSession, machine: MachineId): Promise<RetentionState | null> {
  try {
    return await session.readRetention(machine);
  } catch (err) {
    if (isAzbkError(err, 'AZBK_VAULT_NOT_FOUND')) return null;
    throw err;
  }
}
