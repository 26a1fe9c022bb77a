/**
 * What an agent can ask of a vault. Two implementations answer it: the in-process session of an
 * embedded vault, and (later) the HTTPS client of a vault service. Both run the same rules in
 * `Vault`, so behaviour is the same either way.
 */
import type { KeyId, MachineId, PackId, PointId } from '../core/ids.js';
import type { KeyEnvelope } from '../core/keys.js';
import type { Retention } from '../core/retention.js';
import type { VaultConfig } from './config.js';

export interface MachineInfo {
  readonly id: MachineId;
  readonly name: string;
  readonly os: string;
  readonly hostname: string;
  readonly registered: string;
}

export interface PointInfo {
  readonly id: PointId;
  readonly machineId: MachineId;
  /** set by the vault when the point was written */
  readonly time: string;
}

/** A point just written. */
export interface NewPoint extends PointInfo {
  /** this machine's older points its retention policy no longer keeps, moved to soft delete */
  readonly expired: readonly PointId[];
}

/** A machine's retention, as the vault applies it (see vault/retention.ts). */
export interface RetentionState {
  /** the newest policy the machine set; null when none, or when it cannot be read */
  readonly newest: Retention | null;
  /** the policies in force, each once: a point goes only when none of them keeps it; null keeps every point */
  readonly inForce: readonly Retention[] | null;
  /** the vault's clock when it answered (ISO), by which it dates points and applies retention */
  readonly now: string;
}

export interface PointRecord extends PointInfo {
  readonly keyId: KeyId;
  readonly jobId: string;
  readonly manifest: Buffer;
}

/** What an agent sends to write a recovery point. */
export interface NewPointData {
  readonly keyId: KeyId;
  readonly jobId: string;
  /** the sealed manifest */
  readonly manifest: Uint8Array;
  /** the packs the point's trees and chunks are in */
  readonly packs: readonly PackId[];
}

/**
 * Packs a backup must not count on: condemned ones (no point names them; prune deletes them in
 * some days unless one does again), and gone ones, which prune deleted or which were found
 * missing: index files still name their blobs, and nobody can read them.
 */
export interface PrunedPacks {
  readonly condemned: readonly PackId[];
  readonly gone: readonly PackId[];
}

/** A checkpoint of a running backup job; `time` is set by the vault, `seq` counts from 1 per job. */
export interface CheckpointInfo {
  readonly name: string;
  readonly time: string;
  readonly jobId: string;
  readonly seq: number;
}

export interface RegisterRequest {
  readonly token: string;
  readonly machineName: string;
  readonly os: string;
  readonly hostname: string;
  readonly reregister: boolean;
  /** A new passphrase envelope to store with the registration (a passphrase no envelope opens). */
  readonly newKey?: KeyEnvelope;
  /** the key family's proof (see keyProof): needed to register a machine of that family again */
  readonly keyProof?: string;
}

export interface Registration {
  readonly machineId: MachineId;
  /** base64 of 32 random bytes; the vault keeps only its hash */
  readonly secret: string;
}

/**
 * A pack written into the vault piece by piece as it fills, instead of whole by `putPack`: only a
 * vault on a local disk, opened in this process, offers it. Nothing names the pack until `end`.
 */
export interface PackStream {
  /** Appends bytes to the pack; the caller keeps `data` unchanged until the promise settles. */
  write(data: Uint8Array): Promise<void>;
  /**
   * Ends the pack once every write has settled: stores it under the SHA-256 of the bytes written
   * and returns that id (storing a pack the vault has is a no-op, as with putPack). Fails if a
   * write failed; the pack is then dropped.
   */
  end(): Promise<PackId>;
  /** Drops the pack; does nothing once `end` was called. */
  abort(): Promise<void>;
}

/** Operations open to an unregistered agent. */
export interface VaultEntry {
  config(): Promise<VaultConfig>;
  register(req: RegisterRequest): Promise<Registration>;
  /** Authenticates a registered machine; AZBK_CREDENTIALS_INVALID when the secret is wrong. */
  session(machineId: MachineId, secret: string): Promise<VaultSession>;
  /** Envelopes for a new registration to try its passphrase against (before it has a session). */
  listKeysForRegistration(token: string): Promise<unknown[]>;
}

/**
 * Operations open to a registered machine. Append-only: nothing here deletes or overwrites data,
 * and a machine writes points only under its own id. Only the vault removes points, by the
 * retention policy a machine states, and never its newest or those of the last week.
 */
export interface VaultSession {
  readonly machineId: MachineId;
  config(): Promise<VaultConfig>;
  listKeys(): Promise<unknown[]>;
  addKey(envelope: KeyEnvelope): Promise<void>;
  listMachines(): Promise<MachineInfo[]>;
  /** Stores a pack; its id must be the SHA-256 of its bytes. Storing an existing pack is a no-op. */
  putPack(id: PackId, data: Uint8Array): Promise<void>;
  /** A new pack to stream into the vault, or null when this vault takes whole packs only. */
  startPack(): PackStream | null;
  /**
   * Stores a pack from a local file of `length` bytes, read again for every attempt (a vault
   * service, where an upload may have to be retried); absent where the vault takes packs in
   * pieces or whole only. Its id must be the SHA-256 of the file's bytes.
   */
  putPackFile?(id: PackId, file: string, length: number): Promise<void>;
  /**
   * Reads `length` bytes at `offset` of a pack; AZBK_VAULT_CORRUPT when the pack is missing or
   * short. With `into`, the bytes may be read into it when they fit (the result is then a view of
   * it), so that a caller reading many ranges can reuse one buffer.
   */
  readPack(id: PackId, offset: number, length: number, into?: Buffer): Promise<Buffer>;
  /** The size of a pack in bytes, or null when the vault does not hold it. */
  statPack(id: PackId): Promise<number | null>;
  /** Every pack the vault holds (of any machine and key family), sorted: to name again those no index file names. */
  listPacks(): Promise<PackId[]>;
  putIndex(name: string, data: Uint8Array): Promise<void>;
  listIndex(): Promise<string[]>;
  readIndex(name: string): Promise<Buffer>;
  /**
   * Writes a recovery point for this machine; the vault sets its id and time, then applies the
   * machine's retention policy to its points and, once a day, prunes (a failure there does not
   * fail the point). `packs` names every pack the point's blobs are in, in plain text, for prune
   * (vault/prune.ts); AZBK_PACK_GONE when one of them is no longer in the vault.
   */
  putPoint(p: NewPointData): Promise<NewPoint>;
  /**
   * The packs prune condemned or deleted (see vault/prune.ts). With `forBackup`,
   * AZBK_VAULT_TOO_OLD from a vault service of an earlier version, which could not take the
   * backup's points (it has none to report, so a restore may go on).
   */
  listPrunedPacks(opts?: { forBackup?: boolean }): Promise<PrunedPacks>;
  /**
   * States this machine's retention policy, applied after each new point. The vault refuses
   * counts out of RETENTION_RANGE (at least a week of daily points).
   */
  putPolicy(retention: Retention): Promise<void>;
  /** The retention of `machine` (any machine of the vault: policies are not secret). */
  readRetention(machine: MachineId): Promise<RetentionState>;
  listPoints(machine: MachineId): Promise<PointInfo[]>;
  readPoint(machine: MachineId, id: PointId): Promise<PointRecord>;
  /** Writes checkpoint `seq` of job `jobId` for this machine; names sort by the vault's time. */
  putCheckpoint(p: { jobId: string; seq: number; data: Uint8Array; packs?: readonly PackId[] }): Promise<CheckpointInfo>;
  /** This machine's checkpoints, oldest first. */
  listCheckpoints(): Promise<CheckpointInfo[]>;
  readCheckpoint(name: string): Promise<Buffer>;
}
