/**
 * FsBlobStore under OS failures we cannot cause for real when tests run as root (disk full, I/O
 * errors): node:fs/promises is wrapped so file handles can fail on demand and record fsyncs.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, test, vi } from 'vitest';
import { FsBlobStore, TEMP_DIR } from '../../src/vault/storage/fs-store.js';
import { makeTempDir } from '../helpers/tmp.js';
import { listAll } from './storage-conformance.js';

const control = vi.hoisted(() => ({
  /** Makes the next write write half its data, then fail with this code. */
  writeError: undefined as string | undefined,
  /** Makes the next fsync fail with this code. */
  syncError: undefined as string | undefined,
  /** Paths fsynced, in order. */
  synced: [] as string[],
}));

/** Objects are written and fsynced through descriptors (node:fs), folders fsynced through handles (node:fs/promises). */
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const osError = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  const files = new Map<number, string>();
  type Done<T> = (err: NodeJS.ErrnoException | null, value: T) => void;
  const open = (file: string, flags: string, mode: number | Done<number> | undefined, done?: Done<number>) => {
    const cb = (typeof mode === 'function' ? mode : done)!;
    real.open(file, flags, typeof mode === 'number' ? mode : undefined, (err, fd) => {
      if (!err) files.set(fd, file);
      cb(err, fd);
    });
  };
  const write = (fd: number, data: Uint8Array, offset: number, length: number, position: number, cb: Done<number>) => {
    const code = control.writeError;
    if (code === undefined) return real.write(fd, data, offset, length, position, cb);
    control.writeError = undefined;
    real.write(fd, data, offset, length >> 1, position, () => cb(osError(code), 0));
  };
  const fsync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    const code = control.syncError;
    control.syncError = undefined;
    if (code !== undefined) return cb(osError(code));
    control.synced.push(files.get(fd) ?? `fd ${fd}`);
    real.fsync(fd, cb);
  };
  const mocked = { ...real, open, write, fsync };
  return { ...mocked, default: mocked };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof real.open = async (file, flags, mode) => {
    const handle = await real.open(file, flags, mode);
    return new Proxy(handle, {
      get(target, prop) {
        if (prop === 'sync') {
          return async () => {
            control.synced.push(String(file));
            return target.sync();
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  return { ...real, open, default: { ...real, open } };
});

beforeEach(() => {
  control.writeError = undefined;
  control.syncError = undefined;
  control.synced.length = 0;
});

describe('FsBlobStore with failing I/O', () => {
  test('a disk that fills up midway leaves neither object nor temporary file', async () => {
    const root = await makeTempDir('azbk-fs-faults-');
    const store = new FsBlobStore(root);
    control.writeError = 'ENOSPC';
    const err: unknown = await store.put('packs/ab/x', Buffer.alloc(4096, 7)).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'AZBK_VAULT_UNREACHABLE',
      exitCode: 10,
      hint: expect.stringMatching(/Free space/),
      cause: { code: 'ENOSPC' },
    });
    expect(await store.stat('packs/ab/x')).toBeNull();
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
    expect(await store.put('packs/ab/x', Buffer.alloc(4096, 7))).toBe('created');
  });

  test('a streamed object whose write fails midway is never named, and leaves no temporary file', async () => {
    const root = await makeTempDir('azbk-fs-faults-');
    const store = new FsBlobStore(root);
    const w = await store.openWriter();
    await w.write(Buffer.alloc(4096, 1));
    control.writeError = 'EIO';
    await expect(w.write(Buffer.alloc(4096, 2))).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE', cause: { code: 'EIO' } });
    await w.write(Buffer.alloc(4096, 3));
    await expect(w.finish('packs/ab/x')).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE', message: expect.stringContaining('packs/ab/x') });
    expect(await store.stat('packs/ab/x')).toBeNull();
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
  });

  test('a failed fsync fails the put and publishes nothing', async () => {
    const root = await makeTempDir('azbk-fs-faults-');
    const store = new FsBlobStore(root);
    control.syncError = 'EIO';
    await expect(store.put('k', Buffer.from('v'))).rejects.toMatchObject({
      code: 'AZBK_VAULT_UNREACHABLE',
      message: expect.stringMatching(/input\/output error \(EIO\)/),
    });
    expect(await listAll(store, '')).toEqual([]);
    expect(await readdir(join(root, TEMP_DIR))).toEqual([]);
  });

  test('fsyncs the data, then every folder the put created or changed', async () => {
    const root = await makeTempDir('azbk-fs-faults-');
    const store = new FsBlobStore(root);
    await store.put('packs/ab/x', Buffer.from('x'));
    const [data, ...dirs] = control.synced;
    expect(data?.startsWith(join(root, TEMP_DIR))).toBe(true);
    expect(dirs).toEqual([join(root, 'packs', 'ab'), join(root, 'packs'), root]);
    control.synced.length = 0;
    await store.put('packs/ab/y', Buffer.from('y'));
    expect(control.synced.slice(1)).toEqual([join(root, 'packs', 'ab')]);
  });
});
