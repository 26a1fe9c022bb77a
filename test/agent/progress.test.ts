/**
 * What a running backup and restore say of their progress (the status line on a terminal shows
 * it): once the job is over, a backup has counted every file it holds once, however each folder
 * was examined (read, found unchanged file by file, or taken whole), and a restore has written all
 * it planned, and verify --read-data has read all it planned.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup, type BackupEvent, type BackupOptions, type BackupProgress } from '../../src/agent/backup.js';
import { runRestore, type PlannedCounts, type RestoreCounts, type RestoreEvent } from '../../src/agent/restore.js';
import { verifyVault } from '../../src/agent/verify.js';
import { createMachine, type TestMachine } from '../helpers/machine.js';
import { settled } from '../helpers/racy.js';

/** A backup, with what its progress said at the end. */
async function backupWithProgress(m: TestMachine, opts: BackupOptions) {
  let progress: (() => BackupProgress) | null = null;
  const onEvent = (e: BackupEvent) => {
    if (e.type === 'start') progress = e.progress;
  };
  const r = await runBackup(m.ctx, { ...opts, onEvent });
  expect(progress).not.toBeNull();
  return { r, end: progress!() };
}

describe('progress', () => {
  it('counts every file once in a first backup, an unchanged one, one after a change deep down and one the scan worker went ahead of; a restore writes all it planned', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    for (const dir of ['a', 'a/deep', 'a/deep/er', 'b', 'c']) {
      await fs.mkdir(path.join(src, dir), { recursive: true });
      for (let i = 0; i < 5; i++) await fs.writeFile(path.join(src, dir, `f${i}.txt`), `${dir} ${i}\n`.repeat(i * 40));
    }
    await fs.writeFile(path.join(src, 'b', 'big.bin'), randomBytes(3 * 1024 * 1024));
    await fs.writeFile(path.join(src, 'c', 'empty'), '');
    await fs.link(path.join(src, 'b', 'big.bin'), path.join(src, 'c', 'big-link.bin'));
    await fs.symlink('f1.txt', path.join(src, 'a', 'link'));
    // Files changed within two seconds before a backup read them are read again by the next one.
    await settled();
    const opts = { include: [src], workers: 1 };

    const first = await backupWithProgress(m, opts);
    expect(first.end).toMatchObject({ files: first.r.stats.files, bytes: first.r.stats.bytes, readBytes: first.r.stats.readBytes, newBytes: first.r.stats.newBytes });
    expect(first.end.files).toBe(28);
    // the manifest goes up after the last progress
    expect(first.end.uploadedBytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(first.end.uploadedBytes).toBeLessThan(first.r.stats.uploadedBytes);

    const unchanged = await backupWithProgress(m, opts);
    expect(unchanged.r.stats.readBytes).toBe(0);
    expect(unchanged.end).toMatchObject({ files: 28, bytes: first.r.stats.bytes, readBytes: 0 });

    await fs.appendFile(path.join(src, 'a', 'deep', 'er', 'f3.txt'), 'more\n');
    const changed = await backupWithProgress(m, opts);
    expect(changed.r.stats.readBytes).toBeGreaterThan(0);
    expect(changed.r.stats.readBytes).toBeLessThan(2048); // the one file changed
    expect(changed.end).toMatchObject({ files: 28, bytes: first.r.stats.bytes + 5, readBytes: changed.r.stats.readBytes });

    // Unchanged folders the scan worker found first are taken whole, their files counted at once
    // (the file changed just before the last backup is read again: it was too recent to trust).
    await settled();
    await backupWithProgress(m, opts);
    const scanned = await backupWithProgress(m, { ...opts, scanFirst: true });
    expect(scanned.r.stats.readBytes).toBe(0);
    expect(scanned.end).toMatchObject({ files: 28, bytes: first.r.stats.bytes + 5 });

    let planned: { total: () => PlannedCounts; progress: () => RestoreCounts } | null = null;
    let listings: (() => number) | null = null;
    const onEvent = (e: RestoreEvent) => {
      if (e.type === 'planning') listings = e.listings;
      if (e.type === 'planned') planned = e;
    };
    const target = await fs.mkdtemp(path.join(m.dir, 'restore-'));
    const restored = await runRestore(m.ctx, { point: 'latest', target, paths: [], conflict: 'skip', onEvent });
    expect(restored.failed).toEqual([]);
    expect(planned).not.toBeNull();
    const { files, bytes, complete } = planned!.total();
    expect({ files, bytes, complete }).toEqual({ files: restored.restored.files, bytes: restored.restored.bytes, complete: true });
    expect(files).toBe(28);
    expect(planned!.progress()).toEqual({ files, bytes });
    // src and its five folders at least (and the folders above it, found on the way)
    expect(listings).not.toBeNull();
    expect(listings!()).toBeGreaterThanOrEqual(6);

    // verify --read-data reads every pack range it planned: the chunks (3 MiB random, the rest small) and their seals
    let reading: { total: number; progress: () => number } | null = null;
    const report = await verifyVault(m.ctx.session, m.keys, { readData: true, onReading: (t, p) => (reading = { total: t, progress: p }) });
    expect(report.problems).toEqual([]);
    expect(reading).not.toBeNull();
    expect(reading!.total).toBeGreaterThan(3 * 1024 * 1024);
    expect(reading!.total).toBeLessThan(4 * 1024 * 1024);
    expect(reading!.progress()).toBe(reading!.total);
  }, 60_000);

  it('never shows more new data than read, also while the uploads hold the backup back', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'big.bin'), randomBytes(56 * 1024 * 1024)); // more packs than go up at once
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    m.hooks.beforePutPack = () => gate;
    const seen: { progress?: () => BackupProgress } = {};
    const job = runBackup(m.ctx, { include: [src], workers: 1, onEvent: (e) => void (e.type === 'start' && (seen.progress = e.progress)) });
    // Until nothing more is taken: the packs that fit are full, and the next one waits.
    let last = -1;
    for (let i = 0; i < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const now = seen.progress?.().newBytes ?? -1;
      if (now > 0 && now === last) break;
      last = now;
    }
    const held = seen.progress!();
    expect(held.newBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(held.newBytes).toBeLessThanOrEqual(held.readBytes);
    release();
    const r = await job;
    expect(r.stats.readBytes).toBe(56 * 1024 * 1024);
  });
});
