/**
 * Packs spooled through a local file on their way to a vault service: the file holds exactly the
 * bytes written, under their SHA-256, owner-only; it is gone once the pack is stored, dropped or
 * lost, and a pack with a failed write or upload is never named.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSpool, spoolPack } from '../../src/agent/spool.js';
import type { PackId } from '../../src/core/ids.js';
import { isAzbkError } from '../../src/shared/errors.js';
import type { VaultSession } from '../../src/vault/api.js';
import { makeTempDir } from '../helpers/tmp.js';

/** A session that only stores packs from files, as a vault service does; `fail` makes the next upload fail. */
function uploader() {
  const stored = new Map<string, Buffer>();
  const seen: { file: string; mode: number }[] = [];
  let fail: Error | null = null;
  const session = {
    putPackFile: async (id: PackId, file: string, length: number) => {
      const st = await fs.stat(file);
      seen.push({ file, mode: st.mode & 0o777 });
      if (fail !== null) throw fail;
      const data = await fs.readFile(file);
      expect(data.length).toBe(length);
      expect(createHash('sha256').update(data).digest('hex')).toBe(id);
      stored.set(id, data);
    },
  } as unknown as VaultSession;
  return { session, stored, seen, failNext: (e: Error) => (fail = e) };
}

async function spoolDir(): Promise<string> {
  const dir = path.join(await makeTempDir('azbk-spool-'), 'spool');
  await openSpool(dir);
  return dir;
}

describe('spooled packs', () => {
  it('upload the bytes written, in order, under their SHA-256, and leave nothing behind', async () => {
    const dir = await spoolDir();
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
    const u = uploader();
    const stream = spoolPack(u.session, dir)!;
    const parts = [randomBytes(1000), randomBytes(3 * 1024 * 1024), randomBytes(17)];
    await Promise.all(parts.map((p) => stream.write(p))); // several in flight at once
    const id = await stream.end();
    const all = Buffer.concat(parts);
    expect(id).toBe(createHash('sha256').update(all).digest('hex'));
    expect(u.stored.get(id)!.equals(all)).toBe(true);
    expect(u.seen.map((s) => s.mode)).toEqual([0o600]);
    expect(await fs.readdir(dir)).toEqual([]);
    await expect(stream.write(Buffer.from('late'))).rejects.toThrow(/after end/);
  });

  it('drop the file when the upload fails or the pack is aborted', async () => {
    const dir = await spoolDir();
    const u = uploader();
    const failing = spoolPack(u.session, dir)!;
    await failing.write(randomBytes(4096));
    u.failNext(new Error('the vault is away'));
    await expect(failing.end()).rejects.toThrow('the vault is away');
    expect(await fs.readdir(dir)).toEqual([]);

    const aborted = spoolPack(u.session, dir)!;
    await aborted.write(randomBytes(4096));
    expect(await fs.readdir(dir)).toHaveLength(1);
    await aborted.abort();
    expect(await fs.readdir(dir)).toEqual([]);
    expect(u.stored.size).toBe(0);
  });

  it('never upload a pack whose spool file could not be written', async () => {
    const dir = await spoolDir();
    await fs.rm(dir, { recursive: true }); // the file cannot be made
    const u = uploader();
    const stream = spoolPack(u.session, dir)!;
    const write = stream.write(randomBytes(100));
    await expect(write).rejects.toSatisfy(isAzbkError);
    let caught: unknown;
    await stream.end().catch((err: unknown) => (caught = err));
    expect(isAzbkError(caught, 'AZBK_LOCAL_IO')).toBe(true);
    expect((caught as Error).message).toContain(dir);
    expect(u.seen).toEqual([]);
  });

  it('are not offered by a session that cannot store a pack from a file', () => {
    expect(spoolPack({} as VaultSession, '/nowhere')).toBeNull();
  });

  it('left by a killed job are removed when the spool is opened again', async () => {
    const dir = await spoolDir();
    await fs.writeFile(path.join(dir, 'a'.repeat(32) + '.pack'), 'half a pack');
    await fs.writeFile(path.join(dir, 'notes.txt'), 'not ours');
    await openSpool(dir);
    expect(await fs.readdir(dir)).toEqual(['notes.txt']);
  });
});
