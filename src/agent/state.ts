/**
 * The agent's registration and secrets under AZBK_HOME. `registration.json` holds who this machine
 * is and where its vault is; `secrets.json` (mode 0600, written whole or not at all) holds the
 * machine secret and the unwrapped master key, so scheduled jobs run without the passphrase.
 */
import fs from 'node:fs/promises';
import { isHex32, type KeyId, type MachineId } from '../core/ids.js';
import { AzbkError } from '../shared/errors.js';
import { readLocalJson, writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';

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
}

export interface LocalSecrets {
  readonly version: 1;
  readonly machineSecret: string;
  /** base64 of the 32-byte master key */
  readonly masterKey: string;
}

function damaged(file: string): AzbkError {
  return new AzbkError('AZBK_NOT_REGISTERED', `The local registration in ${file} is damaged.`, {
    hint: 'Register the machine again: azbk register --vault-credentials FILE --reregister.',
  });
}

/**
 * Refuses an AZBK_HOME, or a file of it, that another user could have put there or changed: the
 * registration says which vault gets the data and secrets.json holds the key to it, so whoever
 * can replace them receives this machine's backups (as ssh refuses loose modes on its keys). A
 * folder must belong to this user and be writable by no one else; a file must belong to this
 * user and be readable by no one else.
 */
async function checkPrivate(p: string, kind: 'folder' | 'file'): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return; // Windows: access lists, not modes
  let st;
  try {
    st = await fs.stat(p);
  } catch {
    return; // nothing there yet
  }
  const loose = kind === 'folder' ? (st.mode & 0o022) !== 0 : (st.mode & 0o077) !== 0;
  if (st.uid === uid && !loose) return;
  const why = st.uid !== uid ? `it belongs to another user (uid ${st.uid})` : `others may ${kind === 'folder' ? 'change what is in it' : 'read it'} (mode ${(st.mode & 0o777).toString(8)})`;
  throw new AzbkError('AZBK_LOCAL_IO', `${p} is not private: ${why}, so it could send this machine's backups elsewhere or reveal its key.`, {
    hint:
      st.uid !== uid
        ? 'Use an AZBK_HOME of your own.'
        : `Make it private (chmod ${kind === 'folder' ? '700' : '600'} ${p}; on a file system without Unix permissions, mount it with uid=${uid},umask=077), then run the command again.`,
  });
}

/** The local registration, or null when this AZBK_HOME has none. */
export async function loadRegistration(paths: HomePaths): Promise<LocalRegistration | null> {
  await checkPrivate(paths.home, 'folder');
  await checkPrivate(paths.registration, 'file');
  const v = await readLocalJson(paths.registration, () => damaged(paths.registration));
  if (v === null) return null;
  const r = v as LocalRegistration;
  if (r.version !== 1 || !isHex32(r.machineId) || !isHex32(r.keyId) || typeof r.endpoint !== 'string') {
    throw damaged(paths.registration);
  }
  return r;
}

/** The local registration; AZBK_NOT_REGISTERED when there is none. */
export async function requireRegistration(paths: HomePaths): Promise<LocalRegistration> {
  const r = await loadRegistration(paths);
  if (r === null) throw new AzbkError('AZBK_NOT_REGISTERED', 'This machine is not registered with a vault.');
  return r;
}

export async function loadSecrets(paths: HomePaths): Promise<LocalSecrets> {
  await checkPrivate(paths.secrets, 'file');
  const s = (await readLocalJson(paths.secrets, () => damaged(paths.secrets))) as LocalSecrets | null;
  if (s === null || s.version !== 1 || typeof s.machineSecret !== 'string' || typeof s.masterKey !== 'string') {
    throw damaged(paths.secrets);
  }
  if (Buffer.from(s.masterKey, 'base64').length !== 32) throw damaged(paths.secrets);
  return s;
}

/** Makes AZBK_HOME (owner-only) and checks that it is private, before anything is registered. */
export async function prepareHome(paths: HomePaths): Promise<void> {
  await fs.mkdir(paths.home, { recursive: true, mode: 0o700 });
  await checkPrivate(paths.home, 'folder');
}

/**
 * Saves secrets, then the registration, each atomically: a crash in between leaves no
 * registration.json, so the machine counts as unregistered rather than half-registered.
 */
export async function saveRegistration(paths: HomePaths, reg: LocalRegistration, secrets: LocalSecrets): Promise<void> {
  await prepareHome(paths);
  await writeFileAtomic(paths.secrets, JSON.stringify(secrets), { mode: 0o600 });
  await writeFileAtomic(paths.registration, JSON.stringify(reg, null, 2) + '\n', { mode: 0o600 });
}
