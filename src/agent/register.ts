/** Registering this machine with a vault, all or nothing. */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { generateMasterKey, deriveKeys, keyProof, wrapMasterKey, type KeyEnvelope } from '../core/keys.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import type { HomePaths } from '../shared/paths.js';
import { parseCredentials } from '../vault/credentials.js';
import { connectVault } from '../vault/connect.js';
import { osName } from '../vault/vault.js';
import { keychainProblem } from './keychain.js';
import { acquireJobLock } from './lock.js';
import { loadPolicy } from './policy.js';
import { scheduleNeedsSecretsFile } from './scheduler.js';
import { loadRegistration, newKeychainItem, prepareHome, saveRegistration, type LocalRegistration, type LocalSecrets, type SecretsLocation } from './state.js';
import { newKeyPassphrase, type PassphraseInput } from './passphrase.js';
import { unlockFamilies } from './unlock.js';

export interface RegisterOptions {
  readonly paths: HomePaths;
  readonly credentialsText: string;
  readonly passphrase: PassphraseInput;
  readonly machineName: string;
  readonly reregister: boolean;
  /** where to keep the secrets: the keychain, a file, or (auto) the keychain when one works here */
  readonly secretStore: SecretStore;
  readonly now?: Date;
  /** Runs once the credentials and vault are checked, before anything is written to the vault. */
  readonly beforeCommit?: () => Promise<void>;
  /** called as the vault is asked to register the machine (the passphrase may be in use from then on) */
  readonly onVaultRegistered?: () => void;
}

export type SecretStore = 'auto' | 'keychain' | 'file';

export interface RegisterResult {
  readonly registration: LocalRegistration;
  /** why the secrets went to a file with --secret-store auto (no keychain here), or null */
  readonly noKeychain: string | null;
  /** what of an earlier registration's secrets could not be removed, or null */
  readonly leftover: string | null;
  /** true when the passphrase opened no envelope, so this machine starts a new key family */
  readonly newKeyFamily: boolean;
}

/**
 * Registers this machine. An error before the vault registered it leaves nothing registered; one
 * after (the local files could not be written) says so, and `onVaultRegistered` has been called.
 */
export async function registerMachine(o: RegisterOptions): Promise<RegisterResult> {
  // No job may run on the registration, or move its secrets, while it is replaced.
  await prepareHome(o.paths);
  const lock = await acquireJobLock(o.paths.lock, { jobId: randomBytes(8).toString('hex'), kind: 'register' });
  try {
    return await register(o);
  } finally {
    await lock.release();
  }
}

async function register(o: RegisterOptions): Promise<RegisterResult> {
  const now = o.now ?? new Date();
  let existing: LocalRegistration | null;
  try {
    existing = await loadRegistration(o.paths);
  } catch (err) {
    // A damaged registration is what --reregister is for.
    if (!(o.reregister && isAzbkError(err, 'AZBK_NOT_REGISTERED'))) throw err;
    existing = null;
  }
  if (existing !== null && !o.reregister) {
    throw new AzbkError('AZBK_ALREADY_REGISTERED', `This machine is already registered (AZBK_HOME ${o.paths.home}).`);
  }
  await prepareHome(o.paths);
  // The keychain is tried before the vault is asked, so that a keychain that does not work
  // leaves nothing registered.
  const scheduled = o.secretStore !== 'file' && scheduleNeedsSecretsFile(await loadPolicy(o.paths));
  if (scheduled && o.secretStore === 'keychain') {
    throw new AzbkError('AZBK_SECRETS_IN_KEYCHAIN', 'Scheduled backups are set for this AZBK_HOME, and cron jobs cannot reach the keychain.', {
      hint: 'Keep the secrets in the file (--secret-store file), or turn the schedule off first: azbk policy set --schedule off.',
    });
  }
  const noKeychain = o.secretStore === 'file' ? null : scheduled ? 'scheduled backups are set, and cron jobs cannot reach one' : await keychainProblem();
  if (noKeychain !== null && o.secretStore === 'keychain') {
    throw new AzbkError('AZBK_KEYCHAIN_UNAVAILABLE', `No keychain can keep this machine's secrets here: ${noKeychain}.`, {
      hint: "Register in the user's desktop session with the keychain unlocked, or keep the secrets in a file: --secret-store file.",
    });
  }
  const creds = parseCredentials(o.credentialsText, now);
  const vault = await connectVault(creds.endpoint, creds.certFingerprint, { pinnedBy: 'credentials' });
  const cfg = await vault.config();
  if (cfg.id !== creds.vaultId) {
    throw new AzbkError('AZBK_CREDENTIALS_INVALID', 'The credentials file belongs to another vault than the one at its endpoint.');
  }
  const envelopes = await vault.listKeysForRegistration(creds.token);
  await o.beforeCommit?.();

  const families = await unlockFamilies(envelopes, o.passphrase.readings);
  if (families.length > 1) {
    throw new AzbkError('AZBK_BAD_INPUT', 'The passphrase file reads two ways (with or without its byte order mark, or its line endings) that open two different keys of this vault.', {
      hint: 'Write the passphrase in the file exactly as the machines you want to join used it.',
    });
  }
  let keys = families[0] ?? null;
  let newKey: KeyEnvelope | undefined;
  if (keys === null) {
    // A new key: its passphrase must meet today's rules.
    const master = generateMasterKey();
    newKey = await wrapMasterKey(master, newKeyPassphrase(o.passphrase), { now });
    keys = deriveKeys(master);
  }
  // From here the vault may hold the new key's envelope, even if its reply is lost.
  o.onVaultRegistered?.();
  const reg = await vault.register({
    token: creds.token,
    machineName: o.machineName,
    os: osName(),
    hostname: os.hostname(),
    reregister: o.reregister,
    keyProof: keyProof(keys),
    ...(newKey ? { newKey } : {}),
  });
  const registration: LocalRegistration = {
    version: 1,
    vaultId: cfg.id,
    vaultName: cfg.name,
    endpoint: creds.endpoint,
    certFingerprint: creds.certFingerprint,
    machineId: reg.machineId,
    machineName: o.machineName,
    keyId: keys.keyId,
    registered: now.toISOString(),
    secrets: o.secretStore === 'file' || noKeychain !== null ? { store: 'file' } : ({ store: 'keychain', ...newKeychainItem(o.machineName) } satisfies SecretsLocation),
  };
  const secrets: LocalSecrets = { version: 1, machineSecret: reg.secret, masterKey: keys.master.toString('base64') };
  let saved = { registration, noKeychain, leftover: null as string | null };
  try {
    try {
      saved.leftover = await saveRegistration(o.paths, registration, secrets, existing);
    } catch (err) {
      // A keychain that worked a moment ago and fails now: with auto, the file instead.
      if (!(o.secretStore === 'auto' && isAzbkError(err, 'AZBK_KEYCHAIN_UNAVAILABLE'))) throw err;
      const inFile: LocalRegistration = { ...registration, secrets: { store: 'file' } };
      saved = { registration: inFile, noKeychain: err.message, leftover: await saveRegistration(o.paths, inFile, secrets, existing) };
    }
  } catch (err) {
    const keychain = isAzbkError(err, 'AZBK_KEYCHAIN_UNAVAILABLE');
    throw new AzbkError(keychain ? err.code : 'AZBK_LOCAL_IO', `The vault registered ${o.machineName}, but its registration could not be saved in ${o.paths.home}: ${isAzbkError(err) ? err.message : (err as Error).message}`, {
      hint: `${keychain ? 'Unlock the keychain, or choose --secret-store file' : 'Fix AZBK_HOME'}, then run azbk register again with --reregister and the same passphrase.`,
      cause: err,
    });
  }
  return { registration: saved.registration, newKeyFamily: newKey !== undefined, noKeychain: o.secretStore === 'auto' ? saved.noKeychain : null, leftover: saved.leftover };
}
