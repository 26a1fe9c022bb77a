/** Writing a restored file: the steps the restore's main thread and its workers share. */
import fs from 'node:fs';
import { errnoCode } from '../shared/files.js';

/** Seconds since the epoch with microsecond precision, from nanoseconds as a decimal string. */
export function toTime(ns: string): number {
  return Number(BigInt(ns) / 1000n) / 1e6;
}

/** Opening an existing temporary file never follows a link put in its place (where the OS can tell). */
const REOPEN = fs.constants.O_WRONLY | (fs.constants.O_NOFOLLOW ?? 0);

/**
 * Opens a file's temporary file for writing: `create` makes it (owner-only) and fails if anything
 * is at that name already, a planted link included; else it must exist and not be a link.
 */
export function openTemp(tmp: string, create: boolean): number {
  return create ? fs.openSync(tmp, 'wx', 0o600) : fs.openSync(tmp, REOPEN);
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

/** Removes the temporary file of a file that failed; a failure to remove it changes nothing more. */
export function removeTemp(tmp: string): void {
  try {
    fs.rmSync(tmp, { force: true });
  } catch {
    // the file is reported failed already
  }
}

/** The message to report for a failed file operation. */
export function why(err: unknown): string {
  return errnoCode(err) ?? (err as Error).message;
}
