import { describe, expect, it } from 'vitest';
import type { KeyId } from '../../src/core/ids.js';
import {
  DEFAULT_KDF,
  deriveKeys,
  generateMasterKey,
  parseEnvelope,
  unwrapMasterKey,
  wrapMasterKey,
  type KeyEnvelope,
} from '../../src/core/keys.js';
import { isAzbkError } from '../../src/shared/errors.js';

const CHEAP = { N: 1024, r: 8, p: 1 };
const PASS = 'correct horse battery staple';
const ID = '0123456789abcdef0123456789abcdef' as KeyId;

async function expectCorruptAsync(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAzbkError(err, 'AZBK_VAULT_CORRUPT'), `expected AZBK_VAULT_CORRUPT, got ${String(err)}`).toBe(true);
}

/** A copy of the envelope's base64 field with one byte of its decoded value changed. */
function tamperB64(s: string, i = 0): string {
  const b = Buffer.from(s, 'base64');
  b[i] = b[i]! ^ 1;
  return b.toString('base64');
}

describe('keys', () => {
  it('generates 32 random bytes', () => {
    const a = generateMasterKey();
    expect(a).toHaveLength(32);
    expect(a.equals(generateMasterKey())).toBe(false);
  });

  it('derives distinct, deterministic keys and a family id from the master key alone', () => {
    const master = generateMasterKey();
    const k = deriveKeys(master);
    const again = deriveKeys(Buffer.from(master));
    const all = [k.idKey, k.dataKey, k.metaKey, k.chunkerSeed, k.master];
    expect(new Set(all.map((b) => b.toString('hex'))).size).toBe(5);
    expect(k.idKey.equals(again.idKey) && k.dataKey.equals(again.dataKey)).toBe(true);
    expect(k.keyId).toBe(again.keyId);
    expect(k.keyId).toMatch(/^[0-9a-f]{32}$/);
    expect(deriveKeys(generateMasterKey()).keyId).not.toBe(k.keyId);
    expect(() => deriveKeys(Buffer.alloc(16))).toThrow();
  });

  it('wraps and unwraps the master key', async () => {
    const master = generateMasterKey();
    const now = new Date('2024-05-01T12:00:00Z');
    const env = await wrapMasterKey(master, PASS, { id: ID, cost: CHEAP, now });
    expect(env).toMatchObject({ version: 1, id: ID, created: now.toISOString(), cipher: 'aes-256-gcm' });
    expect(env.kdf).toMatchObject({ alg: 'scrypt', ...CHEAP });
    expect(parseEnvelope(JSON.parse(JSON.stringify(env)))).toEqual(env);
    const out = await unwrapMasterKey(JSON.parse(JSON.stringify(env)), PASS);
    expect(out?.equals(master)).toBe(true);
  });

  it('uses a random 32-hex id and the default cost when none is given', async () => {
    const env = await wrapMasterKey(generateMasterKey(), PASS, { cost: CHEAP });
    expect(env.id).toMatch(/^[0-9a-f]{32}$/);
    expect(DEFAULT_KDF).toEqual({ N: 65536, r: 8, p: 1 });
  });

  it('returns null for a wrong passphrase', async () => {
    const env = await wrapMasterKey(generateMasterKey(), PASS, { cost: CHEAP });
    expect(await unwrapMasterKey(env, PASS + '!')).toBeNull();
    expect(await unwrapMasterKey(env, '')).toBeNull();
  });

  it('treats the same words in another Unicode normal form as the same passphrase', async () => {
    const master = generateMasterKey();
    const env = await wrapMasterKey(master, 'caf\u00e9 au lait, s\u2019il vous pla\u00eet', { cost: CHEAP });
    const decomposed = 'cafe\u0301 au lait, s\u2019il vous plai\u0302t';
    expect((await unwrapMasterKey(env, decomposed))?.equals(master)).toBe(true);
  });

  it('returns null when a bound field or the ciphertext is altered', async () => {
    const env = await wrapMasterKey(generateMasterKey(), PASS, { id: ID, cost: CHEAP });
    const variants: KeyEnvelope[] = [
      { ...env, id: 'ffffffffffffffffffffffffffffffff' as KeyId },
      { ...env, kdf: { ...env.kdf, N: 2048 } },
      { ...env, kdf: { ...env.kdf, r: 4 } },
      { ...env, kdf: { ...env.kdf, p: 2 } },
      { ...env, kdf: { ...env.kdf, salt: tamperB64(env.kdf.salt) } },
      { ...env, nonce: tamperB64(env.nonce) },
      { ...env, wrapped: tamperB64(env.wrapped, 3) },
      { ...env, wrapped: tamperB64(env.wrapped, 40) },
    ];
    for (const v of variants) expect(await unwrapMasterKey(v, PASS)).toBeNull();
  });

  it('refuses malformed envelopes with AZBK_VAULT_CORRUPT', async () => {
    const env = await wrapMasterKey(generateMasterKey(), PASS, { cost: CHEAP });
    const bad: unknown[] = [
      null,
      'envelope',
      [],
      { ...env, version: 2 },
      { ...env, id: 'ABCDEF' },
      { ...env, id: env.id.toUpperCase() },
      { ...env, created: 12 },
      { ...env, created: 'yesterday' },
      { ...env, cipher: 'aes-128-gcm' },
      { ...env, kdf: null },
      { ...env, kdf: { ...env.kdf, alg: 'argon2id' } },
      { ...env, kdf: { ...env.kdf, salt: Buffer.alloc(8).toString('base64') } },
      { ...env, kdf: { ...env.kdf, salt: Buffer.alloc(65).toString('base64') } },
      { ...env, kdf: { ...env.kdf, salt: 'not base64!' } },
      { ...env, nonce: Buffer.alloc(16).toString('base64') },
      { ...env, nonce: env.nonce + '\n' },
      { ...env, wrapped: Buffer.alloc(32).toString('base64') },
      { ...env, wrapped: undefined },
    ];
    for (const b of bad) {
      expect(() => parseEnvelope(b)).toThrow();
      await expectCorruptAsync(unwrapMasterKey(b, PASS));
    }
  });

  it('refuses hostile scrypt parameters before running scrypt', async () => {
    const env = await wrapMasterKey(generateMasterKey(), PASS, { cost: CHEAP });
    const hostile = [
      { N: 1000 },
      { N: 512 },
      { N: 2 ** 23 },
      { N: 2 ** 40 },
      { N: 1024.5 },
      { N: '1024' },
      { r: 0 },
      { r: 33 },
      { r: 1.5 },
      { p: 0 },
      { p: 17 },
      { N: 2 ** 22, r: 8 }, // 4 GiB of memory
      { N: 2 ** 20, r: 8, p: 16 }, // minutes of work
      { N: 2 ** 19, r: 8 }, // 8 times the default work: a planted envelope every unlock would try
    ];
    for (const h of hostile) await expectCorruptAsync(unwrapMasterKey({ ...env, kdf: { ...env.kdf, ...h } }, PASS));
    await expect(wrapMasterKey(generateMasterKey(), PASS, { cost: { N: 2 ** 23, r: 8, p: 1 } })).rejects.toThrow(
      RangeError,
    );
  });
});
