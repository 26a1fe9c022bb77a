/** Distinct id types, so a pack id is never passed where a blob id belongs. All are lowercase hex. */
export type BlobId = string & { readonly __brand: 'BlobId' };
export type PackId = string & { readonly __brand: 'PackId' };
export type KeyId = string & { readonly __brand: 'KeyId' };
export type MachineId = string & { readonly __brand: 'MachineId' };
export type PointId = string & { readonly __brand: 'PointId' };
export type JobId = string & { readonly __brand: 'JobId' };

/** The two kinds of blob a pack holds: file content chunks and directory listings. */
export type BlobType = 'data' | 'tree';

/** Bytes in a blob or pack id (64 hex digits). */
export const ID_BYTES = 32;

const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;

/** True for a 32-byte id in lowercase hex (blob and pack ids). */
export function isHex64(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}

/** True for a 16-byte id in lowercase hex (key, machine and job ids). */
export function isHex32(s: unknown): s is string {
  return typeof s === 'string' && HEX32.test(s);
}

/** A point id: the vault's time to the millisecond, then 8 random hex digits (20261125T161000123Z-1a2b3c4d). */
export const POINT_ID = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;

/** A machine's name in a vault: letters, digits, dots, underscores and dashes, from a letter or digit, up to 64. */
export const MACHINE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
