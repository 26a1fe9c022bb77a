import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { AzbkError, errorRegistry, localIoError } from '../../src/shared/errors.js';

describe('error registry', () => {
  it('is listed in docs/errors.md with the same exit codes and hints', () => {
    const doc = fs.readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const rows = new Map<string, { exit: number; hint: string }>();
    for (const m of doc.matchAll(/^\| `(AZBK_[A-Z_]+)` \| (\d+) \| (.*) \|$/gm)) {
      rows.set(m[1]!, { exit: Number(m[2]), hint: m[3]! });
    }
    expect([...rows.keys()].sort()).toEqual(Object.keys(errorRegistry).sort());
    for (const [code, spec] of Object.entries(errorRegistry)) {
      expect(rows.get(code), code).toEqual({ exit: spec.exit, hint: spec.hint });
    }
  });

  it('gives every error its registry exit code and hint', () => {
    const e = new AzbkError('AZBK_WRONG_PASSPHRASE', 'nope');
    expect(e.exitCode).toBe(12);
    expect(e.hint).toBe(errorRegistry.AZBK_WRONG_PASSPHRASE.hint);
    expect(new AzbkError('AZBK_PARTIAL', 'x', { hint: 'custom' }).hint).toBe('custom');
  });

  it('takes a full, read-only or refused disk as AZBK_LOCAL_IO, for the file system and for the cache, and nothing else', () => {
    const noSpace = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', path: '/home/x/azbk.log' });
    expect(localIoError(noSpace)).toMatchObject({ code: 'AZBK_LOCAL_IO', message: 'Cannot write /home/x/azbk.log (ENOSPC).' });
    // better-sqlite3's own error, as a cache on a read-only disk gives it
    const dir = fs.mkdtempSync('/tmp/azbk-errors-');
    const file = `${dir}/c.sqlite`;
    new Database(file).close();
    const db = new Database(file, { readonly: true });
    let sqlite: unknown;
    try {
      db.exec('CREATE TABLE t (a)');
    } catch (err) {
      sqlite = err;
    } finally {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect((sqlite as { code: string }).code).toMatch(/^SQLITE_READONLY/);
    expect(localIoError(sqlite)).toMatchObject({ code: 'AZBK_LOCAL_IO' });
    expect(localIoError(Object.assign(new Error('x'), { code: 'SQLITE_FULL' }))?.message).toMatch(/local cache.*SQLITE_FULL/);
    expect(localIoError(Object.assign(new Error('x'), { code: 'SQLITE_CORRUPT' }))).toBeUndefined();
    expect(localIoError(new TypeError('x'))).toBeUndefined();
    // A folder its file system will not make (AZBK_HOME under /proc): the machine's state, not a bug; another ENOENT is not.
    let proc: unknown;
    try {
      fs.mkdirSync('/proc/azbk-errors-test');
    } catch (err) {
      proc = err;
    }
    if (process.platform === 'linux') expect(localIoError(proc)).toMatchObject({ code: 'AZBK_LOCAL_IO', message: 'Cannot mkdir /proc/azbk-errors-test (ENOENT).' });
    expect(localIoError(Object.assign(new Error('x'), { code: 'ENOENT', syscall: 'open', path: '/x' }))).toBeUndefined();
  });
});
