/** Finding and opening the passphrase envelope that matches a passphrase. */
import { deriveKeys, kdfWork, MAX_KEY_ENVELOPES, unwrapMasterKey, type VaultKeys } from '../core/keys.js';
import { corrupt } from '../core/validate.js';

/**
 * Envelopes an agent tries at most: a vault takes no more than MAX_KEY_ENVELOPES, and machines
 * adding one at the same moment may each pass that by one. Trying each can take a second or so:
 * a vault that lists many more (damaged, or hostile) would keep a command busy for hours.
 */
const MAX_TRIED = 2 * MAX_KEY_ENVELOPES;

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
 * try go first. Malformed envelopes (a hostile or damaged vault) are passed over, not trusted;
 * AZBK_VAULT_CORRUPT for far more envelopes than a vault holds (see MAX_TRIED).
 */
export async function unlockWithPassphrase(envelopes: readonly unknown[], passphrase: string): Promise<VaultKeys | null> {
  if (envelopes.length > MAX_TRIED) {
    throw corrupt(`The vault lists ${envelopes.length} passphrase envelopes, where a vault holds at most ${MAX_KEY_ENVELOPES}: trying them all could take hours, so none was tried.`);
  }
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
