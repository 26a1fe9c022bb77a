/** Opens the vault an endpoint names: `file://` for an embedded vault, `https://` for a vault service. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AzbkError } from '../shared/errors.js';
import type { VaultEntry } from './api.js';
import { checkVaultFolder } from './open-store.js';
import { opened } from './open-vaults.js';
import { FsBlobStore } from './storage/fs-store.js';
import { RetryingBlobStore } from './storage/retrying-store.js';
import { Vault } from './vault.js';

/**
 * A URL someone gave azbk, as a message or log line may show it: whatever comes before its last
 * `@` (a user and password, after the scheme and its slashes) is shown as `***`, also when the
 * text is no URL at all. An address never shows the password in it back, on the screen or in
 * the log.
 */
export function shownUrl(s: string): string {
  return s.replace(/^([a-z][a-z0-9+.-]*:[\\/]+)?[\s\S]*@/i, '$1***@');
}

/** The `file://` endpoint of an embedded vault folder. */
export function fileEndpoint(dir: string): string {
  return pathToFileURL(path.resolve(dir)).href;
}

/**
 * Opens the embedded vault in `dir`; AZBK_VAULT_NOT_FOUND when the folder holds none, AZBK_LOCAL_IO
 * when others could change it (see checkVaultFolder).
 */
export async function openEmbeddedVault(dir: string): Promise<Vault> {
  try {
    const st = await fs.stat(dir);
    if (!st.isDirectory()) throw new Error('not a directory');
  } catch {
    throw new AzbkError('AZBK_VAULT_NOT_FOUND', `No vault folder at ${dir}.`);
  }
  await checkVaultFolder(dir);
  return Vault.open(new RetryingBlobStore(new FsBlobStore(dir)));
}

/**
 * Tries of a request a job makes (the default is 5): with the pauses between them doubling from
 * 250 ms up to 8 s, a vault service that refuses connections or fails is asked again for about a
 * minute, so a backup or restore outlives the service's restart; the time bound on retries (3
 * minutes) still holds.
 */
const PATIENT_ATTEMPTS = 16;

/**
 * Connects to the vault at `endpoint`: an embedded vault for `file://`, the HTTPS client for
 * `https://`, which accepts only the certificate whose SHA-256 is `certFingerprint` (hex; null
 * falls back on the usual CA checks). `pinnedBy` says where that fingerprint comes from (see
 * TransportOptions); `patient`, for a job that would lose its work, waits out a vault service
 * that is down for about a minute (see PATIENT_ATTEMPTS), until `stopping` asks the job to stop.
 */
export async function connectVault(
  endpoint: string,
  certFingerprint: string | null,
  o: { pinnedBy?: 'registration' | 'credentials'; patient?: boolean; stopping?: AbortSignal } = {},
): Promise<VaultEntry> {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new AzbkError('AZBK_CREDENTIALS_INVALID', `The vault endpoint ${shownUrl(endpoint)} is not a URL.`);
  }
  if (url.protocol === 'file:') return openEmbeddedVault(fileURLToPath(url));
  if (url.protocol === 'https:') {
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
      throw new AzbkError('AZBK_CREDENTIALS_INVALID', 'The vault endpoint must be a plain https://HOST:PORT URL.');
    }
    // Loaded only for a vault service: the HTTP stack costs start-up time every other command would pay.
    const { HttpVault } = await import('./http-client.js');
    const vault = new HttpVault(url.href, certFingerprint, {
      ...(o.pinnedBy === undefined ? {} : { pinnedBy: o.pinnedBy }),
      ...(o.patient === true ? { attempts: PATIENT_ATTEMPTS } : {}),
      ...(o.stopping === undefined ? {} : { stopping: o.stopping }),
    });
    opened.add(vault);
    return vault;
  }
  throw new AzbkError('AZBK_CREDENTIALS_INVALID', `azbk cannot reach ${url.protocol}// vaults.`, {
    hint: 'The endpoint of a vault is a file:// folder or an https:// vault service.',
  });
}
