/** How the CLI names where a machine's secrets are kept, in text and in --json. */
import type { SecretsLocation } from '../agent/state.js';
import type { HomePaths } from '../shared/paths.js';

export function secretsPlace(paths: HomePaths, where: SecretsLocation): string {
  return where.store === 'file'
    ? `${paths.secrets} (readable by its owner only)`
    : `the keychain (service ${where.service}, account ${where.account})`;
}

export function secretsResult(paths: HomePaths, where: SecretsLocation): Record<string, string> {
  return where.store === 'file' ? { store: 'file', path: paths.secrets } : { store: 'keychain', service: where.service, account: where.account };
}
