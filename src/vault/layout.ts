/** Object keys of a vault in its BlobStore (see DESIGN.md, "Vault layout"). */
import { randomBytes } from 'node:crypto';
import type { KeyId, MachineId, PackId, PointId } from '../core/ids.js';

export const layout = {
  config: 'config',
  signingKey: 'vault/signing-key',
  /** the TLS certificate and key a vault service presents (JSON {version, cert, key}) */
  tls: 'vault/tls',
  key: (id: KeyId) => `keys/${id}`,
  keysPrefix: 'keys/',
  machine: (id: MachineId) => `machines/${id}`,
  machinesPrefix: 'machines/',
  /**
   * the record a re-registration replaces, kept until the new one is written: a machine whose
   * record is missing here is still registered by this one (a re-registration cut off half way)
   */
  machineBefore: (id: MachineId) => `machines-before/${id}`,
  machinesBeforePrefix: 'machines-before/',
  /** held while a machine registers again (plain JSON: the vault's time), so that two do not interleave */
  machineLock: (id: MachineId) => `machine-locks/${id}`,
  /** a machine name (lower case), claimed by the machine registered under it (its id, plain text): one name, one machine */
  machineName: (name: string) => `machine-names/${name.toLowerCase()}`,
  pack: (id: PackId) => `packs/${id.slice(0, 2)}/${id}`,
  packsPrefix: 'packs/',
  index: (name: string) => `index/${name}`,
  indexPrefix: 'index/',
  point: (machine: MachineId, id: PointId) => `points/${machine}/${id}`,
  /** the point a backup job made (plain text: its id), claimed once it is written: one job, one point */
  pointOfJob: (machine: MachineId, jobId: string) => `point-jobs/${machine}/${jobId}`,
  pointsPrefix: (machine: MachineId) => `points/${machine}/`,
  checkpoint: (machine: MachineId, name: string) => `checkpoints/${machine}/${name}`,
  checkpointsPrefix: (machine: MachineId) => `checkpoints/${machine}/`,
  /** the packs a job stored since its previous checkpoint, for prune (plain JSON); goes with the checkpoint */
  checkpointPacks: (machine: MachineId, name: string) => `checkpoint-packs/${machine}/${name}`,
  checkpointPacksPrefix: 'checkpoint-packs/',
  /** a machine's retention policy, one object per change, named by the vault's time (see retention.ts) */
  policy: (machine: MachineId, name: string) => `policies/${machine}/${name}`,
  policiesPrefix: (machine: MachineId) => `policies/${machine}/`,
  /** a point retention removed, kept until it is purged; `day` (YYYYMMDD) is when it was removed */
  expiredPoint: (machine: MachineId, day: string, id: PointId) => `expired/${machine}/${day}/${id}`,
  expiredPrefix: (machine: MachineId) => `expired/${machine}/`,
  expiredRoot: 'expired/',
  /** a pack no recovery point names, marked on `day` (YYYYMMDD) and deleted some days later (see prune.ts) */
  condemned: (day: string, pack: PackId) => `condemned/${day}/${pack}`,
  condemnedPrefix: 'condemned/',
  /**
   * a pack the vault no longer holds: prune deleted it, or a new point named it and it was missing.
   * Agents must not count on its blobs, which index files still name.
   */
  gone: (pack: PackId) => `gone/${pack}`,
  gonePrefix: 'gone/',
  /** made by the day's automatic prune pass, before it runs */
  pruneRun: (day: string) => `prune/${day}`,
} as const;

/** The last segment of an object key. */
export function baseName(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? key : key.slice(i + 1);
}

/** The ISO time encoded in a point id (or any name that starts with a vault time stamp); '' if none. */
export function timeOfPointId(id: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z` : '';
}

/** A point id sorts by time: 20261125T161000123Z-1a2b3c4d. */
export function pointIdFor(time: Date): PointId {
  const iso = time.toISOString(); // 2026-11-25T16:10:00.123Z
  const compact = iso.replace(/[-:]/g, '').replace('.', '');
  return `${compact}-${randomBytes(4).toString('hex')}` as PointId;
}
