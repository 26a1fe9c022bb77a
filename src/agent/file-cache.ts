/**
 * The local metadata cache, in SQLite under AZBK_HOME/cache (one database per vault and key
 * family, owner-only). One row per backed-up folder:
 * - a fingerprint of what lstat says of its entries (names, types, modes, times, sizes, inodes)
 *   and of its subfolders' trees: when a full scan finds the same fingerprint, the folder's stored
 *   tree is used as it is, without looking at its files one by one;
 * - its tree and the totals beneath it (the change journal's optimized backups reuse these for
 *   folders that did not change);
 * - each regular file's size, mtime, ctime, inode and chunk ids: a file whose metadata match is
 *   not read again, provided every one of its chunks is still in the vault's index.
 * For each tree a backup stored, it keeps the packs that tree and everything beneath it are in: a
 * point names its packs for the vault's prune, and a folder reused as it is brings its tree's.
 * It also keeps the vault's index files in a compact form (they never change once written), so a
 * backup does not decrypt and parse them all again, and beside the database, in a file of its own,
 * the snapshot of the whole index the next command loads (see BlobIndex.saveSnapshot).
 * Memory use does not grow with the number of files: rows are read when their folder is reached
 * and written in batches.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ID_BYTES, isHex64, type BlobId, type PackId } from '../core/ids.js';
import { makeFoldersSync } from '../shared/files.js';
import type { IndexCache } from './blob-index.js';
import type { KnownFile } from './checkpoint.js';

/** Bumped when the tables change; an older cache is dropped (it only saves work). */
const SCHEMA_VERSION = 4;
const BATCH = 256;
/** the meta key of the packs found damaged (see getDamagedPacks) */
const DAMAGED_PACKS = 'damagedPacks';
/** the meta key of the vault's index files found damaged (see getDamagedIndex) */
const DAMAGED_INDEX = 'damagedIndex';
/** the meta key of the vault's index files this cache holds as giving nothing because they are damaged (see getUnreadableIndex) */
const UNREADABLE_INDEX = 'unreadableIndex';
/** the meta key of the damaged index files a repair named around (see getRepairedIndex) */
const REPAIRED_INDEX = 'repairedIndex';
/** the meta key of the packs found missing (see getMissingPacks) */
const MISSING_PACKS = 'missingPacks';

/** What a backed-up folder held: its tree and the totals beneath it. */
export interface KnownDir {
  readonly tree: BlobId;
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly bytes: number;
}

/** A folder's row: `fingerprint` is null when the folder must be examined file by file next time. */
export interface DirRecord extends KnownDir {
  readonly fingerprint: Buffer | null;
  /** the folder's own inode and ctime when stored (see folderIdentity), or null */
  readonly self: string | null;
  /** regular files by name */
  readonly known: ReadonlyMap<string, KnownFile>;
}

type FileRow = [name: string, size: number, mtime: string, ctime: string, ino: string, chunks: number];

interface DirRow {
  fp: Buffer | null;
  self: string | null;
  tree: Buffer;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

/** A folder's row as a backup reads it (see FileCache.getDir). */
export type StoredDir = KnownDir & { readonly fingerprint: Buffer | null; readonly self: string | null };

const GET_DIR = 'SELECT fp, self, tree, files, dirs, symlinks, bytes FROM dirs WHERE path = ?';

function storedDir(row: DirRow | undefined): StoredDir | undefined {
  if (row === undefined || row.tree.length !== ID_BYTES) return undefined;
  return { fingerprint: row.fp, self: row.self, tree: row.tree.toString('hex') as BlobId, files: row.files, dirs: row.dirs, symlinks: row.symlinks, bytes: row.bytes };
}

/** True for SQLite's errors for a file that is not a database, or whose pages are damaged. */
export function isDamagedCache(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'));
}

/** Removes the cache database `file` with its journal files and index snapshot (see FileCache). */
function removeCache(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file.replace(/\.sqlite$/, '')}.index`]) fs.rmSync(f, { force: true });
}

/**
 * The folder rows of the cache database `file` as they are now, through a connection of their own
 * that only reads (for a thread other than the one that holds the FileCache); the file must exist.
 * One read transaction holds them all: a transaction per row took twice as long.
 */
export function openDirRows(file: string): { get(dir: string): StoredDir | undefined; close(): void } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const stmt = db.prepare<[string], DirRow>(GET_DIR);
  db.exec('BEGIN');
  return { get: (dir) => storedDir(stmt.get(dir)), close: () => db.close() };
}

/**
 * The packs this machine found missing and damaged in this vault for this key family, and the
 * damaged index files a repair named around (see FileCache.getMissingPacks, getDamagedPacks and
 * getRepairedIndex); none without a cache.
 */
export function knownBadPacks(home: string, vaultId: string, keyId: string): { missing: PackId[]; damaged: PackId[]; repaired: string[] } {
  const file = cacheFile(home, vaultId, keyId);
  const none = { missing: [], damaged: [], repaired: [] };
  if (!fs.existsSync(file)) return none;
  try {
    const cache = FileCache.open(file);
    try {
      return { missing: cache.getMissingPacks(), damaged: cache.getDamagedPacks(), repaired: cache.getRepairedIndex() };
    } finally {
      cache.close();
    }
  } catch {
    return none; // an unreadable cache only saves work
  }
}

/** Adds damaged index files whose packs a repair named again (see FileCache.getRepairedIndex). */
export function recordRepairedIndex(home: string, vaultId: string, keyId: string, names: readonly string[]): void {
  withCache(home, vaultId, keyId, (cache) => cache.addRepairedIndex(names));
}

/** Adds packs found missing to the cache of this vault and key family (see FileCache.addMissingPacks). */
export function recordMissingPacks(home: string, vaultId: string, keyId: string, packs: readonly PackId[]): void {
  withCache(home, vaultId, keyId, (cache) => cache.addMissingPacks(packs));
}

/** Adds index files of the vault found damaged to the cache of this vault and key family (see FileCache.getDamagedIndex). */
export function recordDamagedIndex(home: string, vaultId: string, keyId: string, names: readonly string[]): void {
  withCache(home, vaultId, keyId, (cache) => cache.addDamagedIndex(names));
}

/** Adds packs found damaged to the cache of this vault and key family (see FileCache.addDamagedPacks). */
export function recordDamagedPacks(home: string, vaultId: string, keyId: string, packs: readonly PackId[]): void {
  withCache(home, vaultId, keyId, (cache) => cache.addDamagedPacks(packs));
}

function withCache(home: string, vaultId: string, keyId: string, f: (cache: FileCache) => void): void {
  const cache = FileCache.forVault(home, vaultId, keyId);
  try {
    f(cache);
  } finally {
    cache.close();
  }
}

/** The tables whose rows are large (see FileCache.open), and their columns. */
const LARGE_ROWS = {
  dir_files: 'path TEXT PRIMARY KEY, names TEXT NOT NULL, chunks BLOB NOT NULL',
  index_files: 'name TEXT PRIMARY KEY, data BLOB NOT NULL',
  // pack ids, 32 bytes each, in no order: a folder near the top names every pack beneath it
  tree_packs: 'tree BLOB PRIMARY KEY, packs BLOB NOT NULL',
};

/** Copies `table`, when it is a WITHOUT ROWID table, into one with rowids and the same `columns`; true when it did. */
function withRowids(db: Database.Database, table: string, columns: string): boolean {
  const withoutRowid = () => {
    const row = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) as { sql: string } | undefined;
    return row !== undefined && /WITHOUT\s+ROWID/i.test(row.sql);
  };
  if (!withoutRowid()) return false;
  try {
    // Looked at again in a write transaction: another process may have copied it meanwhile.
    return db
      .transaction(() => {
        if (!withoutRowid()) return false;
        db.exec(`CREATE TABLE ${table}_copy (${columns}); INSERT INTO ${table}_copy SELECT * FROM ${table}; DROP TABLE ${table}; ALTER TABLE ${table}_copy RENAME TO ${table}`);
        return true;
      })
      .immediate();
  } catch {
    return false; // another process held the database too long: the old table works, slower, until the next open
  }
}

const cacheFile = (home: string, vaultId: string, keyId: string) => path.join(home, 'cache', `${vaultId}-${keyId}.sqlite`);

export class FileCache implements IndexCache {
  private readonly getDirStmt: Database.Statement<[string], DirRow>;
  private readonly getFilesStmt: Database.Statement<[string], { names: string; chunks: Buffer }>;
  private readonly putDirStmt: Database.Statement<[string, Buffer | null, string | null, Buffer, number, number, number, number]>;
  private readonly putFilesStmt: Database.Statement<[string, string, Buffer]>;
  private readonly getTreePacksStmt: Database.Statement<[Buffer], { packs: Buffer }>;
  private readonly hasTreePacksStmt: Database.Statement<[Buffer], { ok: number }>;
  private readonly getIndexStmt: Database.Statement<[string], { data: Buffer }>;
  private readonly putIndexStmt: Database.Statement<[string, Buffer]>;
  private readonly getMetaStmt: Database.Statement<[string], { value: string }>;
  private readonly putMetaStmt: Database.Statement<[string, string]>;
  private readonly putTreePacksStmt: Database.Statement<[Buffer, Buffer]>;
  private pending: [string, DirRecord][] = [];
  /** reads share one read transaction (see holdReads) */
  private holding = false;
  /** that transaction is open */
  private reading = false;

  /** the index snapshot's file, beside the database */
  private readonly snapshotFile: string;
  /** the file was damaged, and was removed and made anew when opened */
  remade = false;

  private constructor(
    private readonly db: Database.Database,
    /** the database file */
    readonly file: string,
  ) {
    this.snapshotFile = `${file.replace(/\.sqlite$/, '')}.index`;
    this.getFilesStmt = db.prepare('SELECT names, chunks FROM dir_files WHERE path = ?');
    this.getDirStmt = db.prepare(GET_DIR);
    this.putDirStmt = db.prepare('INSERT OR REPLACE INTO dirs (path, fp, self, tree, files, dirs, symlinks, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.putFilesStmt = db.prepare('INSERT OR REPLACE INTO dir_files (path, names, chunks) VALUES (?, ?, ?)');
    this.getTreePacksStmt = db.prepare('SELECT packs FROM tree_packs WHERE tree = ?');
    this.hasTreePacksStmt = db.prepare(`SELECT typeof(packs) = 'blob' AND length(packs) % ${ID_BYTES} = 0 AS ok FROM tree_packs WHERE tree = ?`);
    this.getIndexStmt = db.prepare('SELECT data FROM index_files WHERE name = ?');
    this.putIndexStmt = db.prepare('INSERT OR REPLACE INTO index_files (name, data) VALUES (?, ?)');
    this.getMetaStmt = db.prepare('SELECT value FROM meta WHERE key = ?');
    this.putMetaStmt = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    this.putTreePacksStmt = db.prepare('INSERT OR REPLACE INTO tree_packs (tree, packs) VALUES (?, ?)');
  }

  /** Opens (creating if needed) the cache of one vault and key family under AZBK_HOME. */
  static forVault(home: string, vaultId: string, keyId: string): FileCache {
    return FileCache.open(cacheFile(home, vaultId, keyId));
  }

  /**
   * Opens (creating if needed) the cache database `file`. One SQLite finds damaged is removed and
   * made anew (`remade`): it only saves work, and every job would fail on it until removed by hand.
   */
  static open(file: string): FileCache {
    try {
      return FileCache.openAs(file);
    } catch (err) {
      if (!isDamagedCache(err)) throw err;
      removeCache(file);
      const cache = FileCache.openAs(file);
      cache.remade = true;
      return cache;
    }
  }

  private static openAs(file: string): FileCache {
    makeFoldersSync(path.dirname(file), 0o700);
    if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
    const db = new Database(file);
    try {
      return FileCache.prepared(db, file);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private static prepared(db: Database.Database, file: string): FileCache {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // 4 MiB of pages (better-sqlite3 builds SQLite with 16 MiB): the folders a backup looks up are
    // each read once, so a bigger cache held memory and saved nothing.
    db.pragma('cache_size = -4096');
    if (db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
      db.exec('DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS dirs; DROP TABLE IF EXISTS dir_files; DROP TABLE IF EXISTS index_files; DROP TABLE IF EXISTS index_snapshot; DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS tree_packs');
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
    // Folders and their files in two tables: a full scan reads only the first, which stays small.
    db.exec(
      'CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, fp BLOB, self TEXT, tree BLOB NOT NULL, files INTEGER NOT NULL, dirs INTEGER NOT NULL,' +
        ' symlinks INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID',
    );
    // A folder's files, a compact index file and a tree's packs run to kilobytes or megabytes: they
    // go in tables with rowids. In a WITHOUT ROWID table a lookup read each large row it passed on
    // its way to the one it looked for (SQLite advises rows of at most a twentieth of a page
    // there): 19 index copies of 85 bytes took 10-19 ms to read among three of 1-1.6 MB, and 0.2
    // ms with rowids.
    // An older cache's tables are copied over once.
    let copied = false;
    for (const [table, columns] of Object.entries(LARGE_ROWS)) {
      copied = withRowids(db, table, columns) || copied;
      db.exec(`CREATE TABLE IF NOT EXISTS ${table} (${columns})`);
    }
    // The index snapshot is a file of its own now (see getIndexSnapshot): megabytes in a row took
    // ten times as long to write. The table of an older cache goes, and so does its space.
    const dropped = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'index_snapshot'").get() !== undefined;
    if (dropped) db.exec('DROP TABLE index_snapshot');
    if (dropped || copied) {
      try {
        db.exec('VACUUM');
      } catch {
        // busy, or no room for the copy VACUUM makes: SQLite reuses the free pages anyway
      }
    }
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
    return new FileCache(db, file);
  }

  /**
   * Lets the reads from here on share one read transaction, until releaseReads(). A statement
   * outside a transaction begins and ends one of its own, whose locking took about 12 µs here
   * against 2-6 µs for the lookup itself, and a backup's walk looks up two or three rows per
   * folder. A write ends the shared transaction first, so it commits as before, and the reads
   * after it (in a new one) see it.
   */
  holdReads(): void {
    this.holding = true;
  }

  /** Ends holdReads(). */
  releaseReads(): void {
    this.holding = false;
    this.endRead();
  }

  private beginRead(): void {
    if (!this.holding || this.db.inTransaction) return;
    this.db.exec('BEGIN');
    this.reading = true;
  }

  private endRead(): void {
    if (!this.reading) return;
    this.reading = false;
    if (this.db.inTransaction) this.db.exec('COMMIT');
  }

  /** The folder's tree and totals, and the fingerprint and identity they were stored under, or undefined. */
  getDir(dir: string): StoredDir | undefined {
    this.beginRead();
    return storedDir(this.getDirStmt.get(dir));
  }

  /** The files of the folder as last recorded (empty when unknown or unreadable). */
  getFiles(dir: string): ReadonlyMap<string, KnownFile> {
    this.beginRead();
    const row = this.getFilesStmt.get(dir);
    return row === undefined ? new Map() : decodeFiles(row.names, row.chunks);
  }

  /** Records a folder; written in batches (see flush). */
  putDir(dir: string, record: DirRecord): void {
    this.pending.push([dir, record]);
    if (this.pending.length >= BATCH) this.flush();
  }

  /**
   * Writes the recorded folders in one transaction. Also ends the reads' shared transaction (see
   * holdReads) with nothing to write: a checkpoint calls this, so no snapshot of the database
   * outlasts one, and the write-ahead log can be folded back in.
   */
  flush(): void {
    this.endRead();
    if (this.pending.length === 0) return;
    const rows = this.pending;
    this.pending = [];
    this.db.transaction(() => {
      for (const [dir, d] of rows) {
        const { names, chunks } = encodeFiles(d.known);
        this.putDirStmt.run(dir, d.fingerprint, d.self, Buffer.from(d.tree, 'hex'), d.files, d.dirs, d.symlinks, d.bytes);
        this.putFilesStmt.run(dir, names, chunks);
      }
    })();
  }

  /** The packs a tree and everything beneath it are in, as a backup that stored it found them; undefined when unknown. */
  getTreePacks(tree: BlobId): PackId[] | undefined {
    this.beginRead();
    const row = this.getTreePacksStmt.get(Buffer.from(tree, 'hex'));
    if (row === undefined || !Buffer.isBuffer(row.packs) || row.packs.length % ID_BYTES !== 0) return undefined;
    const out: PackId[] = [];
    for (let at = 0; at < row.packs.length; at += ID_BYTES) out.push(row.packs.toString('hex', at, at + ID_BYTES) as PackId);
    return out;
  }

  /** Whether getTreePacks(tree) finds the packs, without reading them out. */
  hasTreePacks(tree: BlobId): boolean {
    this.beginRead();
    return this.hasTreePacksStmt.get(Buffer.from(tree, 'hex'))?.ok === 1;
  }

  /** Records the packs of trees (see getTreePacks), in one transaction. */
  putTreePacks(trees: Iterable<readonly [BlobId, readonly PackId[]]>): void {
    this.endRead();
    this.db.transaction(() => {
      for (const [tree, packs] of trees) this.putTreePacksStmt.run(Buffer.from(tree, 'hex'), Buffer.from(packs.join(''), 'hex'));
    })();
  }

  /** A vault index file as the blob index keeps it (see compactIndex), or undefined. */
  getIndex(name: string): Buffer | undefined {
    this.beginRead();
    return this.getIndexStmt.get(name)?.data;
  }

  putIndex(name: string, data: Buffer): void {
    this.endRead();
    this.putIndexStmt.run(name, data);
  }

  /**
   * The blob index's snapshot, the index files it covers and the digest of the packs it left out;
   * undefined for none, or one that does not match its checksum. The file holds a SHA-256 of the
   * rest, the length of a JSON header (4 bytes, little-endian), the header ({names, skip}, padded
   * with spaces so that the snapshot starts at a multiple of 8), then the snapshot.
   */
  getIndexSnapshot(): { names: string[]; data: Buffer; skip: string } | undefined {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(this.snapshotFile);
    } catch {
      return undefined;
    }
    if (buf.length < SNAPSHOT_HEAD || !sha256([buf.subarray(ID_BYTES)]).equals(buf.subarray(0, ID_BYTES))) return undefined;
    const size = buf.readUInt32LE(ID_BYTES);
    if (size > buf.length - SNAPSHOT_HEAD) return undefined;
    let head: unknown;
    try {
      head = JSON.parse(buf.toString('utf8', SNAPSHOT_HEAD, SNAPSHOT_HEAD + size));
    } catch {
      return undefined;
    }
    const { names, skip } = (head ?? {}) as { names?: unknown; skip?: unknown };
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string') || typeof skip !== 'string') return undefined;
    return { names: names as string[], data: buf.subarray(SNAPSHOT_HEAD + size), skip };
  }

  /** Replaces the snapshot (see getIndexSnapshot): written to a temporary file, then renamed over the old one. */
  putIndexSnapshot(names: readonly string[], data: Buffer, skip: string): void {
    const json = JSON.stringify({ names, skip });
    const size = Buffer.byteLength(json) + ((8 - ((SNAPSHOT_HEAD + Buffer.byteLength(json)) % 8)) % 8);
    const head = Buffer.alloc(SNAPSHOT_HEAD + size, ' ');
    head.writeUInt32LE(size, ID_BYTES);
    head.write(json, SNAPSHOT_HEAD);
    sha256([head.subarray(ID_BYTES), data]).copy(head);
    const tmp = `${this.snapshotFile}.${randomBytes(6).toString('hex')}.tmp`;
    removeStaleTemporaries(this.snapshotFile);
    try {
      const fd = fs.openSync(tmp, 'wx', 0o600);
      try {
        fs.writeFileSync(fd, head);
        fs.writeFileSync(fd, data);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.snapshotFile);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }

  /** Packs a backup found missing from the vault although index files name them (see runBackup). */
  getMissingPacks(): PackId[] {
    return this.packList(MISSING_PACKS);
  }

  /** Adds packs to getMissingPacks (see addToPackList). */
  addMissingPacks(packs: readonly PackId[]): void {
    this.addToPackList(MISSING_PACKS, packs);
  }

  /**
   * Index files the vault holds damaged (found by verify), though this machine's copy of each,
   * kept when it was whole, still names the blobs: no other machine can find them through it. So
   * the index leaves those copies out, and a backup stores again what it still has of those blobs.
   */
  getDamagedIndex(): string[] {
    return this.packList(DAMAGED_INDEX);
  }

  /** Adds index files to getDamagedIndex. */
  addDamagedIndex(names: readonly string[]): void {
    this.addToPackList(DAMAGED_INDEX, names as readonly PackId[]);
  }

  /**
   * Index files of the vault that could not be read when loaded (not sealed, or failing their
   * checks), which the cache holds as giving nothing: read once, and named when a blob is not
   * found (see BlobIndex.unindexed).
   */
  getUnreadableIndex(): string[] {
    return this.packList(UNREADABLE_INDEX);
  }

  /** Adds index files to getUnreadableIndex. */
  addUnreadableIndex(names: readonly string[]): void {
    this.addToPackList(UNREADABLE_INDEX, names as readonly PackId[]);
  }

  /**
   * Damaged index files of the vault whose packs `verify --repair-index` named again in new index
   * files (every pack of this key family the vault held then): verify no longer counts them as
   * problems.
   */
  getRepairedIndex(): string[] {
    return this.packList(REPAIRED_INDEX);
  }

  /** Adds index files to getRepairedIndex. */
  addRepairedIndex(names: readonly string[]): void {
    this.addToPackList(REPAIRED_INDEX, names as readonly PackId[]);
  }

  /** Takes packs out of getMissingPacks: the vault holds them again (see stillMissing). */
  forgetMissingPacks(packs: readonly PackId[]): void {
    const back = new Set(packs);
    this.changePackList(MISSING_PACKS, (list) => list.filter((p) => !back.has(p)));
  }

  /**
   * Packs the vault holds in which a blob failed its checks (found by verify or a restore): a
   * backup leaves them out and so stores again what this machine still has of them, while a
   * restore reads from them last (see BlobIndex.load).
   */
  getDamagedPacks(): PackId[] {
    return this.packList(DAMAGED_PACKS);
  }

  /** Adds packs to getDamagedPacks (see addToPackList). */
  addDamagedPacks(packs: readonly PackId[]): void {
    this.addToPackList(DAMAGED_PACKS, packs);
  }

  private packList(key: string): PackId[] {
    const v = this.getMeta(key);
    return Array.isArray(v) ? (v.filter(isHex64) as PackId[]) : [];
  }

  /** Adds packs to the list under `key` in one write transaction: a verify, backup or restore adding others meanwhile loses none. */
  private addToPackList(key: string, packs: readonly PackId[]): void {
    this.changePackList(key, (list) => [...new Set([...list, ...packs])].sort());
  }

  /** Replaces the pack list `key` with what `change` makes of it, in one write transaction. */
  private changePackList(key: string, change: (list: PackId[]) => PackId[]): void {
    this.endRead();
    this.db.transaction(() => this.setMeta(key, change(this.packList(key)))).immediate();
  }

  /** A JSON value stored under `key`, or undefined. */
  getMeta(key: string): unknown {
    this.beginRead();
    const row = this.getMetaStmt.get(key);
    if (row === undefined) return undefined;
    try {
      return JSON.parse(row.value) as unknown;
    } catch {
      return undefined;
    }
  }

  setMeta(key: string, value: unknown): void {
    this.endRead();
    this.putMetaStmt.run(key, JSON.stringify(value));
  }

  close(): void {
    if (!this.db.open) return; // abandoned
    this.flush(); // which ends a shared read transaction too
    this.db.close();
  }

  /** Closes the cache without writing what is pending (it was found damaged: see isDamagedCache). */
  abandon(): void {
    this.pending = [];
    try {
      this.db.close();
    } catch {
      // closed already
    }
  }

  /** Removes the cache, found damaged (see isDamagedCache). */
  discard(): void {
    this.abandon();
    removeCache(this.file);
  }
}

function encodeFiles(known: ReadonlyMap<string, KnownFile>): { names: string; chunks: Buffer } {
  const rows: FileRow[] = [];
  const ids: string[] = [];
  for (const [name, k] of known) {
    rows.push([name, k.size, k.mtime, k.ctime, k.ino, k.content.length]);
    for (const c of k.content) ids.push(c);
  }
  return { names: JSON.stringify(rows), chunks: Buffer.from(ids.join(''), 'hex') };
}

/** Reads a row's files; a row that does not parse counts as empty (the files are read again). */
function decodeFiles(names: string, chunks: Buffer): Map<string, KnownFile> {
  const out = new Map<string, KnownFile>();
  let rows: unknown;
  try {
    rows = JSON.parse(names);
  } catch {
    return out;
  }
  if (!Array.isArray(rows)) return out;
  let at = 0;
  for (const r of rows as unknown[]) {
    if (!isFileRow(r) || at + r[5] * ID_BYTES > chunks.length) return new Map();
    const content: BlobId[] = [];
    for (let i = 0; i < r[5]; i++, at += ID_BYTES) content.push(chunks.toString('hex', at, at + ID_BYTES) as BlobId);
    out.set(r[0], { size: r[1], mtime: r[2], ctime: r[3], ino: r[4], content });
  }
  return out;
}

function isFileRow(r: unknown): r is FileRow {
  return (
    Array.isArray(r) && r.length === 6 && typeof r[0] === 'string' && Number.isSafeInteger(r[1]) &&
    typeof r[2] === 'string' && typeof r[3] === 'string' && typeof r[4] === 'string' && Number.isSafeInteger(r[5]) && r[5] >= 0
  );
}

/** Temporary files of a snapshot being written are this old at most, unless their writer was killed. */
const STALE_TEMPORARY_MS = 10 * 60_000;

/** Removes the temporary files that writers of `file` killed before they renamed them left behind. */
function removeStaleTemporaries(file: string): void {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.`;
  try {
    for (const name of fs.readdirSync(dir)) {
      if (!name.startsWith(prefix) || !/^[0-9a-f]{12}\.tmp$/.test(name.slice(prefix.length))) continue;
      const tmp = path.join(dir, name);
      if (Date.now() - fs.statSync(tmp).mtimeMs > STALE_TEMPORARY_MS) fs.rmSync(tmp, { force: true });
    }
  } catch {
    // only space: the next write tries again
  }
}

function sha256(parts: readonly Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The index snapshot file's checksum and header length, before the header (see getIndexSnapshot). */
const SNAPSHOT_HEAD = ID_BYTES + 4;
