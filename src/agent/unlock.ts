/** Finding and opening the passphrase envelope that matches a passphrase. */
import { deriveKeys, kdfWork, unwrapMasterKey, type VaultKeys } from '../core/keys.js';

/**
 * The keys of the first envelope `passphrase` opens, or null when it opens none; the cheapest to
 * try go first. Malformed envelopes (a hostile or damaged vault) are passed over, not trusted.
 */
export async function unlockWithPassphrase(envelopes: readonly unknown[], passphrase: string | readonly string[]): Promise<VaultKeys | null> {
  for (const reading of typeof passphrase === 'string' ? [passphrase] : passphrase) {
    const keys = await unlockWith(envelopes, reading);
    if (keys !== null) return keys;
  }
  return null;
}

async function unlockWith(envelopes: readonly unknown[], passphrase: string): Promise<VaultKeys | null> {
  const byWork = (a: unknown, b: unknown) => {
    const [x, y] = [kdfWork(a), kdfWork(b)];
    return x === y ? 0 : x < y ? -1 : 1;
  };
  for (const raw of [...envelopes].sort(byWork)) {
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
