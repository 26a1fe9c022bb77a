/**
 * The local metadata cache: for each file backed up, its size, mtime, ctime, inode and chunk ids,
 * in SQLite under AZBK_HOME/cache (one database per vault and key family, owner-only). A file
 * whose metadata match is not read again, provided every one of its chunks is still in the
 * vault's index. Memory use does not grow with the number of files.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { BlobId } from '../core/ids.js';
import type { KnownFile } from './checkpoint.js';

const ID_BYTES = 32;

/** What a backed-up folder held: its tree and the totals beneath it. */
export interface KnownDir {
  readonly tree: BlobId;
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly bytes: number;
}

export class FileCache {
  private readonly getStmt: Database.Statement<[string], { size: number; mtime: string; ctime: string; ino: string; content: Buffer }>;
  private readonly putStmt: Database.Statement<[string, number, string, string, string, Buffer]>;
  private pending: [string, KnownFile][] = [];
  private readonly getDirStmt: Database.Statement<[string], { tree: Buffer; files: number; dirs: number; symlinks: number; bytes: number }>;
  private readonly putDirStmt: Database.Statement<[string, Buffer, number, number, number, number]>;

  private constructor(private readonly db: Database.Database) {
    this.getStmt = db.prepare('SELECT size, mtime, ctime, ino, content FROM files WHERE path = ?');
    this.putStmt = db.prepare('INSERT OR REPLACE INTO files (path, size, mtime, ctime, ino, content) VALUES (?, ?, ?, ?, ?, ?)');
    this.getDirStmt = db.prepare('SELECT tree, files, dirs, symlinks, bytes FROM dirs WHERE path = ?');
    this.putDirStmt = db.prepare('INSERT OR REPLACE INTO dirs (path, tree, files, dirs, symlinks, bytes) VALUES (?, ?, ?, ?, ?, ?)');
  }

  /** Opens (creating if needed) the cache database `file`. */
  static open(file: string): FileCache {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime TEXT NOT NULL, ctime TEXT NOT NULL, ino TEXT NOT NULL, content BLOB NOT NULL) WITHOUT ROWID');
    db.exec('CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, tree BLOB NOT NULL, files INTEGER NOT NULL, dirs INTEGER NOT NULL, symlinks INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID');
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
    return new FileCache(db);
  }

  /** What the cache knows of `file`, or undefined. */
  get(file: string): KnownFile | undefined {
    const row = this.getStmt.get(file);
    if (row === undefined || row.content.length % ID_BYTES !== 0) return undefined;
    const content: BlobId[] = [];
    for (let i = 0; i < row.content.length; i += ID_BYTES) content.push(row.content.toString('hex', i, i + ID_BYTES) as BlobId);
    return { size: row.size, mtime: row.mtime, ctime: row.ctime, ino: row.ino, content };
  }

  /** Records a file; written in batches (see flush). */
  put(file: string, known: KnownFile): void {
    this.pending.push([file, known]);
    if (this.pending.length >= 2000) this.flush();
  }

  /** Writes the recorded files in one transaction. */
  flush(): void {
    if (this.pending.length === 0) return;
    const rows = this.pending;
    this.pending = [];
    this.db.transaction(() => {
      for (const [file, k] of rows) this.putStmt.run(file, k.size, k.mtime, k.ctime, k.ino, Buffer.from(k.content.join(''), 'hex'));
    })();
  }

  /** The folder as the last completed backup stored it, or undefined. */
  getDir(dir: string): KnownDir | undefined {
    const row = this.getDirStmt.get(dir);
    if (row === undefined || row.tree.length !== ID_BYTES) return undefined;
    return { tree: row.tree.toString('hex') as BlobId, files: row.files, dirs: row.dirs, symlinks: row.symlinks, bytes: row.bytes };
  }

  /** Records the folders of a completed backup, in one transaction. */
  putDirs(dirs: readonly (readonly [string, KnownDir])[]): void {
    this.db.transaction(() => {
      for (const [dir, d] of dirs) this.putDirStmt.run(dir, Buffer.from(d.tree, 'hex'), d.files, d.dirs, d.symlinks, d.bytes);
    })();
  }

  /** A JSON value stored under `key`, or undefined. */
  getMeta(key: string): unknown {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    if (row === undefined) return undefined;
    try {
      return JSON.parse(row.value) as unknown;
    } catch {
      return undefined;
    }
  }

  setMeta(key: string, value: unknown): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, JSON.stringify(value));
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
