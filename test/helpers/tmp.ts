/**
 * Temporary folders for tests. Two flavours:
 * - `makeTempDir` inside a test (or a beforeEach hook): the folder is removed when the test
 *   finishes, pass or fail, via vitest's `onTestFinished`.
 * - `createTempDir` anywhere else (beforeAll, global setup): returns the path and a `cleanup`
 *   function the caller must call, e.g. in afterAll.
 */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

/** A temporary folder and the function that removes it with everything inside. */
export interface TempDir {
  readonly path: string;
  readonly cleanup: () => Promise<void>;
}

/**
 * Creates a new empty folder under os.tmpdir() whose name starts with `prefix`, and returns its
 * real path (symlinks such as macOS's /var -> /private/var resolved). The caller removes it.
 */
export async function createTempDir(prefix = 'azbk-test-'): Promise<TempDir> {
  const path = await realpath(await mkdtemp(join(tmpdir(), prefix)));
  // maxRetries: Windows may hold a just-closed file open for a moment.
  return { path, cleanup: () => rm(path, { recursive: true, force: true, maxRetries: 5 }) };
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
