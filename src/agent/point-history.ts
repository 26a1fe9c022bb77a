/**
 * This machine's own points held against its job history, which the vault cannot touch. A vault
 * names points and dates them; it cannot forge one (each is sealed with the machine's keys and
 * bound to the job that made it), but it could copy an old one under a newer name, so that
 * "latest" restores old data, or leave the newest out of its list. The history records which job
 * made which point: a point whose job made another one is such a copy, and a point the last
 * backup made that the vault does not list is a point withheld (or removed by hand).
 */
import { POINT_ID } from '../core/ids.js';
import { AzbkError } from '../shared/errors.js';
import type { HomePaths } from '../shared/paths.js';
import type { PointInfo } from '../vault/api.js';
import { backupEndedWell, LOOK_BACK, readJobs } from './jobs.js';
import { pickPoint } from './points.js';

/** The points the history's backups made (the last LOOK_BACK jobs), by job id, in the order the jobs ran. */
async function madePoints(paths: HomePaths): Promise<Map<string, string>> {
  const made = new Map<string, string>();
  // A history that cannot be read holds nothing to hold a point against.
  const { jobs } = await readJobs(paths, LOOK_BACK).catch(() => ({ jobs: [] }));
  for (const j of jobs) {
    if (backupEndedWell(j) && typeof j.jobId === 'string' && typeof j.point === 'string' && POINT_ID.test(j.point)) made.set(j.jobId, j.point);
  }
  return made;
}

/**
 * Checks the point `chosen` of this machine, made by job `jobId`, against the job history:
 * AZBK_VAULT_CORRUPT when that job made another point; otherwise the warnings to give: none, or
 * one naming the newest point the history has when `listed` lacks it and has none newer (the
 * vault keeps a machine's newest point whatever its retention).
 */
export async function checkOwnPoint(paths: HomePaths, listed: readonly PointInfo[], chosen: PointInfo, jobId: string): Promise<string[]> {
  const made = await madePoints(paths);
  const madeAs = made.get(jobId);
  if (madeAs !== undefined && madeAs !== chosen.id) {
    throw new AzbkError('AZBK_VAULT_CORRUPT', `The vault gives recovery point ${chosen.id} the content of point ${madeAs}: this machine's job history records that job ${jobId} made ${madeAs}, and a job makes one point.`, {
      hint: 'The vault copied an older point under a newer name. Restore a point by its id (azbk points lists them), and have the vault looked at.',
    });
  }
  const newestListed = listed.map((p) => p.id).sort().at(-1) ?? '';
  const newestMade = [...made.values()].sort().at(-1);
  if (newestMade === undefined || newestMade <= newestListed) return [];
  return [`This machine's last backup made recovery point ${newestMade}, which the vault does not list (the newest it lists is ${newestListed}).`];
}

/**
 * The point "latest" means for this machine: `newest`, the newest the vault lists by its date,
 * unless this machine's last backup (the last in its job history, which is in the order the jobs
 * ran, whatever any clock said) made another point the vault lists: a vault whose clock ran ahead
 * dated an older point later. Then that point, with a warning that says so.
 */
export async function ownLatest(paths: HomePaths, listed: readonly PointInfo[], newest: PointInfo): Promise<{ point: PointInfo; warning?: string }> {
  const last = [...(await madePoints(paths)).values()].at(-1);
  const found = last === undefined || last === newest.id ? undefined : listed.find((p) => p.id === last);
  if (found === undefined) return { point: newest };
  return {
    point: found,
    warning: `The vault dates recovery point ${newest.id} later than ${found.id}, which this machine's last backup made (its clock was ahead when it dated the other): "latest" is ${found.id}. Give --point ${newest.id} for the other.`,
  };
}

/**
 * The point `spec` names among `listed`, a machine's points (see pickPoint); for this machine's own
 * `latest`, the one its last backup made (see ownLatest), with the warning that says so.
 */
export async function choosePoint(paths: HomePaths, own: boolean, listed: readonly PointInfo[], spec: string): Promise<{ point: PointInfo; warnings: string[] }> {
  const point = pickPoint(listed, spec);
  if (!own || spec !== 'latest') return { point, warnings: [] };
  const latest = await ownLatest(paths, listed, point);
  return { point: latest.point, warnings: latest.warning === undefined ? [] : [latest.warning] };
}
