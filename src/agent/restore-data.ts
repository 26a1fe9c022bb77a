/**
 * The data phase of a restore: every chunk the selected files need, grouped by pack, so each pack
 * is read once (in ranges that skip large gaps), several packs at a time. Each chunk is opened and
 * checked, then written at its place in every file that uses it. A file is renamed into place
 * only when all of its chunks are written; a damaged chunk fails exactly the files that use it.
 */
import fs from 'node:fs';
import { decodeBlob } from '../core/blob.js';
import type { BlobId, PackId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import type { PackEntry } from '../core/pack.js';
import type { FileNode } from '../core/tree.js';
import { isAzbkError } from '../shared/errors.js';
import { errnoCode } from '../shared/files.js';
import type { VaultSession } from '../vault/api.js';
import type { BlobIndex } from './blob-index.js';

/** One file to restore: written at `tmp`, renamed to `dest` when complete. */
export interface FilePlan {
  readonly shown: string;
  readonly dest: string;
  readonly tmp: string;
  readonly node: FileNode;
  remaining: number;
  error: string | null;
}

interface Target {
  readonly file: FilePlan;
  readonly offset: number;
}

interface Wanted {
  readonly entry: PackEntry;
  readonly targets: Target[];
}

const MAX_GAP = 1024 * 1024;
const MAX_RANGE = 16 * 1024 * 1024;

export interface DataResult {
  readonly files: number;
  readonly bytes: number;
}

/**
 * Writes the content of `files` (their temporary files already exist, empty) and renames each
 * into place when complete; a failed file's temporary file is removed and its error set.
 */
export async function restoreData(
  session: VaultSession,
  keys: VaultKeys,
  index: BlobIndex,
  files: readonly FilePlan[],
  opts: { concurrency?: number; onFile?: (f: FilePlan) => void } = {},
): Promise<DataResult> {
  const byPack = new Map<PackId, Map<BlobId, Wanted>>();
  let done = { files: 0, bytes: 0 };
  const finish = (f: FilePlan) => {
    if (f.error === null) {
      try {
        const t = toTime(f.node.mtime);
        fs.chmodSync(f.tmp, f.node.mode);
        fs.utimesSync(f.tmp, t, t);
        fs.renameSync(f.tmp, f.dest);
        done = { files: done.files + 1, bytes: done.bytes + f.node.size };
        opts.onFile?.(f);
        return;
      } catch (err) {
        f.error = errnoCode(err) ?? (err as Error).message;
      }
    }
    fs.rmSync(f.tmp, { force: true });
  };
  const failFile = (f: FilePlan, why: string) => {
    if (f.error === null) f.error = why;
  };

  for (const f of files) {
    let offset = 0;
    for (const id of f.node.content) {
      const loc = index.get('data', id);
      if (loc === undefined) {
        failFile(f, `chunk ${id.slice(0, 12)} is missing from the vault`);
        continue;
      }
      let blobs = byPack.get(loc.pack);
      if (blobs === undefined) byPack.set(loc.pack, (blobs = new Map()));
      let w = blobs.get(id);
      if (w === undefined) blobs.set(id, (w = { entry: loc.entry, targets: [] }));
      w.targets.push({ file: f, offset });
      f.remaining++;
      offset += loc.entry.rawLength;
    }
    if (f.error === null && offset !== f.node.size) failFile(f, `its chunks hold ${offset} bytes where ${f.node.size} were backed up`);
    if (f.remaining === 0) finish(f);
  }

  const written = (t: Target) => {
    if (--t.file.remaining === 0) finish(t.file);
  };
  const packs = [...byPack.entries()];
  let next = 0;
  const workers = Array.from({ length: Math.min(opts.concurrency ?? 3, packs.length) }, async () => {
    while (next < packs.length) {
      const [pack, blobs] = packs[next++]!;
      for (const range of ranges([...blobs.values()])) {
        let data: Buffer | null = null;
        let readError = '';
        try {
          data = await session.readPack(pack, range.start, range.end - range.start);
        } catch (err) {
          if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT') && !isAzbkError(err, 'AZBK_VAULT_UNREACHABLE')) throw err;
          readError = err.message;
        }
        for (const w of range.blobs) {
          let plain: Buffer | null = null;
          if (data !== null) {
            try {
              const sealed = data.subarray(w.entry.offset - range.start, w.entry.offset - range.start + w.entry.length);
              plain = decodeBlob(keys, 'data', w.entry.id, sealed);
            } catch (err) {
              readError = isAzbkError(err) ? `damaged chunk ${w.entry.id.slice(0, 12)} in pack ${pack.slice(0, 12)}` : String(err);
            }
          }
          for (const t of w.targets) {
            if (plain === null) failFile(t.file, readError);
            else if (t.file.error === null) writeAt(t, plain);
            written(t);
          }
        }
      }
    }
  });
  await Promise.all(workers);
  return done;

  function writeAt(t: Target, plain: Buffer): void {
    try {
      const fd = fs.openSync(t.file.tmp, 'r+');
      try {
        let pos = 0;
        while (pos < plain.length) pos += fs.writeSync(fd, plain, pos, plain.length - pos, t.offset + pos);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      failFile(t.file, errnoCode(err) ?? (err as Error).message);
    }
  }
}

/** Groups a pack's wanted blobs into read ranges, merging neighbours separated by small gaps. */
function ranges(wanted: Wanted[]): { start: number; end: number; blobs: Wanted[] }[] {
  wanted.sort((a, b) => a.entry.offset - b.entry.offset);
  const out: { start: number; end: number; blobs: Wanted[] }[] = [];
  for (const w of wanted) {
    const last = out.at(-1);
    const end = w.entry.offset + w.entry.length;
    if (last !== undefined && w.entry.offset - last.end <= MAX_GAP && end - last.start <= MAX_RANGE) {
      last.end = Math.max(last.end, end);
      last.blobs.push(w);
    } else out.push({ start: w.entry.offset, end, blobs: [w] });
  }
  return out;
}

/** Seconds since the epoch with microsecond precision, from nanoseconds as a decimal string. */
export function toTime(ns: string): number {
  return Number(BigInt(ns) / 1000n) / 1e6;
}
