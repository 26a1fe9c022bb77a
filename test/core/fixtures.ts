/** Shared helpers for the core unit tests: deterministic bytes, test keys, corruption checks. */
import { createCipheriv, createHash } from 'node:crypto';
import { expect } from 'vitest';
import { deriveKeys, type VaultKeys } from '../../src/core/keys.js';
import { isAzbkError } from '../../src/shared/errors.js';

/** `n` pseudo-random bytes, the same for the same seed (AES-256-CTR keystream). */
export function randomData(n: number, seed = 1): Buffer {
  const key = createHash('sha256').update(`azbk test ${seed}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** A small deterministic PRNG (mulberry32) for sizes and positions. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Keys from a fixed master key; `n` picks a different master and family. */
export function testKeys(n = 1): VaultKeys {
  const master = createHash('sha256').update(`azbk master ${n}`).digest();
  return deriveKeys(master);
}

/** Asserts that `fn` throws AzbkError AZBK_VAULT_CORRUPT. */
export function expectCorrupt(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(isAzbkError(thrown, 'AZBK_VAULT_CORRUPT'), `expected AZBK_VAULT_CORRUPT, got ${String(thrown)}`).toBe(true);
}

/** A copy of `buf` with the byte at `i` changed. */
export function flipped(buf: Buffer, i: number): Buffer {
  const copy = Buffer.from(buf);
  copy[i] = copy[i]! ^ 0x01;
  return copy;
}
