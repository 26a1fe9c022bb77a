/**
 * Private helpers for the core formats: the corruption error, strict base64, HKDF, and checks
 * on untrusted JSON. Not part of the public core API.
 */
import { hkdfSync } from 'node:crypto';
import { AzbkError } from '../shared/errors.js';

/** The error every decoder throws for damaged or tampered input. */
export function corrupt(message: string, cause?: unknown): AzbkError {
  return new AzbkError('AZBK_VAULT_CORRUPT', message, cause === undefined ? undefined : { cause });
}

/** A plain JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A safe, non-negative integer. */
export function isSafeNat(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes canonical base64 (padded, standard alphabet, no whitespace), or returns null. Node's
 * decoder silently skips bad characters, so the string is checked first and re-encoded after.
 */
export function decodeBase64(s: unknown): Buffer | null {
  if (typeof s !== 'string' || !BASE64.test(s)) return null;
  const buf = Buffer.from(s, 'base64');
  return buf.toString('base64') === s ? buf : null;
}

/** HKDF-SHA256 to a 32-byte key. */
export function hkdf32(key: Uint8Array, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, info, 32));
}

/** A view of `data` as a Buffer without copying. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
