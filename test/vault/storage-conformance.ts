/**
 * The shared BlobStore suite: every backend (disk, memory, Azure Blob Storage) runs the same tests
 * of the contract in src/vault/storage/blobstore.ts.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import type { BlobStore } from '../../src/vault/storage/blobstore.js';

/** Options of the suite, for backends where the defaults are too slow. */
export interface ConformanceOptions {
  /** Size of the large-object round trip (default 20 MiB). */
  readonly largeObjectBytes?: number;
}

/** Every key in `store` that starts with `prefix`, sorted. */
export async function listAll(store: BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.list(prefix)) keys.push(key);
  return keys.sort();
}

/** Asserts that `promise` rejects with an AzbkError of `code`. */
export async function expectAzbkError(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'AzbkError', code });
}

const INVALID_KEYS: readonly string[] = [
  '',
  '../x',
  'a/../b',
  '..',
  '.',
  '/abs',
  'a/',
  'a//b',
  'a/./b',
  'a\\b',
  'C:x',
  'a b',
  'a\0b',
  'a\nb',
  'é',
  'x'.repeat(600),
];

const INVALID_PREFIXES: readonly string[] = [
  '/',
  '/abs',
  './',
  '../',
  '../x',
  'a//',
  'a//b',
  'a/./b',
  'a/../',
  'a\\b',
  'a b',
  'a\0b',
  'é',
  'x'.repeat(513),
];

/**
 * Registers a describe block `name` that runs the contract tests against stores made by
 * `factory`. The factory is called once per test, inside the test, and must return an empty
 * store (it may use makeTempDir).
 */
export function runBlobStoreConformance(
  name: string,
  factory: () => Promise<BlobStore> | BlobStore,
  options: ConformanceOptions = {},
): void {
  describe(`BlobStore conformance: ${name}`, () => {
    test('put then get returns the same bytes', async () => {
      const store = await factory();
      const data = randomBytes(1000);
      expect(await store.put('a/b/c', data)).toBe('created');
      expect(await store.get('a/b/c')).toEqual(data);
      expect(await store.get('a/b/d')).toBeNull();
      expect(await store.get('zz')).toBeNull();
    });

    test('put of an existing key returns exists and keeps the first content', async () => {
      const store = await factory();
      expect(await store.put('k', Buffer.from('first'))).toBe('created');
      expect(await store.put('k', Buffer.from('second, longer'))).toBe('exists');
      expect(await store.put('k', Buffer.from('first'))).toBe('exists');
      expect((await store.get('k'))?.toString()).toBe('first');
    });

    test('empty objects exist and read back empty', async () => {
      const store = await factory();
      expect(await store.put('empty', new Uint8Array(0))).toBe('created');
      expect(await store.get('empty')).toEqual(Buffer.alloc(0));
      expect(await store.stat('empty')).toEqual({ size: 0 });
      expect(await store.get('empty', { offset: 0, length: 10 })).toEqual(Buffer.alloc(0));
      expect(await listAll(store, '')).toEqual(['empty']);
    });

    test('accepts keys made of every allowed character, up to 512 characters', async () => {
      const store = await factory();
      const keys = ['A-Z_a.z-09', '...a', 'a..', '-/_/x', `${'d'.repeat(200)}/${'e'.repeat(200)}/f`];
      const longest = `${'x'.repeat(200)}/${'y'.repeat(200)}/${'z'.repeat(110)}`;
      expect(longest).toHaveLength(512);
      for (const key of [...keys, longest]) expect(await store.put(key, Buffer.from(key))).toBe('created');
      for (const key of [...keys, longest]) expect((await store.get(key))?.toString()).toBe(key);
      expect(await listAll(store, '..')).toEqual(['...a']);
      expect(await listAll(store, 'a.')).toEqual(['a..']);
      expect(await listAll(store, 'x'.repeat(200))).toEqual([longest]);
    });

    test('get with a range returns that slice, clipped at the end', async () => {
      const store = await factory();
      const data = randomBytes(4096);
      await store.put('r', data);
      expect(await store.get('r', { offset: 100, length: 200 })).toEqual(data.subarray(100, 300));
      expect(await store.get('r', { offset: 0, length: 4096 })).toEqual(data);
      expect(await store.get('r', { offset: 4000, length: 1000 })).toEqual(data.subarray(4000));
      expect(await store.get('r', { offset: 4096, length: 10 })).toEqual(Buffer.alloc(0));
      expect(await store.get('r', { offset: 10_000, length: 10 })).toEqual(Buffer.alloc(0));
      expect(await store.get('r', { offset: 7, length: 0 })).toEqual(Buffer.alloc(0));
      expect(await store.get('missing', { offset: 0, length: 0 })).toBeNull();
    });

    test('get rejects invalid ranges', async () => {
      const store = await factory();
      await store.put('r', Buffer.from('abc'));
      for (const range of [
        { offset: -1, length: 1 },
        { offset: 0, length: -1 },
        { offset: 0.5, length: 1 },
        { offset: 0, length: Number.NaN },
      ]) {
        await expectAzbkError(store.get('r', range), 'AZBK_BAD_INPUT');
      }
    });

    test('returned buffers are the caller’s own', async () => {
      const store = await factory();
      const data = Buffer.from('original');
      await store.put('m', data);
      data.fill(0);
      const got = await store.get('m');
      got?.fill(0);
      expect((await store.get('m'))?.toString()).toBe('original');
    });

    test('stat returns the size, or null when missing', async () => {
      const store = await factory();
      await store.put('s/t', randomBytes(1234));
      expect(await store.stat('s/t')).toEqual({ size: 1234 });
      expect(await store.stat('s/u')).toBeNull();
      expect(await store.stat('s')).toBeNull();
    });

    test('list yields the keys under a prefix, with no false prefix matches', async () => {
      const store = await factory();
      const keys = ['a/b/1', 'a/b/2/3', 'a/bc/1', 'a/bd', 'ab/1', 'x', 'xy'];
      for (const key of keys) await store.put(key, Buffer.from(key));
      expect(await listAll(store, '')).toEqual([...keys].sort());
      expect(await listAll(store, 'a/b/')).toEqual(['a/b/1', 'a/b/2/3']);
      expect(await listAll(store, 'a/b')).toEqual(['a/b/1', 'a/b/2/3', 'a/bc/1', 'a/bd']);
      expect(await listAll(store, 'a/')).toEqual(['a/b/1', 'a/b/2/3', 'a/bc/1', 'a/bd']);
      expect(await listAll(store, 'a')).toEqual(['a/b/1', 'a/b/2/3', 'a/bc/1', 'a/bd', 'ab/1']);
      expect(await listAll(store, 'a/b/2/3')).toEqual(['a/b/2/3']);
      expect(await listAll(store, 'x')).toEqual(['x', 'xy']);
      expect(await listAll(store, 'x/')).toEqual([]);
      expect(await listAll(store, 'zz/')).toEqual([]);
      expect(await listAll(store, 'a/b/1/')).toEqual([]);
    });

    test('list yields each key once across many folders', async () => {
      const store = await factory();
      const keys: string[] = [];
      for (let i = 0; i < 300; i++) keys.push(`packs/${(i % 16).toString(16).padStart(2, '0')}/${i}`);
      await Promise.all(keys.map((key) => store.put(key, Buffer.from(key))));
      expect(await listAll(store, 'packs/')).toEqual([...keys].sort());
    });

    test('delete removes an object; deleting a missing key is fine', async () => {
      const store = await factory();
      await store.put('d/1', Buffer.from('x'));
      await store.put('d/2', Buffer.from('y'));
      await store.delete('d/1');
      expect(await store.get('d/1')).toBeNull();
      expect(await store.stat('d/1')).toBeNull();
      expect(await listAll(store, 'd/')).toEqual(['d/2']);
      await store.delete('d/1');
      await store.delete('nothing/here');
      expect(await store.put('d/1', Buffer.from('again'))).toBe('created');
      expect((await store.get('d/1'))?.toString()).toBe('again');
    });

    test('invalid keys and prefixes are rejected with AZBK_BAD_INPUT', async () => {
      const store = await factory();
      for (const key of INVALID_KEYS) {
        await expectAzbkError(store.put(key, Buffer.from('x')), 'AZBK_BAD_INPUT');
        await expectAzbkError(store.get(key), 'AZBK_BAD_INPUT');
        await expectAzbkError(store.get(key, { offset: 0, length: 1 }), 'AZBK_BAD_INPUT');
        await expectAzbkError(store.stat(key), 'AZBK_BAD_INPUT');
        await expectAzbkError(store.delete(key), 'AZBK_BAD_INPUT');
      }
      for (const prefix of INVALID_PREFIXES) {
        await expectAzbkError(listAll(store, prefix), 'AZBK_BAD_INPUT');
      }
      expect(await listAll(store, '')).toEqual([]);
    });

    test('of 20 concurrent puts of one key exactly one creates it, whole', async () => {
      const store = await factory();
      const contents = Array.from({ length: 20 }, (_, i) => Buffer.alloc(256 * 1024 + i, i));
      const results = await Promise.all(contents.map((data) => store.put('race/key', data)));
      expect(results.filter((r) => r === 'created')).toHaveLength(1);
      expect(results.filter((r) => r === 'exists')).toHaveLength(19);
      const stored = await store.get('race/key');
      // Buffer.equals: toEqual compares big buffers byte by byte and is slow.
      expect(stored?.equals(contents[results.indexOf('created')]!)).toBe(true);
      expect(await listAll(store, '')).toEqual(['race/key']);
    });

    test('large objects round trip', async () => {
      const store = await factory();
      const size = options.largeObjectBytes ?? 20 * 1024 * 1024;
      const data = randomBytes(size);
      expect(await store.put('big/object', data)).toBe('created');
      expect(await store.stat('big/object')).toEqual({ size });
      const got = await store.get('big/object');
      expect(got?.length).toBe(size);
      expect(got?.equals(data)).toBe(true);
      const tail = await store.get('big/object', { offset: size - 5000, length: 10_000 });
      expect(tail?.equals(data.subarray(size - 5000))).toBe(true);
    });
  });
}
