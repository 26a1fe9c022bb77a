/** The change journal's watcher, in process: what must not stop it, and what must. */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { journalFiles } from '../../src/agent/journal.js';
import { runWatcher } from '../../src/agent/journal-watcher.js';
import { makeTempDir } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('journal watcher', () => {
  it('goes on when a new hard link cannot be looked at again (its folder replaced by a file at once)', async () => {
    const root = await makeTempDir('azbk-journal-');
    const [w, home] = [path.join(root, 'w'), path.join(root, 'home')];
    await fs.mkdir(path.join(w, 'a'), { recursive: true });
    await fs.mkdir(path.join(w, 'b'));
    await fs.writeFile(path.join(w, 'a', 'f'), 'f\n');
    const stop = new AbortController();
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    const watching = runWatcher(home, [w], [], stop.signal, ready);
    let failed: unknown = null;
    watching.catch((err: unknown) => (failed = err));
    await isReady;
    // A link, then (before the watcher looks at it again) its folder moved away and a file put in its place.
    await fs.link(path.join(w, 'a', 'f'), path.join(w, 'b', 'g'));
    await sleep(100);
    await fs.rename(path.join(w, 'b'), path.join(root, 'b-old'));
    await fs.writeFile(path.join(w, 'b'), 'now a file\n');
    await sleep(1500);
    await fs.writeFile(path.join(w, 'a', 'later.txt'), 'later\n');
    await sleep(500);
    expect(failed).toBeNull();
    stop.abort();
    await watching;
    const log = await fs.readFile(journalFiles(home).changes, 'utf8');
    expect(log).toContain(JSON.stringify(path.join(w, 'a', 'later.txt')));
  });

  it('stops with an error, and leaves no session, when a change cannot be recorded (a full disk)', async () => {
    const root = await makeTempDir('azbk-journal-');
    const [w, home] = [path.join(root, 'w'), path.join(root, 'home')];
    await fs.mkdir(w);
    const stop = new AbortController();
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    const watching = runWatcher(home, [w], [], stop.signal, ready);
    watching.catch(() => undefined);
    await isReady;
    expect(fsSync.existsSync(journalFiles(home).session)).toBe(true);
    const write = fsSync.writeSync;
    const full = vi.spyOn(fsSync, 'writeSync').mockImplementation(((fd: number, ...rest: never[]) => {
      if (fsSync.fstatSync(fd).ino === fsSync.statSync(journalFiles(home).changes).ino) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      return (write as (...a: unknown[]) => number)(fd, ...rest);
    }) as typeof fsSync.writeSync);
    try {
      await fs.writeFile(path.join(w, 'new.txt'), 'x\n');
      await expect(watching).rejects.toMatchObject({
        code: 'AZBK_LOCAL_IO',
        message: expect.stringMatching(/^A change could not be recorded in .*changes\.log \(.*\), so the change journal stopped; backups scan everything/),
      });
    } finally {
      full.mockRestore();
      stop.abort();
    }
    expect(fsSync.existsSync(journalFiles(home).session)).toBe(false);
  });
});
