/**
 * A BlobStore wrapper for fault-injection tests, after kopia's FaultyStorage: tests add rules per
 * method that make chosen calls fail, lose their reply or hang, and read call counters to assert
 * what the code under test did.
 */
import { AzbkError } from '../../shared/errors.js';
import type { BlobStore, ObjectWriter } from './blobstore.js';
import type { ByteRange } from './keys.js';

/**
 * The BlobStore methods faults can be injected into; 'write' is a write of an ObjectWriter (its
 * key is ''), whose `finish` counts as a 'put' of its key.
 */
export type StoreMethod = 'put' | 'get' | 'stat' | 'list' | 'delete' | 'write';

/**
 * How a matching call fails:
 * - 'error': throws without calling the inner store;
 * - 'lost-reply': calls the inner store (so a put is stored, a delete done), then throws, as when
 *   a request succeeds but its reply never arrives; a list yields every key first, then throws;
 * - 'hang': waits `delayMs` (forever when not given), then throws without calling the inner store.
 */
export type FaultMode = 'error' | 'lost-reply' | 'hang';

/** A rule: which calls of one method fail, and how. */
export interface FaultRule {
  /** How many matching calls fail (default 1; Infinity for all). */
  readonly times?: number;
  /** Matching calls to let through before the first fault (default 0). */
  readonly after?: number;
  /** Default 'error'. */
  readonly mode?: FaultMode;
  /**
   * What to throw: an error, or a function making one per fault (default a new AzbkError
   * AZBK_VAULT_UNREACHABLE, which callers may retry).
   */
  readonly error?: Error | (() => unknown);
  /** Restricts the rule to some keys (the prefix, for list). Default: every call. */
  readonly match?: (key: string) => boolean;
  /** For 'hang': how long to wait before throwing (default forever). */
  readonly delayMs?: number;
}

interface ActiveRule extends FaultRule {
  seen: number;
  fired: number;
}

const zero = (): Record<StoreMethod, number> => ({ put: 0, get: 0, stat: 0, list: 0, delete: 0, write: 0 });

/**
 * Wraps `inner` and injects the faults added with `fail`. Rules of one method are checked in the
 * order they were added; the first that matches the call and has faults left decides it. Each
 * rule counts its own matching calls for `after` and `times`. `calls` counts every call per
 * method, `faults` the calls that were made to fail.
 */
export class FaultyBlobStore implements BlobStore {
  readonly calls = zero();
  readonly faults = zero();
  readonly #inner: BlobStore;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #rules = new Map<StoreMethod, ActiveRule[]>();

  /** `sleep` waits for 'hang' faults (default: a timer). */
  constructor(inner: BlobStore, options: { sleep?: (ms: number) => Promise<void> } = {}) {
    this.#inner = inner;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** Adds a rule for `method`; returns this for chaining. */
  fail(method: StoreMethod, rule: FaultRule = {}): this {
    const rules = this.#rules.get(method) ?? [];
    rules.push({ ...rule, seen: 0, fired: 0 });
    this.#rules.set(method, rules);
    return this;
  }

  /** Removes every rule; counters are kept. */
  clearFaults(): void {
    this.#rules.clear();
  }

  put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
    return this.#call('put', key, () => this.#inner.put(key, data));
  }

  get(key: string, range?: ByteRange): Promise<Buffer | null> {
    return this.#call('get', key, () => this.#inner.get(key, range));
  }

  stat(key: string): Promise<{ size: number } | null> {
    return this.#call('stat', key, () => this.#inner.stat(key));
  }

  async *list(prefix: string): AsyncIterable<string> {
    const rule = this.#pick('list', prefix);
    if (rule === undefined) return yield* this.#inner.list(prefix);
    if (rule.mode === 'lost-reply') yield* this.#inner.list(prefix);
    else await this.#hangIfAsked(rule);
    throw makeError(rule, 'list', prefix);
  }

  delete(key: string): Promise<void> {
    return this.#call('delete', key, () => this.#inner.delete(key));
  }

  /** Offered when the inner store offers it; a failed `finish` drops the object, as a real one does. */
  get openWriter(): (() => Promise<ObjectWriter>) | undefined {
    const inner = this.#inner;
    if (inner.openWriter === undefined) return undefined;
    return async () => {
      const w = await inner.openWriter!();
      return {
        write: (data) => this.#call('write', '', () => w.write(data)),
        finish: (key) =>
          this.#call('put', key, () => w.finish(key)).catch(async (err: unknown) => {
            await w.abort();
            throw err;
          }),
        abort: () => w.abort(),
      };
    };
  }

  async #call<T>(method: StoreMethod, key: string, run: () => Promise<T>): Promise<T> {
    const rule = this.#pick(method, key);
    if (rule === undefined) return run();
    if (rule.mode === 'lost-reply') await run();
    else await this.#hangIfAsked(rule);
    throw makeError(rule, method, key);
  }

  /** Counts the call and returns the rule that makes it fail, if any. */
  #pick(method: StoreMethod, key: string): ActiveRule | undefined {
    this.calls[method]++;
    for (const rule of this.#rules.get(method) ?? []) {
      if (rule.match !== undefined && !rule.match(key)) continue;
      rule.seen++;
      if (rule.seen <= (rule.after ?? 0) || rule.fired >= (rule.times ?? 1)) continue;
      rule.fired++;
      this.faults[method]++;
      return rule;
    }
    return undefined;
  }

  async #hangIfAsked(rule: FaultRule): Promise<void> {
    if (rule.mode !== 'hang') return;
    if (rule.delayMs === undefined) await new Promise<never>(() => undefined);
    else await this.#sleep(rule.delayMs);
  }
}

function makeError(rule: FaultRule, method: StoreMethod, key: string): unknown {
  if (typeof rule.error === 'function') return rule.error();
  if (rule.error !== undefined) return rule.error;
  return new AzbkError('AZBK_VAULT_UNREACHABLE', `Injected fault: ${method} "${key}" failed.`);
}
