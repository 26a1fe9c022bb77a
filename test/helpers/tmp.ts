/**
 * Temporary folders for tests. During a test run each is made in a slot of its own under the
 * run's folder (see global-setup.ts), so no folder above it changes while its test runs. Two
 * flavours:
 * - `makeTempDir` inside a test (or a beforeEach hook): the folder is removed when the test
 *   finishes, pass or fail, via vitest's `onTestFinished`.
 * - `createTempDir` anywhere else (beforeAll, global setup): returns the path and a `cleanup`
 *   function the caller must call, e.g. in afterAll.
 */
import { mkdir, mkdtemp, realpath, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject, onTestFinished } from 'vitest';

/** A temporary folder and the function that removes it with everything inside. */
export interface TempDir {
  readonly path: string;
  readonly cleanup: () => Promise<void>;
}

/** The run's folder and its number of slots (see global-setup.ts), or null outside a test run's workers. */
function runFolder(): { base: string; slots: number } | null {
  try {
    const base = inject('azbkTempBase');
    return typeof base === 'string' ? { base, slots: inject('azbkTempSlots') } : null;
  } catch {
    return null; // not in a test worker
  }
}

/**
 * Takes a free slot of the run's folder: its `taken` folder is made by one caller only. Null when
 * none is free after as many tries as there are slots.
 */
async function takeSlot(base: string, slots: number): Promise<string | null> {
  const start = Math.floor(Math.random() * slots);
  for (let i = 0; i < slots; i++) {
    const slot = join(base, 'slots', String((start + i) % slots));
    try {
      await mkdir(join(slot, 'taken'));
      return slot;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return null;
}

/**
 * Creates a new empty folder whose name starts with `prefix`, in a slot of its own during a test
 * run (else under os.tmpdir()), and returns its real path (symlinks such as macOS's /var ->
 * /private/var resolved). The caller removes it with `cleanup`, which frees the slot.
 */
export async function createTempDir(prefix = 'azbk-test-'): Promise<TempDir> {
  const run = runFolder();
  const slot = run === null ? null : await takeSlot(run.base, run.slots);
  const path = await realpath(await mkdtemp(join(slot ?? tmpdir(), prefix)));
  // maxRetries: Windows may hold a just-closed file open for a moment.
  const cleanup = async () => {
    await rm(path, { recursive: true, force: true, maxRetries: 5 });
    if (slot !== null) await rmdir(join(slot, 'taken')).catch(() => undefined);
  };
  return { path, cleanup };
}

/**
 * Creates a new empty folder like createTempDir and removes it when the current test finishes.
 * Must be called while a test (or its beforeEach hook) runs.
 */
export async function makeTempDir(prefix = 'azbk-test-'): Promise<string> {
  const dir = await createTempDir(prefix);
  onTestFinished(dir.cleanup);
  return dir.path;
}
