/**
 * The local cache's reads held in one transaction (what a backup's walk does): another connection
 * sees every write at once, the reads after a write see it, and a connection's own reads stay on
 * one snapshot until then. The packs of trees, looked up without being read out. And the tables of
 * large rows, which an older cache made WITHOUT ROWID, copied into tables with rowids once.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { FileCache } from '../../src/agent/file-cache.js';
import type { BlobId, PackId } from '../../src/core/ids.js';
import { makeTempDir } from '../helpers/tmp.js';

const tree = (c: string) => c.repeat(64) as BlobId;
const pack = (c: string) => c.repeat(64) as PackId;

function record(t: BlobId) {
  return { fingerprint: Buffer.alloc(32, 1), self: '1:2', tree: t, files: 1, dirs: 1, symlinks: 0, bytes: 5, known: new Map() };
}

describe('the local cache', () => {
  it('holding reads in one transaction, commits every write at once, and its reads after a write see it', async () => {
    const file = path.join(await makeTempDir('azbk-cache-'), 'cache.sqlite');
    const cache = FileCache.open(file);
    const other = new Database(file);
    try {
      cache.holdReads();
      expect(cache.getDir('/a')).toBeUndefined(); // the shared read transaction begins

      // A row another connection writes now is not seen: the reads are on one snapshot.
      other.prepare('INSERT INTO dirs (path, fp, self, tree, files, dirs, symlinks, bytes) VALUES (?, ?, ?, ?, 1, 1, 0, 0)').run('/other', null, null, Buffer.from(tree('e'), 'hex'));
      expect(cache.getDir('/other')).toBeUndefined();

      // Each write commits at once (the other connection sees it), and ends the snapshot.
      cache.putDir('/a', record(tree('a')));
      cache.flush();
      expect(other.prepare('SELECT path FROM dirs WHERE path = ?').get('/a')).toEqual({ path: '/a' });
      expect(cache.getDir('/a')?.tree).toBe(tree('a'));
      expect(cache.getDir('/other')?.tree).toBe(tree('e'));

      // So does every other write, made while a read transaction is open.
      expect(cache.getDir('/a')).toBeDefined();
      cache.setMeta('k', { v: 1 });
      expect(other.prepare('SELECT value FROM meta WHERE key = ?').get('k')).toEqual({ value: '{"v":1}' });
      expect(cache.getDir('/a')).toBeDefined();
      cache.putIndex('i'.repeat(64), Buffer.from('compact'));
      expect((other.prepare('SELECT data FROM index_files').get() as { data: Buffer }).data.toString()).toBe('compact');
      expect(cache.getDir('/a')).toBeDefined();
      cache.putTreePacks([[tree('a'), [pack('1'), pack('2')]]]);
      expect(other.prepare('SELECT count(*) AS n FROM tree_packs').get()).toEqual({ n: 1 });
      expect(cache.getDir('/a')).toBeDefined();
      cache.addMissingPacks([pack('3')]);
      expect(JSON.parse((other.prepare('SELECT value FROM meta WHERE key = ?').get('missingPacks') as { value: string }).value)).toEqual([pack('3')]);
      expect(cache.getMissingPacks()).toEqual([pack('3')]);

      // A checkpoint's flush, with nothing to write, ends the snapshot too.
      other.prepare('INSERT INTO dirs (path, fp, self, tree, files, dirs, symlinks, bytes) VALUES (?, ?, ?, ?, 1, 1, 0, 0)').run('/later', null, null, Buffer.from(tree('f'), 'hex'));
      expect(cache.getDir('/later')).toBeUndefined();
      cache.flush();
      expect(cache.getDir('/later')?.tree).toBe(tree('f'));

      // Released, each read sees the database as it is.
      cache.releaseReads();
      other.prepare('DELETE FROM dirs WHERE path = ?').run('/other');
      expect(cache.getDir('/other')).toBeUndefined();
      expect(cache.getMeta('k')).toEqual({ v: 1 });
    } finally {
      other.close();
      cache.close();
    }
  });

  it('tells whether it has the packs of a tree without reading them, and refuses a malformed row', async () => {
    const file = path.join(await makeTempDir('azbk-cache-'), 'cache.sqlite');
    const cache = FileCache.open(file);
    try {
      cache.putTreePacks([[tree('a'), [pack('1'), pack('2')]]]);
      expect(cache.hasTreePacks(tree('a'))).toBe(true);
      expect(cache.getTreePacks(tree('a'))).toEqual([pack('1'), pack('2')]);
      expect(cache.hasTreePacks(tree('b'))).toBe(false);
      const db = new Database(file);
      db.prepare('INSERT INTO tree_packs (tree, packs) VALUES (?, ?)').run(Buffer.from(tree('c'), 'hex'), Buffer.alloc(33));
      db.prepare('INSERT INTO tree_packs (tree, packs) VALUES (?, ?)').run(Buffer.from(tree('d'), 'hex'), 'text');
      db.close();
      for (const t of [tree('c'), tree('d')]) {
        expect(cache.hasTreePacks(t)).toBe(false);
        expect(cache.getTreePacks(t)).toBeUndefined();
      }
    } finally {
      cache.close();
    }
  });

  it('copies the large-row tables of an older cache, made WITHOUT ROWID, into tables with rowids, rows and all', async () => {
    const file = path.join(await makeTempDir('azbk-cache-'), 'cache.sqlite');
    // Rows written through the cache's own methods, then the tables made as an older cache made them.
    const old = FileCache.open(file);
    const big = Buffer.alloc(300_000, 7);
    for (let i = 0; i < 5; i++) old.putIndex(String(i).repeat(64), i === 2 ? big : Buffer.from(`copy ${i}`));
    const file1 = { size: 5, mtime: '1', ctime: '2', ino: '3', content: [tree('b')] };
    old.putDir('/old', { ...record(tree('a')), known: new Map([['f', file1]]) });
    old.putTreePacks([[tree('a'), [pack('1'), pack('2')]]]);
    old.close();
    const raw = new Database(file);
    for (const [table, columns] of [
      ['dir_files', 'path TEXT PRIMARY KEY, names TEXT NOT NULL, chunks BLOB NOT NULL'],
      ['index_files', 'name TEXT PRIMARY KEY, data BLOB NOT NULL'],
      ['tree_packs', 'tree BLOB PRIMARY KEY, packs BLOB NOT NULL'],
    ]) {
      raw.exec(`CREATE TABLE old (${columns}) WITHOUT ROWID; INSERT INTO old SELECT * FROM ${table}; DROP TABLE ${table}; ALTER TABLE old RENAME TO ${table}`);
    }
    raw.close();
    const tables = () => {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string; sql: string }[];
      } finally {
        db.close();
      }
    };
    expect(tables().filter((t) => /WITHOUT ROWID/.test(t.sql)).map((t) => t.name)).toEqual(['dir_files', 'dirs', 'index_files', 'meta', 'tree_packs']);

    const cache = FileCache.open(file);
    try {
      expect(tables().filter((t) => /WITHOUT ROWID/.test(t.sql)).map((t) => t.name)).toEqual(['dirs', 'meta']);
      for (let i = 0; i < 5; i++) expect(cache.getIndex(String(i).repeat(64))).toEqual(i === 2 ? big : Buffer.from(`copy ${i}`));
      expect(cache.getFiles('/old')).toEqual(new Map([['f', file1]]));
      expect(cache.getTreePacks(tree('a'))).toEqual([pack('1'), pack('2')]);
      cache.putDir('/a', { ...record(tree('a')), known: new Map([['f', { size: 5, mtime: '1', ctime: '2', ino: '3', content: [tree('b')] }]]) });
      cache.flush();
      expect([...cache.getFiles('/a').keys()]).toEqual(['f']);
    } finally {
      cache.close();
    }
    expect(tables().map((t) => t.name)).toEqual(['dir_files', 'dirs', 'index_files', 'meta', 'tree_packs']);
  });
});
