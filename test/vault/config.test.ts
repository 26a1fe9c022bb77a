/** A vault's config is read from the vault: anything out of range is refused before it sizes a buffer. */
import { describe, expect, it } from 'vitest';
import { MAX_PACK_SIZE } from '../../src/core/pack.js';
import { Chunker } from '../../src/core/chunker.js';
import { CHUNK_LIMITS, MAX_ZSTD_LEVEL, newVaultConfig, parseVaultConfig } from '../../src/vault/config.js';

const base = () => newVaultConfig({ id: '0123456789abcdef0123456789abcdef', name: 'v', created: new Date(0), publicKey: 'k' });

describe('vault config', () => {
  it('accepts a new vault config as written', () => {
    expect(parseVaultConfig(JSON.parse(JSON.stringify(base()))).packSize).toBe(base().packSize);
  });

  it('refuses a pack size a backup could not hold a few buffers of', () => {
    for (const packSize of [0, -1, 1.5, MAX_PACK_SIZE / 4 + 1, 2 ** 40]) {
      expect(() => parseVaultConfig({ ...base(), packSize }), String(packSize)).toThrow(expect.objectContaining({ code: 'AZBK_VAULT_CORRUPT' }));
    }
    expect(parseVaultConfig({ ...base(), packSize: MAX_PACK_SIZE / 4 }).packSize).toBe(MAX_PACK_SIZE / 4);
  });

  it('refuses chunk sizes the chunker cannot use or that would make millions of chunks', () => {
    const chunker = (min: number, avg: number, max: number) => ({ ...base(), chunker: { alg: 'fastcdc-gear32', min, avg, max } });
    const M = 1024 * 1024;
    for (const [min, avg, max] of [[1, 8, 64], [32 * 1024, 64 * 1024, M], [M / 2, 3 * M / 2, 8 * M], [M, M / 2, 8 * M], [M / 2, M, 128 * M], [M / 2, M, 2.5]]) {
      expect(() => parseVaultConfig(chunker(min!, avg!, max!)), `${min} ${avg} ${max}`).toThrow(expect.objectContaining({ code: 'AZBK_VAULT_CORRUPT' }));
    }
    // What it accepts, the chunker takes.
    for (const [min, avg, max] of [[CHUNK_LIMITS.min, CHUNK_LIMITS.min, CHUNK_LIMITS.min], [M / 2, M, 8 * M], [CHUNK_LIMITS.max, CHUNK_LIMITS.max, CHUNK_LIMITS.max]]) {
      const p = parseVaultConfig(chunker(min!, avg!, max!)).chunker;
      expect(() => new Chunker(p)).not.toThrow();
    }
  });

  it('refuses a compression level that is not a zstd level up to 19', () => {
    for (const level of [0, -5, 2.5, MAX_ZSTD_LEVEL + 1, 22, '3', null]) {
      expect(() => parseVaultConfig({ ...base(), compression: { alg: 'zstd', level } }), String(level)).toThrow(expect.objectContaining({ code: 'AZBK_VAULT_CORRUPT' }));
    }
    expect(parseVaultConfig({ ...base(), compression: { alg: 'zstd', level: MAX_ZSTD_LEVEL } }).compression.level).toBe(MAX_ZSTD_LEVEL);
  });
});
