/**
 * What the vault service and its HTTPS client agree on: paths, header names, size limits, how an
 * error code maps to an HTTP status, and the machine's bearer credentials. The routes themselves
 * are documented at the top of server.ts.
 */
import { createHash } from 'node:crypto';
import { isHex32, type MachineId } from '../core/ids.js';
import type { ErrorCode } from '../shared/errors.js';

/** Every route lives under this prefix. */
export const API = '/v1';

/** Header names (lowercase, as Node reports them). */
export const HEADER = {
  /** hex SHA-256 of an upload's body; the server refuses a body that does not match it */
  sha256: 'x-azbk-content-sha256',
  keyId: 'x-azbk-key-id',
  jobId: 'x-azbk-job-id',
  pointTime: 'x-azbk-point-time',
  /** how many pack ids (32 bytes each) follow the object in a new point's or checkpoint's body */
  packCount: 'x-azbk-pack-count',
} as const;

/** How the message of a 404 for an unknown route begins (a server of an earlier version lacks newer routes). */
export const NO_ROUTE = 'No such route';

/** The body of a new point or checkpoint: the sealed object, then the packs it names as 32 raw bytes each. */
export function withPacks(data: Uint8Array, packs: readonly string[]): Buffer {
  const out = Buffer.alloc(data.length + packs.length * 32);
  out.set(data, 0);
  packs.forEach((p, i) => out.write(p, data.length + i * 32, 'hex'));
  return out;
}

/**
 * Splits a body made by withPacks and sent with `count` packs; null when `count` is not a whole
 * number up to `max` or the body cannot hold that many (checked before any id is made).
 */
export function splitPacks(body: Buffer, count: number, max: number): { data: Buffer; packs: string[] } | null {
  const at = body.length - count * 32;
  if (!Number.isSafeInteger(count) || count < 0 || count > max || at < 0) return null;
  const packs: string[] = [];
  for (let i = 0; i < count; i++) packs.push(body.toString('hex', at + i * 32, at + (i + 1) * 32));
  return { data: body.subarray(0, at), packs };
}

/** Largest JSON request body, and the largest JSON response a client accepts. */
export const JSON_LIMIT = 1024 * 1024;
export const JSON_RESPONSE_LIMIT = 64 * 1024 * 1024;
/** Largest object (pack, index file, manifest, checkpoint) in either direction. */
export const OBJECT_LIMIT = 256 * 1024 * 1024;

/** The body of every HTTP error the server sends, after fastify's shape. */
export interface ErrorBody {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly error: string;
  readonly message: string;
  /** what to do about it, when the vault has a hint of its own for this case (an agent shows it) */
  readonly hint?: string;
}

/**
 * The codes a vault server's error replies carry: those the vault's rules, its storage and the
 * server itself throw (keep in step with them). A client takes no other code from the network: a
 * hostile or broken server must not choose the agent's exit code (a partial or cancelled job, a
 * job running, a wrong passphrase).
 */
export const SERVER_ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'AZBK_BAD_INPUT',
  'AZBK_CREDENTIALS_INVALID',
  'AZBK_CREDENTIALS_EXPIRED',
  'AZBK_FORBIDDEN',
  'AZBK_MACHINE_NAME_TAKEN',
  'AZBK_POINT_NOT_FOUND',
  'AZBK_PACK_GONE',
  'AZBK_VAULT_CORRUPT',
  'AZBK_VAULT_LIMIT',
  'AZBK_VAULT_NOT_FOUND',
  'AZBK_VAULT_UNREACHABLE',
  'AZBK_INTERNAL',
]);

/** The HTTP status the server answers with for an error code. */
export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'AZBK_CREDENTIALS_INVALID':
    case 'AZBK_CREDENTIALS_EXPIRED':
      return 401;
    case 'AZBK_FORBIDDEN':
      return 403;
    case 'AZBK_POINT_NOT_FOUND':
    case 'AZBK_MACHINE_NOT_FOUND':
    case 'AZBK_VAULT_CORRUPT': // a vault object that is missing or unusable
      return 404;
    case 'AZBK_MACHINE_NAME_TAKEN':
    case 'AZBK_VAULT_LIMIT':
    case 'AZBK_VAULT_EXISTS':
      return 409;
    case 'AZBK_VAULT_UNREACHABLE':
    case 'AZBK_VAULT_NOT_FOUND':
      return 503; // the server's storage is unavailable: clients may retry
    case 'AZBK_INTERNAL':
      return 500;
    default:
      return 400;
  }
}

/** The Authorization header of a registered machine. */
export function bearer(machineId: MachineId, secret: string): string {
  return `Bearer ${machineId}:${secret}`;
}

const BEARER = /^Bearer ([0-9a-f]{32}):([A-Za-z0-9+/]{43}=)$/;

/** Machine id and secret from an Authorization header, or null when it is not one of ours. */
export function parseBearer(header: string | undefined): { machineId: MachineId; secret: string } | null {
  const m = header === undefined || header.length > 200 ? null : BEARER.exec(header);
  if (m === null || !isHex32(m[1])) return null;
  return { machineId: m[1] as MachineId, secret: m[2]! };
}

/** Lowercase hex SHA-256 of `data`, as sent in HEADER.sha256. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
