/**
 * Another passphrase for this machine's key: a new envelope of the same master key, so that the
 * new passphrase restores this machine's data anywhere (a replacement for a lost one, or a
 * recovery passphrase kept by someone else). Envelopes are never removed, so one added does not
 * retire the passphrases before it.
 */
import { wrapMasterKey } from '../core/keys.js';
import { AzbkError } from '../shared/errors.js';
import type { AgentContext } from './context.js';
import { newKeyPassphrase, type PassphraseInput } from './passphrase.js';
import { unlockFamilies } from './unlock.js';

/** Adds an envelope for `p`; 'opens already' when the passphrase opens this machine's key as it is. */
export async function addPassphrase(ctx: AgentContext, p: PassphraseInput, now = new Date()): Promise<'added' | 'opens already'> {
  const text = newKeyPassphrase(p);
  const families = await unlockFamilies(await ctx.session.listKeys(), [text]);
  if (families.some((k) => k.keyId === ctx.keys.keyId)) return 'opens already';
  if (families.length > 0) {
    // A machine registering with it would not know which key it means.
    throw new AzbkError('AZBK_BAD_INPUT', 'This passphrase already opens another key of the vault (the data of other machines).', {
      hint: 'Choose another passphrase.',
    });
  }
  await ctx.session.addKey(await wrapMasterKey(ctx.keys.master, text, { now }));
  return 'added';
}
