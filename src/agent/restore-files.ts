/** Writing a restored file: the steps the restore's main thread and its workers share. */
import fs from 'node:fs';

/** Seconds since the epoch with microsecond precision, from nanoseconds as a decimal string. */
export function toTime(ns: string): number {
  return Number(BigInt(ns) / 1000n) / 1e6;
}

/**
 * Opens a file's temporary file for writing: `create` makes it (owner-only), and fails if
 * anything is at that name already, a planted link included.
 */
export function openTemp(tmp: string, create: boolean): number {
  return fs.openSync(tmp, create ? 'wx' : 'r+', 0o600);
}

/** Writes all of `data` at `position`. */
export function writeAll(fd: number, data: Uint8Array, position: number): void {
  let pos = 0;
  while (pos < data.length) pos += fs.writeSync(fd, data, pos, data.length - pos, position + pos);
}

/** Gives an open file its backed-up mode and modification time. */
export function settle(fd: number, mode: number, mtime: string): void {
  const t = toTime(mtime);
  fs.fchmodSync(fd, mode);
  fs.futimesSync(fd, t, t);
}
