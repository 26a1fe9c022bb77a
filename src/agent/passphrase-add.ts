/**
 * Another passphrase for this machine's key: a new envelope of the same master key, so that the
 * new passphrase restores this machine's data anywhere (a replacement for a lost one, or a
 * recovery passphrase kept by someone else). Envelopes are never removed, so one added does not
 * retire the passphrases before it.
 */
import { wrapMasterKey } from '../core/keys.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import type { AgentContext } from './context.js';
import { newKeyPassphrase, type PassphraseInput } from './passphrase.js';
import { unlockFamilies } from './unlock.js';

export interface AddHooks {
  /** awaited once every check passed, just before the envelope is sent (a generated passphrase's file is written then) */
  readonly beforeAdd?: () => Promise<void>;
  /** called as the envelope is sent: from then on the vault may hold it */
  readonly onAdding?: () => void;
}

/**
 * Adds an envelope for `p`; 'opens already' when the passphrase (any reading of its file) opens
 * this machine's key as it is. Refused when a reading opens another key of the vault: a machine
 * registering with that file would not know which key it means.
 */
export async function addPassphrase(ctx: AgentContext, p: PassphraseInput, hooks: AddHooks = {}, now = new Date()): Promise<'added' | 'opens already'> {
  const text = newKeyPassphrase(p);
  const families = await unlockFamilies(await ctx.session.listKeys(), p.readings);
  if (families.some((k) => k.keyId !== ctx.keys.keyId)) {
    throw new AzbkError('AZBK_BAD_INPUT', 'This passphrase already opens another key of the vault (the data of other machines).', {
      hint: 'Choose another passphrase.',
    });
  }
  if (families.length > 0) return 'opens already';
  const envelope = await wrapMasterKey(ctx.keys.master, text, { now });
  await hooks.beforeAdd?.();
  hooks.onAdding?.();
  try {
    await ctx.session.addKey(envelope);
  } catch (err) {
    if (isAzbkError(err, 'AZBK_VAULT_LIMIT')) {
      throw new AzbkError('AZBK_VAULT_LIMIT', `${err.message} No passphrase can be added.`, {
        hint: 'A vault takes at most 64 passphrase envelopes, and never removes one: keep the passphrases in use.',
        cause: err,
      });
    }
    throw err;
  }
  return 'added';
}
