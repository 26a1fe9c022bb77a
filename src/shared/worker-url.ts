/**
 * Where a worker module is: beside the module that starts it once built (dist/ from tsc, or the
 * bundle in dist/bundle/ that bin/azbk runs, see scripts/bundle.mjs); when that module runs from
 * its TypeScript source (the in-process tests), the built copy at the same place under dist/
 * (`npm test` builds first).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository (or package) root: this module is src/shared/, dist/shared/ or dist/bundle/ under it. */
const ROOT = new URL('../../', import.meta.url);

/** The worker module `file` beside the module whose import.meta.url is `from`. */
export function workerUrl(from: string, file: string): URL {
  const sibling = new URL(`./${file}`, from);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  const src = new URL('src/', ROOT).href;
  return sibling.href.startsWith(src) ? new URL(`dist/${sibling.href.slice(src.length)}`, ROOT) : sibling;
}
