/**
 * How far the JavaScript heap grows between full collections during a backup or restore. By
 * default V8 lets the old generation grow to up to four times what survived the last full
 * collection before collecting again. Most of what a backup's main thread keeps for a while dies
 * old (a folder's entries live until its last file is read), so that growth was mostly garbage: at
 * the end of the kernel tree's backup the heap held 167 MiB for 30 MiB live. Half again as much as survived was
 * room enough (peak 387-394 -> 308-319 MiB, no slower); once the main thread no longer waited
 * for checkpoints, 35% (kernel tree, initial backup, alternated with 50%: peak 236-256 against
 * 242-266 MiB, 9.6-10.5 s against 9.5-10.3 s; 25% did as well: 235-256 MiB). A restore lets
 * go of its listings once planned and of each range once read, which the default growth left in
 * place until the end (kernel tree: peak 276-283 -> 255-263 MiB, about 2% slower; 25% against
 * 50%: no difference in time or peak).
 */
import v8 from 'node:v8';

const GROWING_PERCENT = 35;

/** Sets the heap's growth (process-wide, for worker threads too); a flag V8 reads at every full collection. */
export function boundHeapGrowth(): void {
  v8.setFlagsFromString(`--heap-growing-percent=${GROWING_PERCENT}`);
}
