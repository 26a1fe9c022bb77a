/**
 * The OS keychain, through @napi-rs/keyring: the macOS Keychain, the Windows Credential Manager,
 * and on Linux the Secret Service of the user's session (GNOME Keyring, KWallet). On Linux the
 * library would fall back to the kernel's key ring, which forgets everything at reboot, so items
 * are pinned to the Secret Service. The native part is loaded on first use: a platform without it
 * keeps its secrets in a file.
 */
import { randomBytes } from 'node:crypto';
import type { AsyncEntry } from '@napi-rs/keyring';
import { AzbkError } from '../shared/errors.js';

/** Where one secret is kept: the keychain's service and account names. */
export interface KeychainItem {
  readonly service: string;
  readonly account: string;
}

/** The service name of every azbk item. */
export const KEYCHAIN_SERVICE = 'azbk';

/** A keychain that does not answer within this is taken as unavailable. */
const TIMEOUT_MS = 15_000;

let keyring: Promise<typeof import('@napi-rs/keyring')> | null = null;

/** What the keychain said, on one line and short; it never holds the secret. */
function why(err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return `it did not answer within ${TIMEOUT_MS / 1000} s`;
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 300) || 'no reason given';
}

/** The item's entry; throws what the library throws (the constructor already reaches for the store). */
async function openEntry(item: KeychainItem): Promise<AsyncEntry> {
  const { AsyncEntry } = await (keyring ??= import('@napi-rs/keyring'));
  return new AsyncEntry(item.service, item.account, { linux: { store: 'secret-service' } });
}

/** Runs `op` on the item's entry; whatever fails becomes AZBK_KEYCHAIN_UNAVAILABLE. */
async function withEntry<T>(item: KeychainItem, doing: string, op: (e: AsyncEntry, signal: AbortSignal) => Promise<T>): Promise<T> {
  try {
    return await op(await openEntry(item), AbortSignal.timeout(TIMEOUT_MS));
  } catch (err) {
    throw new AzbkError('AZBK_KEYCHAIN_UNAVAILABLE', `The keychain could not ${doing}: ${why(err)}.`, { cause: err });
  }
}

export function keychainSet(item: KeychainItem, secret: string): Promise<void> {
  return withEntry(item, 'store a secret', (e, signal) => e.setPassword(secret, signal));
}

/** The item's secret, or null when the keychain has no such item. */
export function keychainGet(item: KeychainItem): Promise<string | null> {
  return withEntry(item, 'read a secret', (e, signal) => e.getPassword(signal));
}

/** Deletes the item; false when there was none. */
export function keychainDelete(item: KeychainItem): Promise<boolean> {
  return withEntry(item, 'delete a secret', (e, signal) => e.deletePassword(signal));
}

/**
 * Null when a keychain here stores, reads back and deletes an item (a throwaway one); otherwise
 * why not. No keychain service (headless Linux, a cron job) and a locked one both say why.
 */
export async function keychainProblem(): Promise<string | null> {
  const value = randomBytes(16).toString('hex');
  try {
    const entry = await openEntry({ service: KEYCHAIN_SERVICE, account: `probe-${randomBytes(8).toString('hex')}` });
    const signal = AbortSignal.timeout(TIMEOUT_MS);
    await entry.setPassword(value, signal);
    try {
      return (await entry.getPassword(signal)) === value ? null : 'it did not give back what was stored';
    } finally {
      await entry.deletePassword(signal);
    }
  } catch (err) {
    return why(err);
  }
}
