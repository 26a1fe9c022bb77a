/** Finding and opening the passphrase envelope that matches a passphrase. */
import { deriveKeys, kdfWork, unwrapMasterKey, type VaultKeys } from '../core/keys.js';

/**
 * The key families the readings of a passphrase open (see PassphraseInput): for each reading, the
 * first envelope it opens; each family once. Usually one, or none.
 */
export async function unlockFamilies(envelopes: readonly unknown[], readings: readonly string[]): Promise<VaultKeys[]> {
  const found = new Map<string, VaultKeys>();
  for (const reading of readings) {
    const keys = await unlockWithPassphrase(envelopes, reading);
    if (keys !== null && !found.has(keys.keyId)) found.set(keys.keyId, keys);
  }
  return [...found.values()];
}

/**
 * The keys of the first envelope `passphrase` opens, or null when it opens none; the cheapest to
 * try go first. Malformed envelopes (a hostile or damaged vault) are passed over, not trusted.
 */
export async function unlockWithPassphrase(envelopes: readonly unknown[], passphrase: string): Promise<VaultKeys | null> {
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

/** Whether a passphrase (any of its readings) opens the key family `keyId` among the vault's envelopes. */
export async function opensFamily(envelopes: readonly unknown[], readings: readonly string[], keyId: string): Promise<boolean> {
  return (await unlockFamilies(envelopes, readings)).some((k) => k.keyId === keyId);
}
