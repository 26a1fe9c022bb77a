/**
 * The scan worker (see scan.ts): goes through the included folders from the far end, last names
 * first, and reports each folder whose listing and subfolders match what the cache stored, with
 * the folder-listing.ts functions the walk itself uses. It only reads; a folder it cannot examine
 * whole, or that changed, is left to the walk, and so is every folder above it.
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { compileExcludes } from '../../core/exclude.js';
import { openDirRows, type StoredDir } from '../file-cache.js';
import { toSegments } from '../fspath.js';
import { fingerprint, listFolder, MAX_FOLDER_DEPTH } from '../folder-listing.js';
import type { ScanBatch, ScanInit } from './scan.js';

/** Folders per message: the walk should hear of them soon after they are found. */
const BATCH = 16;

function emptyBatch() {
  return { paths: [] as string[], trees: [] as string[], counts: [] as number[], listed: [] as number[], subfolders: [] as string[][] } satisfies ScanBatch;
}
let batch = emptyBatch();
let port: ScanInit['port'];
let rows: ReturnType<typeof openDirRows>;
let excluded: ReturnType<typeof compileExcludes>;
/** azbk's own folders (`dev:ino`), which the walk leaves out */
let own: ReadonlySet<string> = new Set();

function flush(): void {
  if (batch.paths.length === 0) return;
  port.postMessage(batch);
  batch = emptyBatch();
}

/**
 * The stored row of the folder `abs` when nothing in it or beneath it changed, else null. A
 * folder the cache has no row for is new to the backup, and so (but for a folder that was
 * included by itself before) is everything beneath it: it is neither listed nor gone into. A
 * folder of new files was otherwise walked twice, once here for nothing, on a core the backup's
 * workers need.
 */
function scan(abs: string, depth: number): StoredDir | null {
  // The walk skips what is deeper (see MAX_FOLDER_DEPTH), and so does this recursion.
  if (depth > MAX_FOLDER_DEPTH) return null;
  const row = rows.get(abs);
  if (row === undefined) return null;
  const listedAt = Date.now();
  let listing: ReturnType<typeof listFolder>;
  try {
    listing = listFolder(abs, () => undefined, undefined, excluded, own);
  } catch {
    return null;
  }
  const { listed } = listing;
  const subtrees = new Map<string, StoredDir | null>();
  let same = listing.complete;
  for (let i = listed.length - 1; i >= 0; i--) {
    const l = listed[i]!;
    if (l.st.kind !== 'dir') continue;
    const sub = scan(l.abs, depth + 1);
    subtrees.set(l.name, sub);
    if (sub === null) same = false; // the other subfolders may still help the walk
  }
  if (!same || row.fingerprint == null) return null;
  const fp = fingerprint(listed, subtrees);
  if (fp === null || !fp.equals(row.fingerprint)) return null;
  batch.paths.push(abs);
  batch.trees.push(row.tree);
  batch.counts.push(row.files, row.dirs, row.symlinks, row.bytes);
  batch.listed.push(listedAt);
  batch.subfolders.push([...subtrees.keys()]);
  if (batch.paths.length >= BATCH) flush();
  return row;
}

function run(init: ScanInit): void {
  ({ port } = init);
  rows = openDirRows(init.cacheFile);
  excluded = compileExcludes(init.exclude);
  own = new Set(init.own);
  for (let i = init.roots.length - 1; i >= 0; i--) {
    // Only folders: the walk backs up an included link as a link, and never looks behind it.
    const root = init.roots[i]!;
    let folder = false;
    try {
      folder = fs.lstatSync(root).isDirectory();
    } catch {
      // missing or unreadable: the walk says so
    }
    if (folder) scan(root, toSegments(root).length);
  }
  flush();
  rows.close();
  port.close();
}

// Started ahead of its FolderScan (see prestartScan), the worker hears what to scan in a message.
// It waits for it in the event loop, not in a top-level await: a worker ended while its module
// is still being evaluated (one no backup took, ended by dropPrestartedScan) crashes the whole
// process in V8 when that module awaits at its top level.
const given = workerData as ScanInit | null;
if (given !== null) run(given);
else parentPort!.once('message', run);
