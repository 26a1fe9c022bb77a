/**
 * Encrypted vault objects that are not blobs: index files, recovery point manifests, checkpoints.
 * Layout: magic "AZBKOBJ1"(8) | keyId(16 raw bytes) | nonce(12) | ciphertext | tag(16).
 * Plaintext is zstd-compressed JSON. AAD = magic | keyId | kind | name, so an object cannot be
 * replayed under another name or kind. keyId is readable without keys, so an agent can skip the
 * objects of other envelope families without trying to decrypt them.
 *
 * Each object is encrypted under its own subkey HKDF(metaKey, salt = nonce, 'azbk object v1'), so
 * metaKey itself never meets enough random nonces for a collision to matter.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyId } from './ids.js';
import type { VaultKeys } from './keys.js';
import { asBuffer, corrupt, hkdf32 } from './validate.js';
import { jsonPieces } from './json-pieces.js';
import { runSteps, type Steps } from '../shared/steps.js';
import { OverLimit, zstdCompressPieces, zstdDecompress } from './zstd.js';

export type ObjectKind = 'index' | 'point' | 'checkpoint' | 'pack-header';

/** Largest JSON text a sealed object may hold once decompressed. */
export const MAX_OBJECT_JSON = 256 * 1024 * 1024;

const MAGIC = Buffer.from('AZBKOBJ1', 'latin1');
const KEY_ID_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = MAGIC.length + KEY_ID_BYTES + NONCE_BYTES;
const KINDS: readonly ObjectKind[] = ['index', 'point', 'checkpoint', 'pack-header'];
const LEVEL = 3;
const EMPTY = Buffer.alloc(0);

/** magic | keyId | u8 kind length | kind | u32 LE name length | name, each part delimited. */
function objectAad(keyId: Buffer, kind: ObjectKind, name: string): Buffer {
  const k = Buffer.from(kind, 'utf8');
  const n = Buffer.from(name, 'utf8');
  const lens = Buffer.alloc(5);
  lens.writeUInt8(k.length, 0);
  lens.writeUInt32LE(n.length, 1);
  return Buffer.concat([MAGIC, keyId, lens.subarray(0, 1), k, lens.subarray(1), n]);
}

function objectKey(keys: VaultKeys, nonce: Buffer): Buffer {
  return hkdf32(keys.metaKey, nonce, 'azbk object v1');
}

/**
 * Serializes `value` as JSON (it must be JSON-serializable: TypeError otherwise), compresses and
 * seals it for `kind` and `name` under the keys' family. The text is made once, in pieces (see
 * jsonPieces), each compressed in turn, and encrypted once the frame is whole (its header then
 * records its size): a large object never holds its text whole, nor as one buffer.
 */
export function sealObject(keys: VaultKeys, kind: ObjectKind, name: string, value: unknown): Buffer {
  return runSteps(sealSteps(keys, kind, name, value));
}

/**
 * sealObject in steps, one per piece of text made and compressed (see runSliced);
 * `split`: the depth from which containers are written whole (see jsonPieces).
 */
export function* sealSteps(keys: VaultKeys, kind: ObjectKind, name: string, value: unknown, split?: number): Steps<Buffer> {
  if (!KINDS.includes(kind)) throw new TypeError(`unknown object kind ${String(kind)}`);
  let frame: Buffer[];
  try {
    frame = yield* zstdCompressPieces(jsonPieces(value, split), LEVEL, MAX_OBJECT_JSON);
  } catch (err) {
    if (err instanceof OverLimit) throw new RangeError(`sealed ${kind} object exceeds MAX_OBJECT_JSON`);
    throw err;
  }
  const keyId = Buffer.from(keys.keyId, 'hex');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', objectKey(keys, nonce), nonce);
  cipher.setAAD(objectAad(keyId, kind, name));
  const parts: Buffer[] = [MAGIC, keyId, nonce];
  for (let i = 0; i < frame.length; i++) {
    parts.push(cipher.update(frame[i]!));
    frame[i] = EMPTY; // each part is held once, plain or encrypted
  }
  parts.push(cipher.final(), cipher.getAuthTag());
  return Buffer.concat(parts);
}

/**
 * Decrypts and parses; throws AzbkError AZBK_VAULT_CORRUPT on any tampering or bad JSON, and when
 * the object belongs to another key family than `keys`.
 */
export function openObject(keys: VaultKeys, kind: ObjectKind, name: string, data: Uint8Array): unknown {
  const what = `${kind} object '${name}'`;
  const owner = objectKeyId(data);
  if (owner === null) throw corrupt(`${what} is not a sealed object`);
  if (owner !== keys.keyId) throw corrupt(`${what} belongs to key family ${owner}, not ${keys.keyId}`);
  if (!KINDS.includes(kind)) throw corrupt(`unknown object kind ${String(kind)}`);
  const buf = asBuffer(data);
  const nonce = buf.subarray(MAGIC.length + KEY_ID_BYTES, HEADER_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', objectKey(keys, nonce), nonce);
  decipher.setAAD(objectAad(buf.subarray(MAGIC.length, MAGIC.length + KEY_ID_BYTES), kind, name));
  decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
  let body: Buffer;
  try {
    body = Buffer.concat([decipher.update(buf.subarray(HEADER_BYTES, buf.length - TAG_BYTES)), decipher.final()]);
  } catch (err) {
    throw corrupt(`${what} failed authentication`, err);
  }
  const text = zstdDecompress(body, MAX_OBJECT_JSON);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text)) as unknown;
  } catch (err) {
    throw corrupt(`${what} does not hold valid JSON`, err);
  }
}

/** The key family of a sealed object, or null when `data` is not one (wrong magic, too short). */
export function objectKeyId(data: Uint8Array): KeyId | null {
  if (data.length < HEADER_BYTES + TAG_BYTES) return null;
  const buf = asBuffer(data);
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  return buf.subarray(MAGIC.length, MAGIC.length + KEY_ID_BYTES).toString('hex') as KeyId;
}
