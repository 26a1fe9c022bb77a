/**
 * The OS keychain, through @napi-rs/keyring: the macOS Keychain, the Windows Credential Manager,
 * and on Linux the Secret Service of the user's session (GNOME Keyring, KWallet). Each operation
 * runs in a child process (keychain-worker.ts) that is killed when it does not answer in time, since
 * a keychain that never answers would otherwise hang the command; a platform without the library's
 * native part fails like a keychain that is not there, so its secrets stay in a file.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { AzbkError } from '../shared/errors.js';
import { workerUrl } from '../shared/worker-url.js';

/** Where one secret is kept: the keychain's service and account names. */
export interface KeychainItem {
  readonly service: string;
  readonly account: string;
}

/** The service name of every azbk item. */
export const KEYCHAIN_SERVICE = 'azbk';

/** What the worker does, and what it answers. */
export type KeychainOp = KeychainItem &
  ({ readonly op: 'set'; readonly secret: string } | { readonly op: 'get' | 'delete' } | { readonly op: 'probe'; readonly secret: string });
export type KeychainReply = { readonly ok: true; readonly value: string | boolean | null } | { readonly ok: false; readonly message: string };

const WORKER = fileURLToPath(workerUrl(import.meta.url, 'keychain-worker.js'));

/** A keychain that does not answer within this is taken as unavailable. */
export const KEYCHAIN_TIMEOUT_MS = 15_000;

/** Runs `op` in a child process: its answer, or a plain Error saying why there is none. */
function perform(op: KeychainOp, timeoutMs: number): Promise<string | boolean | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER], { stdio: ['pipe', 'pipe', 'ignore'], windowsHide: true });
    let out = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stdin.on('error', () => undefined); // a child that ends early: its exit says the rest
    child.stdin.end(JSON.stringify(op));
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`it did not answer within ${timeoutMs / 1000} s`));
      let reply: KeychainReply;
      try {
        reply = JSON.parse(out) as KeychainReply;
      } catch {
        return reject(new Error(`its helper process ended (exit ${String(code)}) without an answer`));
      }
      if (reply.ok) resolve(reply.value);
      else reject(new Error(reply.message));
    });
  });
}

/** What the keychain said, on one line and short; it never holds the secret. */
function why(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 300) || 'no reason given';
}

/** Runs `op`; whatever fails becomes AZBK_KEYCHAIN_UNAVAILABLE. */
async function withKeychain(op: KeychainOp, doing: string): Promise<string | boolean | null> {
  try {
    return await perform(op, KEYCHAIN_TIMEOUT_MS);
  } catch (err) {
    throw new AzbkError('AZBK_KEYCHAIN_UNAVAILABLE', `The keychain could not ${doing}: ${why(err)}.`, { cause: err });
  }
}

export async function keychainSet(item: KeychainItem, secret: string): Promise<void> {
  await withKeychain({ op: 'set', ...item, secret }, 'store a secret');
}

/** The item's secret, or null when the keychain has no such item. */
export async function keychainGet(item: KeychainItem): Promise<string | null> {
  const v = await withKeychain({ op: 'get', ...item }, 'read a secret');
  return typeof v === 'string' ? v : null;
}

/** Deletes the item; false when there was none. */
export async function keychainDelete(item: KeychainItem): Promise<boolean> {
  return (await withKeychain({ op: 'delete', ...item }, 'delete a secret')) === true;
}

/**
 * Null when a keychain here stores, reads back and deletes an item (a throwaway one); otherwise
 * why not. No keychain service (headless Linux, a cron job) and a locked one both say why.
 */
export async function keychainProblem(): Promise<string | null> {
  const op: KeychainOp = { op: 'probe', service: KEYCHAIN_SERVICE, account: `probe-${randomBytes(8).toString('hex')}`, secret: randomBytes(16).toString('hex') };
  try {
    return (await perform(op, KEYCHAIN_TIMEOUT_MS)) === true ? null : 'it did not give back what was stored';
  } catch (err) {
    return why(err);
  }
}
