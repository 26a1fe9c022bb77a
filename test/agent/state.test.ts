/** The local registration: where it says the secrets are, and what it refuses as damaged. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRegistration, loadSecrets, secretsLocation } from '../../src/agent/state.js';
import { keyFamilyId } from '../../src/core/keys.js';
import { homePaths } from '../../src/shared/paths.js';
import { makeTempDir } from '../helpers/tmp.js';

const BASE = {
  version: 1,
  vaultId: 'a'.repeat(32),
  vaultName: 'V',
  endpoint: 'file:///nowhere',
  certFingerprint: null,
  machineId: 'b'.repeat(32),
  machineName: 'M',
  // the key family of the master key the tests' secrets files hold
  keyId: keyFamilyId(Buffer.alloc(32, 7)),
  registered: '2026-11-30T00:00:00.000Z',
};

async function homeWith(registration: unknown) {
  const dir = await makeTempDir('azbk-state-');
  await fs.chmod(dir, 0o700);
  const paths = homePaths(dir);
  await fs.writeFile(paths.registration, JSON.stringify(registration), { mode: 0o600 });
  return paths;
}

describe('local registration', () => {
  it('takes a registration of an earlier version, without a place for its secrets, as keeping them in the file', async () => {
    const paths = await homeWith(BASE);
    const reg = (await loadRegistration(paths))!;
    expect(secretsLocation(reg)).toEqual({ store: 'file' });
    const secrets = { version: 1, machineSecret: 'd'.repeat(64), masterKey: Buffer.alloc(32, 7).toString('base64') };
    await fs.writeFile(paths.secrets, JSON.stringify(secrets), { mode: 0o600 });
    expect(await loadSecrets(paths, reg)).toEqual(secrets);
  });

  it('reads a keychain place', async () => {
    const paths = await homeWith({ ...BASE, secrets: { store: 'keychain', service: 'azbk', account: 'M.0123456789ab' } });
    expect(secretsLocation((await loadRegistration(paths))!)).toEqual({ store: 'keychain', service: 'azbk', account: 'M.0123456789ab' });
  });

  it.each([
    ['null', null],
    ['a string', 'keychain'],
    ['an unknown store', { store: 'vault' }],
    ['a keychain item without an account', { store: 'keychain', service: 'azbk' }],
    ['a keychain item with an empty service', { store: 'keychain', service: '', account: 'M.0123456789ab' }],
    ["another program's keychain item", { store: 'keychain', service: 'ssh', account: 'M.0123456789ab' }],
    ['a keychain account azbk does not make', { store: 'keychain', service: 'azbk', account: 'login' }],
  ])('refuses a place for the secrets that is %s as damaged', async (_, secrets) => {
    const paths = await homeWith({ ...BASE, secrets });
    await expect(loadRegistration(paths)).rejects.toMatchObject({ code: 'AZBK_NOT_REGISTERED', message: expect.stringContaining('damaged') });
  });

  it('refuses a secrets file whose key is not 32 bytes', async () => {
    const paths = await homeWith(BASE);
    await fs.writeFile(path.join(paths.home, 'secrets.json'), JSON.stringify({ version: 1, machineSecret: 'x', masterKey: 'AAAA' }), { mode: 0o600 });
    await expect(loadSecrets(paths, (await loadRegistration(paths))!)).rejects.toMatchObject({ code: 'AZBK_NOT_REGISTERED' });
  });
});
