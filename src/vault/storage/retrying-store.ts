/**
 * A BlobStore wrapper that retries transient failures (AzbkError AZBK_VAULT_UNREACHABLE) with
 * exponential back-off and jitter. Every other error, AZBK_BAD_INPUT included, goes straight to
 * the caller.
 */
import { isAzbkError } from '../../shared/errors.js';
import type { BlobStore, ObjectWriter } from './blobstore.js';
import type { ByteRange } from './keys.js';

/** Disk errors that waiting does not mend: retrying them only delays the message. */
const LASTING = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EXDEV']);
/** Nor does it mend a storage service's refusal of the credentials (a wrong key, an expired token). */
const LASTING_STATUS = new Set([401, 403]);

/** Whether an AZBK_VAULT_UNREACHABLE stands for a disk error or a refusal that a retry cannot mend. */
function lasting(error: Error): boolean {
  const cause = error.cause as { code?: unknown; statusCode?: unknown } | undefined;
  return (typeof cause?.code === 'string' && LASTING.has(cause.code)) || (typeof cause?.statusCode === 'number' && LASTING_STATUS.has(cause.statusCode));
}

/** What a RetryingBlobStore reports before each retry, e.g. to log it. */
export interface RetryEvent {
  readonly op: 'put' | 'get' | 'stat' | 'list' | 'delete';
  /** The key, or the prefix for `list`. */
  readonly key: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: unknown;
}

/** Options of RetryingBlobStore; every field has a default. */
export interface RetryOptions {
  /** Tries per operation, the first included (default 5). */
  readonly attempts?: number;
  /** Delay before the first retry; it doubles for each further retry (default 200 ms). */
  readonly baseDelayMs?: number;
  /** Ceiling of one delay (default 10 s). */
  readonly maxDelayMs?: number;
  /** Waits `ms` milliseconds (default: a timer); tests pass a fake that returns at once. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** A number in [0, 1) for the jitter (default Math.random). */
  readonly random?: () => number;
  /** Called before each retry. */
  readonly onRetry?: (event: RetryEvent) => void;
  /**
   * No retry starts once an operation has taken this long (default 2 min): storage that hangs (an
   * attempt ends only by a no-progress timeout of a minute) fails in minutes, not after five of
   * them, and a vault service answers its client before either gives up on the connection.
   */
  readonly deadlineMs?: number;
  /** The clock (default Date.now); tests pass a fake. */
  readonly now?: () => number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wraps `inner`, retrying each operation up to `attempts` times in all while it throws
 * AZBK_VAULT_UNREACHABLE, then throwing the last error. The delay before retry n (from 1) is
 * drawn from [d/2, d) with d = min(maxDelayMs, baseDelayMs * 2^(n-1)).
 *
 * - `put`: a failed attempt may still have created the object (the reply was lost), so when a
 *   retry returns 'exists' the result is 'exists'. Callers that must tell their own write from
 *   someone else's compare the content.
 * - `list`: when listing fails midway the listing restarts, and keys already yielded are skipped,
 *   so each key is yielded once; this holds the yielded keys in memory.
 */
export class RetryingBlobStore implements BlobStore {
  readonly #inner: BlobStore;
  readonly #attempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #onRetry: ((event: RetryEvent) => void) | undefined;
  readonly #deadlineMs: number;
  readonly #now: () => number;

  constructor(inner: BlobStore, options: RetryOptions = {}) {
    this.#inner = inner;
    this.#attempts = Math.max(1, Math.floor(options.attempts ?? 5));
    this.#baseDelayMs = options.baseDelayMs ?? 200;
    this.#maxDelayMs = options.maxDelayMs ?? 10_000;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
    this.#onRetry = options.onRetry;
    this.#deadlineMs = options.deadlineMs ?? 2 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
    return this.#retry('put', key, () => this.#inner.put(key, data));
  }

  /**
   * Opening a writer is retried; its writes and `finish` are not, as the bytes are gone by then: a
   * failed streamed object fails its caller, who writes it again.
   */
  get openWriter(): (() => Promise<ObjectWriter>) | undefined {
    const inner = this.#inner;
    if (inner.openWriter === undefined) return undefined;
    return () => this.#retry('put', 'a new object', () => inner.openWriter!());
  }

  get(key: string, range?: ByteRange): Promise<Buffer | null> {
    return this.#retry('get', key, () => this.#inner.get(key, range));
  }

  stat(key: string): Promise<{ size: number } | null> {
    return this.#retry('stat', key, () => this.#inner.stat(key));
  }

  async *list(prefix: string): AsyncIterable<string> {
    const seen = new Set<string>();
    const started = this.#now();
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const key of this.#inner.list(prefix)) {
          if (seen.has(key)) continue;
          seen.add(key);
          yield key;
        }
        return;
      } catch (err) {
        await this.#backOff('list', prefix, attempt, err, started);
      }
    }
  }

  delete(key: string): Promise<void> {
    return this.#retry('delete', key, () => this.#inner.delete(key));
  }

  async #retry<T>(op: RetryEvent['op'], key: string, run: () => Promise<T>): Promise<T> {
    const started = this.#now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        await this.#backOff(op, key, attempt, err, started);
      }
    }
  }

  /** Rethrows `error` unless it is transient and attempts and time (since `started`) remain; otherwise waits. */
  async #backOff(op: RetryEvent['op'], key: string, attempt: number, error: unknown, started: number): Promise<void> {
    if (!isAzbkError(error, 'AZBK_VAULT_UNREACHABLE') || lasting(error) || attempt >= this.#attempts) throw error;
    const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
    const delayMs = Math.round(ceiling / 2 + (this.#random() * ceiling) / 2);
    if (this.#now() - started + delayMs >= this.#deadlineMs) throw error;
    this.#onRetry?.({ op, key, attempt, delayMs, error });
    await this.#sleep(delayMs);
  }
}
