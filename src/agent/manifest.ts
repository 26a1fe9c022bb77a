/** Recovery point manifests: sealed under the machine's keys, named by the job that wrote them. */
import { isHex64, type BlobId, type KeyId, type MachineId } from '../core/ids.js';
import type { MachineInfo, PointRecord } from '../vault/api.js';
import type { VaultKeys } from '../core/keys.js';
import { objectKeyId, openObject, sealObject } from '../core/sealed-object.js';
import { AzbkError } from '../shared/errors.js';

export interface SkippedItem {
  readonly path: string;
  readonly reason: string;
}

export interface BackupStats {
  files: number;
  dirs: number;
  symlinks: number;
  /** the size of the files in the point */
  bytes: number;
  /**
   * file data this run read: none for a file the cache found unchanged, twice for one read again
   * (it changed while read, or its data went missing from the vault), so it can exceed `bytes`;
   * absent in points made before it was counted. Like `uploadedBytes`, it covers both attempts of
   * a run retried because the vault lost a pack; the other counts are the last attempt's.
   */
  readBytes?: number;
  newBytes: number;
  uploadedBytes: number;
  blobs: number;
  newBlobs: number;
  packs: number;
}

export interface PointManifest {
  readonly version: 1;
  readonly jobId: string;
  readonly keyId: KeyId;
  /**
   * the machine that made the point: sealed with it, so a vault cannot pass one machine's point off
   * as another's (both under one passphrase); absent in points of earlier versions
   */
  readonly machineId?: MachineId;
  readonly machineName: string;
  readonly hostname: string;
  readonly platform: string;
  readonly started: string;
  readonly finished: string;
  /** the tree of the filesystem root, holding the backed-up paths and their ancestors */
  readonly tree: BlobId;
  /** the backed-up paths, as segment lists */
  readonly paths: readonly (readonly string[])[];
  readonly stats: BackupStats;
  readonly skipped: readonly SkippedItem[];
  readonly warnings: readonly SkippedItem[];
}

/**
 * The key a point was made with: its manifest's, which the manifest's seal covers. The record's
 * own keyId is only the vault's word: one that differs (or a manifest that is no sealed object) is
 * a damaged record, AZBK_VAULT_CORRUPT. Taken from the record, it let a vault have a restore say
 * the passphrase was wrong, and verify pass over the point.
 */
export function pointKeyId(record: Pick<PointRecord, 'id' | 'keyId' | 'manifest'>): KeyId {
  const keyId = objectKeyId(record.manifest);
  if (keyId === null || keyId !== record.keyId) {
    throw new AzbkError('AZBK_VAULT_CORRUPT', `Recovery point ${record.id} is damaged: its record names another key than its manifest.`);
  }
  return keyId;
}

export function sealManifest(keys: VaultKeys, m: PointManifest): Buffer {
  return sealObject(keys, 'point', m.jobId, m);
}

/**
 * Opens a point's manifest, listed among the points of `machine`; AZBK_VAULT_CORRUPT when damaged
 * or malformed, or made by another machine: by its id, and by its name (a machine keeps its name,
 * but for its case: a vault that swapped two machines' names would pass one's points off as the
 * other's, ids and all).
 */
export function openManifest(keys: VaultKeys, jobId: string, data: Uint8Array, machine: Pick<MachineInfo, 'id' | 'name'>): PointManifest {
  const m = openObject(keys, 'point', jobId, data) as PointManifest;
  if (m?.version !== 1 || !isHex64(m.tree) || !Array.isArray(m.paths) || m.jobId !== jobId || typeof m.machineName !== 'string') {
    throw new AzbkError('AZBK_VAULT_CORRUPT', 'A recovery point manifest is malformed.');
  }
  if ((m.machineId !== undefined && m.machineId !== machine.id) || m.machineName.toLowerCase() !== machine.name.toLowerCase()) {
    const by = m.machineId === undefined ? '' : ` ${String(m.machineId).slice(0, 32)}`;
    throw new AzbkError('AZBK_VAULT_CORRUPT', `A recovery point the vault lists as machine ${machine.name}'s (${machine.id}) was made by another machine (${m.machineName.slice(0, 64)}${by}).`);
  }
  for (const p of m.paths) {
    if (!Array.isArray(p) || !p.every((s) => typeof s === 'string')) {
      throw new AzbkError('AZBK_VAULT_CORRUPT', 'A recovery point manifest is malformed.');
    }
  }
  return m;
}
