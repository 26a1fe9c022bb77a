/** Why a backup skipped a file or folder, in words. */
import { errnoCode } from '../shared/files.js';
import { NOT_REGULAR, REPLACED } from './pipeline/protocol.js';

/** What a backup says of a file or folder it could not read, by the error reading it gave. */
export function skipReason(err: unknown): string {
  switch (errnoCode(err)) {
    case 'ENOENT':
      return 'vanished during backup';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EBUSY':
      return 'locked by another process';
    case 'ELOOP': // opened without following links
    case 'ESPIPE': // a pipe, read at an offset
    case NOT_REGULAR:
      return 'replaced during backup by a link or a special file';
    case 'ENOTDIR': // a folder opened as one
    case 'EISDIR': // a file opened as one
    case REPLACED:
      return 'replaced during backup by another file or folder, or a folder above it was (read again next time)';
    default:
      return `cannot read (${errnoCode(err) ?? (err as Error).message})`;
  }
}
