/**
 * Key hierarchy. passphrase -> scrypt -> key-encryption key, which wraps a random 32-byte master key
 * in an envelope (stored in the vault under keys/<id>). master key -> HKDF-SHA256 -> idKey (chunk
 * ids), dataKey (per-blob subkeys), metaKey (index, point and checkpoint objects, pack headers) and
 * chunkerSeed (the gear table, so chunk boundaries do not reveal content).
 */
import type { KeyId } from './ids.js';

export interface KdfParams {
  readonly alg: 'scrypt';
  readonly N: number;
  readonly r: number;
  readonly p: number;
  /** base64, 16+ bytes */
  readonly salt: string;
}

/** A passphrase envelope: everything needed to unwrap the master key given the passphrase. */
export interface KeyEnvelope {
  readonly version: 1;
  readonly id: KeyId;
  readonly created: string;
  readonly kdf: KdfParams;
  readonly cipher: 'aes-256-gcm';
  /** base64 12-byte nonce */
  readonly nonce: string;
  /** base64 ciphertext||tag of the 32-byte master key; AAD binds the envelope id and kdf params */
  readonly wrapped: string;
}

/** Keys derived from one master key. `keyId` is the envelope family they belong to. */
export interface VaultKeys {
  readonly keyId: KeyId;
  readonly master: Buffer;
  readonly idKey: Buffer;
  readonly dataKey: Buffer;
  readonly metaKey: Buffer;
  readonly chunkerSeed: Buffer;
}

/** scrypt cost used for new envelopes (about a quarter second on one core). */
export const DEFAULT_KDF = { N: 1 << 16, r: 8, p: 1 } as const;

export function generateMasterKey(): Buffer {
  throw new Error('not implemented');
}

/** Derives the working keys from a master key. Deterministic. */
export function deriveKeys(keyId: KeyId, master: Buffer): VaultKeys {
  void keyId;
  void master;
  throw new Error('not implemented');
}

/** Wraps `master` under `passphrase`. `id` is the new envelope's id (random if omitted). */
export async function wrapMasterKey(
  master: Buffer,
  passphrase: string,
  opts?: { id?: KeyId; cost?: { N: number; r: number; p: number }; now?: Date },
): Promise<KeyEnvelope> {
  void master;
  void passphrase;
  void opts;
  throw new Error('not implemented');
}

/**
 * Unwraps the master key, or returns null when the passphrase is wrong. Throws AzbkError
 * AZBK_VAULT_CORRUPT when the envelope itself is malformed (hostile input: validate every field,
 * refuse absurd scrypt parameters).
 */
export async function unwrapMasterKey(envelope: unknown, passphrase: string): Promise<Buffer | null> {
  void envelope;
  void passphrase;
  throw new Error('not implemented');
}

/** Validates an untrusted envelope read from the vault; throws AZBK_VAULT_CORRUPT if malformed. */
export function parseEnvelope(value: unknown): KeyEnvelope {
  void value;
  throw new Error('not implemented');
}
