/**
 * The one registry of azbk errors. Every failure a user can see has a stable `AZBK_*` code, a
 * one-line message, a hint and an exit code; `docs/errors.md` lists them and a test keeps the two
 * in step. Code below `src/cli` throws `AzbkError`; only the CLI's exit handler prints it.
 */

/** Process exit codes, as documented in the README and in each command's help. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  partial: 3,
  /** verify found points or files that cannot be restored whole (it lists them) */
  problems: 4,
  vaultUnreachable: 10,
  locked: 11,
  wrongPassphrase: 12,
  credentials: 13,
  vaultLimit: 14,
  cancelled: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

interface ErrorSpec {
  readonly exit: ExitCode;
  readonly hint: string;
}

/** Every error code azbk can report, with its exit code and the hint shown to the user. */
export const errorRegistry = {
  AZBK_USAGE: { exit: ExitCode.usage, hint: 'Run the command with --help to see its options.' },
  AZBK_BAD_INPUT: { exit: ExitCode.usage, hint: 'Check the value and try again.' },
  AZBK_PASSPHRASE_TOO_SHORT: {
    exit: ExitCode.usage,
    hint: 'Every azbk passphrase has at least 16 characters: check the file or what was typed. For a new one, register can make one: --generate-passphrase FILE.',
  },
  AZBK_PASSPHRASE_MISMATCH: { exit: ExitCode.usage, hint: 'Type the same passphrase twice.' },
  AZBK_NO_PASSPHRASE: {
    exit: ExitCode.usage,
    hint: 'Give --passphrase-file FILE or --generate-passphrase FILE when no terminal is attached.',
  },
  AZBK_NOT_REGISTERED: {
    exit: ExitCode.usage,
    hint: 'Register this machine first: azbk register --vault-credentials FILE.',
  },
  AZBK_ALREADY_REGISTERED: {
    exit: ExitCode.usage,
    hint: 'Use a fresh AZBK_HOME to register another machine, or pass --reregister to register this one again.',
  },
  AZBK_MACHINE_NAME_TAKEN: {
    exit: ExitCode.usage,
    hint: 'Choose another --machine-name, or pass --reregister to take over that machine.',
  },
  AZBK_NOTHING_TO_BACK_UP: {
    exit: ExitCode.usage,
    hint: 'Name folders with --include PATH, or set them with azbk policy set --include PATH.',
  },
  AZBK_PATH_NOT_FOUND: { exit: ExitCode.usage, hint: 'Check that the path exists and is readable.' },
  AZBK_POINT_NOT_FOUND: { exit: ExitCode.usage, hint: 'List the recovery points with azbk points.' },
  AZBK_MACHINE_NOT_FOUND: {
    exit: ExitCode.usage,
    hint: 'Check the machine name; azbk points --machine NAME lists its points.',
  },
  AZBK_VAULT_EXISTS: {
    exit: ExitCode.usage,
    hint: 'Choose an empty or new folder for the vault.',
  },
  AZBK_VAULT_NOT_FOUND: {
    exit: ExitCode.vaultUnreachable,
    hint: 'Check the vault path or endpoint in the credentials file, and that the vault is reachable.',
  },
  AZBK_VAULT_UNREACHABLE: {
    exit: ExitCode.vaultUnreachable,
    hint: 'Check that the vault is reachable, then run the command again.',
  },
  AZBK_VAULT_CORRUPT: {
    exit: ExitCode.failed,
    hint: 'A vault object failed its integrity check; the vault may be damaged or tampered with.',
  },
  AZBK_VAULT_TOO_OLD: {
    exit: ExitCode.failed,
    hint: 'Upgrade azbk where the vault service runs, then back up again; restores work meanwhile.',
  },
  AZBK_PACK_GONE: {
    exit: ExitCode.failed,
    hint: 'Data this backup counted on is no longer in the vault (pruned while it ran, or lost); run the backup again, which stores it anew.',
  },
  AZBK_JOB_RUNNING: {
    exit: ExitCode.locked,
    hint: 'Wait for the running job to finish, or cancel it.',
  },
  AZBK_WRONG_PASSPHRASE: {
    exit: ExitCode.wrongPassphrase,
    hint: 'Use the passphrase given when the machine that made the backup was registered.',
  },
  AZBK_CREDENTIALS_INVALID: {
    exit: ExitCode.credentials,
    hint: 'Download a new credentials file from the vault: azbk vault credentials.',
  },
  AZBK_CREDENTIALS_EXPIRED: {
    exit: ExitCode.credentials,
    hint: 'Download a new credentials file from the vault: azbk vault credentials.',
  },
  AZBK_VAULT_LIMIT: {
    exit: ExitCode.vaultLimit,
    hint: 'The vault holds as many machines as it can; use another vault.',
  },
  AZBK_FORBIDDEN: {
    exit: ExitCode.failed,
    hint: 'Machines may only add data to the vault; they cannot change or delete it.',
  },
  AZBK_PARTIAL: {
    exit: ExitCode.partial,
    hint: 'Some items could not be processed; they are listed above.',
  },
  AZBK_CANCELLED: { exit: ExitCode.cancelled, hint: 'Run the command again to continue.' },
  AZBK_LOCAL_IO: {
    exit: ExitCode.failed,
    hint: 'Check the free space and permissions of AZBK_HOME, then run the command again.',
  },
  AZBK_SCHEDULER_FAILED: {
    exit: ExitCode.failed,
    hint: "Check that this user may use the system's scheduler (crontab, or Task Scheduler on Windows).",
  },
  AZBK_KEYCHAIN_UNAVAILABLE: {
    exit: ExitCode.failed,
    hint: "Run the command in the user's desktop session with the keychain unlocked (where azbk secrets --store file moves the secrets to a file, for jobs that run elsewhere).",
  },
  AZBK_SECRETS_IN_KEYCHAIN: {
    exit: ExitCode.usage,
    hint: "Scheduled jobs run outside the user's session, where the keychain is out of reach: keep the secrets in a file first (azbk secrets --store file).",
  },
  AZBK_INTERNAL: {
    exit: ExitCode.failed,
    hint: 'This is a bug in azbk; the log under AZBK_HOME/logs has details.',
  },
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code from the registry. */
export type ErrorCode = keyof typeof errorRegistry;

/** An error a user can act on: code, one-line message, hint and exit code from the registry. */
export class AzbkError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly hint: string;

  constructor(code: ErrorCode, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AzbkError';
    this.code = code;
    this.exitCode = errorRegistry[code].exit;
    this.hint = options?.hint ?? errorRegistry[code].hint;
  }
}

/** True when `err` is an AzbkError, optionally with the given code. */
export function isAzbkError(err: unknown, code?: ErrorCode): err is AzbkError {
  return err instanceof AzbkError && (code === undefined || err.code === code);
}

/** Errors of the file system that the machine's state explains (permissions, space, something in the way), not a bug. */
const LOCAL_IO_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'EMFILE', 'ENFILE', 'EIO', 'ELOOP', 'ENAMETOOLONG']);

/** SQLite's codes for a disk that is full, read-only, failing or refused. */
const SQLITE_LOCAL_IO = /^SQLITE_(FULL|IOERR|CANTOPEN|READONLY|PERM|NOLFS)(_[A-Z_]+)?$/;

/**
 * AZBK_LOCAL_IO for a file system error that reached no handler of its own (a read-only AZBK_HOME,
 * a full disk, a file where a folder of it should be), naming the file; undefined for anything else.
 */
export function localIoError(err: unknown): AzbkError | undefined {
  const e = err as NodeJS.ErrnoException | null;
  if (e === null || typeof e !== 'object') return undefined;
  // better-sqlite3's errors (the local cache) carry SQLite's code, and no file
  if (SQLITE_LOCAL_IO.test(String(e.code))) return new AzbkError('AZBK_LOCAL_IO', `Cannot use the local cache: ${e.message} (${e.code}).`, { cause: err });
  // A folder that cannot be made where its parent is (a file system such as /proc, a broken link on the way) too.
  if (!LOCAL_IO_CODES.has(String(e.code)) && !(e.code === 'ENOENT' && e.syscall === 'mkdir')) return undefined;
  const where = typeof e.path === 'string' ? ` ${e.path}` : '';
  const what = typeof e.syscall === 'string' ? `${e.syscall}${where}` : `use${where}`;
  return new AzbkError('AZBK_LOCAL_IO', `Cannot ${what} (${e.code}).`, { cause: err });
}
