/**
 * In-process vault services for tests: a vault over a memory store, its fastify app (for
 * `inject`) or a listening server, and raw registration without the agent (no scrypt: no new key).
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import type { MachineId } from '../../src/core/ids.js';
import { bearer } from '../../src/vault/http-protocol.js';
import { buildServer, serverLogger, startServer, type RunningServer } from '../../src/vault/server.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { generateSelfSigned, type TlsIdentity } from '../../src/vault/tls.js';
import { Vault } from '../../src/vault/vault.js';

/** A vault over a memory store with a fresh registration token. */
export interface TestVault<S extends MemoryBlobStore = MemoryBlobStore> {
  readonly store: S;
  readonly vault: Vault;
  readonly token: string;
  /** every log line the server wrote */
  readonly logs: string[];
}

/** Creates a vault in `store` (default a new one); `now` is its clock (default the real one). */
export async function createTestVault<S extends MemoryBlobStore = MemoryBlobStore>(o: { now?: () => Date; maxMachines?: number; store?: S } = {}): Promise<TestVault<S>> {
  const { store = new MemoryBlobStore() as S, ...rest } = o;
  const vault = await Vault.create(store, { name: 'Service', ...rest });
  const creds = await vault.credentials({ endpoint: 'https://vault.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 10 });
  return { store, vault, token: creds.token, logs: [] };
}

/** A log destination that keeps lines in `into`. */
export function logSink(into: string[]) {
  return serverLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        into.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    }),
  );
}

/** The fastify app of `t.vault`, logging into `t.logs`; closed by the caller. */
export async function appFor(t: TestVault, o: { sessionCacheMs?: number } = {}): Promise<FastifyInstance> {
  return buildServer({ vault: t.vault, logger: logSink(t.logs), ...o });
}

let cachedTls: Promise<TlsIdentity> | undefined;

/** One self-signed identity for the whole test file (generating one takes a moment). */
export function testTls(): Promise<TlsIdentity> {
  cachedTls ??= generateSelfSigned('azbk test vault');
  return cachedTls;
}

/** A listening HTTPS server for `t.vault` on 127.0.0.1 and a free port. */
export async function listen(t: TestVault, tls?: TlsIdentity, o: { memoryBudget?: number; idleTimeoutMs?: number; jsonBodyMs?: number; requestTimeoutMs?: number } = {}): Promise<RunningServer> {
  return startServer({ vault: t.vault, tls: tls ?? (await testTls()), host: '127.0.0.1', port: 0, logger: logSink(t.logs), ...o });
}

/** A registered machine as the raw API sees it. */
export interface RawMachine {
  readonly machineId: MachineId;
  readonly secret: string;
  readonly auth: string;
}

/** Registers `name` through POST /v1/register and checks it succeeded. */
export async function registerRaw(app: FastifyInstance, token: string, name: string): Promise<RawMachine> {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/register',
    payload: { token, machineName: name, os: 'linux-x64', hostname: 'host', reregister: false },
  });
  expect(res.statusCode, res.body).toBe(201);
  const { machineId, secret } = res.json() as { machineId: MachineId; secret: string };
  return { machineId, secret, auth: bearer(machineId, secret) };
}

/** Random bytes of `n`. */
export const bytes = (n: number): Buffer => randomBytes(n);
