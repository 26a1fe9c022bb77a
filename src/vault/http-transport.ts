/**
 * The HTTPS transport of the vault client: a keep-alive undici pool to one vault server, the
 * server certificate pinned by its SHA-256 fingerprint, retries with exponential back-off, error
 * replies mapped to AzbkErrors, and response bodies read with a size limit (the network is
 * hostile input).
 */
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { buildConnector, Pool, type Dispatcher } from 'undici';
import { AzbkError, errorRegistry, type ErrorCode } from '../shared/errors.js';
import { PROXY_REFUSED, proxyFor, tunnelConnector } from './proxy.js';
import { normalizeFingerprint } from './tls.js';
import { NO_ROUTE, SERVER_ERROR_CODES } from './http-protocol.js';
import { StallWatch } from './stall-watch.js';

/** Tuning of an HttpTransport; every field has a default. */
export interface TransportOptions {
  /** tries per request, the first included (default 5) */
  readonly attempts?: number;
  /**
   * aborted when the job that makes the requests is asked to stop: from then on a failed request
   * is tried at most the default number of times in all, and a pause before another try ends at
   * once. A job that is patient with a vault service that is down (more attempts) is not, then:
   * Ctrl-C stops it in seconds, not after a minute of tries. From then on, the requests in flight
   * are given up, and not tried again, when for `stopGraceMs` none of them gets a reply and
   * together they move less than STALL_MIN_BYTES (see StallWatch): a vault that went silent
   * does not hold a stopping job for the reply timeout, and a slow one still takes its last uploads.
   */
  readonly stopping?: AbortSignal;
  /** see `stopping` (default 60 s) */
  readonly stopGraceMs?: number;
  /** delay before the first retry, doubling per retry (default 250 ms), at most maxDelayMs (8 s) */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** parallel connections to the server (default 8) */
  readonly connections?: number;
  readonly connectTimeoutMs?: number;
  /** waiting for a reply's headers or the next piece of its body (default 10 min) */
  readonly replyTimeoutMs?: number;
  /**
   * no retry of a failed request starts once it has taken this long (default 3 min): a vault
   * that hangs rather than refuses (each attempt ends only by a timeout) fails a command in
   * minutes, not after five such attempts; a busy server's waits are bounded apart (BUSY_MS)
   */
  readonly retryForMs?: number;
  /** waits `ms` or until `signal` aborts (default a timer, cleared then); tests pass a fake */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** the clock (default Date.now); tests pass a fake */
  readonly now?: () => number;
  /**
   * where the pinned certificate's fingerprint comes from, for what a mismatch advises: this
   * machine's registration (the default), or a credentials file being registered with
   */
  readonly pinnedBy?: 'registration' | 'credentials';
}

/** A request body read from a local file of `length` bytes, opened anew for every attempt. */
export interface FileBody {
  readonly file: string;
  readonly length: number;
}

/** One request; `limit` bounds the reply body, `idempotent` allows retries once it may have arrived. */
export interface TransportRequest {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array | string | FileBody;
  readonly limit: number;
  readonly idempotent: boolean;
  /** statuses returned to the caller instead of thrown (2xx always are) */
  readonly accept?: readonly number[];
  /** the error for a 404 without an AZBK code (default AZBK_VAULT_NOT_FOUND) */
  readonly notFound?: () => AzbkError;
  /**
   * the error when a request that is not idempotent was sent and its connection broke before
   * the whole reply came (`why`: how; `cause`: the error), so the server may have done it
   * (default: the vault is unreachable, which says nothing of that)
   */
  readonly lostReply?: (why: string, cause: unknown) => AzbkError;
  /** where a successful reply's body is collected when it fits (the body is then a view of it) */
  readonly into?: Buffer;
}

/** A reply with its whole body. */
export interface TransportResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** Thrown by the pinning connector when the server shows another certificate; never retried. */
class PinMismatch extends Error {
  readonly code = 'AZBK_CERT_MISMATCH';
}

/**
 * An undici connector that accepts only the certificate whose SHA-256 is `fingerprint` (hex).
 * Chain verification is off (self-signed certificates are the point); the pin replaces it, and is
 * checked on every new connection before any request is written.
 */
export function pinnedConnector(fingerprint: string, timeoutMs: number): buildConnector.connector {
  const inner = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0, timeout: timeoutMs });
  return (options, callback) => {
    inner(options, (err, socket) => {
      if (err !== null) return callback(err, null);
      const seen = normalizeFingerprint((socket as TLSSocket).getPeerCertificate?.()?.fingerprint256 ?? '');
      if (seen !== fingerprint) {
        socket.destroy();
        return callback(new PinMismatch(`the server presented certificate ${seen ?? '(none)'}, not the pinned ${fingerprint}`), null);
      }
      callback(null, socket);
    });
  };
}

/** How connections to `endpoint` are made: pinned or checked by CAs, through a proxy where the environment names one. */
function connector(endpoint: URL, fingerprint: string | null, timeoutMs: number): buildConnector.connector {
  const direct = fingerprint === null ? buildConnector({ timeout: timeoutMs }) : pinnedConnector(fingerprint, timeoutMs);
  const proxy = proxyFor(endpoint);
  return proxy === null ? direct : tunnelConnector(proxy, direct, timeoutMs);
}

const SHORT_REPLY = 'AZBK_SHORT_REPLY';
/** A reply whose body came too slowly on average (see ReplyPace). */
const SLOW_REPLY = 'AZBK_SLOW_REPLY';

/** How long a busy server (503 with Retry-After) is asked again before the request fails. */
const BUSY_MS = 5 * 60_000;
/** Tries per request unless told otherwise (see TransportOptions.attempts and stopping). */
const DEFAULT_ATTEMPTS = 5;

/** A 503's Retry-After in milliseconds (seconds only, at most 60 s), or null. */
function retryAfterMs(res: TransportResponse): number | null {
  const v = res.headers['retry-after'];
  if (res.status !== 503 || typeof v !== 'string' || !/^\d{1,3}$/.test(v)) return null;
  return Math.min(60, Math.max(1, Number(v))) * 1000;
}

/** Errors before a request was sent: safe to retry whatever the request. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
/** Errors of a connection that broke or stalled: the request may have arrived. */
const NETWORK_ERRORS = new Set([
  'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_ABORTED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', SHORT_REPLY, SLOW_REPLY,
]);

const codeOf = (err: unknown): string => String((err as { code?: unknown })?.code ?? '');
/**
 * An error of the connection, not of a file being sent. Not every undici error: a file body
 * shorter than its length ends with UND_ERR_REQ_CONTENT_LENGTH_MISMATCH, which is this machine's.
 */
const isNetworkError = (err: unknown): boolean => CONNECT_ERRORS.has(codeOf(err)) || NETWORK_ERRORS.has(codeOf(err));
const clean = (s: string, max = 300) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, max);

/**
 * An error reply as an AzbkError: the server's AZBK code when it sent one a vault server sends
 * (SERVER_ERROR_CODES), else by status. A 404 for a route the server does not have (one of an
 * earlier version), or without a code, is the request's own error when it has one. Another code
 * of azbk's (AZBK_PARTIAL, AZBK_CANCELLED, ...) is an invalid reply (AZBK_VAULT_CORRUPT): it
 * would pick the agent's exit code. One azbk does not know (a later server's) goes by status.
 */
function replyError(status: number, body: Buffer, req: TransportRequest, origin: string): AzbkError {
  let sent: { code?: unknown; message?: unknown; hint?: unknown } = {};
  try {
    sent = JSON.parse(body.toString('utf8')) as typeof sent;
  } catch {
    // not our server's JSON: fall back on the status
  }
  const message = typeof sent?.message === 'string' ? clean(sent.message) : `The vault server answered ${status}.`;
  const coded = typeof sent?.code === 'string' && SERVER_ERROR_CODES.has(sent.code);
  if (status === 404 && req.notFound !== undefined && (!coded || message.startsWith(NO_ROUTE))) return req.notFound();
  if (!coded && typeof sent?.code === 'string' && Object.hasOwn(errorRegistry, sent.code)) {
    return new AzbkError('AZBK_VAULT_CORRUPT', `The vault server sent an invalid error reply: ${sent.code}, which no vault server sends (${message}).`);
  }
  // The server's hint (text from the network: control characters taken out), else the code's own.
  if (coded) return new AzbkError(sent.code as ErrorCode, message, typeof sent.hint === 'string' && sent.hint !== '' ? { hint: clean(sent.hint, 600) } : undefined);
  if (status === 401) return new AzbkError('AZBK_CREDENTIALS_INVALID', message);
  if (status === 403) return new AzbkError('AZBK_FORBIDDEN', message);
  if (status === 404) return req.notFound?.() ?? new AzbkError('AZBK_VAULT_NOT_FOUND', `No vault service answers at ${origin}.`);
  if (status >= 500 || status === 429) return new AzbkError('AZBK_VAULT_UNREACHABLE', `The vault server at ${origin} failed (${status}).`);
  if (status === 408) return new AzbkError('AZBK_VAULT_UNREACHABLE', `The vault server at ${origin} stopped waiting for the request to arrive (408).`);
  if (status >= 300 && status < 400) {
    return new AzbkError('AZBK_VAULT_UNREACHABLE', `Something at ${origin} answered ${status}, a redirect no vault service sends: a proxy or portal between this machine and the vault?`);
  }
  // What a vault service refuses as malformed; any other status is not one of its replies.
  if (MALFORMED.has(status)) return new AzbkError('AZBK_BAD_INPUT', message);
  return new AzbkError('AZBK_VAULT_CORRUPT', `The vault server at ${origin} answered ${status}, which no vault service sends (${message}).`);
}

/** Statuses a vault service (or a proxy before it) answers a request it finds malformed with. */
const MALFORMED: ReadonlySet<number> = new Set([400, 411, 413, 414, 415, 416, 431]);

/** What to do about a certificate other than the pinned one, by where the pin comes from. */
const PIN_HINTS = {
  registration:
    'The certificate differs from the one pinned at registration. If the vault really changed its certificate, register again with a fresh credentials file (azbk register --reregister); otherwise something is intercepting the connection.',
  credentials:
    'The certificate differs from the one the credentials file pins. If the vault really changed its certificate, ask its operator for a fresh credentials file (azbk vault credentials); otherwise something is intercepting the connection.',
} as const;

/** A pool of connections to one vault server; requests may run in parallel. */
export class HttpTransport {
  readonly #pool: Pool;
  readonly #origin: string;
  readonly #base: string;
  readonly #attempts: number;
  readonly #stopping: AbortSignal | undefined;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #retryForMs: number;
  readonly #now: () => number;
  readonly #pinHint: string;
  readonly #replyTimeout: number;
  /** once the job is asked to stop, ends the requests in flight when they stall (see TransportOptions.stopping) */
  readonly #stall: StallWatch | undefined;
  readonly #stopGraceMs: number;
  /** aborted by close(): requests in flight and waits between attempts end at once */
  readonly #closing = new AbortController();

  /** `endpoint` is https://host:port[/prefix]; `fingerprint` pins the certificate (null: CA checks). */
  constructor(endpoint: URL, fingerprint: string | null, o: TransportOptions = {}) {
    this.#origin = endpoint.origin;
    this.#base = endpoint.pathname.replace(/\/+$/, '');
    this.#attempts = Math.max(1, o.attempts ?? DEFAULT_ATTEMPTS);
    this.#stopping = o.stopping;
    this.#stopGraceMs = o.stopGraceMs ?? 60_000;
    if (o.stopping !== undefined) {
      const stall = new StallWatch(this.#stopGraceMs, STALL_MIN_BYTES);
      if (o.stopping.aborted) stall.start();
      else o.stopping.addEventListener('abort', () => stall.start(), { once: true });
      this.#stall = stall;
    }
    this.#baseDelayMs = o.baseDelayMs ?? 250;
    this.#maxDelayMs = o.maxDelayMs ?? 8000;
    // A pause cut short clears its timer: a command that is over must not wait for it to end.
    this.#sleep = o.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined));
    this.#retryForMs = o.retryForMs ?? 3 * 60_000;
    this.#now = o.now ?? Date.now;
    this.#pinHint = PIN_HINTS[o.pinnedBy ?? 'registration'];
    // Every request in flight and every wait listens to it: more than Node's ten at a time is usual.
    setMaxListeners(0, this.#closing.signal);
    if (o.stopping !== undefined) setMaxListeners(0, o.stopping);
    const connectTimeout = o.connectTimeoutMs ?? 10_000;
    const replyTimeout = o.replyTimeoutMs ?? 10 * 60_000;
    this.#replyTimeout = replyTimeout;
    this.#pool = new Pool(this.#origin, {
      connections: o.connections ?? 8,
      keepAliveTimeout: 30_000,
      headersTimeout: replyTimeout,
      bodyTimeout: replyTimeout,
      connect: connector(endpoint, fingerprint, connectTimeout),
    });
  }

  /**
   * Sends `req`, retrying transient failures; throws an AzbkError for every failure. A server that
   * is busy (503 with Retry-After: it holds as many bodies as it may) is asked again after the time
   * it names, for up to BUSY_MS, without using up the attempts.
   */
  async request(req: TransportRequest): Promise<TransportResponse> {
    const busyUntil = Date.now() + BUSY_MS;
    const started = this.#now();
    for (let attempt = 1; ; attempt++) {
      let retry: AzbkError;
      this.#stopIfClosed();
      try {
        const res = await this.#once(req);
        if ((res.status >= 200 && res.status < 300) || req.accept?.includes(res.status)) return res;
        const err = replyError(res.status, res.body, req, this.#origin);
        // Busy: the server turned the request away before it read its body, so it is asked again
        // whatever it is (a registration too).
        const wait = retryAfterMs(res);
        if (wait !== null && Date.now() + wait < busyUntil) {
          attempt--;
          await this.#pause(Math.round(wait / 2 + (Math.random() * wait) / 2));
          continue;
        }
        if (!((res.status >= 500 || res.status === 429 || res.status === 408) && req.idempotent)) throw err;
        retry = err;
      } catch (err) {
        if (err instanceof AzbkError) throw err;
        this.#stopIfClosed();
        const code = codeOf(err);
        if (err instanceof PinMismatch) {
          throw new AzbkError('AZBK_VAULT_UNREACHABLE', `The vault server at ${this.#origin} is not the one the credentials name: ${err.message}.`, {
            hint: this.#pinHint,
          });
        }
        const known = CONNECT_ERRORS.has(code) || (req.idempotent && NETWORK_ERRORS.has(code));
        const ours = code === SHORT_REPLY || code === SLOW_REPLY || code === PROXY_REFUSED;
        const what = (ours ? '' : code) || (err instanceof Error ? clean(err.message) : 'error');
        const hint = code === PROXY_REFUSED ? { hint: 'Check HTTPS_PROXY (the proxy, and the user and password in it if it asks for them), or name the vault\'s host in NO_PROXY to reach it directly.' } : {};
        const lost = !req.idempotent && NETWORK_ERRORS.has(code) && req.lostReply !== undefined;
        const proxy = (err as { proxy?: unknown } | null)?.proxy;
        const through = typeof proxy === 'string' ? `: the proxy ${proxy} (HTTPS_PROXY) cannot be reached` : '';
        const wrapped = lost ? req.lostReply!(what, err) : new AzbkError('AZBK_VAULT_UNREACHABLE', `Cannot reach the vault at ${this.#origin} (${what}${through}).`, { cause: err, ...hint });
        if (!known) throw wrapped;
        retry = wrapped;
      }
      const attempts = this.#stopping?.aborted === true ? Math.min(this.#attempts, DEFAULT_ATTEMPTS) : this.#attempts;
      if (attempt >= attempts || this.#now() - started >= this.#retryForMs) throw retry;
      const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
      await this.#pause(Math.round(ceiling / 2 + (Math.random() * ceiling) / 2), true);
    }
  }

  /**
   * Waits before another attempt; ends at once when the transport is closed meanwhile, or with
   * `orStop`, when the job is asked to stop during it (not a busy server's wait: it answers, and
   * asks for it). A job asked to stop before waits as any other: the work it finishes (a
   * checkpoint, the files being written) gets the usual pauses between its few tries.
   */
  async #pause(ms: number, orStop = false): Promise<void> {
    if (this.#closing.signal.aborted) return;
    const cut = orStop && this.#stopping !== undefined && !this.#stopping.aborted;
    const signals = cut ? [this.#closing.signal, this.#stopping!] : [this.#closing.signal];
    const cutShort = new AbortController();
    const stopped = new Promise<void>((resolve) => cutShort.signal.addEventListener('abort', () => resolve(), { once: true }));
    const stop = () => cutShort.abort();
    for (const s of signals) s.addEventListener('abort', stop, { once: true });
    try {
      await Promise.race([this.#sleep(ms, cutShort.signal), stopped]);
    } finally {
      for (const s of signals) s.removeEventListener('abort', stop);
    }
  }

  /** AZBK_CANCELLED once the transport is closed: no request is sent or tried again after that. */
  #stopIfClosed(): void {
    if (this.#closing.signal.aborted) throw new AzbkError('AZBK_CANCELLED', `The connection to the vault at ${this.#origin} was closed.`);
  }

  /**
   * One attempt; once the job is asked to stop, ended (AZBK_VAULT_UNREACHABLE, not tried again)
   * when the requests in flight stall (see TransportOptions.stopping).
   */
  async #once(req: TransportRequest): Promise<TransportResponse> {
    const stall = this.#stall;
    if (stall === undefined) return this.#attempt(req, this.#closing.signal);
    const signal = stall.signal;
    const leave = stall.enter();
    try {
      return await this.#attempt(req, signal, stall);
    } catch (err) {
      if (!signal.aborted || this.#closing.signal.aborted) throw err;
      const grace = Math.round(this.#stopGraceMs / 1000);
      throw new AzbkError('AZBK_VAULT_UNREACHABLE', `The vault at ${this.#origin} answered nothing and took almost nothing for ${grace} s after the stop: ${req.method} ${req.path} is given up.`, { cause: err });
    } finally {
      leave();
    }
  }

  /** One attempt: the reply with its body, at most `req.limit` bytes; what moves is told to `watch`. */
  async #attempt(req: TransportRequest, signal: AbortSignal, watch?: StallWatch): Promise<TransportResponse> {
    const out = await outgoing(req);
    const sending = watch !== undefined && out.body instanceof Readable ? counted(out.body, watch) : out.body;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.#pool.request({ origin: this.#origin, path: this.#base + req.path, method: req.method, headers: out.headers, body: sending, signal });
      watch?.replied();
    } catch (err) {
      if (out.body instanceof fs.ReadStream) {
        // A file body that failed to read is this machine's failure, not the network's: not
        // retried. A connection that failed ends the file's stream with its own error, or aborts
        // it (ABORT_ERR: a connection reset once the server had stopped reading): that one is.
        const failed = out.body.errored;
        if (failed !== null && !isNetworkError(failed) && codeOf(failed) !== 'ABORT_ERR') throw unreadable((req.body as FileBody).file, failed);
        out.body.destroy(); // closes the file, whether or not the request started reading it
      }
      throw err;
    }
    if (req.method === 'HEAD') {
      await res.body.dump();
      return { status: res.statusCode, headers: res.headers, body: Buffer.alloc(0) };
    }
    const pace = new ReplyPace(this.#replyTimeout, this.#now);
    // An error's reply is read up to ERROR_BODY_LIMIT whatever the request allows (the status is
    // what counts: a 503 to a small range is still tried again), and only its start is kept.
    if (res.statusCode >= 400) return { status: res.statusCode, headers: res.headers, body: await errorBody(res.body, pace, watch) };
    const limit = req.limit;
    const declared = Number(res.headers['content-length']);
    const tooBig = () => new AzbkError('AZBK_VAULT_CORRUPT', `The vault server sent a larger reply than ${req.method} ${req.path} allows.`);
    if (Number.isFinite(declared) && declared > limit) {
      drop(res.body);
      throw tooBig();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        drop(res.body);
        throw tooBig();
      }
      pace.check(size, res.body);
      watch?.moved(chunk.length);
      chunks.push(chunk);
    }
    const body = req.into !== undefined && res.statusCode < 300 && size <= req.into.length ? gather(chunks, req.into) : Buffer.concat(chunks, size);
    if (Number.isFinite(declared) && declared !== size) throw Object.assign(new Error('the reply was cut short'), { code: SHORT_REPLY });
    return { status: res.statusCode, headers: res.headers, body };
  }

  /**
   * Closes every connection. A request still in flight or waiting to be tried again ends with
   * AZBK_CANCELLED: a command that is over (a job that failed, say) does not go on asking a busy
   * server for minutes.
   */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    this.#stall?.close();
    await this.#pool.destroy();
  }
}

/** The least the requests in flight must move in each grace period once the job is asked to stop (about 1 KiB/s). */
const STALL_MIN_BYTES = 64 * 1024;

/** `source` as it is read, each piece told to `watch` as moved. */
function counted(source: Readable, watch: StallWatch): Readable {
  return Readable.from(
    (async function* () {
      for await (const piece of source as AsyncIterable<Buffer>) {
        watch.moved(piece.length);
        yield piece;
      }
    })(),
    { objectMode: false },
  );
}

/** The slowest a reply's body may come once it has taken the reply timeout: 1 KiB/s on average. */
const MIN_REPLY_RATE = 1024;

/**
 * Watches a reply's body arrive. The body timeout bounds each wait for its next piece; this bounds
 * the whole: a server that keeps sending a trickle (a byte every few minutes) would otherwise hold a
 * command, and the machine's job lock, for as long as it likes.
 */
class ReplyPace {
  readonly #started: number;

  constructor(
    private readonly graceMs: number,
    private readonly now: () => number,
  ) {
    this.#started = now();
  }

  /** Throws (a network error, SLOW_REPLY) when `size` bytes came too slowly; stops reading `body` then. */
  check(size: number, body: Readable): void {
    const elapsed = this.now() - this.#started;
    if (elapsed <= this.graceMs || size >= (elapsed / 1000) * MIN_REPLY_RATE) return;
    drop(body);
    throw Object.assign(new Error(`its reply came slower than ${MIN_REPLY_RATE / 1024} KiB/s`), { code: SLOW_REPLY });
  }
}

/** The most of an error reply's body read: its JSON is a code and a message. */
const ERROR_BODY_LIMIT = 64 * 1024;

/** The start of an error reply's body, at most ERROR_BODY_LIMIT bytes; the rest is not read. */
async function errorBody(body: Readable, pace: ReplyPace, watch: StallWatch | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    watch?.moved(chunk.length);
    pace.check(size, body);
    if (size >= ERROR_BODY_LIMIT) {
      drop(body);
      break;
    }
  }
  return Buffer.concat(chunks, size).subarray(0, ERROR_BODY_LIMIT);
}

/**
 * Stops reading a reply's body. undici's body stream then errs with an abort: with nobody
 * listening, that error would end the process.
 */
function drop(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Copies `chunks` one after another into `into`; a view of what they fill. */
function gather(chunks: readonly Buffer[], into: Buffer): Buffer {
  let at = 0;
  for (const c of chunks) at += c.copy(into, at);
  return into.subarray(0, at);
}

/**
 * A request body larger than this goes to the socket in pieces of this size: TLS encrypts each as
 * it is written, instead of copying a whole 16 MiB pack at once (two of them in flight).
 */
const BODY_PIECE = 256 * 1024;

/**
 * The request's headers and body as undici takes them: a large body as a fresh stream of pieces,
 * a file body as a fresh stream of the file (one for each attempt). A file that cannot be opened
 * or is shorter than its length is AZBK_LOCAL_IO.
 */
async function outgoing(req: TransportRequest): Promise<{ headers: Record<string, string> | undefined; body: string | Buffer | Readable | null }> {
  const { headers, body } = req;
  if (body === undefined) return { headers, body: null };
  if (typeof body === 'string') return { headers, body };
  if (!(body instanceof Uint8Array)) {
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(body.file, 'r');
      const { size } = await fh.stat();
      if (size < body.length) throw new Error(`it holds ${size} bytes, not ${body.length}`);
    } catch (err) {
      await fh?.close();
      throw unreadable(body.file, err);
    }
    if (body.length === 0) {
      await fh.close();
      return { headers, body: '' };
    }
    // end: a file that grew since is sent as the length its hash was taken over
    return { headers: { ...headers, 'content-length': String(body.length) }, body: fh.createReadStream({ highWaterMark: BODY_PIECE, end: body.length - 1 }) };
  }
  if (body.length <= BODY_PIECE) return { headers, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
  return { headers: { ...headers, 'content-length': String(body.length) }, body: Readable.from(pieces(body), { objectMode: false }) };
}

function unreadable(file: string, err: unknown): AzbkError {
  const why = codeOf(err) || (err instanceof Error ? clean(err.message) : 'error');
  return new AzbkError('AZBK_LOCAL_IO', `${file} could not be read to be sent to the vault (${why}).`, { cause: err });
}

/** The body as views of BODY_PIECE bytes. */
function* pieces(body: Uint8Array): Generator<Buffer, void, undefined> {
  for (let at = 0; at < body.length; at += BODY_PIECE) yield Buffer.from(body.buffer, body.byteOffset + at, Math.min(BODY_PIECE, body.length - at));
}
