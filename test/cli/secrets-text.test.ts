/** How the CLI names where the secrets are: owner-only is said only where azbk checks it. */
import { describe, expect, it } from 'vitest';
import { secretsPlace } from '../../src/cli/secrets-text.js';
import { homePaths } from '../../src/shared/paths.js';

describe('secretsPlace', () => {
  const paths = homePaths('/h');
  it('says a secrets file is owner-only where modes say so, and not on Windows', () => {
    expect(secretsPlace(paths, { store: 'file' }, 'linux')).toBe('/h/secrets.json (readable by its owner only)');
    expect(secretsPlace(paths, { store: 'file' }, 'win32')).not.toContain('owner only');
    expect(secretsPlace(paths, { store: 'keychain', service: 'azbk', account: 'a' }, 'win32')).toBe('the keychain (service azbk, account a)');
  });
});
