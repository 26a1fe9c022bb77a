/**
 * The agent's registration and secrets. `registration.json` under AZBK_HOME holds who this machine
 * is, where its vault is and where its secrets are. The secrets (the machine secret and the
 * unwrapped master key, so that jobs run without the passphrase) are one JSON text, kept either
 * in the OS keychain or in `secrets.json` (mode 0600, written whole or not at all).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isHex32, MACHINE_NAME, type KeyId, type MachineId } from '../core/ids.js';
import { keyFamilyId } from '../core/keys.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { makeFoldersSync, readLocalJson, syncFolder, writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';
import { checkPrivate, type PrivateUse } from '../shared/private.js';
import { KEYCHAIN_SERVICE, keychainDelete, keychainGet, keychainSet, type KeychainItem } from './keychain.js';

/** Where a machine's secrets are kept. */
export type SecretsLocation = { readonly store: 'file' } | ({ readonly store: 'keychain' } & KeychainItem);

export interface LocalRegistration {
  readonly version: 1;
  readonly vaultId: string;
  readonly vaultName: string;
  readonly endpoint: string;
  readonly certFingerprint: string | null;
  readonly machineId: MachineId;
  readonly machineName: string;
  readonly keyId: KeyId;
  readonly registered: string;
  /** absent in registrations of earlier versions: the file */
  readonly secrets?: SecretsLocation;
}

export interface LocalSecrets {
  readonly version: 1;
  readonly machineSecret: string;
  /** base64 of the 32-byte master key */
  readonly masterKey: string;
}

const REREGISTER = 'Register the machine again: azbk register --vault-credentials FILE --reregister.';

/** The registration (by default) or the secrets file `file` is damaged or gone. */
function damaged(file: string, what?: string): AzbkError {
  return new AzbkError('AZBK_NOT_REGISTERED', `${what ?? 'The local registration in'} ${file} ${existsSync(file) ? 'is damaged' : 'is missing'}.`, {
    // without its registration, the machine's name is not known here (see register's --reregister)
    hint: what === undefined ? 'Register the machine again under the name it had: azbk register --vault-credentials FILE --machine-name NAME --reregister.' : REREGISTER,
  });
}

/**
 * What checkPrivate says of AZBK_HOME and its files: the registration says which vault gets the
 * data and secrets.json holds the key to it, so whoever can replace them receives this machine's
 * backups.
 */
const HOME_USE: PrivateUse = {
  risk: "it could send this machine's backups elsewhere or reveal its key",
  otherOwnerHint: 'Use an AZBK_HOME of your own.',
};

/** Refuses an AZBK_HOME another user could have put there or changed (see checkPrivate). */
export function checkHome(paths: HomePaths): Promise<void> {
  return checkPrivate(paths.home, 'folder', HOME_USE);
}

/** The local registration, or null when this AZBK_HOME has none. */
export async function loadRegistration(paths: HomePaths): Promise<LocalRegistration | null> {
  await checkHome(paths);
  await checkPrivate(paths.registration, 'file', HOME_USE);
  const v = await readLocalJson(paths.registration, () => damaged(paths.registration));
  if (v === null) return null;
  const r = v as LocalRegistration;
  // Its name too: a registration again takes it (see register's --reregister), not the host's.
  if (r.version !== 1 || !isHex32(r.machineId) || !isHex32(r.keyId) || typeof r.endpoint !== 'string' || typeof r.machineName !== 'string' || !MACHINE_NAME.test(r.machineName) || !validLocation(r.secrets)) {
    throw damaged(paths.registration);
  }
  return r;
}

function validLocation(l: SecretsLocation | undefined): boolean {
  if (l === undefined) return true;
  if (typeof l !== 'object' || l === null) return false;
  if (l.store === 'file') return true;
  // Only an item azbk made: the registration decides what is read, and what is deleted on a move.
  return l.store === 'keychain' && l.service === KEYCHAIN_SERVICE && typeof l.account === 'string' && KEYCHAIN_ACCOUNT.test(l.account);
}

/** The account of an item newKeychainItem makes: a machine name, a dot, 12 hex digits. */
const KEYCHAIN_ACCOUNT = /^[A-Za-z0-9._-]{1,64}\.[0-9a-f]{12}$/;

/** Where the registration `r` keeps its secrets. */
export function secretsLocation(r: LocalRegistration): SecretsLocation {
  return r.secrets ?? { store: 'file' };
}

/** A new keychain item for the secrets of a machine registered as `machineName`. */
export function newKeychainItem(machineName: string): KeychainItem {
  return { service: KEYCHAIN_SERVICE, account: `${machineName}.${randomBytes(6).toString('hex')}` };
}

/** The local registration; AZBK_NOT_REGISTERED when there is none. */
export async function requireRegistration(paths: HomePaths): Promise<LocalRegistration> {
  const r = await loadRegistration(paths);
  if (r === null) throw new AzbkError('AZBK_NOT_REGISTERED', 'This machine is not registered with a vault.');
  return r;
}

/** The secrets of the registration `r`, from where it keeps them. */
export async function loadSecrets(paths: HomePaths, r: LocalRegistration): Promise<LocalSecrets> {
  const where = secretsLocation(r);
  if (where.store === 'file') {
    await checkPrivate(paths.secrets, 'file', HOME_USE);
    const gone = () => damaged(paths.secrets, "This machine's secrets file");
    return parseSecrets(await readLocalJson(paths.secrets, gone), r, gone);
  }
  const text = await keychainGet(where);
  const missing = () =>
    new AzbkError('AZBK_NOT_REGISTERED', `This machine's secrets are missing from the keychain, or damaged there (service ${where.service}, account ${where.account}).`, {
      hint: REREGISTER,
    });
  let v: unknown = null;
  try {
    v = text === null ? null : JSON.parse(text);
  } catch {
    throw missing();
  }
  return parseSecrets(v, r, missing);
}

/**
 * Secrets as read, checked: a master key of another key family than the registration's would make
 * points that neither this machine's restores nor its passphrase could open.
 */
function parseSecrets(v: unknown, r: LocalRegistration, bad: () => AzbkError): LocalSecrets {
  const s = v as LocalSecrets | null;
  if (s === null || typeof s !== 'object' || s.version !== 1 || typeof s.machineSecret !== 'string' || typeof s.masterKey !== 'string') throw bad();
  const master = Buffer.from(s.masterKey, 'base64');
  if (master.length !== 32 || keyFamilyId(master) !== r.keyId) throw bad();
  return { version: 1, machineSecret: s.machineSecret, masterKey: s.masterKey };
}

/** Puts `secrets` where `where` says, whole: a keychain item is read back before it counts. */
async function storeSecrets(paths: HomePaths, where: SecretsLocation, secrets: LocalSecrets): Promise<void> {
  const text = JSON.stringify(secrets);
  if (where.store === 'file') return writeFileAtomic(paths.secrets, text, { mode: 0o600 });
  await keychainSet(where, text);
  let back: string | null = null;
  try {
    back = await keychainGet(where);
  } finally {
    if (back !== text) await keychainDelete(where).catch(() => false); // no registration will point there
  }
  if (back !== text) throw new AzbkError('AZBK_KEYCHAIN_UNAVAILABLE', 'The keychain did not give back the secrets it was given.');
}

/** Writes the registration and makes its new name durable, before an old copy of the secrets goes. */
async function writeRegistration(paths: HomePaths, reg: LocalRegistration): Promise<void> {
  await writeFileAtomic(paths.registration, JSON.stringify(reg, null, 2) + '\n', { mode: 0o600 });
  await syncFolder(paths.home);
}

/**
 * Whether `secrets.json` is there although the registration keeps its secrets in the keychain: a
 * move or registration stopped before it removed the file.
 */
export async function straySecretsFile(paths: HomePaths, reg: LocalRegistration): Promise<boolean> {
  if (secretsLocation(reg).store !== 'keychain') return false;
  return fs.stat(paths.secrets).then(
    () => true,
    () => false,
  );
}

/** Removes a stray secrets.json (see straySecretsFile); what could not be removed, or null. */
export function dropStraySecretsFile(paths: HomePaths): Promise<string | null> {
  return dropSecrets(paths, { store: 'file' });
}

/**
 * Removes the secrets kept at `where`, once a registration no longer points there. A failure is
 * returned, not thrown: the registration is already in its new state.
 */
async function dropSecrets(paths: HomePaths, where: SecretsLocation): Promise<string | null> {
  try {
    if (where.store === 'file') await fs.rm(paths.secrets, { force: true });
    else await keychainDelete(where);
    return null;
  } catch (err) {
    const place = where.store === 'file' ? paths.secrets : `the keychain (service ${where.service}, account ${where.account})`;
    return `The old copy of the secrets could not be removed from ${place}: ${isAzbkError(err) || err instanceof Error ? err.message : String(err)} Remove it by hand.`;
  }
}

/** Makes AZBK_HOME (owner-only) and checks that it is private, before anything is registered. */
export async function prepareHome(paths: HomePaths): Promise<void> {
  makeFoldersSync(paths.home, 0o700);
  await checkHome(paths);
}

/**
 * Saves the secrets where `reg` says, then the registration, each atomically: a crash in between
 * leaves the registration as it was (or none), never one whose secrets are not saved yet. Then the
 * secrets of `previous` go, when they were kept elsewhere; what could not be removed is returned.
 */
export async function saveRegistration(paths: HomePaths, reg: LocalRegistration, secrets: LocalSecrets, previous: LocalRegistration | null): Promise<string | null> {
  await prepareHome(paths);
  const where = secretsLocation(reg);
  await storeSecrets(paths, where, secrets);
  await writeRegistration(paths, reg);
  const old = previous === null ? null : secretsLocation(previous);
  const left = [
    where.store === 'keychain' ? await dropSecrets(paths, { store: 'file' }) : null, // a file of an earlier registration
    old?.store === 'keychain' ? await dropSecrets(paths, old) : null, // each registration has an item of its own
  ].filter((l) => l !== null);
  return left.length === 0 ? null : left.join(' ');
}

/**
 * Moves the registered machine's secrets to `to` (the keychain item `item`, for the keychain):
 * stores them there, points the registration there, then removes the old copy. Returns the new
 * registration and what could not be removed.
 */
export async function moveSecrets(paths: HomePaths, reg: LocalRegistration, to: SecretsLocation): Promise<{ registration: LocalRegistration; leftover: string | null }> {
  const from = secretsLocation(reg);
  if (from.store === to.store) return { registration: reg, leftover: null }; // there already: nothing to drop
  const secrets = await loadSecrets(paths, reg);
  const registration: LocalRegistration = { ...reg, secrets: to };
  await storeSecrets(paths, to, secrets);
  await writeRegistration(paths, registration);
  return { registration, leftover: await dropSecrets(paths, from) };
}
