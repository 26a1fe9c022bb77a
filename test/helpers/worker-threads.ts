/**
 * Worker threads for in-process tests. Under vitest the agent runs from its TypeScript sources,
 * where no `.js` file exists beside a module, so `new Worker(new URL('./chunk-worker.js', ...))`
 * (src/agent/pipeline/pool.ts) cannot start. A test file that runs backups in process mocks
 * node:worker_threads with this module's Worker, which runs such a worker from a bundle of its
 * `.ts` source (made once per test process with rolldown, which vitest already depends on):
 *
 *   vi.mock('node:worker_threads', async (orig) =>
 *     (await import('../helpers/worker-threads.js')).withSourceWorkers(await orig()));
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as WorkerThreads from 'node:worker_threads';

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const require = createRequire(path.join(root, 'package.json'));
let bundleDir: string | null = null;
const bundles = new Map<string, string>();

/** Bundles every `src/**\/*-worker.ts`, leaving node built-ins and zstd-napi as imports. */
async function bundleWorkers(): Promise<void> {
  if (bundleDir !== null) return;
  const { build } = (await import(pathToFileURL(require.resolve('rolldown')).href)) as typeof import('rolldown');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'azbk-workers-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  // zstd-napi loads a native addon relative to itself: keep it (and its subpaths) as imports.
  const paths = (id: string) => (id.startsWith('zstd-napi') ? pathToFileURL(require.resolve(id)).href : id);
  const sources = (await import('node:fs/promises')).readdir(path.join(root, 'src'), { recursive: true });
  for (const rel of await sources) {
    if (!rel.endsWith('-worker.ts')) continue;
    const source = path.join(root, 'src', rel);
    const file = path.join(dir, rel.replace(/[\\/]/g, '_').replace(/\.ts$/, '.mjs'));
    await build({
      input: source,
      platform: 'node',
      external: [/^node:/, /^zstd-napi(\/|$)/],
      resolve: { extensionAlias: { '.js': ['.ts', '.js'] } },
      output: { file, format: 'esm', paths },
      logLevel: 'warn',
    });
    bundles.set(source.replace(/\.ts$/, '.js'), file);
  }
  bundleDir = dir;
}

/** node:worker_threads with a Worker that runs a missing `src/**\/*.js` worker from its bundle. */
export async function withSourceWorkers(orig: typeof WorkerThreads): Promise<typeof WorkerThreads> {
  await bundleWorkers();
  class SourceWorker extends orig.Worker {
    constructor(file: string | URL, options?: WorkerThreads.WorkerOptions) {
      const p = file instanceof URL || file.startsWith('file:') ? fileURLToPath(file) : file;
      const bundle = existsSync(p) ? undefined : bundles.get(path.resolve(p));
      super(bundle ?? file, options);
    }
  }
  return { ...orig, Worker: SourceWorker, default: { ...orig, Worker: SourceWorker } } as typeof WorkerThreads;
}
