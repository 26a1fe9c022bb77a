/** Everything a command of a registered machine needs: its registration, vault session and keys. */
import { deriveKeys, type VaultKeys } from '../core/keys.js';
import type { HomePaths } from '../shared/paths.js';
import type { VaultSession } from '../vault/api.js';
import { connectVault } from '../vault/connect.js';
import { loadSecrets, requireRegistration, type LocalRegistration } from './state.js';

export interface AgentContext {
  readonly paths: HomePaths;
  readonly registration: LocalRegistration;
  readonly session: VaultSession;
  /** this machine's own keys, from its secrets */
  readonly keys: VaultKeys;
}

/** Opens the vault session of this registered machine. */
export async function openAgent(paths: HomePaths): Promise<AgentContext> {
  const registration = await requireRegistration(paths);
  const secrets = await loadSecrets(paths, registration);
  const vault = await connectVault(registration.endpoint, registration.certFingerprint);
  const session = await vault.session(registration.machineId, secrets.machineSecret);
  const keys = deriveKeys(Buffer.from(secrets.masterKey, 'base64'));
  return { paths, registration, session, keys };
}
