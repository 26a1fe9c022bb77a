/** How the CLI names where a machine's secrets are kept, in text and in --json. */
import type { SecretsLocation } from '../agent/state.js';
import type { HomePaths } from '../shared/paths.js';

/** Where the secrets are, in words; on Windows, whose access lists azbk does not check, a file is not said to be owner-only. */
export function secretsPlace(paths: HomePaths, where: SecretsLocation, platform: NodeJS.Platform = process.platform): string {
  if (where.store !== 'file') return `the keychain (service ${where.service}, account ${where.account})`;
  return platform === 'win32' ? `${paths.secrets} (keep AZBK_HOME where only you can read it)` : `${paths.secrets} (readable by its owner only)`;
}

export function secretsResult(paths: HomePaths, where: SecretsLocation): Record<string, string> {
  return where.store === 'file' ? { store: 'file', path: paths.secrets } : { store: 'keychain', service: where.service, account: where.account };
}

/** The warning about a secrets.json left beside secrets in the keychain (see straySecretsFile). */
export const STRAY = (paths: HomePaths): string =>
  `A copy of the secrets is left in ${paths.secrets} by a move or registration that stopped; azbk secrets --store keychain removes it.`;
