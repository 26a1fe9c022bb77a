/**
 * Where a vault's objects live, and opening its BlobStore there: a local folder or an Azure Blob
 * Storage container, always behind a RetryingBlobStore. A connection string is a secret: it is
 * never part of a message or a log line (describeLocation names the container instead).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { AzbkError } from '../shared/errors.js';
import { errnoCode, errnoText, makeFoldersSync } from '../shared/files.js';
import { checkPrivate, type PrivateUse } from '../shared/private.js';
import type { BlobStore } from './storage/blobstore.js';
import { layout } from './layout.js';
import { FsBlobStore } from './storage/fs-store.js';
import { RetryingBlobStore } from './storage/retrying-store.js';

/** A vault's storage: a folder, or an Azure container named by a connection string. */
export type VaultLocation =
  | { readonly kind: 'fs'; readonly dir: string }
  | { readonly kind: 'azure'; readonly connectionString: string; readonly container: string };

/** A description of `loc` for messages and logs, without secrets. */
export function describeLocation(loc: VaultLocation): string {
  return loc.kind === 'fs' ? path.resolve(loc.dir) : `Azure container ${loc.container}`;
}

/**
 * Opens the store of `loc`. With `create` the folder or container is created when missing (and a
 * folder must then be empty but for a `.tmp`); without it a missing one is AZBK_VAULT_NOT_FOUND.
 * A folder others could change is AZBK_LOCAL_IO either way (see checkVaultFolder).
 */
export async function openVaultStore(loc: VaultLocation, o: { create?: boolean } = {}): Promise<BlobStore> {
  if (loc.kind === 'azure') {
    // Loaded only for Azure: the SDK is large.
    const { AzureBlobStore } = await import('./storage/azure-store.js');
    const store = await AzureBlobStore.fromConnectionString(loc.connectionString, loc.container, { createContainer: o.create === true });
    return new RetryingBlobStore(store);
  }
  const dir = path.resolve(loc.dir);
  if (o.create) {
    let entries: string[];
    try {
      // Not fs.mkdir's recursive form: it never ends below a folder that refuses new entries (/proc).
      makeFoldersSync(dir, 0o700);
      entries = await fs.readdir(dir);
    } catch (err) {
      throw vaultFolderError(err, dir);
    }
    await checkVaultFolder(dir); // an empty folder that was there already
    if (entries.includes('config')) {
      // (one whose making was cut short too: its credentials file is made from what is there)
      throw new AzbkError('AZBK_VAULT_EXISTS', `${dir} holds a vault already.`, { hint: `To register machines with it, get a credentials file: azbk vault credentials --path ${dir} --out FILE.` });
    }
    if (entries.some((e) => e !== '.tmp')) throw new AzbkError('AZBK_VAULT_EXISTS', `${dir} is not empty.`);
  } else {
    const st = await fs.stat(dir).catch(() => null);
    if (st === null || !st.isDirectory()) {
      throw new AzbkError('AZBK_VAULT_NOT_FOUND', `No vault folder at ${dir}.`, { hint: 'Check --path: it names the folder azbk vault create made (mounted, if it is on a disk of its own).' });
    }
    await checkVaultFolder(dir);
    await keepPrivate(dir);
  }
  return new RetryingBlobStore(new FsBlobStore(dir));
}

/** What checkPrivate says of a vault folder: its signing key and TLS key are in it. */
const VAULT_USE: PrivateUse = {
  risk: 'another user could replace the key that signs its credentials, its TLS certificate or what it holds',
  otherOwnerHint: 'Use the vault as the user who owns its folder: vault create, vault credentials, vault serve and the machines of an embedded vault run as that one user.',
};

/**
 * AZBK_LOCAL_IO unless the vault folder `dir` belongs to this user and no one else may write in it,
 * as AZBK_HOME (see checkPrivate). keepPrivate mends only the vault's own secrets below it: a
 * folder others could write in may already hold what they put there.
 */
export function checkVaultFolder(dir: string): Promise<void> {
  return checkPrivate(dir, 'folder', VAULT_USE);
}

/** What a folder that cannot become a vault's is, in words, by the error making or reading it gave. */
const FOLDER_ERRORS: Readonly<Record<string, string>> = {
  EEXIST: 'it is a file, not a folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  ENOENT: 'a folder on the way is missing, or takes no new folders (a broken link, or a file system such as /proc)',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links on the path',
};

/**
 * AZBK_BAD_INPUT naming `dir` for an error of making or reading it that the path given causes;
 * anything else (a full disk, an I/O error) as it is.
 */
function vaultFolderError(err: unknown, dir: string): unknown {
  const code = errnoCode(err);
  if (code === undefined || FOLDER_ERRORS[code] === undefined) return err;
  return new AzbkError('AZBK_BAD_INPUT', `Cannot make the vault folder ${dir}: ${errnoText(code, FOLDER_ERRORS)}.`, {
    hint: 'Choose a new or empty folder this user can create and write, with --path DIR.',
    cause: err,
  });
}

/**
 * Makes the vault's own secrets (its signing key, its TLS key) and their folder owner-only when
 * they are not and belong to this user: vaults made before their files were created owner-only
 * left them readable by every local user, who could issue credentials with the signing key.
 */
async function keepPrivate(dir: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  for (const [p, mode] of [[path.join(dir, path.dirname(layout.signingKey)), 0o700], [path.join(dir, layout.signingKey), 0o600], [path.join(dir, layout.tls), 0o600]] as const) {
    const st = await fs.lstat(p).catch(() => null);
    if (st?.isSymbolicLink() === true) return; // not through links: what they lead to is not the vault's to change
    if (st !== null && st.uid === uid && (st.mode & 0o777 & ~mode) !== 0) await fs.chmod(p, mode).catch(() => undefined);
  }
}
