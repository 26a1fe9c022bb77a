/** The change journal's watcher, in process: what must not stop it, and what must. */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { changesSince, journalFiles, journalRun, watcherState } from '../../src/agent/journal.js';
import { runWatcher } from '../../src/agent/journal-watcher.js';
import { ownFolders } from '../../src/agent/own-folders.js';
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

  it('keeps a journal backups do not trust when a folder could not be watched while it set up (the watch limit reached); not for one nobody may read', async () => {
    const root = await makeTempDir('azbk-journal-');
    const [w, home] = [path.join(root, 'w'), path.join(root, 'home')];
    for (const d of ['a', 'b', 'c']) await fs.mkdir(path.join(w, d), { recursive: true });
    const watchFolder = fsSync.watch;
    const watchOf = async (code: string) => {
      // The watch of folder b fails as inotify fails once the system's limit is reached.
      const spy = vi.spyOn(fsSync, 'watch').mockImplementation(((p: fsSync.PathLike, ...rest: never[]) => {
        if (path.resolve(String(p)) === path.join(w, 'b')) throw Object.assign(new Error(`${code}: cannot watch '${String(p)}'`), { code });
        return (watchFolder as (...a: unknown[]) => fsSync.FSWatcher)(p, ...rest);
      }) as typeof fsSync.watch);
      syncBuiltinESMExports();
      const stop = new AbortController();
      let ready!: () => void;
      const isReady = new Promise<void>((resolve) => (ready = resolve));
      const watching = runWatcher(home, [w], [], stop.signal, ready);
      try {
        await isReady;
      } finally {
        spy.mockRestore();
        syncBuiltinESMExports();
      }
      return { state: watcherState(home), run: journalRun(home), stop: () => (stop.abort(), watching) };
    };
    const limit = await watchOf('ENOSPC');
    expect(limit.state).toBeNull(); // (in this process: watcherState leaves out its own)
    const session = JSON.parse(await fs.readFile(journalFiles(home).session, 'utf8')) as { broken?: string; run: string };
    expect(session.broken).toMatch(/ENOSPC/);
    expect(limit.run).toBeNull();
    const mark = { started: new Date().toISOString(), offset: 0, run: session.run, paths: [w] };
    expect(changesSince(home, mark, [w])).toEqual({ ok: false, why: expect.stringMatching(/^the change journal reported an error: ENOSPC/) });
    await limit.stop();

    const unreadable = await watchOf('EACCES');
    expect(unreadable.run).not.toBeNull();
    // Trusted by a backup that leaves out the same folders of azbk's own, not by one registered
    // with another vault since (whose folder the watcher would leave out, and a backup keep).
    const trusted = { ...mark, run: unreadable.run! };
    expect(changesSince(home, trusted, [w], undefined, null, ownFolders(home, '').key)).toMatchObject({ ok: true });
    await fs.mkdir(path.join(root, 'vault'));
    expect(changesSince(home, trusted, [w], undefined, null, ownFolders(home, pathToFileURL(path.join(root, 'vault')).href).key)).toEqual({ ok: false, why: expect.stringMatching(/other folders of azbk's own/) });
    await unreadable.stop();
  });

  it('takes a path watched as a file with several links, and now a folder, for a folder: folders moved in it are examined whole', async () => {
    const root = await makeTempDir('azbk-journal-');
    const [w, home] = [path.join(root, 'w'), path.join(root, 'home')];
    await fs.mkdir(path.join(w, 'other'), { recursive: true });
    await fs.writeFile(path.join(w, 'P'), 'linked\n');
    await fs.link(path.join(w, 'P'), path.join(w, 'other', 'P2'));
    const stop = new AbortController();
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    const watching = runWatcher(home, [w], [], stop.signal, ready);
    await isReady;
    await fs.rm(path.join(w, 'P'));
    await fs.mkdir(path.join(w, 'P', 'x', 'deep'), { recursive: true });
    await sleep(1500);
    // A folder moved in P: the journal says to examine it whole.
    await fs.mkdir(path.join(root, 'made'));
    await fs.rename(path.join(root, 'made'), path.join(w, 'P', 'y'));
    await sleep(500);
    stop.abort();
    await watching;
    const log = await fs.readFile(journalFiles(home).changes, 'utf8');
    expect(log).toContain(JSON.stringify({ tree: path.join(w, 'P', 'y') }));
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
