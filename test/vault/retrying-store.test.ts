import { describe, expect, test } from 'vitest';
import { AzbkError } from '../../src/shared/errors.js';
import { FaultyBlobStore } from '../../src/vault/storage/faulty-store.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { RetryingBlobStore, type RetryEvent, type RetryOptions } from '../../src/vault/storage/retrying-store.js';
import { expectAzbkError, listAll, runBlobStoreConformance } from './storage-conformance.js';

/** A memory store behind a fault injector behind the retry wrapper, with a sleep that only records. */
function stack(options: RetryOptions = {}) {
  const memory = new MemoryBlobStore();
  const faulty = new FaultyBlobStore(memory);
  const sleeps: number[] = [];
  const retries: RetryEvent[] = [];
  const store = new RetryingBlobStore(faulty, {
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    onRetry: (event) => retries.push(event),
    ...options,
  });
  return { memory, faulty, store, sleeps, retries };
}

runBlobStoreConformance('RetryingBlobStore over FaultyBlobStore over MemoryBlobStore', () => stack().store, {
  largeObjectBytes: 1024 * 1024,
});

describe('RetryingBlobStore', () => {
  test('starts no retry once an operation has taken its deadline: storage that hangs fails in minutes', async () => {
    // Each attempt ends only by a no-progress timeout of a minute.
    let clock = 0;
    const { memory, faulty, store } = stack({ now: () => clock, deadlineMs: 120_000 });
    await memory.put('k', Buffer.from('v'));
    faulty.fail('get', { times: 5 });
    const inner = faulty.get.bind(faulty);
    faulty.get = async (key, range) => {
      clock += 60_000;
      return inner(key, range);
    };
    await expectAzbkError(store.get('k'), 'AZBK_VAULT_UNREACHABLE');
    expect(faulty.calls.get).toBe(2);
  });

  test('retries transient errors with growing, jittered delays', async () => {
    const { memory, faulty, store, sleeps, retries } = stack();
    await memory.put('k', Buffer.from('v'));
    faulty.fail('get', { times: 3 });
    expect((await store.get('k'))?.toString()).toBe('v');
    expect(faulty.calls.get).toBe(4);
    // random() = 0.5 puts each delay at 3/4 of its ceiling: 200, 400, 800 ms.
    expect(sleeps).toEqual([150, 300, 600]);
    expect(retries.map((r) => [r.op, r.key, r.attempt])).toEqual([
      ['get', 'k', 1],
      ['get', 'k', 2],
      ['get', 'k', 3],
    ]);
  });

  test('delays stay within [ceiling/2, ceiling) and under maxDelayMs', async () => {
    for (const random of [() => 0, () => 0.999999]) {
      const { faulty, store, sleeps } = stack({ attempts: 10, baseDelayMs: 100, maxDelayMs: 1000, random });
      faulty.fail('stat', { times: 9 });
      expect(await store.stat('k')).toBeNull();
      for (const [i, ms] of sleeps.entries()) {
        const ceiling = Math.min(1000, 100 * 2 ** i);
        expect(ms).toBeGreaterThanOrEqual(ceiling / 2);
        expect(ms).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  test('gives up after `attempts` tries with the last error', async () => {
    const { faulty, store, sleeps } = stack({ attempts: 4 });
    faulty.fail('put', { times: Infinity });
    await expectAzbkError(store.put('k', Buffer.from('v')), 'AZBK_VAULT_UNREACHABLE');
    expect(faulty.calls.put).toBe(4);
    expect(sleeps).toHaveLength(3);
  });

  test('does not retry other errors', async () => {
    const { faulty, store, sleeps } = stack();
    await expectAzbkError(store.put('../x', Buffer.from('v')), 'AZBK_BAD_INPUT');
    expect(faulty.calls.put).toBe(1);
    faulty.fail('get', { error: new AzbkError('AZBK_VAULT_CORRUPT', 'bad') });
    await expectAzbkError(store.get('k'), 'AZBK_VAULT_CORRUPT');
    faulty.fail('delete', { error: () => new TypeError('a bug') });
    await expect(store.delete('k')).rejects.toBeInstanceOf(TypeError);
    expect(faulty.calls.get).toBe(1);
    expect(faulty.calls.delete).toBe(1);
    expect(sleeps).toEqual([]);
  });

  test('does not retry a disk error that waiting does not mend (full, read-only, permission)', async () => {
    for (const code of ['ENOSPC', 'EROFS', 'EACCES']) {
      const { faulty, store, sleeps } = stack();
      const error = new AzbkError('AZBK_VAULT_UNREACHABLE', `Cannot put: ${code}.`, { cause: Object.assign(new Error(code), { code }) });
      faulty.fail('put', { error, times: Infinity });
      await expect(store.put('k', Buffer.from('v'))).rejects.toBe(error);
      expect(faulty.calls.put).toBe(1);
      expect(sleeps).toEqual([]);
    }
    // Nor a storage service's refusal of the credentials.
    for (const statusCode of [401, 403]) {
      const { faulty, store, sleeps } = stack();
      const error = new AzbkError('AZBK_VAULT_UNREACHABLE', 'Cannot put: access denied.', { cause: Object.assign(new Error('denied'), { name: 'RestError', statusCode }) });
      faulty.fail('put', { error, times: Infinity });
      await expect(store.put('k', Buffer.from('v'))).rejects.toBe(error);
      expect(faulty.calls.put).toBe(1);
      expect(sleeps).toEqual([]);
    }
    // An I/O error may pass: it is tried again.
    const { faulty, store } = stack();
    faulty.fail('put', { error: new AzbkError('AZBK_VAULT_UNREACHABLE', 'Cannot put: EIO.', { cause: Object.assign(new Error('EIO'), { code: 'EIO' }) }), times: 1 });
    await store.put('k', Buffer.from('v'));
    expect(faulty.calls.put).toBe(2);
  });

  test('a put whose reply was lost succeeds on retry as exists, stored once', async () => {
    const { memory, faulty, store } = stack();
    faulty.fail('put', { mode: 'lost-reply' });
    expect(await store.put('k', Buffer.from('v'))).toBe('exists');
    expect(faulty.calls.put).toBe(2);
    expect((await memory.get('k'))?.toString()).toBe('v');
  });

  test('a hanging call that times out is retried', async () => {
    const waited: number[] = [];
    const slow = new FaultyBlobStore(new MemoryBlobStore(), { sleep: async (ms) => void waited.push(ms) });
    slow.fail('stat', { mode: 'hang', delayMs: 30_000 });
    expect(await new RetryingBlobStore(slow, { sleep: async () => undefined }).stat('k')).toBeNull();
    expect(waited).toEqual([30_000]);
    expect(slow.calls.stat).toBe(2);
  });

  test('list restarts after a failure and yields each key once', async () => {
    const { memory, faulty, store } = stack();
    for (const key of ['p/1', 'p/2', 'p/3']) await memory.put(key, Buffer.from(key));
    faulty.fail('list', { mode: 'lost-reply' });
    faulty.fail('list', { times: 1 });
    const seen: string[] = [];
    for await (const key of store.list('p/')) seen.push(key);
    expect(seen.sort()).toEqual(['p/1', 'p/2', 'p/3']);
    expect(faulty.calls.list).toBe(3);
    await expectAzbkError(listAll(store, '//'), 'AZBK_BAD_INPUT');
    expect(faulty.calls.list).toBe(4);
  });
});

describe('FaultyBlobStore', () => {
  test('fails the matching calls after `after`, `times` times, and counts calls and faults', async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    faulty.fail('put', { after: 1, times: 2, match: (key) => key.startsWith('packs/') });
    expect(await faulty.put('packs/1', Buffer.from('1'))).toBe('created');
    expect(await faulty.put('config', Buffer.from('c'))).toBe('created');
    await expectAzbkError(faulty.put('packs/2', Buffer.from('2')), 'AZBK_VAULT_UNREACHABLE');
    await expectAzbkError(faulty.put('packs/3', Buffer.from('3')), 'AZBK_VAULT_UNREACHABLE');
    expect(await faulty.put('packs/4', Buffer.from('4'))).toBe('created');
    expect(faulty.calls).toEqual({ put: 5, get: 0, stat: 0, list: 0, delete: 0, write: 0 });
    expect(faulty.faults.put).toBe(2);
    expect(await listAll(faulty, '')).toEqual(['config', 'packs/1', 'packs/4']);
  });

  test("'error' leaves the inner store untouched; 'lost-reply' does the work, then fails", async () => {
    const memory = new MemoryBlobStore();
    const faulty = new FaultyBlobStore(memory);
    faulty.fail('put', { mode: 'error' }).fail('put', { mode: 'lost-reply' });
    await expectAzbkError(faulty.put('a', Buffer.from('x')), 'AZBK_VAULT_UNREACHABLE');
    expect(memory.size).toBe(0);
    await expectAzbkError(faulty.put('a', Buffer.from('x')), 'AZBK_VAULT_UNREACHABLE');
    expect(memory.size).toBe(1);
    faulty.fail('delete', { mode: 'lost-reply' });
    await expectAzbkError(faulty.delete('a'), 'AZBK_VAULT_UNREACHABLE');
    expect(memory.size).toBe(0);
  });

  test("'hang' without delayMs never settles; clearFaults removes the rules", async () => {
    const faulty = new FaultyBlobStore(new MemoryBlobStore());
    faulty.fail('get', { mode: 'hang' });
    const outcome = await Promise.race([
      faulty.get('k').then(() => 'settled', () => 'settled'),
      new Promise((resolve) => setTimeout(() => resolve('pending'), 20)),
    ]);
    expect(outcome).toBe('pending');
    faulty.fail('get', { times: Infinity });
    faulty.clearFaults();
    expect(await faulty.get('k')).toBeNull();
  });
});
