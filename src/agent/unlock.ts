/** Finding and opening the passphrase envelope that matches a passphrase. */
import { deriveKeys, unwrapMasterKey, type VaultKeys } from '../core/keys.js';

/**
 * The keys of the first envelope `passphrase` opens, or null when it opens none. Malformed
 * envelopes (a hostile or damaged vault) are passed over, not trusted.
 */
export async function unlockWithPassphrase(envelopes: readonly unknown[], passphrase: string): Promise<VaultKeys | null> {
  for (const raw of envelopes) {
    let master: Buffer | null;
    try {
      master = await unwrapMasterKey(raw, passphrase);
    } catch {
      continue;
    }
    if (master !== null) return deriveKeys(master);
  }
  return null;
}
