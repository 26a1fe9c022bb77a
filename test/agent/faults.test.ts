/**
 * Fault injection into backup and restore, in process: failing and lost store writes and reads,
 * files changing while read, leftovers in a disk vault, cancellation, and the job lock. After
 * each fault the vault must stay consistent (verifyVault) and a later job must finish the work.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runBackup, type BackupOptions } from '../../src/agent/backup.js';
import { openCheckpoint } from '../../src/agent/checkpoint.js';
import { FileCache } from '../../src/agent/file-cache.js';
import { lockHolder } from '../../src/agent/lock.js';
import { runRestore, type RestoreResult } from '../../src/agent/restore.js';
import { vaultAnswers } from '../../src/agent/restore-data.js';
import type { PackId } from '../../src/core/ids.js';
import type { VaultSession } from '../../src/vault/api.js';
import { verifyVault } from '../../src/agent/verify.js';
import { AzbkError } from '../../src/shared/errors.js';
import { processIdentity } from '../../src/shared/process.js';
import { layout } from '../../src/vault/layout.js';
import { FsBlobStore } from '../../src/vault/storage/fs-store.js';
import { expectSameBytes, expectSameTree, listFiles, writeRandomFile } from '../helpers/fs-tree.js';
import { createMachine, dataOnlyPack, filesInPack, readPoint, withMethods, type TestMachine } from '../helpers/machine.js';
import { settled } from '../helpers/racy.js';

// Backups read files in worker threads; under vitest those run from a bundle of their source.

const MiB = 1 << 20;
const PACK = 16 * MiB;
const CHECKPOINT_BYTES = 8 * MiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A few files of random data, about 40 MiB (more with a bigger `big.bin`): several packs, and
 * checkpoints every 8 MiB.
 */
async function makeSource(m: TestMachine, bigSize = 22 * MiB): Promise<string> {
  const src = path.join(m.dir, 'src');
  await writeRandomFile(path.join(src, 'big.bin'), bigSize + 12345);
  await writeRandomFile(path.join(src, 'docs', 'mid.bin'), 12 * MiB);
  await writeRandomFile(path.join(src, 'docs', 'small.bin'), 300 * 1024);
  await writeRandomFile(path.join(src, 'z', 'last.bin'), 5 * MiB + 7);
  await fs.writeFile(path.join(src, 'docs', 'note.txt'), 'a note\n');
  await fs.mkdir(path.join(src, 'empty'));
  return src;
}

/** Restores the latest point under a fresh target folder. */
async function restore(m: TestMachine): Promise<{ result: RestoreResult; target: string }> {
  const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
  const result = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' });
  return { result, target };
}

/** Restores the latest point and expects `src` back exactly. */
async function expectRestores(m: TestMachine, src: string): Promise<void> {
  const { result, target } = await restore(m);
  expect(result.failed).toEqual([]);
  await expectSameTree(src, path.join(target, src));
}

/** Restores the latest point and expects the file `file` back, byte for byte as it is now. */
async function expectRestoredFile(m: TestMachine, file: string): Promise<void> {
  const { result, target } = await restore(m);
  expect(result.failed).toEqual([]);
  await expectSameBytes(file, path.join(target, file));
}

/** verifyVault finds no problem; `readData` decodes every chunk too (slower). */
async function expectConsistent(m: TestMachine, readData = false): Promise<Awaited<ReturnType<typeof verifyVault>>> {
  const report = await verifyVault(m.ctx.session, m.keys, { readData });
  expect(report.problems).toEqual([]);
  return report;
}

async function backupError(m: TestMachine, opts: BackupOptions): Promise<AzbkError> {
  const err: unknown = await runBackup(m.ctx, opts).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AzbkError);
  return err as AzbkError;
}

const isPack = (key: string) => key.startsWith('packs/');

describe('a local cache that cannot be opened', () => {
  it('fails the job and gives the job lock up: the next job in this process runs', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    const cacheDir = path.join(m.ctx.paths.home, 'cache');
    await fs.rm(cacheDir, { recursive: true, force: true });
    await fs.writeFile(cacheDir, 'a file where the cache folder goes\n');
    await expect(runBackup(m.ctx, { include: [src] })).rejects.toThrow();
    await fs.rm(cacheDir);
    const res = await runBackup(m.ctx, { include: [src] });
    expect(res.skipped).toEqual([]);
  });
});

describe('a local cache that cannot be saved once the point is made', () => {
  it('keeps the point, and says the cache is lost: the next backup reads every file again', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    // The disk of AZBK_HOME full as the cache writes what the backup learnt.
    const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    const close = vi.spyOn(FileCache.prototype, 'close').mockImplementationOnce(() => {
      throw full;
    });
    try {
      const res = await runBackup(m.ctx, { include: [src] });
      expect(res.point.id).toMatch(/^\d{8}T/);
      expect(res.warnings).toEqual([{ path: expect.stringContaining('cache'), reason: expect.stringMatching(/^the local cache of what was backed up is lost \(it could not be written: .*SQLITE_FULL.*\): the next backup reads every file again$/) }]);
    } finally {
      close.mockRestore();
    }
    await expectRestores(m, src);
  });
});

describe('asked to stop once every file is read', () => {
  it("says so ('finishing', after the last file) and makes the point: a checkpoint would wait for the same uploads", async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    const stop = new AbortController();
    const events: string[] = [];
    let putPoints = 0;
    const ctx = { ...m.ctx, session: withMethods(m.ctx.session, (s) => ({ putPoint: async (...a: Parameters<typeof s.putPoint>) => (putPoints++, s.putPoint(...a)) })) };
    const res = await runBackup(ctx, {
      include: [src],
      signal: stop.signal,
      onEvent: (e) => {
        events.push(e.type);
        if (e.type === 'finishing') {
          expect(putPoints).toBe(0);
          stop.abort();
        }
      },
    });
    expect(events.filter((e) => e === 'finishing')).toHaveLength(1);
    expect(events.lastIndexOf('file')).toBeLessThan(events.indexOf('finishing'));
    expect(putPoints).toBe(1);
    expect(res.stats.files).toBe(events.filter((e) => e === 'file').length);
  });
});

describe('transient store failures', () => {
  it('retries failed and lost puts: the backup succeeds and restores exactly', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    m.faulty
      .fail('put', { after: 2, mode: 'error' }) // the 3rd put of any kind
      .fail('put', { after: 1, mode: 'lost-reply', match: isPack }) // the 2nd pack is stored, its reply lost
      .fail('put', { mode: 'lost-reply', match: (k) => k.startsWith('index/') })
      .fail('put', { mode: 'lost-reply', match: (k) => k.startsWith('checkpoints/') });
    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
    expect(m.faulty.faults.put).toBe(4);
    expect(m.retries.filter((r) => r.op === 'put')).toHaveLength(4);
    expect(res.checkpoints).toBeGreaterThanOrEqual(3);
    expect(res.skipped).toEqual([]);
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toHaveLength(1);
    await expectRestores(m, src);
    const report = await expectConsistent(m, true);
    expect(report.points).toBe(1);
  });

  it('a lost reply to the point write leaves exactly one point', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'f.bin'), MiB);
    m.faulty.fail('put', { mode: 'lost-reply', match: (k) => k.startsWith('points/') });
    const res = await runBackup(m.ctx, { include: [src] });
    expect(m.faulty.faults.put).toBe(1);
    const points = await m.ctx.session.listPoints(m.ctx.registration.machineId);
    expect(points.map((p) => p.id)).toEqual([res.point.id]);
    await expectRestores(m, src);
  });
});

describe('a vault that stops answering once the point is sent', () => {
  it('says the point may have been made, and the next backup makes one (sending no data again)', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'f.bin'), MiB);
    // The vault writes the point, and its answer never comes (a vault service's, after the retries).
    const lost = { ...m.ctx, session: withMethods(m.ctx.session, (s) => ({
      putPoint: async (...a: Parameters<typeof s.putPoint>) => {
        await s.putPoint(...a);
        throw new AzbkError('AZBK_VAULT_UNREACHABLE', 'Cannot reach the vault at https://v.test (ECONNRESET).');
      },
    })) };
    await expect(runBackup(lost, { include: [src] })).rejects.toMatchObject({
      code: 'AZBK_VAULT_UNREACHABLE',
      message: expect.stringContaining('The recovery point was sent when the vault stopped answering, and may have been made.'),
      hint: expect.stringContaining('azbk points'),
    });
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toHaveLength(1);
    const again = await runBackup(m.ctx, { include: [src] });
    expect(again.stats.uploadedBytes).toBeLessThan(64 * 1024);
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toHaveLength(2);
    await expectRestores(m, src);
  });
});

describe('persistent put failure from some put on', () => {
  // Puts of a job with checkpoints every 8 MiB: pack, index, the checkpoint's pack list, checkpoint,
  // pack... Let through 4 (fail the 2nd pack), 6 (fail the 2nd checkpoint) or 9 (fail the 3rd index).
  // Pack bytes of one clean backup of makeSource's data (random, so about the same every time).
  let cleanBytes = 0;

  it.each([4, 6, 9])('after %i puts: the job stops, the vault stays consistent, the next job resumes', async (after) => {
    const m = await createMachine();
    const src = await makeSource(m);
    if (cleanBytes === 0) {
      const clean = await createMachine();
      await runBackup(clean.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
      cleanBytes = await clean.packBytes();
    }

    m.faulty.fail('put', { after, times: Infinity });
    const err = await backupError(m, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
    expect(err.code).toBe('AZBK_VAULT_UNREACHABLE');
    const stored = await m.ctx.session.listCheckpoints();
    expect(stored.length).toBeGreaterThanOrEqual(1);
    // The message names the last checkpoint that was actually stored.
    const last = stored.at(-1)!;
    expect(err.message).toContain(`the next one continues from checkpoint ${last.seq} of job ${last.jobId}`);
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toEqual([]);
    const mid = await expectConsistent(m);
    expect(mid).toMatchObject({ points: 0, checkpoints: stored.length });

    m.faulty.clearFaults();
    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
    expect(res.resumed).not.toBeNull();
    expect(res.resumed).toMatchObject({ jobId: last.jobId, seq: last.seq });
    await expectRestores(m, src);
    await expectConsistent(m, true);
    // What the failed job uploaded after its last checkpoint may be stored twice, nothing more.
    expect(await m.packBytes()).toBeLessThanOrEqual(cleanBytes + 2 * PACK + CHECKPOINT_BYTES);
  });

  it.each(['packs/', 'index/', 'checkpoints/'])('a put of %s failing with an unexpected error fails the job; no file is skipped', async (prefix) => {
    const m = await createMachine();
    const src = await makeSource(m);
    m.faulty.fail('put', { match: (k) => k.startsWith(prefix), error: () => new Error('socket hang up') });
    const err: unknown = await runBackup(m.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES }).then(
      (r) => r.skipped,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('socket hang up');
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toEqual([]);
    await expectConsistent(m);
  });
});

describe('checkpoints of a long file', () => {
  it('hold only the chunks read since the one before, and a job stopped late continues where it was', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const file = await writeRandomFile(path.join(src, 'disk.img'), 96 * MiB);
    m.faulty.fail('put', { match: (k) => k.startsWith('checkpoints/'), after: 12, times: Infinity });
    await expect(runBackup(m.ctx, { include: [src], checkpointBytes: 4 * MiB })).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    m.faulty.clearFaults();
    const stored = await m.ctx.session.listCheckpoints();
    expect(stored).toHaveLength(12);
    const sizes = await Promise.all(stored.map(async (c) => (await m.ctx.session.readCheckpoint(c.name)).length));
    // A whole chunk list in each would grow by a few chunks' worth (about 70 bytes each) every time.
    expect(Math.max(...sizes.slice(1)) - Math.min(...sizes.slice(1))).toBeLessThan(400);
    const before = await m.packBytes();
    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: 4 * MiB });
    expect(res.resumed).toMatchObject({ seq: 12 });
    // It read on from where the twelfth checkpoint was: most of the file was not stored again.
    expect((await m.packBytes()) - before).toBeLessThan(96 * MiB - 36 * MiB);
    await expectRestoredFile(m, file);
  });
});

describe('checkpoints of many small files', () => {
  it('come after a number of files too, and a job stopped late continues from them', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(src, { recursive: true });
    for (let i = 0; i < 40; i++) await fs.writeFile(path.join(src, `f${String(i).padStart(2, '0')}.txt`), `small file ${i}\n`);
    await settled(); // a file changed just before it is read is in no checkpoint (see racy)
    const listed: number[] = [];
    const session = withMethods(m.ctx.session, (s) => ({
      putCheckpoint: (p) => {
        listed.push(openCheckpoint(m.keys, p.jobId, p.seq, p.data)?.files.length ?? -1);
        return s.putCheckpoint(p);
      },
    }));
    // Stopped as the 35th file finishes.
    const stop = new AbortController();
    let finished = 0;
    const onEvent = (e: { type: string }) => void (e.type === 'file' && ++finished === 35 && stop.abort());
    await expect(runBackup({ ...m.ctx, session }, { include: [src], checkpointFiles: 10, workers: 1, signal: stop.signal, onEvent })).rejects.toMatchObject({ code: 'AZBK_CANCELLED' });
    // One came due at 10 files (none would have in 60 s or 512 MiB), then the last one.
    expect(listed.length).toBeGreaterThanOrEqual(2);
    expect(listed[0]).toBeGreaterThanOrEqual(10);
    expect(listed[0]).toBeLessThan(35);
    expect(listed.reduce((a, n) => a + n, 0)).toBeGreaterThanOrEqual(34);
    // The next job reads none of the files the checkpoints hold again.
    const res = await runBackup(m.ctx, { include: [src] });
    expect(res.resumed).not.toBeNull();
    expect(res.stats.files).toBe(40);
    expect(res.stats.readBytes).toBeLessThan(5 * 16);
    await expectRestores(m, src);
  });
});

describe('a checkpoint being stored', () => {
  it('does not hold the backup back: files finish while it is stored, it names none of them, and no other waits behind it', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (let i = 0; i < 24; i++) await writeRandomFile(path.join(src, `f${String(i).padStart(2, '0')}.bin`), MiB + i);
    let finished = 0;
    let finishedMeanwhile = -1;
    let finishedBefore = -1;
    let named = -1;
    let storing = 0;
    let mostAtOnce = 0;
    // The first checkpoint is stored only once every file has finished (or after 20 s, when the
    // backup waits for the checkpoint instead).
    const session = withMethods(m.ctx.session, (s) => ({
      putCheckpoint: async (p) => {
        mostAtOnce = Math.max(mostAtOnce, ++storing);
        if (finishedMeanwhile < 0) {
          finishedBefore = finished;
          const deadline = Date.now() + 20_000;
          while (finished < 24 && Date.now() < deadline) await sleep(5);
          finishedMeanwhile = finished - finishedBefore;
          named = openCheckpoint(m.keys, p.jobId, p.seq, p.data)?.files.length ?? -1;
        }
        return s.putCheckpoint(p).finally(() => storing--);
      },
    }));
    const res = await runBackup({ ...m.ctx, session }, { include: [src], checkpointBytes: 4 * MiB, onEvent: (e) => void (e.type === 'file' && finished++) });
    expect(finishedMeanwhile).toBe(24 - finishedBefore);
    // More came due while it waited (every 4 MiB): none was queued behind it (the next is due an
    // interval after it is stored), and none was stored beside it.
    expect(res.checkpoints).toBe(1);
    expect(mostAtOnce).toBe(1);
    // It names files finished before it was stored, none of those finished while it waited.
    expect(named).toBeGreaterThanOrEqual(0);
    expect(named).toBeLessThanOrEqual(finishedBefore);
    await expectRestores(m, src);
    await expectConsistent(m, true);
  });
});

describe('a resumed job stopped again', () => {
  it('continues a half-read file that its first checkpoint did not reach yet from where that file was', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const big = await writeRandomFile(path.join(src, 'z', 'big.bin'), 64 * MiB);
    // More entries in a/ than the walk holds before it finishes one folder first: z/ waits for a/.
    const small = (n: number, tag: string) => Promise.all(Array.from({ length: n }, (_, i) => writeRandomFile(path.join(src, 'a', `${tag}-${String(i).padStart(4, '0')}.bin`), 8 * 1024)));
    await small(1100, 'first');
    await settled(); // older than a racy read: finished files are remembered
    const stopAfter = async (checkpoints: number) => {
      const before = (await m.ctx.session.listCheckpoints()).length;
      m.faulty.fail('put', { match: (k) => k.startsWith('checkpoints/'), after: checkpoints, times: Infinity });
      await expect(runBackup(m.ctx, { include: [src], checkpointBytes: 4 * MiB, workers: 1 })).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
      m.faulty.clearFaults();
      return (await m.ctx.session.listCheckpoints()).length - before;
    };
    // Job 1 stops with big.bin half read.
    expect(await stopAfter(6)).toBe(6);
    // New files before it: the resumed job's first checkpoints come before it reaches big.bin again.
    await small(1100, 'second');
    await settled();
    expect(await stopAfter(6)).toBe(6);
    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: 4 * MiB, workers: 1 });
    expect(res.resumed).not.toBeNull();
    // big.bin went on from where the second job got, not from its start: its chunks before that
    // (stored already, so deduplication alone would hide a read from the start) were not read again.
    expect(res.stats.blobs).toBeLessThan(45); // its chunks are about 60; the small files are known
    await expectRestoredFile(m, big);
  });
});

/** How many pack reads a whole restore of `src` takes (it restores it once to count them; no fault is left set). */
async function packReadsOfRestore(m: TestMachine, src: string): Promise<number> {
  let reads = 0;
  m.faulty.fail('get', { match: (k) => isPack(k) && ++reads < 0, times: 0 });
  await expectRestores(m, src);
  m.faulty.clearFaults();
  expect(reads).toBeGreaterThan(3);
  return reads;
}

describe('get failures during restore', () => {
  it('retries transient failures', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    await runBackup(m.ctx, { include: [src] });
    m.faulty.fail('get', { match: isPack, times: 3 }).fail('get', { match: isPack, after: 5, mode: 'lost-reply' });
    await expectRestores(m, src);
    expect(m.faulty.faults.get).toBe(4);
  });

  it('a restore stopped by an unexpected error leaves no temporary file behind', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    await runBackup(m.ctx, { include: [src] });
    // Fail the last two pack reads of a whole restore (file data).
    const total = await packReadsOfRestore(m, src);
    m.faulty.fail('get', { match: isPack, after: total - 2, times: Infinity, error: () => new Error('socket hang up') });
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const err: unknown = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'overwrite' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as Error).message).toContain('socket hang up');
    expect((await listFiles(target)).filter((f) => path.basename(f).startsWith('.azbk-restore-'))).toEqual([]);
  });

  it('a vault that stops answering stops the restore (AZBK_VAULT_UNREACHABLE), with no temporary file left, and the same restore again finishes it', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    await runBackup(m.ctx, { include: [src] });
    // The vault goes away two pack reads before the end: every read and question fails from then on.
    let reads = await packReadsOfRestore(m, src);
    let down = false;
    m.faulty.fail('get', { match: (k) => isPack(k) && (down ||= --reads < 2), times: Infinity });
    m.faulty.fail('stat', { match: () => down, times: Infinity });
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    // It says how far it got and how to go on, as a stop on Ctrl-C does.
    await expect(runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip' })).rejects.toMatchObject({
      code: 'AZBK_VAULT_UNREACHABLE',
      message: expect.stringMatching(/The restore stopped: \d+ file\(s\) and \d+ folder\(s\) were restored; no unfinished file was left\.$/),
      hint: expect.stringContaining('--conflict skip'),
    });
    expect((await listFiles(target)).filter((f) => path.basename(f).startsWith('.azbk-restore-'))).toEqual([]);
    m.faulty.clearFaults();
    const again = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip' });
    expect(again.failed).toEqual([]);
    await expectSameTree(src, path.join(target, src));
  });

  it('a vault whose read failed counts as gone when a question about the pack gets no answer in time, not after a wait as long again', async () => {
    const pack = 'ab'.repeat(32) as PackId;
    const asking = (statPack: () => Promise<number | null>) => ({ statPack }) as unknown as VaultSession;
    expect(await vaultAnswers(asking(async () => null), pack, 5000), '"not held" is an answer').toBe(true);
    expect(await vaultAnswers(asking(async () => Promise.reject(new AzbkError('AZBK_VAULT_CORRUPT', 'odd'))), pack, 5000), 'any answer is one').toBe(true);
    expect(await vaultAnswers(asking(async () => Promise.reject(new AzbkError('AZBK_VAULT_UNREACHABLE', 'gone'))), pack, 5000)).toBe(false);
    // A question retried for minutes, as the read before it was: not waited for.
    const started = Date.now();
    expect(await vaultAnswers(asking(() => new Promise(() => undefined)), pack, 200)).toBe(false);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('a pack that cannot be read fails only the files with chunks in it', async () => {
    const m = await createMachine();
    const src = await makeSource(m, 36 * MiB); // big.bin spans a pack of its data only
    const res = await runBackup(m.ctx, { include: [src] });
    // A pack of file data only: no directory listing of the point lives in it.
    const contents = await readPoint(m, res.point);
    const { files } = contents;
    const pack = dataOnlyPack(contents, path.join(src, 'big.bin'));
    const affected = filesInPack(contents, pack);
    expect(affected).toContain(path.join(src, 'big.bin'));
    expect(affected.length).toBeLessThan(files.size);

    m.faulty.fail('get', { match: (k) => k === layout.pack(pack), times: Infinity });
    const { result, target } = await restore(m);
    expect(result.failed.map((f) => f.path).sort()).toEqual([...affected].sort());
    for (const f of result.failed) expect(f.reason).toMatch(/Injected fault/);
    for (const p of files.keys()) {
      const restored = path.join(target, p);
      if (affected.includes(p)) await expect(fs.lstat(restored)).rejects.toThrow(/ENOENT/);
      else await expectSameBytes(p, restored);
    }
    // No half-written file is left under a temporary name.
    expect((await listFiles(target)).filter((f) => path.basename(f).startsWith('.azbk-restore-'))).toEqual([]);
    expect(result.restored.files).toBe(files.size - affected.length);
  });
});

describe('damaged chunks at restore', () => {
  it('a damaged chunk fails exactly its file, whether one read range holds the file or several', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    // Chunk boundaries depend on the (random) key: of a few 3 MiB files, one is cut in two or
    // more chunks that share a pack and span at most one read range.
    const candidates: string[] = [];
    for (let i = 0; i < 6; i++) {
      const f = path.join(src, 'few', `c${i}.bin`);
      await writeRandomFile(f, 3 * MiB + i);
      candidates.push(f);
    }
    const res = await runBackup(m.ctx, { include: [src] });
    const { index, files } = await readPoint(m, res.point);
    const locs = (f: string) => files.get(f)!.content.map((id) => index.get('data', id)!);
    const fits = (f: string) => {
      const l = locs(f);
      const span = Math.max(...l.map((x) => x.entry.offset + x.entry.length)) - Math.min(...l.map((x) => x.entry.offset));
      return l.length > 1 && new Set(l.map((x) => x.pack)).size === 1 && span <= 4 * MiB;
    };
    // A file of a few chunks side by side in one pack (restored on its own, one read range holds
    // all of it: its worker creates it, and must remove it when its last chunk is damaged) ...
    const one = candidates.find(fits);
    expect(one, 'a file of several chunks in one pack').toBeDefined();
    const l1 = locs(one!);
    // ... and one whose chunks lie in several packs (written by several ranges).
    const several = path.join(src, 'big.bin');
    const l2 = locs(several);
    expect(new Set(l2.map((l) => l.pack)).size).toBeGreaterThan(1);

    const damage = async (loc: (typeof l1)[number]) => {
      const key = layout.pack(loc.pack);
      const data = (await m.base.get(key))!;
      data[loc.entry.offset + 40]! ^= 0x01; // inside the sealed body, past the nonce
      await m.base.delete(key);
      await m.base.put(key, data);
    };
    await damage(l1.at(-1)!);
    await damage(l2[Math.floor(l2.length / 2)]!);

    const { result, target } = await restore(m);
    expect(result.failed.map((f) => f.path).sort()).toEqual([several, one!].sort());
    for (const f of result.failed) expect(f.reason).toMatch(/damaged chunk/);
    for (const p of files.keys()) {
      const restored = path.join(target, p);
      if (p === one || p === several) await expect(fs.lstat(restored)).rejects.toThrow(/ENOENT/);
      else await expectSameBytes(p, restored);
    }
    expect((await listFiles(target)).filter((f) => path.basename(f).startsWith('.azbk-restore-'))).toEqual([]);
    expect(result.restored.files).toBe(files.size - 2);

    // The file on its own: its chunks are the only ones read, in one range.
    const alone = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const r2 = await runRestore(m.ctx, { point: 'latest', target: alone, paths: [one!], conflict: 'overwrite' });
    expect(r2.failed.map((f) => f.path)).toEqual([one]);
    expect(await listFiles(alone)).toEqual([]);
  });
});

describe('a file that changes while it is read', () => {
  /** Rewrites `size` bytes at the start of `file` with new random data; its metadata show the change. */
  async function rewrite(file: string, size = MiB): Promise<void> {
    const before = await fs.stat(file, { bigint: true });
    const fh = await fs.open(file, 'r+');
    try {
      await fh.write(randomBytes(size), 0, size, 0);
    } finally {
      await fh.close();
    }
    const after = await fs.stat(file, { bigint: true });
    if (after.mtimeNs === before.mtimeNs) {
      const t = new Date(Number(before.mtimeNs / 1_000_000n) + 1000);
      await fs.utimes(file, t, t);
    }
  }

  it('changed once: the file is read again and its final content is backed up', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const file = await writeRandomFile(path.join(src, 'growing.bin'), 52 * MiB);
    const original = await fs.readFile(file);
    let changes = 0;
    m.hooks.afterPutPack = async () => {
      if (changes++ === 0) await rewrite(file);
    };
    const res = await runBackup(m.ctx, { include: [src] });
    expect(changes).toBeGreaterThanOrEqual(2); // a pack mid-read, and more after
    expect(res.warnings).toEqual([]);
    m.hooks.afterPutPack = undefined;
    const final = await fs.readFile(file);
    expect(final.equals(original)).toBe(false);
    const { result, target } = await restore(m);
    expect(result.failed).toEqual([]);
    expect((await fs.readFile(path.join(target, file))).equals(final)).toBe(true);
    await expectConsistent(m);
  });

  it.skipIf(process.platform === 'win32')('changed once with its size and mtime put back: ctime tells, and the file is read again', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const file = await writeRandomFile(path.join(src, 'sneaky.bin'), 52 * MiB);
    const ref = path.join(m.dir, 'ref');
    await fs.writeFile(ref, '');
    expect(spawnSync('touch', ['-r', file, ref]).status).toBe(0);
    let changes = 0;
    m.hooks.afterPutPack = async () => {
      if (changes++ > 0) return;
      const fh = await fs.open(file, 'r+');
      try {
        await fh.write(randomBytes(MiB), 0, MiB, 0); // bytes already read
      } finally {
        await fh.close();
      }
      expect(spawnSync('touch', ['-r', ref, file]).status).toBe(0); // mtime to the nanosecond, as before
    };
    const before = await fs.stat(file, { bigint: true });
    const res = await runBackup(m.ctx, { include: [src] });
    m.hooks.afterPutPack = undefined;
    const after = await fs.stat(file, { bigint: true });
    expect([after.size, after.mtimeNs]).toEqual([before.size, before.mtimeNs]);
    expect(after.ctimeNs).not.toBe(before.ctimeNs);
    expect(res.warnings).toEqual([]);
    await expectRestoredFile(m, file);
    await expectConsistent(m);
  });

  it('growing all the time: backed up as far as it was read, and restored so', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const file = await writeRandomFile(path.join(src, 'log.bin'), 52 * MiB);
    const added = randomBytes(MiB);
    m.hooks.afterPutPack = () => fs.appendFile(file, added);
    // Also between pack uploads: the second read may upload none (its chunks are stored by the
    // first), and must see the file grow all the same.
    const grow = setInterval(() => appendFileSync(file, added.subarray(0, 4096)), 2);
    let res;
    try {
      res = await runBackup(m.ctx, { include: [src] });
    } finally {
      clearInterval(grow);
      m.hooks.afterPutPack = undefined;
    }
    expect(res.warnings).toEqual([{ path: file, reason: 'changed during backup' }]);
    const { result, target } = await restore(m);
    expect(result.failed).toEqual([]);
    const restored = await fs.readFile(path.join(target, file));
    const now = await fs.readFile(file);
    expect(restored.length).toBeGreaterThanOrEqual(52 * MiB);
    expect(restored.length).toBeLessThan(now.length);
    expect(restored.equals(now.subarray(0, restored.length))).toBe(true);
    await expectConsistent(m);
  });

  it('a folder swapped for a link to one outside while its files wait to be read: nothing from outside is stored', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a', 'big.bin'), 40 * MiB);
    const names = ['f1', 'f2', 'f3'];
    for (const n of names) await writeRandomFile(path.join(src, 'c', n), 1000);
    const outside = path.join(m.dir, 'outside');
    await fs.mkdir(outside);
    for (const n of names) await fs.writeFile(path.join(outside, n), `SECRET ${n}\n`);
    // c is listed with a/ before anything is read; one worker reads big.bin first, and by the
    // time it reaches c's files, c is a link to the folder outside.
    let swapped = false;
    m.hooks.afterPutPack = async () => {
      if (swapped) return;
      swapped = true;
      await fs.rename(path.join(src, 'c'), path.join(m.dir, 'c-moved'));
      await fs.symlink(outside, path.join(src, 'c'));
    };
    const res = await runBackup(m.ctx, { include: [src], workers: 1 });
    m.hooks.afterPutPack = undefined;
    expect(swapped).toBe(true);
    expect(res.skipped.map((s: { path: string }) => s.path).sort()).toEqual(names.map((n) => path.join(src, 'c', n)));
    expect(res.skipped[0]?.reason).toMatch(/replaced during backup/);
    const { target } = await restore(m);
    for (const n of names) await expect(fs.readFile(path.join(target, src, 'c', n))).rejects.toThrow(/ENOENT/);
    await expectSameBytes(path.join(src, 'a', 'big.bin'), path.join(target, src, 'a', 'big.bin'));
  });

  it('a file replaced by a folder while it waits to be read is listed as replaced, not as unreadable', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a', 'big.bin'), 40 * MiB);
    await fs.mkdir(path.join(src, 'c'));
    await fs.writeFile(path.join(src, 'c', 'f'), 'a file, for now\n');
    let swapped = false;
    m.hooks.afterPutPack = async () => {
      if (swapped) return;
      swapped = true;
      await fs.rm(path.join(src, 'c', 'f'));
      await fs.mkdir(path.join(src, 'c', 'f'));
    };
    const res = await runBackup(m.ctx, { include: [src], workers: 1 });
    m.hooks.afterPutPack = undefined;
    expect(swapped).toBe(true);
    expect(res.skipped).toEqual([{ path: path.join(src, 'c', 'f'), reason: expect.stringMatching(/^replaced during backup by another file or folder/) }]);
  });

  it('changed on every pack: the job finishes and lists the file as changed during backup', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    const file = await writeRandomFile(path.join(src, 'growing.bin'), 52 * MiB);
    await writeRandomFile(path.join(src, 'steady.bin'), MiB);
    // Unchanged chunks are not stored again, so a re-read uploads packs (and so changes the file
    // again) only when enough of it is new: rewrite 20 MiB each time.
    m.hooks.afterPutPack = () => rewrite(file, 20 * MiB);
    const res = await runBackup(m.ctx, { include: [src] });
    m.hooks.afterPutPack = undefined;
    expect(res.warnings).toEqual([{ path: file, reason: 'changed during backup' }]);
    expect(res.skipped).toEqual([]);
    expect(res.stats.files).toBe(2);
    const { result, target } = await restore(m);
    expect(result.failed).toEqual([]);
    await expectSameBytes(path.join(src, 'steady.bin'), path.join(target, src, 'steady.bin'));
    expect((await fs.stat(path.join(target, file))).size).toBe(52 * MiB);
    await expectConsistent(m);
  });
});

describe('a disk vault with leftovers', () => {
  it('backs up, restores and verifies with junk in .tmp and a truncated, unindexed pack', async () => {
    const outer = await createMachine(); // only for its temporary folder
    const root = path.join(outer.dir, 'vault');
    await fs.mkdir(path.join(root, '.tmp'), { recursive: true });
    await fs.writeFile(path.join(root, '.tmp', '0123456789abcdef01234567.tmp'), Buffer.alloc(5000, 7));
    await fs.writeFile(path.join(root, '.tmp', 'junk'), 'half a write');
    const orphan = 'ab' + 'cd'.repeat(31);
    await fs.mkdir(path.join(root, 'packs', 'ab'), { recursive: true });
    await fs.writeFile(path.join(root, 'packs', 'ab', orphan), Buffer.alloc(1234, 1));

    const m = await createMachine({ base: new FsBlobStore(root) });
    const src = await makeSource(m);
    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
    expect(res.stats.packs).toBeGreaterThanOrEqual(3);
    await expectRestores(m, src);
    const report = await expectConsistent(m, true);
    expect(report.points).toBe(1);
    expect(report.orphanPacks).toBe(0);
    // The leftovers are still there, untouched (removing them is prune's job).
    expect((await fs.stat(path.join(root, 'packs', 'ab', orphan))).size).toBe(1234);
    expect(await fs.readdir(path.join(root, '.tmp'))).toEqual(expect.arrayContaining(['junk']));
  });
});

describe('packs streamed into a disk vault', () => {
  it('a failed write stops the job, leaves no temporary file, and the next job resumes', async () => {
    const outer = await createMachine(); // only for its temporary folder
    const root = path.join(outer.dir, 'vault');
    await fs.mkdir(root);
    const m = await createMachine({ base: new FsBlobStore(root) });
    // About 110 MiB: the first checkpoint is stored in the background, and on a busy machine the
    // data of a 40 MiB source was nearly all written by then, so no write was left to fail.
    const src = await makeSource(m, 92 * MiB);
    // Every write fails from a few MiB after the first checkpoint is stored (checkpoints are
    // written beside the data: a fault at a fixed count of writes could come before any was).
    const err = await backupError(m, {
      include: [src],
      checkpointBytes: CHECKPOINT_BYTES,
      onEvent: (e) => {
        if (e.type === 'checkpoint' && e.seq === 1) m.faulty.fail('write', { after: 4, times: Infinity });
      },
    });
    expect(err.code).toBe('AZBK_VAULT_UNREACHABLE');
    expect(m.faulty.faults.write).toBeGreaterThanOrEqual(1);
    expect(await fs.readdir(path.join(root, '.tmp'))).toEqual([]);
    const stored = await m.ctx.session.listCheckpoints();
    expect(stored.length).toBeGreaterThanOrEqual(1);
    await expectConsistent(m);

    m.faulty.clearFaults();
    const writes = m.faulty.calls.write;
    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
    expect(res.resumed).toMatchObject({ seq: stored.at(-1)!.seq });
    expect(m.faulty.calls.write - writes).toBeGreaterThan(10); // MiB pieces of the rest
    expect(await fs.readdir(path.join(root, '.tmp'))).toEqual([]);
    await expectRestores(m, src);
    await expectConsistent(m, true);
  });
});

describe('cancellation', () => {
  it('an abort after the first checkpoint saves one more; the next job resumes and uploads less', async () => {
    const clean = await createMachine();
    const m = await createMachine();
    const src = await makeSource(m);
    const full = await runBackup(clean.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });

    const ac = new AbortController();
    const err = await backupError(m, {
      include: [src],
      checkpointBytes: CHECKPOINT_BYTES,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'checkpoint') ac.abort();
      },
    });
    expect(err.code).toBe('AZBK_CANCELLED');
    const saved = await m.ctx.session.listCheckpoints();
    // The first checkpoint, and the last one the abort wrote.
    expect(saved.length).toBeGreaterThanOrEqual(2);
    expect(saved.map((c) => c.seq)).toEqual(saved.map((_, i) => i + 1));
    expect(err.message).toContain(`checkpoint ${saved.length} of job ${saved[0]!.jobId} saved`);
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toEqual([]);
    await expectConsistent(m);

    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
    expect(res.resumed?.seq).toBeGreaterThanOrEqual(1);
    expect(res.resumed?.jobId).toBe(saved[0]!.jobId);
    expect(res.stats.uploadedBytes).toBeLessThan(full.stats.uploadedBytes);
    expect(res.stats.files).toBe(full.stats.files);
    await expectRestores(m, src);
    await expectConsistent(m, true);
  });

  it('an abort while a checkpoint fails: the job fails with that failure, not as cancelled, and the next job restores exactly', async () => {
    const m = await createMachine();
    const src = await makeSource(m);
    const ac = new AbortController();
    let calls = 0;
    // The first checkpoint fails, and only after the abort has been seen: the job is stopping
    // (its last checkpoint waits behind this one) when the failure comes.
    const session = withMethods(m.ctx.session, (s) => ({
      putCheckpoint: async (p) => {
        if (++calls === 1) {
          ac.abort();
          await sleep(300);
          throw new Error('socket hang up');
        }
        return s.putCheckpoint(p);
      },
    }));
    const err: unknown = await runBackup({ ...m.ctx, session }, { include: [src], checkpointBytes: CHECKPOINT_BYTES, signal: ac.signal }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('socket hang up');
    expect(await m.ctx.session.listPoints(m.ctx.registration.machineId)).toEqual([]);
    await expectConsistent(m);

    const res = await runBackup(m.ctx, { include: [src], checkpointBytes: CHECKPOINT_BYTES });
    expect(res.stats.files).toBe(5);
    await expectRestores(m, src);
    await expectConsistent(m, true);
  });
});

describe('the job lock', () => {
  it('a second backup while one runs fails at once with AZBK_JOB_RUNNING', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'f.bin'), MiB);
    let entered!: () => void;
    const inUpload = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    m.hooks.beforePutPack = async () => {
      entered();
      await gate;
    };
    const first = runBackup(m.ctx, { include: [src] });
    await inUpload;
    const t0 = Date.now();
    await expect(runBackup(m.ctx, { include: [src] })).rejects.toMatchObject({ code: 'AZBK_JOB_RUNNING' });
    expect(Date.now() - t0).toBeLessThan(2000);
    release();
    const res = await first;
    expect(res.stats.files).toBe(1);
    await expect(fs.lstat(m.ctx.paths.lock)).rejects.toThrow(/ENOENT/);
  });

  it('a lock file left by a dead process does not block', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'f.bin'), MiB);
    expect(() => process.kill(999999, 0)).toThrow();
    await fs.writeFile(m.ctx.paths.lock, JSON.stringify({ pid: 999999, jobId: 'x', kind: 'backup' }));
    const res = await runBackup(m.ctx, { include: [src] });
    expect(res.stats.files).toBe(1);
    await expect(fs.lstat(m.ctx.paths.lock)).rejects.toThrow(/ENOENT/);
  });

  it.runIf(process.platform === 'linux')('a lock file whose pid another process has since been given does not block', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'f.bin'), MiB);
    // The lock of a job that was killed, whose pid a live process has now (after a reboot, or once pids wrap).
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const identity = processIdentity(other.pid!);
      expect(identity).not.toBeNull();
      await fs.writeFile(m.ctx.paths.lock, JSON.stringify({ pid: other.pid, process: `${identity!}0`, jobId: 'x', kind: 'backup' }));
      expect(await lockHolder(m.ctx.paths.lock)).toBeNull();
      const res = await runBackup(m.ctx, { include: [src] });
      expect(res.stats.files).toBe(1);
      // The same pid with its own identity is a job running.
      await fs.writeFile(m.ctx.paths.lock, JSON.stringify({ pid: other.pid, process: identity, jobId: 'y', kind: 'backup' }));
      await expect(runBackup(m.ctx, { include: [src] })).rejects.toMatchObject({ code: 'AZBK_JOB_RUNNING' });
    } finally {
      other.kill();
    }
  });
});
