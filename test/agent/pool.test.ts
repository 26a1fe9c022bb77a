/**
 * The chunk workers through ChunkPool: a file's chunks come back sealed, in order, and the chunks
 * a task names as already stored come back with their ids only (hashed, not sealed again).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChunkPool } from '../../src/agent/pipeline/pool.js';
import { NOT_REGULAR, type SealedChunk } from '../../src/agent/pipeline/protocol.js';
import { decodeBlob } from '../../src/core/blob.js';
import { DEFAULT_CHUNKER } from '../../src/core/chunker.js';
import type { BlobId } from '../../src/core/ids.js';
import { deriveKeys, generateMasterKey } from '../../src/core/keys.js';
import { makeTempDir } from '../helpers/tmp.js';

async function readAll(pool: ChunkPool, file: string, stored?: readonly string[]): Promise<SealedChunk[]> {
  const out: SealedChunk[] = [];
  // A sealed chunk is a view of a slab that goes back to its worker once the handler is done: kept, it is copied.
  const keep = (c: SealedChunk): SealedChunk => (c.sealed === undefined ? c : { ...c, sealed: Buffer.from(c.sealed) });
  const r = await pool.read(file, 0, (await fs.stat(file)).size, async (chunks) => void out.push(...chunks.map(keep)), stored);
  if ('error' in r) throw new Error(r.message);
  return out;
}

describe('chunk pool', () => {
  it('seals every chunk, and only hashes the chunks a task says are stored', async () => {
    const dir = await makeTempDir('azbk-pool-');
    const file = path.join(dir, 'data.bin');
    const data = randomBytes(12 * 1024 * 1024);
    await fs.writeFile(file, data);
    const master = generateMasterKey();
    const keys = deriveKeys(master);
    const pool = new ChunkPool({ master, chunker: DEFAULT_CHUNKER, level: 3 }, { workers: 2 });
    try {
      const first = await readAll(pool, file);
      expect(first.length).toBeGreaterThan(3);
      expect(first.every((c) => c.sealed !== undefined)).toBe(true);
      // The sealed chunks are the file, in order.
      const plain = Buffer.concat(first.map((c) => decodeBlob(keys, 'data', c.id as BlobId, c.sealed!)));
      expect(plain.equals(data)).toBe(true);

      const some = first.filter((_, i) => i % 2 === 0).map((c) => c.id);
      const second = await readAll(pool, file, some);
      expect(second.map((c) => [c.id, c.rawLength])).toEqual(first.map((c) => [c.id, c.rawLength]));
      for (const c of second) expect(c.sealed === undefined, `chunk ${c.id}`).toBe(some.includes(c.id));

      // A file changed in the middle: the chunks before and after the change are recognised.
      data[6 * 1024 * 1024] = data[6 * 1024 * 1024]! ^ 0xff;
      await fs.writeFile(file, data);
      const third = await readAll(pool, file, first.map((c) => c.id));
      const resealed = third.filter((c) => c.sealed !== undefined);
      expect(resealed.length).toBeGreaterThan(0);
      expect(resealed.length).toBeLessThanOrEqual(2);
      const known = new Map(first.map((c) => [c.id, c]));
      const rebuilt = Buffer.concat(
        third.map((c) => (c.sealed !== undefined ? decodeBlob(keys, 'data', c.id as BlobId, c.sealed) : decodeBlob(keys, 'data', c.id as BlobId, known.get(c.id)!.sealed!))),
      );
      expect(rebuilt.equals(data)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('keeps a file smaller than a minimum chunk above the read size in one chunk', async () => {
    const dir = await makeTempDir('azbk-pool-');
    const file = path.join(dir, 'one.bin');
    const data = randomBytes(1536 * 1024);
    await fs.writeFile(file, data);
    const master = generateMasterKey();
    const pool = new ChunkPool({ master, chunker: { min: 2 * 1024 * 1024, avg: 4 * 1024 * 1024, max: 8 * 1024 * 1024 }, level: 3 }, { workers: 1 });
    try {
      const chunks = await readAll(pool, file);
      expect(chunks.length).toBe(1);
      expect(decodeBlob(deriveKeys(master), 'data', chunks[0]!.id as BlobId, chunks[0]!.sealed!).equals(data)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('gives each batch to the worker with the fewest batches, then the fewest bytes of unfinished files: big files are read side by side', async () => {
    const dir = await makeTempDir('azbk-pool-');
    const big = path.join(dir, 'big.bin');
    const small = path.join(dir, 'small.bin');
    await fs.writeFile(big, randomBytes(3 * 1024 * 1024));
    await fs.writeFile(small, randomBytes(16 * 1024));
    // One file per batch.
    const pool = new ChunkPool({ master: generateMasterKey(), chunker: DEFAULT_CHUNKER, level: 3 }, { workers: 2, batchBytes: 1024 * 1024, batchFiles: 1 });
    try {
      const MiB3 = 3 * 1024 * 1024;
      const KiB16 = 16 * 1024;
      const reads = [pool.read(big, 0, MiB3, () => undefined), pool.read(big, 0, MiB3, () => undefined)];
      // Dispatched at once (the workers answer later): one big file each, not both to the first.
      expect(pool.inFlight).toEqual([
        { batches: 1, bytes: MiB3 },
        { batches: 1, bytes: MiB3 },
      ]);
      reads.push(pool.read(small, 0, KiB16, () => undefined), pool.read(small, 0, KiB16, () => undefined));
      expect(pool.inFlight).toEqual([
        { batches: 2, bytes: MiB3 + KiB16 },
        { batches: 2, bytes: MiB3 + KiB16 },
      ]);
      for (const r of await Promise.all(reads)) expect(r).toMatchObject({ size: expect.any(Number) });
      expect(pool.inFlight).toEqual([
        { batches: 0, bytes: 0 },
        { batches: 0, bytes: 0 },
      ]);
      // With a batch each, the next goes to the worker with fewer bytes of unfinished files.
      const more = [pool.read(big, 0, MiB3, () => undefined), pool.read(small, 0, KiB16, () => undefined), pool.read(small, 0, KiB16, () => undefined)];
      expect(pool.inFlight).toEqual([
        { batches: 1, bytes: MiB3 },
        { batches: 2, bytes: 2 * KiB16 },
      ]);
      await Promise.all(more);
    } finally {
      await pool.close();
    }
  });

  it.skipIf(process.platform === 'win32')('reads only a regular file: not through a link put in its place, not blocking on a pipe, not past its size from a device', async () => {
    const dir = await makeTempDir('azbk-pool-');
    const secret = path.join(dir, 'secret');
    await fs.writeFile(secret, 'not listed');
    const link = path.join(dir, 'link');
    await fs.symlink(secret, link);
    const pipe = path.join(dir, 'pipe');
    expect(spawnSync('mkfifo', [pipe]).status).toBe(0);
    const pool = new ChunkPool({ master: generateMasterKey(), chunker: DEFAULT_CHUNKER, level: 3 }, { workers: 1 });
    try {
      const read = (p: string, size: number) => pool.read(p, 0, size, () => undefined);
      expect(await read(link, 10)).toMatchObject({ error: 'ELOOP' });
      expect(await read(pipe, 10)).toMatchObject({ error: 'ESPIPE' }); // read at an offset: never waits for a writer
      expect(await read('/dev/zero', 3 * 1024 * 1024)).toMatchObject({ error: NOT_REGULAR });
      const ok = await read(secret, 10);
      expect(ok).toMatchObject({ size: 10 });
    } finally {
      await pool.close();
    }
  });
});
