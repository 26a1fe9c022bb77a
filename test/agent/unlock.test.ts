/** Opening a vault's passphrase envelopes: the right one found, and a vault listing far too many refused before any is tried. */
import { describe, expect, it } from 'vitest';
import { generateMasterKey, keyFamilyId, MAX_KEY_ENVELOPES, wrapMasterKey } from '../../src/core/keys.js';
import { unlockFamilies } from '../../src/agent/unlock.js';

const cheap = { N: 1024, r: 8, p: 1 };
const passphrase = 'the right passphrase, long enough';
const others = (n: number) => Promise.all(Array.from({ length: n }, () => wrapMasterKey(generateMasterKey(), 'another passphrase of some length', { cost: cheap })));

describe('unlockFamilies', () => {
  it('finds the family the passphrase opens among twice as many envelopes as a vault takes', async () => {
    const master = generateMasterKey();
    const mine = await wrapMasterKey(master, passphrase, { cost: { N: 2048, r: 8, p: 1 } }); // tried last: the most work
    const envelopes = [mine, ...(await others(2 * MAX_KEY_ENVELOPES - 1))];
    const families = await unlockFamilies(envelopes, [passphrase]);
    expect(families.map((k) => k.keyId)).toEqual([keyFamilyId(master)]);
  });

  it('refuses a vault that lists more, even with the one the passphrase opens among them', async () => {
    const envelopes = [await wrapMasterKey(generateMasterKey(), passphrase, { cost: cheap }), ...(await others(2 * MAX_KEY_ENVELOPES))];
    await expect(unlockFamilies(envelopes, [passphrase])).rejects.toMatchObject({
      code: 'AZBK_VAULT_CORRUPT',
      message: expect.stringMatching(/lists 129 passphrase envelopes, where a vault holds at most 64/),
    });
  });
});
