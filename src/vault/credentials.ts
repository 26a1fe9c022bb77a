/**
 * `.VaultCredentials` files: who the vault is, where it is, and a registration token the vault
 * signed (Ed25519) that expires within 10 days. Every field of the file is also inside the signed
 * token, so altering any of them is detected.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { AzbkError } from '../shared/errors.js';

export const MAX_VALID_DAYS = 10;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface CredentialsFile {
  readonly format: 'azbk-vault-credentials';
  readonly version: 1;
  readonly vaultId: string;
  readonly vaultName: string;
  /** `file:///abs/path` for an embedded vault, `https://host:port` for a vault service */
  readonly endpoint: string;
  /** SHA-256 of the vault's TLS certificate (hex), pinned by the agent; null for embedded vaults */
  readonly certFingerprint: string | null;
  readonly issued: string;
  readonly expires: string;
  readonly token: string;
}

type Claims = Omit<CredentialsFile, 'format' | 'version' | 'token'> & { readonly nonce: string };

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');

/** Creates and signs a credentials file. `privateKeyPem` is the vault's Ed25519 key (PKCS#8 PEM). */
export function issueCredentials(p: {
  vaultId: string;
  vaultName: string;
  endpoint: string;
  certFingerprint: string | null;
  privateKeyPem: string;
  now: Date;
  validDays: number;
}): CredentialsFile {
  if (!Number.isInteger(p.validDays) || p.validDays < 1 || p.validDays > MAX_VALID_DAYS) {
    throw new AzbkError('AZBK_BAD_INPUT', `Credentials can be valid for 1 to ${MAX_VALID_DAYS} days, not ${p.validDays}.`);
  }
  const claims: Claims = {
    vaultId: p.vaultId,
    vaultName: p.vaultName,
    endpoint: p.endpoint,
    certFingerprint: p.certFingerprint,
    issued: p.now.toISOString(),
    expires: new Date(p.now.getTime() + p.validDays * DAY_MS).toISOString(),
    nonce: randomBytes(16).toString('hex'),
  };
  const payload = b64url(JSON.stringify(claims));
  const sig = sign(null, Buffer.from(payload), createPrivateKey(p.privateKeyPem));
  const { nonce: _nonce, ...fields } = claims;
  return { format: 'azbk-vault-credentials', version: 1, ...fields, token: `${payload}.${b64url(sig)}` };
}

function invalid(why: string): AzbkError {
  return new AzbkError('AZBK_CREDENTIALS_INVALID', `The vault credentials file is not valid: ${why}.`);
}

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length < 4096;

/**
 * Parses an untrusted credentials file and checks, without the vault, that it is well formed,
 * unaltered against its token's claims, and not expired at `now`. The signature is checked by the
 * vault (verifyToken), which holds the public key.
 */
export function parseCredentials(text: string, now: Date): CredentialsFile {
  if (text.length > 64 * 1024) throw invalid('the file is too large');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalid('it is not JSON');
  }
  if (typeof v !== 'object' || v === null) throw invalid('it is not a JSON object');
  const f = v as Record<string, unknown>;
  if (f.format !== 'azbk-vault-credentials' || f.version !== 1) throw invalid('unknown format');
  for (const k of ['vaultId', 'vaultName', 'endpoint', 'issued', 'expires', 'token'] as const) {
    if (!str(f[k])) throw invalid(`field ${k} is missing`);
  }
  if (f.certFingerprint !== null && !(typeof f.certFingerprint === 'string' && /^[0-9a-f]{64}$/.test(f.certFingerprint))) {
    throw invalid('bad certificate fingerprint');
  }
  const claims = decodeClaims(f.token as string);
  for (const k of ['vaultId', 'vaultName', 'endpoint', 'certFingerprint', 'issued', 'expires'] as const) {
    if (claims[k] !== f[k]) throw invalid(`field ${k} was altered`);
  }
  checkExpiry(claims, now);
  return f as unknown as CredentialsFile;
}

function decodeClaims(token: string): Claims {
  const [payload, sig, extra] = token.split('.');
  if (payload === undefined || sig === undefined || extra !== undefined) throw invalid('malformed token');
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw invalid('malformed token');
  }
  if (typeof claims !== 'object' || claims === null) throw invalid('malformed token');
  const c = claims as Record<string, unknown>;
  if (!str(c.vaultId) || !str(c.endpoint) || !str(c.issued) || !str(c.expires) || !str(c.nonce)) {
    throw invalid('malformed token');
  }
  return c as unknown as Claims;
}

function checkExpiry(claims: Claims, now: Date): void {
  const issued = Date.parse(claims.issued);
  const expires = Date.parse(claims.expires);
  if (!Number.isFinite(issued) || !Number.isFinite(expires)) throw invalid('bad dates');
  if (expires - issued > MAX_VALID_DAYS * DAY_MS + 60_000) throw invalid('validity longer than 10 days');
  if (now.getTime() >= expires) {
    throw new AzbkError('AZBK_CREDENTIALS_EXPIRED', `The vault credentials file expired on ${claims.expires}.`);
  }
}

/**
 * The vault's check of a registration token: signed by this vault's key, for this vault, not
 * expired. Returns the claims; throws AZBK_CREDENTIALS_INVALID or AZBK_CREDENTIALS_EXPIRED.
 */
export function verifyToken(token: string, p: { vaultId: string; publicKeyPem: string; now: Date }): Claims {
  const claims = decodeClaims(token);
  const [payload, sig] = token.split('.') as [string, string];
  let ok = false;
  try {
    ok = verify(null, Buffer.from(payload), createPublicKey(p.publicKeyPem), Buffer.from(sig, 'base64url'));
  } catch {
    ok = false;
  }
  if (!ok) throw invalid('the vault did not sign it (it was altered or comes from another vault)');
  if (claims.vaultId !== p.vaultId) throw invalid('it belongs to another vault');
  checkExpiry(claims, p.now);
  return claims;
}
