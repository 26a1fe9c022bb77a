import { mkdir, readdir, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { AzbkError } from '../../src/shared/errors.js';
import { FsBlobStore, TEMP_DIR, toStorageError } from '../../src/vault/storage/fs-store.js';
import { validateKey, validatePrefix } from '../../src/vault/storage/keys.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { makeTempDir } from '../helpers/tmp.js';
import { expectAzbkError, listAll, runBlobStoreConformance } from './storage-conformance.js';

runBlobStoreConformance('FsBlobStore', async () => new FsBlobStore(await makeTempDir('azbk-fs-store-')));
runBlobStoreConformance('MemoryBlobStore', () => new MemoryBlobStore());

describe('validateKey and validatePrefix', () => {
  test('return valid input unchanged', () => {
    expect(validateKey('packs/ab/abcdef')).toBe('packs/ab/abcdef');
    expect(validatePrefix('')).toBe('');
    expect(validatePrefix('packs/')).toBe('packs/');
    expect(validatePrefix('packs/a')).toBe('packs/a');
  });

  test('name the offending key in the message, cut short and escaped', () => {
    expect(() => validateKey('a\0b')).toThrow(/"a\\u0000b"/);
    expect(() => validateKey('y'.repeat(600))).toThrow(/y{80}\.\.\."/);
  });
});

describe('FsBlobStore on disk', () => {
  async function fresh(): Promise<{ root: string; store: FsBlobStore }> {
    const root = await makeTempDir('azbk-fs-store-');
    return { root, store: new FsBlobStore(root) };
  }

  test('reads a range into the buffer it is given when the range fits, else into one of its own', async () => {
    const { store } = await fresh();
    await store.put('packs/ab/abcd', Buffer.from('0123456789'));
    const into = Buffer.alloc(8, '.');
    const got = await store.get('packs/ab/abcd', { offset: 2, length: 5, into });
    expect(got?.toString()).toBe('23456');
    expect(got?.buffer).toBe(into.buffer);
    expect(into.toString()).toBe('23456...');
    const clipped = await store.get('packs/ab/abcd', { offset: 8, length: 5, into });
    expect(clipped?.toString()).toBe('89');
    const longer = await store.get('packs/ab/abcd', { offset: 0, length: 10, into });
    expect(longer?.toString()).toBe('0123456789');
    expect(longer?.buffer).not.toBe(into.buffer);
  });

  test('stores each object as a file at its key, and leaves no temporary file', async () => {
    const { root, store } = await fresh();
    await store.put('packs/ab/abcd', Buffer.from('pack'));
    await store.put('packs/ab/abcd', Buffer.from('again'));
    await store.put('config', Buffer.from('{}'));
    expect((await stat(join(root, 'packs', 'ab', 'abcd'))).size).toBe(4);
    expect((await stat(join(root, 'packs', 'ab', 'abcd'))).nlink).toBe(1);
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
  });

  test('a put that fails after writing its data leaves neither object nor temporary file', async () => {
    const { root, store } = await fresh();
    await store.put('f', Buffer.from('a file where a folder is needed'));
    await expectAzbkError(store.put('f/x', Buffer.from('data')), 'AZBK_BAD_INPUT');
    await expectAzbkError(store.put(`n/${'x'.repeat(300)}`, Buffer.from('data')), 'AZBK_BAD_INPUT');
    expect(await store.get('f/x')).toBeNull();
    expect(await listAll(store, '')).toEqual(['f']);
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
  });

  test('a put that cannot write reports AZBK_VAULT_UNREACHABLE and leaves no object', async () => {
    const { root, store } = await fresh();
    await writeFile(join(root, TEMP_DIR), 'not a folder');
    const err: unknown = await store.put('k', Buffer.from('data')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AzbkError);
    expect(err).toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE', cause: { code: 'ENOTDIR' } });
    expect(await store.stat('k')).toBeNull();
  });

  test('a key cannot also be a folder of keys', async () => {
    const { store } = await fresh();
    await store.put('a/b', Buffer.from('x'));
    await expectAzbkError(store.put('a', Buffer.from('y')), 'AZBK_BAD_INPUT');
    expect(await store.get('a')).toBeNull();
    expect(await store.get('a', { offset: 0, length: 1 })).toBeNull();
    expect(await store.stat('a')).toBeNull();
    await store.delete('a');
    expect(await listAll(store, '')).toEqual(['a/b']);
  });

  test('never creates a missing root, and reads it as empty', async () => {
    const root = join(await makeTempDir('azbk-fs-store-'), 'unmounted');
    const store = new FsBlobStore(root);
    await expectAzbkError(store.put('config', Buffer.from('{}')), 'AZBK_VAULT_NOT_FOUND');
    await expect(stat(root)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await store.get('config')).toBeNull();
    expect(await listAll(store, '')).toEqual([]);
  });

  test('does not make the root again when it goes away while in use, with an object in the making or after', async () => {
    const { root, store } = await fresh();
    await store.put('config', Buffer.from('{}'));
    const writer = await store.openWriter();
    await writer.write(Buffer.from('pack data'));
    await rename(root, `${root}-moved`);
    await expectAzbkError(writer.finish('packs/d0/abc'), 'AZBK_VAULT_NOT_FOUND');
    await expectAzbkError(store.put('checkpoints/m/c1', Buffer.from('checkpoint')), 'AZBK_VAULT_NOT_FOUND');
    await expect(stat(root)).rejects.toMatchObject({ code: 'ENOENT' });
    // Back in place, it is written as before, its folders made below it.
    await rename(`${root}-moved`, root);
    await store.put('packs/d1/def', Buffer.from('more'));
    expect(await listAll(store, '')).toEqual(['config', 'packs/d1/def']);
  });

  test('writes nothing into another folder put in the root\'s place (an empty one, a mount point), and goes on once the root is back', async () => {
    const { root, store } = await fresh();
    await store.put('config', Buffer.from('{}'));
    const writer = await store.openWriter();
    await writer.write(Buffer.from('pack data'));
    await rename(root, `${root}-moved`);
    await mkdir(root, { mode: 0o700 });
    await expectAzbkError(writer.finish('packs/d0/abc'), 'AZBK_VAULT_NOT_FOUND');
    await expectAzbkError(store.put('checkpoints/m/c1', Buffer.from('checkpoint')), 'AZBK_VAULT_NOT_FOUND');
    await expectAzbkError(store.openWriter(), 'AZBK_VAULT_NOT_FOUND');
    expect(await readdir(root)).toEqual([]);
    await rename(root, `${root}-stand-in`);
    await rename(`${root}-moved`, root);
    await store.put('packs/d1/def', Buffer.from('more'));
    expect(await listAll(store, '')).toEqual(['config', 'packs/d1/def']);
  });

  test('keeps .tmp to itself', async () => {
    const { root, store } = await fresh();
    await store.put('k', Buffer.from('x'));
    await writeFile(join(root, TEMP_DIR, 'left-over.tmp'), 'partial');
    await expectAzbkError(store.put('.tmp/x', Buffer.from('y')), 'AZBK_BAD_INPUT');
    await expectAzbkError(store.get('.tmp'), 'AZBK_BAD_INPUT');
    expect(await listAll(store, '')).toEqual(['k']);
    expect(await listAll(store, '.')).toEqual([]);
  });

  test('list skips names that are not valid keys and things that are not files', async () => {
    const { root, store } = await fresh();
    await store.put('d/ok', Buffer.from('x'));
    await writeFile(join(root, 'd', 'has space'), 'x');
    await mkdir(join(root, 'd', 'empty'));
    expect(await listAll(store, '')).toEqual(['d/ok']);
  });

  test('openWriter: writes in flight at once land in the order of the calls; the object appears only at finish', async () => {
    const { root, store } = await fresh();
    const w = await store.openWriter();
    const pieces = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1000 + i * 37, i));
    await Promise.all(pieces.map((p) => w.write(p)));
    expect(await store.stat('packs/ab/x')).toBeNull();
    expect(await readdir(join(root, TEMP_DIR))).toHaveLength(1);
    expect(await w.finish('packs/ab/x')).toBe('created');
    expect((await store.get('packs/ab/x'))!.equals(Buffer.concat(pieces))).toBe(true);
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
    await expect(w.write(Buffer.from('late'))).rejects.toThrow(/after finish/);
  });

  test('openWriter: finish never overwrites, abort leaves nothing, a bad key writes nothing', async () => {
    const { root, store } = await fresh();
    await store.put('k', Buffer.from('first'));
    const taken = await store.openWriter();
    await taken.write(Buffer.from('second'));
    expect(await taken.finish('k')).toBe('exists');
    expect((await store.get('k'))!.toString()).toBe('first');
    const dropped = await store.openWriter();
    await dropped.write(Buffer.from('dropped'));
    await dropped.abort();
    const bad = await store.openWriter();
    await bad.write(Buffer.from('x'));
    await expectAzbkError(bad.finish('../escape'), 'AZBK_BAD_INPUT');
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
    expect(await listAll(store, '')).toEqual(['k']);
  });

  test('openWriter: an abort while finish runs waits for it instead of closing the file under it', async () => {
    const { root, store } = await fresh();
    const w = await store.openWriter();
    void w.write(Buffer.alloc(256 * 1024, 5));
    const finishing = w.finish('packs/ab/y');
    await w.abort();
    expect(await finishing).toBe('created');
    expect((await store.get('packs/ab/y'))!.equals(Buffer.alloc(256 * 1024, 5))).toBe(true);
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
  });

  test('the first writer a store opens sweeps temporary files not written for a day, by the disk\'s clock', async () => {
    const { root, store } = await fresh();
    await mkdir(join(root, TEMP_DIR));
    const at = (hoursAgo: number) => new Date(Date.now() - hoursAgo * 60 * 60 * 1000);
    const stale = join(root, TEMP_DIR, 'stale.tmp');
    await writeFile(stale, 'left by a killed backup');
    await utimes(stale, at(25), at(25));
    const slow = join(root, TEMP_DIR, 'slow.tmp');
    await writeFile(slow, 'a backup that slept for hours');
    await utimes(slow, at(5), at(5));
    const w = await store.openWriter();
    for (let i = 0; i < 100 && (await readdir(join(root, TEMP_DIR))).includes('stale.tmp'); i++) await new Promise((r) => setTimeout(r, 10));
    const left = await readdir(join(root, TEMP_DIR));
    expect(left).not.toContain('stale.tmp');
    expect(left).toContain('slow.tmp');
    expect(left).toHaveLength(2); // and the writer's own
    await w.abort();
  });

  test('removeStaleTemp removes only old temporary files', async () => {
    const { root, store } = await fresh();
    await store.put('k', Buffer.from('x'));
    const old = join(root, TEMP_DIR, 'old.tmp');
    await writeFile(old, 'x');
    await writeFile(join(root, TEMP_DIR, 'new.tmp'), 'x');
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(old, twoHoursAgo, twoHoursAgo);
    expect(await store.removeStaleTemp()).toBe(1);
    expect(await readdir(join(root, TEMP_DIR))).toEqual(['new.tmp']);
  });

  test('OS errors become AzbkErrors that name the key, keep the cause and never the data', () => {
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const err = toStorageError(enospc, 'put', 'packs/ab/cd', '/vault');
    expect(err).toBeInstanceOf(AzbkError);
    expect(err).toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE', cause: enospc, exitCode: 10 });
    expect((err as AzbkError).message).toBe(
      'Cannot put vault object "packs/ab/cd" in /vault: no space left on device (ENOSPC).',
    );
    expect((err as AzbkError).hint).toMatch(/Free space/);
    const odd = Object.assign(new Error('odd'), { code: 'EWHATEVER' });
    expect(toStorageError(odd, 'get', 'k', '/v')).toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    const bug = Object.assign(new TypeError('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' });
    expect(toStorageError(bug, 'put', 'k', '/v')).toBe(bug);
  });
});
