/** Everything a command of a registered machine needs: its registration, vault session and keys. */
import { deriveKeys, type VaultKeys } from '../core/keys.js';
import type { HomePaths } from '../shared/paths.js';
import type { VaultSession } from '../vault/api.js';
import { connectVault } from '../vault/connect.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { loadSecrets, requireRegistration, secretsLocation, type LocalRegistration, type LocalSecrets } from './state.js';

export interface AgentContext {
  readonly paths: HomePaths;
  readonly registration: LocalRegistration;
  readonly session: VaultSession;
  /** this machine's own keys, from its secrets */
  readonly keys: VaultKeys;
}

/**
 * Opens the vault session of this registered machine. A `job` (backup, restore, verify) waits
 * out a vault service that is down for a while (see connectVault's `patient`), until `stopping`
 * asks it to stop; other commands answer at once.
 */
export async function openAgent(paths: HomePaths, o: { job?: boolean; stopping?: AbortSignal } = {}): Promise<AgentContext> {
  let registration = await requireRegistration(paths);
  let secrets: LocalSecrets;
  try {
    secrets = await loadSecrets(paths, registration);
  } catch (err) {
    // `azbk secrets --store` may have just moved them: then the registration says where to.
    const now = await requireRegistration(paths);
    if (!isAzbkError(err, 'AZBK_NOT_REGISTERED') || JSON.stringify(secretsLocation(now)) === JSON.stringify(secretsLocation(registration))) throw err;
    registration = now;
    secrets = await loadSecrets(paths, registration);
  }
  const vault = await connectVault(registration.endpoint, registration.certFingerprint, { patient: o.job === true, ...(o.stopping === undefined ? {} : { stopping: o.stopping }) });
  let session: VaultSession;
  try {
    session = await vault.session(registration.machineId, secrets.machineSecret);
  } catch (err) {
    // Another vault where this machine's was (made anew in its folder, say) does not know the
    // machine either: said as such, not as credentials to register again, which would bind the
    // machine to that other vault.
    if (isAzbkError(err, 'AZBK_CREDENTIALS_INVALID')) {
      const id = await vault.config().then((c) => c.id, () => registration.vaultId);
      if (id !== registration.vaultId) throw anotherVault(registration, id);
    }
    throw err;
  }
  const keys = deriveKeys(Buffer.from(secrets.masterKey, 'base64'));
  return { paths, registration, session, keys };
}

/** The vault at this machine's endpoint is another one than it registered with (AZBK_VAULT_CORRUPT). */
export function anotherVault(registration: LocalRegistration, id: string): AzbkError {
  return new AzbkError('AZBK_VAULT_CORRUPT', `The vault at ${registration.endpoint} is another vault (id ${id}) than this machine registered with (${registration.vaultId}).`, {
    hint: 'Point the machine at its own vault again, or register it with this one (azbk register).',
  });
}
