/**
 * The agent's log: pino JSON lines in AZBK_HOME/logs/azbk.log. Secrets never reach it: callers log
 * ids and counts, and the redact list catches the field names that could carry one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeFoldersSync } from './files.js';
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT = ['passphrase', 'secret', 'machineSecret', 'masterKey', 'key', 'token', 'connectionString', '*.secret', '*.passphrase', '*.token'];

/**
 * Opens the log file under `logDir` (the folder made 0700, the file owner-only: an error it records
 * can name files and folders); a silent logger if `logDir` is null.
 */
export function openLogger(logDir: string | null, level = process.env.AZBK_LOG_LEVEL ?? 'info'): Logger {
  if (logDir === null) return pino({ level: 'silent' });
  makeFoldersSync(logDir, 0o700);
  const fd = fs.openSync(path.join(logDir, 'azbk.log'), 'a', 0o600);
  // A log an earlier version made kept the mode it was made with (0644).
  if (process.platform !== 'win32') {
    try {
      fs.fchmodSync(fd, 0o600);
    } catch {
      // not this user's file (another user ran azbk with this AZBK_HOME): it stays as it is
    }
  }
  // A line the disk cannot take (full, failing) is lost, and the command goes on: a log must never
  // be what stops a backup or a restore, or turn an error it records into a crash.
  const dest = {
    write(line: string): void {
      try {
        fs.writeSync(fd, line);
      } catch {
        // dropped
      }
    },
  };
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } }, dest);
}
