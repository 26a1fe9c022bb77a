/**
 * Where a worker module is: beside this one once built; when this module runs from its TypeScript
 * source (the in-process tests), the built copy under dist/ (`npm test` builds first).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function workerUrl(file: string): URL {
  const sibling = new URL(`./${file}`, import.meta.url);
  return existsSync(fileURLToPath(sibling)) ? sibling : new URL(`../../../dist/agent/pipeline/${file}`, import.meta.url);
}
