/**
 * The TLS identity of a vault service: a certificate and its private key. They are kept in the
 * vault's own BlobStore (`vault/tls`, one object so cert and key never mismatch), so every stateless
 * server of one vault presents the same certificate, and agents pin its SHA-256 fingerprint.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import os from 'node:os';
import { AzbkError } from '../shared/errors.js';
import { readSmallTextFile } from '../shared/files.js';
import { layout } from './layout.js';
import type { BlobStore } from './storage/blobstore.js';

/** A certificate (PEM, the server's own first, then any chain) with its key and fingerprint. */
export interface TlsIdentity {
  readonly cert: string;
  readonly key: string;
  /** lowercase hex of SHA-256 over the DER of the first certificate */
  readonly fingerprint: string;
}

const MAX_PEM = 64 * 1024;
const SELF_SIGNED_YEARS = 10;

/**
 * A fingerprint in the one form azbk stores and compares: 64 lowercase hex digits. Accepts the
 * colon-separated uppercase form Node reports (`AB:CD:...`); null for anything else.
 */
export function normalizeFingerprint(s: string): string | null {
  const hex = s.replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

/**
 * Checks a PEM certificate (chain allowed) and PEM private key: both parse, and the key belongs to
 * the first certificate. Returns them with the fingerprint; AZBK_BAD_INPUT otherwise.
 */
export function parseTlsIdentity(cert: string, key: string): TlsIdentity {
  if (cert.length > MAX_PEM || key.length > MAX_PEM) throw new AzbkError('AZBK_BAD_INPUT', 'The TLS certificate or key is too large.');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', 'The TLS certificate is not a PEM certificate.');
  }
  let matches = false;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', 'The TLS key is not an unencrypted PEM private key.');
  }
  if (!matches) throw new AzbkError('AZBK_BAD_INPUT', 'The TLS key does not belong to the TLS certificate.');
  return { cert, key, fingerprint: normalizeFingerprint(x509.fingerprint256)! };
}

/** The fingerprint of the first certificate of a PEM text; AZBK_BAD_INPUT if it holds none. */
export function fingerprintOfPem(cert: string): string {
  try {
    return normalizeFingerprint(new X509Certificate(cert).fingerprint256)!;
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', 'The TLS certificate is not a PEM certificate.');
  }
}

/** Reads `--tls-cert` and `--tls-key` files and checks them (parseTlsIdentity). */
export async function readTlsFiles(certFile: string, keyFile: string): Promise<TlsIdentity> {
  return parseTlsIdentity(await readTlsCert(certFile), await readSmallTextFile(keyFile, MAX_PEM, 'TLS key'));
}

/** The text of a `--tls-cert` file: AZBK_BAD_INPUT when it cannot be read, is not a file, or is larger than any PEM certificate chain azbk takes. */
export function readTlsCert(file: string): Promise<string> {
  return readSmallTextFile(file, MAX_PEM, 'TLS certificate');
}

/**
 * A new self-signed certificate (ECDSA P-256, SHA-256, valid 10 years) for `commonName`, naming
 * this host, localhost and the loopback addresses. Agents pin it, so no CA needs to trust it.
 */
export async function generateSelfSigned(commonName: string, now = new Date()): Promise<TlsIdentity> {
  // Loaded only here: the certificate library is large and only vault commands need it.
  const { generate } = await import('selfsigned');
  const host = os.hostname();
  const names = [...new Set(['localhost', ...(/^[A-Za-z0-9.-]{1,253}$/.test(host) ? [host] : [])])];
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 60 * 60 * 1000),
    notAfterDate: new Date(now.getTime() + SELF_SIGNED_YEARS * 365 * 24 * 60 * 60 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...names.map((value) => ({ type: 2 as const, value })), { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }],
      },
    ],
  });
  return parseTlsIdentity(pems.cert, pems.private);
}

/** The TLS identity the vault in `store` holds, or null. AZBK_VAULT_CORRUPT when it is damaged. */
export async function loadTlsIdentity(store: BlobStore): Promise<TlsIdentity | null> {
  const data = await store.get(layout.tls);
  if (data === null) return null;
  try {
    const v = JSON.parse(data.toString('utf8')) as { version?: unknown; cert?: unknown; key?: unknown };
    if (v.version !== 1 || typeof v.cert !== 'string' || typeof v.key !== 'string') throw new Error('shape');
    return parseTlsIdentity(v.cert, v.key);
  } catch {
    throw new AzbkError('AZBK_VAULT_CORRUPT', `The vault object ${layout.tls} (its TLS certificate) is damaged.`);
  }
}

/**
 * The vault's TLS identity: the one it holds; else `given`, or a new self-signed certificate,
 * stored first. Of several servers storing one at the same time exactly one wins, and all return
 * the winner, so they present the same certificate.
 *
 * With `machines` (how many are registered) above 0 and nothing given, a missing one is not made
 * anew: `vault create` made it, so it was lost, and every machine registered through a vault
 * service pins it; a new one would lock them all out, quietly, for good (it is stored, and
 * stored objects are never replaced). AZBK_VAULT_CORRUPT then, with the ways on.
 */
export async function ensureTlsIdentity(store: BlobStore, p: { given?: TlsIdentity; commonName: string; machines?: number }): Promise<TlsIdentity> {
  const held = await loadTlsIdentity(store);
  if (held !== null) return held;
  if (p.given === undefined && (p.machines ?? 0) > 0) {
    throw new AzbkError('AZBK_VAULT_CORRUPT', `The vault's TLS certificate (${layout.tls}) is missing, though ${p.machines} machine${p.machines === 1 ? ' is' : 's are'} registered: those registered through \`azbk vault serve\` accept only that certificate, and a new one would lock them out.`, {
      hint: `Put ${layout.tls} back from a copy of the vault, or give the certificate they pin to \`azbk vault serve --tls-cert F --tls-key F\` (it becomes the vault's own, for \`vault credentials\` too). To start over with a new certificate, give that one instead; then every machine that uses the service registers again with fresh credentials (azbk vault credentials, then azbk register --reregister).`,
    });
  }
  const id = p.given ?? (await generateSelfSigned(p.commonName));
  const record = Buffer.from(JSON.stringify({ version: 1, cert: id.cert, key: id.key }));
  if ((await store.put(layout.tls, record)) === 'created') return id;
  const winner = await loadTlsIdentity(store);
  if (winner === null) throw new AzbkError('AZBK_VAULT_CORRUPT', 'The vault TLS certificate vanished while it was being stored.');
  return winner;
}
