/**
 * Key hierarchy. passphrase -> scrypt -> key-encryption key, which wraps a random 32-byte master key
 * in an envelope (stored in the vault under keys/<id>). master key -> HKDF-SHA256 -> idKey (chunk
 * ids), dataKey (per-blob subkeys), metaKey (index, point and checkpoint objects, pack headers) and
 * chunkerSeed (the gear table, so chunk boundaries do not reveal content).
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import type { KeyId } from './ids.js';
import { isHex32 } from './ids.js';
import { corrupt, decodeBase64, hkdf32, isRecord } from './validate.js';

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

/** Keys derived from one master key. `keyId` is the key family (see keyFamilyId), not an envelope id. */
export interface VaultKeys {
  readonly keyId: KeyId;
  readonly master: Buffer;
  readonly idKey: Buffer;
  readonly dataKey: Buffer;
  readonly metaKey: Buffer;
  readonly chunkerSeed: Buffer;
}

/**
 * A key family's proof for the vault (hex): whoever registers a machine again under a name must
 * show the proof of the family it was registered with, so a registration token alone cannot take
 * a machine over. The vault keeps only its SHA-256; it reveals nothing of the keys.
 */
export function keyProof(keys: VaultKeys): string {
  return hkdf32(keys.master, Buffer.alloc(0), 'azbk machine key proof v1').toString('hex');
}

/** scrypt cost used for new envelopes (about a quarter second on one core). */
export const DEFAULT_KDF = { N: 1 << 16, r: 8, p: 1 } as const;

/**
 * Bounds on scrypt parameters read from a vault, so a hostile envelope cannot make an agent spend
 * gigabytes or minutes: N a power of two in [2^10, 2^22], r in [1, 32], p in [1, 16], and on top
 * memory (128 * N * r) at most 1 GiB and work (N * r * p) at most 4 times the default: an agent
 * tries every envelope of a vault (up to 64) for a passphrase, and any machine may add one.
 */
const KDF_LIMITS = { minLogN: 10, maxLogN: 22, maxR: 32, maxP: 16, maxMem: 1 << 30, maxWork: 1 << 21 } as const;

/** The scrypt work (N * r * p) an envelope asks for, or Infinity when it does not say. */
export function kdfWork(envelope: unknown): number {
  const kdf = (envelope as { kdf?: { N?: unknown; r?: unknown; p?: unknown } } | null)?.kdf;
  const { N, r, p } = kdf ?? {};
  return typeof N === 'number' && typeof r === 'number' && typeof p === 'number' ? N * r * p : Infinity;
}

/** Passphrase envelopes a vault holds at most (each key family has one per passphrase change). */
export const MAX_KEY_ENVELOPES = 64;

const SALT_BYTES = { min: 16, max: 64, new: 32 } as const;
const MASTER_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const CREATED_MAX = 64;

export function generateMasterKey(): Buffer {
  return randomBytes(MASTER_BYTES);
}

/**
 * The key family of a master key: 16 bytes of HKDF output, as hex. Every envelope that wraps the
 * same master key (for example after a passphrase change) belongs to the same family, so objects
 * sealed under the family stay readable.
 */
export function keyFamilyId(master: Buffer): KeyId {
  if (master.length !== MASTER_BYTES) throw new TypeError(`master key must be ${MASTER_BYTES} bytes`);
  return hkdf32(master, Buffer.alloc(0), 'azbk key family v1').subarray(0, 16).toString('hex') as KeyId;
}

/** Derives the working keys, and their family id, from a master key. Deterministic. */
export function deriveKeys(master: Buffer): VaultKeys {
  if (master.length !== MASTER_BYTES) throw new TypeError(`master key must be ${MASTER_BYTES} bytes`);
  const none = Buffer.alloc(0);
  return {
    keyId: keyFamilyId(master),
    master: Buffer.from(master),
    idKey: hkdf32(master, none, 'azbk id key v1'),
    dataKey: hkdf32(master, none, 'azbk data key v1'),
    metaKey: hkdf32(master, none, 'azbk meta key v1'),
    chunkerSeed: hkdf32(master, none, 'azbk chunker seed v1'),
  };
}

/** Why `cost` is refused, or null when it is within KDF_LIMITS. */
function costProblem(N: unknown, r: unknown, p: unknown): string | null {
  if (typeof N !== 'number' || typeof r !== 'number' || typeof p !== 'number') return 'N, r and p must be numbers';
  if (![N, r, p].every(Number.isSafeInteger)) return 'N, r and p must be integers';
  const logN = Math.log2(N);
  if (!Number.isInteger(logN) || logN < KDF_LIMITS.minLogN || logN > KDF_LIMITS.maxLogN) {
    return `N must be a power of two from 2^${KDF_LIMITS.minLogN} to 2^${KDF_LIMITS.maxLogN}`;
  }
  if (r < 1 || r > KDF_LIMITS.maxR) return `r must be from 1 to ${KDF_LIMITS.maxR}`;
  if (p < 1 || p > KDF_LIMITS.maxP) return `p must be from 1 to ${KDF_LIMITS.maxP}`;
  if (128 * N * r > KDF_LIMITS.maxMem) return 'scrypt memory (128 * N * r) exceeds 1 GiB';
  if (N * r * p > KDF_LIMITS.maxWork) return 'scrypt work (N * r * p) is too high';
  return null;
}

/**
 * scrypt to a 32-byte key-encryption key. The passphrase is NFC-normalised so the same words typed
 * on macOS, Linux and Windows give the same key.
 */
function kek(passphrase: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  const maxmem = 128 * N * r + 128 * r * p + 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** AAD of the wrapped key: every field that decides how it is unwrapped. */
function envelopeAad(e: Omit<KeyEnvelope, 'created' | 'nonce' | 'wrapped'>): Buffer {
  const { version, id, cipher, kdf } = e;
  return Buffer.from(
    `azbk key envelope\0${JSON.stringify([version, id, cipher, kdf.alg, kdf.N, kdf.r, kdf.p, kdf.salt])}`,
    'utf8',
  );
}

/**
 * Wraps `master` under `passphrase`. `id` is the new envelope's id (random if omitted), `cost`
 * the scrypt parameters (DEFAULT_KDF if omitted; refused with RangeError outside the limits
 * unwrapMasterKey accepts), `now` the creation time recorded in the envelope.
 */
export async function wrapMasterKey(
  master: Buffer,
  passphrase: string,
  opts?: { id?: KeyId; cost?: { N: number; r: number; p: number }; now?: Date },
): Promise<KeyEnvelope> {
  if (master.length !== MASTER_BYTES) throw new TypeError(`master key must be ${MASTER_BYTES} bytes`);
  const id = opts?.id ?? (randomBytes(16).toString('hex') as KeyId);
  if (!isHex32(id)) throw new TypeError('envelope id must be 32 lowercase hex characters');
  const { N, r, p } = opts?.cost ?? DEFAULT_KDF;
  const problem = costProblem(N, r, p);
  if (problem !== null) throw new RangeError(`refusing scrypt parameters: ${problem}`);
  const salt = randomBytes(SALT_BYTES.new);
  const nonce = randomBytes(NONCE_BYTES);
  const kdf: KdfParams = { alg: 'scrypt', N, r, p, salt: salt.toString('base64') };
  const head = { version: 1, id, cipher: 'aes-256-gcm', kdf } as const;
  const key = await kek(passphrase, salt, N, r, p);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(envelopeAad(head));
  const wrapped = Buffer.concat([cipher.update(master), cipher.final(), cipher.getAuthTag()]);
  return {
    ...head,
    created: (opts?.now ?? new Date()).toISOString(),
    nonce: nonce.toString('base64'),
    wrapped: wrapped.toString('base64'),
  };
}

/**
 * Unwraps the master key, or returns null when the passphrase is wrong. Throws AzbkError
 * AZBK_VAULT_CORRUPT when the envelope itself is malformed (hostile input: validate every field,
 * refuse absurd scrypt parameters). A well-formed envelope whose id, kdf parameters, nonce or
 * wrapped key were altered cannot be told from a wrong passphrase, so it also gives null.
 */
export async function unwrapMasterKey(envelope: unknown, passphrase: string): Promise<Buffer | null> {
  const e = parseEnvelope(envelope);
  const salt = decodeBase64(e.kdf.salt)!;
  const nonce = decodeBase64(e.nonce)!;
  const wrapped = decodeBase64(e.wrapped)!;
  const key = await kek(passphrase, salt, e.kdf.N, e.kdf.r, e.kdf.p);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(envelopeAad(e));
  decipher.setAuthTag(wrapped.subarray(MASTER_BYTES));
  try {
    return Buffer.concat([decipher.update(wrapped.subarray(0, MASTER_BYTES)), decipher.final()]);
  } catch {
    return null;
  }
}

/**
 * Validates an untrusted envelope read from the vault; throws AZBK_VAULT_CORRUPT if malformed.
 * Returns a fresh object holding only the known fields.
 */
export function parseEnvelope(value: unknown): KeyEnvelope {
  const bad = (why: string) => corrupt(`key envelope is malformed: ${why}`);
  if (!isRecord(value)) throw bad('not an object');
  if (value.version !== 1) throw bad('unsupported version');
  if (!isHex32(value.id)) throw bad('id is not 32 hex characters');
  const created = value.created;
  if (typeof created !== 'string' || created.length > CREATED_MAX || Number.isNaN(Date.parse(created))) {
    throw bad('created is not a time');
  }
  if (value.cipher !== 'aes-256-gcm') throw bad('unknown cipher');
  const kdf = value.kdf;
  if (!isRecord(kdf) || kdf.alg !== 'scrypt') throw bad('unknown key derivation');
  const problem = costProblem(kdf.N, kdf.r, kdf.p);
  if (problem !== null) throw bad(problem);
  const salt = decodeBase64(kdf.salt);
  if (salt === null || salt.length < SALT_BYTES.min || salt.length > SALT_BYTES.max) {
    throw bad(`salt is not base64 of ${SALT_BYTES.min} to ${SALT_BYTES.max} bytes`);
  }
  const nonce = decodeBase64(value.nonce);
  if (nonce === null || nonce.length !== NONCE_BYTES) throw bad(`nonce is not base64 of ${NONCE_BYTES} bytes`);
  const wrapped = decodeBase64(value.wrapped);
  if (wrapped === null || wrapped.length !== MASTER_BYTES + TAG_BYTES) {
    throw bad(`wrapped key is not base64 of ${MASTER_BYTES + TAG_BYTES} bytes`);
  }
  return {
    version: 1,
    id: value.id as KeyId,
    created,
    kdf: { alg: 'scrypt', N: kdf.N as number, r: kdf.r as number, p: kdf.p as number, salt: kdf.salt as string },
    cipher: 'aes-256-gcm',
    nonce: value.nonce as string,
    wrapped: value.wrapped as string,
  };
}
