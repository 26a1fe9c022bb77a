/**
 * The vault's `config` object: plain JSON naming the formats and algorithms in use, so they can
 * evolve, plus the vault's public signing key and its limits. Validated whenever it is read.
 */
import { DEFAULT_CHUNKER, type ChunkerParams } from '../core/chunker.js';
import { isHex32 } from '../core/ids.js';
import { MAX_PACK_SIZE, TARGET_PACK_SIZE } from '../core/pack.js';
import { AzbkError } from '../shared/errors.js';

export interface VaultConfig {
  readonly format: 'azbk-vault';
  readonly version: 1;
  readonly id: string;
  readonly name: string;
  readonly created: string;
  readonly chunker: { readonly alg: 'fastcdc-gear32' } & ChunkerParams;
  readonly compression: { readonly alg: 'zstd'; readonly level: number };
  readonly cipher: 'aes-256-gcm';
  readonly blobId: 'hmac-sha256';
  readonly kdf: 'scrypt';
  readonly packSize: number;
  readonly limits: { readonly machines: number };
  readonly signing: { readonly alg: 'ed25519'; readonly publicKey: string };
}

/** Names a vault may have: printable, no path separators, 1..64 characters. */
export const VAULT_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

/** AZBK_BAD_INPUT for a name a new vault may not have (see VAULT_NAME). */
export function checkVaultName(name: string): void {
  if (!VAULT_NAME.test(name)) throw new AzbkError('AZBK_BAD_INPUT', 'A vault name has 1 to 64 letters, digits, spaces, dots, dashes or underscores.');
}

/** Builds the config of a new vault. */
export function newVaultConfig(p: { id: string; name: string; created: Date; publicKey: string; maxMachines?: number }): VaultConfig {
  return {
    format: 'azbk-vault',
    version: 1,
    id: p.id,
    name: p.name,
    created: p.created.toISOString(),
    chunker: { alg: 'fastcdc-gear32', ...DEFAULT_CHUNKER },
    compression: { alg: 'zstd', level: 3 },
    cipher: 'aes-256-gcm',
    blobId: 'hmac-sha256',
    kdf: 'scrypt',
    packSize: TARGET_PACK_SIZE,
    limits: { machines: p.maxMachines ?? 50 },
    signing: { alg: 'ed25519', publicKey: p.publicKey },
  };
}

/** The chunk sizes a vault may ask for: 64 KiB up to 64 MiB (the default: 512 KiB, 1 MiB, 8 MiB). */
export const CHUNK_LIMITS = { min: 64 * 1024, max: 64 * 1024 * 1024 } as const;
/** zstd levels past 19 need windows of up to 128 MiB per compressor. */
export const MAX_ZSTD_LEVEL = 19;

function corrupt(what: string): AzbkError {
  return new AzbkError('AZBK_VAULT_CORRUPT', `The vault config is not valid: ${what}.`);
}

const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** Validates an untrusted config read from a vault. */
export function parseVaultConfig(value: unknown): VaultConfig {
  if (typeof value !== 'object' || value === null) throw corrupt('not an object');
  const c = value as Record<string, unknown>;
  if (c.format !== 'azbk-vault') throw corrupt('unknown format');
  if (c.version !== 1) throw corrupt(`unsupported version ${String(c.version)}`);
  if (!isHex32(c.id)) throw corrupt('bad id');
  if (typeof c.name !== 'string' || !VAULT_NAME.test(c.name)) throw corrupt('bad name');
  const ch = c.chunker as Record<string, unknown> | undefined;
  if (ch?.alg !== 'fastcdc-gear32' || !posInt(ch.min) || !posInt(ch.avg) || !posInt(ch.max)) throw corrupt('bad chunker');
  // Chunks far smaller than these would have a backup hold millions of ids; larger ones, buffers past its memory.
  const powerOfTwo = (ch.avg & (ch.avg - 1)) === 0;
  if (!(CHUNK_LIMITS.min <= ch.min && ch.min <= ch.avg && ch.avg <= ch.max && ch.max <= CHUNK_LIMITS.max) || !powerOfTwo) throw corrupt('bad chunker sizes');
  const comp = c.compression as Record<string, unknown> | undefined;
  if (comp?.alg !== 'zstd' || !Number.isInteger(comp.level) || (comp.level as number) < 1 || (comp.level as number) > MAX_ZSTD_LEVEL) throw corrupt('bad compression');
  if (c.cipher !== 'aes-256-gcm' || c.blobId !== 'hmac-sha256' || c.kdf !== 'scrypt') throw corrupt('unknown algorithm');
  // A backup holds a few buffers of this size: a vault may not ask for more than a quarter of the largest pack.
  if (!posInt(c.packSize) || c.packSize > MAX_PACK_SIZE / 4) throw corrupt('bad pack size');
  const limits = c.limits as Record<string, unknown> | undefined;
  if (!posInt(limits?.machines)) throw corrupt('bad limits');
  const s = c.signing as Record<string, unknown> | undefined;
  if (s?.alg !== 'ed25519' || typeof s.publicKey !== 'string') throw corrupt('bad signing key');
  return value as VaultConfig;
}
