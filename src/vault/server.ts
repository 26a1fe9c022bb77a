/**
 * The vault service: HTTPS over fastify in front of a `Vault`. The server only maps HTTP to the
 * Vault / VaultSession API; every rule (registration, limits, append-only) lives in vault.ts, so
 * the embedded vault and the service behave the same. It keeps no state of its own beyond a short
 * cache of authenticated sessions, so several servers may serve one store.
 *
 * API (all under /v1; JSON bodies at most 1 MiB, objects at most 256 MiB; every body and reply is
 * held within the budgets described at ByteBudget and JSON_BODIES_BUDGET, or answered 503):
 *   GET  /v1/config                         public: the vault config
 *   POST /v1/register/keys {token}          -> {keys}: envelopes to try a passphrase against
 *   POST /v1/register {token, machineName, os, hostname, reregister, newKey?} -> 201 {machineId, secret}
 * Everything else needs `Authorization: Bearer <machineId>:<secret>` (401 otherwise):
 *   GET  /v1/session                        -> {machineId}: checks the credentials
 *   GET  /v1/keys -> {keys};   POST /v1/keys <envelope> -> 204
 *   GET  /v1/machines                       -> {machines}
 *   POST /v1/policy {retention}             -> 204: the machine's retention policy
 *   GET  /v1/pruned-packs                   -> {condemned, gone}: packs prune condemned or deleted
 *   PUT  /v1/packs/:id                      octet-stream, Content-Length required -> 204
 *   GET  /v1/packs/:id  Range: bytes=a-b    -> 206 (200 with the whole pack without Range)
 *   HEAD /v1/packs/:id                      -> 200 with Content-Length, or 404
 *   GET  /v1/packs                          -> {ids}: every pack the vault holds (verify --repair-index)
 *   PUT  /v1/index/:name                    octet-stream + X-Azbk-Content-Sha256 -> 204
 *   GET  /v1/index -> {names};  GET /v1/index/:name -> octet-stream
 *   POST /v1/machines/:id/points            own id only (403 otherwise); octet-stream manifest,
 *                                           X-Azbk-Key-Id, X-Azbk-Job-Id, X-Azbk-Content-Sha256
 *                                           -> 201 PointInfo with {expired}: points retention removed
 *   GET  /v1/machines/:id/policy            -> {newest, inForce, now}: a machine's retention
 *   GET  /v1/machines/:id/points            -> {points}
 *   GET  /v1/machines/:id/points/:point     -> octet-stream manifest; X-Azbk-Key-Id, X-Azbk-Job-Id,
 *                                              X-Azbk-Point-Time
 *   PUT  /v1/checkpoints/:job/:seq          octet-stream + X-Azbk-Content-Sha256 -> 201 CheckpointInfo
 *   GET  /v1/checkpoints -> {checkpoints};  GET /v1/checkpoints/:name -> octet-stream
 * Any other change (DELETE, PUT or POST elsewhere) is refused with 403 once authenticated.
 * Every error is JSON {statusCode, code, error, message, hint?} with an AZBK_* code from the
 * registry (a hint when the vault has one of its own for the case).
 */
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Transform } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { fastify, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { pino, type Logger } from 'pino';
import { AzbkError, errorRegistry, isAzbkError, type ErrorCode } from '../shared/errors.js';
import type { VaultSession } from './api.js';
import { API, JSON_LIMIT, NO_ROUTE, parseBearer, statusOf, type ErrorBody } from './http-protocol.js';
import { ByteBudget, HttpError, isUploadRoute, registerRoutes } from './server-routes.js';
import type { TlsIdentity } from './tls.js';
import type { Vault } from './vault.js';

/** How a server is built; everything but the vault has a default. */
export interface ServerOptions {
  readonly vault: Vault;
  /** request log (default: none); the Authorization header is redacted either way */
  readonly logger?: Logger;
  /** serve HTTPS with this certificate (default: plain HTTP, for tests with inject) */
  readonly tls?: TlsIdentity;
  /** how long an authenticated session is reused without asking the vault (default 30 s) */
  readonly sessionCacheMs?: number;
  /** bytes of request and reply bodies held at once (default DEFAULT_MEMORY_BUDGET; see ByteBudget) */
  readonly memoryBudget?: number;
  /** a connection on which nothing moves this long is closed (default IDLE_TIMEOUT_MS) */
  readonly idleTimeoutMs?: number;
  /** a body that is not an upload must arrive within this long (default JSON_BODY_MS) */
  readonly jsonBodyMs?: number;
  /** a request must be whole within this long, and an upload on its way to be (default REQUEST_TIMEOUT_MS) */
  readonly requestTimeoutMs?: number;
}

/**
 * How long a server that is closing waits for the work it began after a reply. A daily prune cut
 * short leaves the vault whole, as each of its steps does, and the next day's pass does what it
 * left.
 */
const AFTER_REPLY_WAIT_MS = 20_000;

/**
 * Work the server does after its reply (see Vault.runLater): one piece at a time, each logged
 * when it ends; closing waits for it, for a while.
 */
class AfterReplies {
  #last: Promise<void> = Promise.resolve();

  constructor(private readonly log: FastifyBaseLogger) {}

  readonly run = (what: string, work: () => Promise<unknown>): void => {
    this.#last = this.#last.then(async () => {
      try {
        const result = await work();
        if (result !== null && result !== undefined) this.log.info({ what, result }, 'done after a reply');
      } catch (err) {
        this.log.warn({ what, code: isAzbkError(err) ? err.code : undefined, message: err instanceof Error ? err.message : String(err) }, 'failed after a reply');
      }
    });
  };

  /** Resolves when the work begun so far has ended, or after AFTER_REPLY_WAIT_MS. */
  async settled(): Promise<void> {
    await Promise.race([this.#last, delay(AFTER_REPLY_WAIT_MS, undefined, { ref: false })]);
  }
}

/**
 * A connection on which no byte moves for this long is closed, with the bodies it held: an upload
 * that stalled, a reply nobody reads. Long enough for the storage's slowest answer (the socket is
 * idle while the vault reads or writes a large object), far shorter than the 15 minutes a request
 * may take in all.
 */
export const IDLE_TIMEOUT_MS = 5 * 60_000;

/** A request (an upload of 256 MiB, say) must have arrived whole within this long. */
export const REQUEST_TIMEOUT_MS = 15 * 60_000;

/** Bodies a server holds at once by default: 32 packs of 16 MiB, or two of the largest objects. */
export const DEFAULT_MEMORY_BUDGET = 512 * 1024 * 1024;
/** Bytes of JSON request bodies held at once, from all addresses (a quarter of it from one). */
export const JSON_BODIES_BUDGET = 32 * 1024 * 1024;
/** A body that is not an upload (at most JSON_LIMIT: 1 MiB) arrives within this long of its request, or its connection is closed. */
export const JSON_BODY_MS = 30_000;

/** Log settings of a vault server: JSON lines, secrets redacted. */
export const SERVER_LOG_REDACT = ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'token', 'secret', '*.token', '*.secret'];

/** A pino logger for a vault server writing JSON lines to `dest` (default stderr). */
export function serverLogger(level = process.env.AZBK_LOG_LEVEL ?? 'info', dest: NodeJS.WritableStream = process.stderr): Logger {
  return pino({ level, redact: { paths: SERVER_LOG_REDACT, censor: '[redacted]' } }, dest as pino.DestinationStream);
}

/**
 * The status, code and message an error is answered with; internals never reach the client: a
 * storage failure's message names the vault's folder or storage account, so it goes to the log only.
 */
function describe(err: unknown): { status: number; code: ErrorCode; message: string; hint?: string } {
  if (isAzbkError(err)) {
    const status = statusOf(err.code);
    if (status >= 500) return { status, code: err.code, message: 'The vault storage failed to answer the request; try again later.' };
    // The vault's own hint for this case (the same one an embedded vault gives); the code's usual one the agent knows.
    return { status, code: err.code, message: err.message, ...(err.hint === errorRegistry[err.code].hint ? {} : { hint: err.hint }) };
  }
  if (err instanceof HttpError) return { status: err.statusCode, code: err.azbkCode, message: err.message };
  const e = err as { statusCode?: unknown; message?: unknown; code?: unknown; validation?: unknown };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const message = e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'The request body is too large.' : String(e.message).slice(0, 300);
    return { status: e.statusCode, code: 'AZBK_BAD_INPUT', message };
  }
  return { status: 500, code: 'AZBK_INTERNAL', message: 'The vault server failed to answer the request.' };
}

/** Requests Node cannot even parse (or that time out) still get the one error shape. */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  // Too slow is the link's doing, not the request's: the agent takes it as the vault out of reach, and tries again.
  const [code, message]: [ErrorCode, string] = status === 408 ? ['AZBK_VAULT_UNREACHABLE', 'The request took too long to arrive.'] : ['AZBK_BAD_INPUT', 'The request is not valid HTTP.'];
  const body = JSON.stringify({ statusCode: status, code, error: STATUS_CODES[status] ?? 'Bad Request', message } satisfies ErrorBody);
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/** Sends the one error shape. */
function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string, hint?: string): FastifyReply {
  const body: ErrorBody = { statusCode: status, code, error: STATUS_CODES[status] ?? 'Error', message, ...(hint === undefined ? {} : { hint }) };
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="azbk"');
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** Resolves `Authorization` headers to vault sessions, remembering successes for a short while. */
class SessionCache {
  readonly #sessions = new WeakMap<FastifyRequest, VaultSession>();
  readonly #cache = new Map<string, { session: VaultSession; expires: number }>();

  constructor(
    private readonly vault: Vault,
    private readonly ttlMs: number,
  ) {}

  /** onRequest hook: authenticates the request or answers 401 before its body is read. */
  readonly authenticate = async (req: FastifyRequest): Promise<void> => {
    const header = req.headers.authorization;
    const creds = parseBearer(header);
    if (creds === null) {
      throw new AzbkError('AZBK_CREDENTIALS_INVALID', 'This request needs Authorization: Bearer <machine id>:<secret>.');
    }
    const key = createHash('sha256').update(header!).digest('hex');
    const hit = this.#cache.get(key);
    let session: VaultSession;
    if (hit !== undefined && hit.expires > Date.now()) session = hit.session;
    else {
      session = await this.vault.session(creds.machineId, creds.secret);
      if (this.#cache.size >= 4096) this.#cache.clear();
      if (this.ttlMs > 0) this.#cache.set(key, { session, expires: Date.now() + this.ttlMs });
    }
    this.#sessions.set(req, session);
  };

  /** Forgets every remembered session (a machine was registered again: its old secret is void). */
  forget(): void {
    this.#cache.clear();
  }

  /** The session of an authenticated request. */
  readonly of = (req: FastifyRequest): VaultSession => {
    const s = this.#sessions.get(req);
    if (s === undefined) throw new AzbkError('AZBK_INTERNAL', 'Route without authentication.');
    return s;
  };
}

/** Builds the fastify app for `o.vault` (not listening; tests use `inject`). */
export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const app = fastify({
    loggerInstance: o.logger ?? pino({ level: 'silent' }),
    bodyLimit: JSON_LIMIT,
    ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2' as const } } : {}),
    requestTimeout: o.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
    connectionTimeout: o.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
    keepAliveTimeout: 65_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    exposeHeadRoutes: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    clientErrorHandler: onClientError,
  }) as unknown as FastifyInstance;

  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err, req, reply) => {
    const { status, code, message, hint } = describe(err);
    // Busy (see ByteBudget) is the server working as meant: a line, not a failure with its stack.
    const busy = err instanceof HttpError && status === 503;
    if (busy) req.log.warn({ code, message }, 'request refused: busy');
    else if (status >= 500) req.log.error({ code, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'request failed');
    else req.log.info({ code, message }, 'request refused');
    // An unread body may still be arriving (refused before it was read, as every 401 and 403
    // is): close the connection rather than read it, or parse it as the next request. A busy
    // server's 503 is the exception: a client still sending would see the connection break, not
    // the answer that tells it to wait (it would give up after its few attempts), so the body is
    // read and dropped, and never held.
    if (status === 401 || status === 403 || status === 411 || status === 413 || status === 415) reply.header('connection', 'close');
    // The agent asks again after this long.
    if (busy) reply.header('retry-after', '1');
    return sendError(reply, status, code, message, hint);
  });

  const sessions = new SessionCache(o.vault, o.sessionCacheMs ?? 30_000);
  o.vault.onRegistered = () => sessions.forget();
  const later = new AfterReplies(app.log);
  o.vault.runLater = later.run;
  app.addHook('onClose', () => later.settled());
  app.setNotFoundHandler(async (req, reply) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') {
      return sendError(reply, 404, 'AZBK_BAD_INPUT', `${NO_ROUTE}: ${req.method} ${req.url.slice(0, 200)}.`);
    }
    // Authenticate first: strangers learn nothing, machines learn the vault is append-only.
    await sessions.authenticate(req);
    return sendError(reply, 403, 'AZBK_FORBIDDEN', 'Machines may only add data to the vault; this change is not allowed.');
  });

  // Bodies that are not uploads (JSON: registrations, key envelopes) come before any machine is
  // known: held within a budget of their own, by the address they come from, so that strangers
  // who open connections and send such bodies cannot make the server hold memory without end.
  // Every body but an upload's counts (any method fastify reads a body for, any type, any path:
  // a route that takes none, or none at all, still reads one up to JSON_LIMIT before it answers).
  // They are counted as they arrive, not by the length announced (a stranger announcing bodies
  // and sending nothing took the whole budget, and every registration was refused), and must
  // arrive within JSON_BODY_MS: holding the budget costs sending it again and again.
  const jsonBudget = new ByteBudget(JSON_BODIES_BUDGET);
  app.addHook('preParsing', async (req, reply, payload) => {
    if (req.method === 'GET' || req.method === 'HEAD') return payload; // fastify reads no body of these
    if (isUploadRoute(req)) return payload; // counted by the route: see ByteBudget in the routes
    const late = setTimeout(() => req.raw.destroy(), o.jsonBodyMs ?? JSON_BODY_MS);
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        try {
          jsonBudget.take(reply, chunk.length, req.ip);
          done(null, chunk);
        } catch (err) {
          done(err as Error);
        }
      },
      flush(done) {
        clearTimeout(late);
        done();
      },
    });
    reply.raw.once('close', () => clearTimeout(late));
    // Not pipeline(): a 503 must not destroy the request, so that its answer is sent (Node reads
    // and drops the rest of the body).
    payload.on('error', (err) => counted.destroy(err));
    return payload.pipe(counted);
  });

  const budget = new ByteBudget(o.memoryBudget ?? DEFAULT_MEMORY_BUDGET);
  await app.register(async (scope) => registerRoutes(scope, { vault: o.vault, sessions, budget, requestMs: o.requestTimeoutMs ?? REQUEST_TIMEOUT_MS }), { prefix: API });
  return app;
}

/** A listening vault server. */
export interface RunningServer {
  readonly app: FastifyInstance;
  /** e.g. https://127.0.0.1:8443 */
  readonly url: string;
  readonly fingerprint: string;
  /**
   * Stops accepting connections and lets requests in flight finish; after `graceMs` (default
   * 30 s) the connections still open are cut, so a stalled client cannot hold up a shutdown. An
   * upload cut off never becomes an object: the vault stores only whole bodies, atomically.
   */
  close(graceMs?: number): Promise<void>;
}

/** Builds the server with TLS and listens on `host`:`port` (0 picks a free port). */
export async function startServer(o: ServerOptions & { tls: TlsIdentity; host: string; port: number }): Promise<RunningServer> {
  const app = await buildServer(o);
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw listenError(err, o.host, o.port);
  }
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  const close = async (graceMs = 30_000) => {
    const cut = setTimeout(() => (app.server as { closeAllConnections?: () => void }).closeAllConnections?.(), graceMs);
    try {
      await app.close();
    } finally {
      clearTimeout(cut);
    }
  };
  return { app, url: `https://${host}:${addr.port}`, fingerprint: o.tls.fingerprint, close };
}

/** Why the OS refused to listen, in words, for the listen errors a user causes and can fix. */
const LISTEN_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the port is in use by another program',
  EADDRNOTAVAIL: 'the address is not one of this machine',
  EACCES: 'this user may not use that port',
  ENOTFOUND: 'no address found for that host name',
  EAI_NONAME: 'no address found for that host name',
  EAI_AGAIN: 'the host name could not be looked up',
};

/**
 * AZBK_BAD_INPUT naming the address for a listen error the --listen value causes (a port in use,
 * an address of another machine); anything else as it is.
 */
function listenError(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const why = code === undefined ? undefined : LISTEN_ERRORS[code];
  if (why === undefined) return err;
  const addr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new AzbkError('AZBK_BAD_INPUT', `Cannot listen on ${addr}: ${why} (${code}).`, {
    hint: 'Give --listen a free port on an address of this machine, e.g. 0.0.0.0:8443 (port 0 picks a free one).',
    cause: err,
  });
}

/** `HOST:PORT` of --listen: a host name, IPv4 or [IPv6] address, and a port 0..65535. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  const port = Number(m?.[2]);
  if (m === null || port > 65535) throw new AzbkError('AZBK_BAD_INPUT', `--listen takes HOST:PORT (e.g. 127.0.0.1:8443 or [::]:8443), not ${s}.`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}
