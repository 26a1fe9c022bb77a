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

export class FileCache {
  private readonly getStmt: Database.Statement<[string], { size: number; mtime: string; ctime: string; ino: string; content: Buffer }>;
  private readonly putStmt: Database.Statement<[string, number, string, string, string, Buffer]>;
  private pending: [string, KnownFile][] = [];

  private constructor(private readonly db: Database.Database) {
    this.getStmt = db.prepare('SELECT size, mtime, ctime, ino, content FROM files WHERE path = ?');
    this.putStmt = db.prepare('INSERT OR REPLACE INTO files (path, size, mtime, ctime, ino, content) VALUES (?, ?, ?, ?, ?, ?)');
  }

  /** Opens (creating if needed) the cache database `file`. */
  static open(file: string): FileCache {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime TEXT NOT NULL, ctime TEXT NOT NULL, ino TEXT NOT NULL, content BLOB NOT NULL) WITHOUT ROWID');
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

  close(): void {
    this.flush();
    this.db.close();
  }
}
