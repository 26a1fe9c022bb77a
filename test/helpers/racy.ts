/**
 * Waiting out a backup's racy window (see racy in src/agent/backup.ts): a file changed within
 * RACY_MS before a backup reads it is read again by the next backup, and is in no checkpoint.
 */
import { RACY_MS } from '../../src/agent/backup.js';

/** Past RACY_MS, so that a change right at its edge is settled too. */
const MARGIN_MS = 100;

/** Resolves once files last changed at `changed` (ms since the epoch; default now) are older than a racy read. */
export function settled(changed = Date.now()): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, changed + RACY_MS + MARGIN_MS - Date.now())));
}
