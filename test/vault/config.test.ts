/** A vault's config is read from the vault: anything out of range is refused before it sizes a buffer. */
import { describe, expect, it } from 'vitest';
import { MAX_PACK_SIZE } from '../../src/core/pack.js';
import { newVaultConfig, parseVaultConfig } from '../../src/vault/config.js';

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
});
