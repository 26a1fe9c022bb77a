/**
 * The one exit handler: every command action runs through `action`, which turns an AzbkError into
 * a message, a hint and its exit code, and anything else into AZBK_INTERNAL (details go to the
 * log, never a stack trace on the screen).
 */
import fs from 'node:fs';
import { Command } from 'commander';
import { AzbkError, ExitCode, localIoError } from '../shared/errors.js';
import { closeVaults } from '../vault/open-vaults.js';
import { openLogger, type Logger } from '../shared/logger.js';
import { azbkHome, homePaths, type HomePaths } from '../shared/paths.js';
import { makeOutput, printError, type Output } from './output.js';

export interface CommandEnv {
  readonly paths: HomePaths;
  readonly log: Logger;
  readonly out: Output;
}

let exitCode: number = ExitCode.ok;

/** The exit code the process ends with. */
export function currentExitCode(): number {
  return exitCode;
}

let finished = false;

/** Whether the command has ended (its result or error said): the process only exits from now on. */
export function commandFinished(): boolean {
  return finished;
}

/** Sets the exit code for a command that finished with a result other than plain success. */
export function setExitCode(code: number): void {
  exitCode = code;
}

/** Wraps a command body with environment set-up and error handling. */
export function action<A extends unknown[]>(
  name: string,
  body: (env: CommandEnv, ...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const opts = args.find((a) => typeof a === 'object' && a !== null && !Array.isArray(a) && 'json' in (a as object)) as { json?: boolean } | undefined;
    const misread = optionTakenAsValue(args);
    // (`--include --json`: --json was asked for, though taken as a value)
    const json = opts?.json === true || misread?.value === '--json';
    const paths = homePaths(azbkHome());
    let log: Logger;
    try {
      log = openLogger(paths.logs);
    } catch {
      log = openLogger(null);
    }
    const out = makeOutput(json);
    try {
      log.info({ command: name }, 'command started');
      refuseEmptyValues(args);
      if (misread !== undefined) {
        throw new AzbkError('AZBK_USAGE', `${misread.option} has no value: ${misread.value}, which follows it, is an option of this command.`, {
          hint: `Give ${misread.option} its value; a path that starts with a dash is written with ./ before it.`,
        });
      }
      refuseHomeNotFolder(paths.home);
      await body({ paths, log, out }, ...args);
      log.info({ command: name, exitCode }, 'command finished');
    } catch (err) {
      const e =
        err instanceof AzbkError
          ? err
          : (localIoError(err) ?? new AzbkError('AZBK_INTERNAL', `Unexpected error: ${err instanceof Error ? err.message : String(err)}`));
      log.error({ command: name, code: e.code, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'command failed');
      printError(e, json);
      exitCode = e.exitCode;
    } finally {
      finished = true;
      // Uploads a failed job left waiting on a busy server end now, not minutes after its error.
      await closeVaults().catch(() => undefined);
    }
  };
}

/**
 * AZBK_BAD_INPUT when AZBK_HOME is something other than a folder (a missing one is made when
 * needed): every file under it would otherwise fail to be read or written, each command naming
 * another of them as damaged.
 */
function refuseHomeNotFolder(home: string): void {
  const hint = 'Set AZBK_HOME to a folder (a missing one is made), or unset it to use the default.';
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(home, { throwIfNoEntry: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
    throw new AzbkError('AZBK_BAD_INPUT', `AZBK_HOME (${home}) is below a file, not a folder.`, { hint });
  }
  if (st !== undefined && !st.isDirectory()) {
    throw new AzbkError('AZBK_BAD_INPUT', `AZBK_HOME (${home}) is not a folder.`, { hint });
  }
}

/**
 * AZBK_BAD_INPUT when an option or argument of the command (the last of `args`, as commander
 * passes them to an action) is the empty string. No azbk value may be empty, and an empty path
 * would otherwise quietly mean the current folder; an empty shell variable is the usual cause.
 */
function refuseEmptyValues(args: readonly unknown[]): void {
  const cmd = args.at(-1);
  if (!(cmd instanceof Command)) return;
  const empty = (v: unknown) => v === '' || (Array.isArray(v) && v.includes(''));
  for (const [key, value] of Object.entries(cmd.opts())) {
    if (empty(value)) throw emptyValue(cmd.options.find((o) => o.attributeName() === key)?.long ?? key);
  }
  // The values before the options object are the command's arguments, in the order it declares them.
  cmd.registeredArguments.forEach((arg, i) => {
    if (empty(args[i])) throw emptyValue(arg.name().toUpperCase());
  });
}

/**
 * An option that took one of the command's own options as its value (`--include --json`, the
 * value forgotten), or undefined: commander takes whatever follows an option that needs a value.
 */
function optionTakenAsValue(args: readonly unknown[]): { option: string; value: string } | undefined {
  const cmd = args.at(-1);
  if (!(cmd instanceof Command)) return undefined;
  const flags = new Set(['--help', '-h', ...cmd.options.flatMap((o) => [o.long, o.short]).filter((f): f is string => f !== undefined)]);
  for (const [key, value] of Object.entries(cmd.opts())) {
    const taken = (Array.isArray(value) ? value : [value]).find((v): v is string => typeof v === 'string' && flags.has(v));
    if (taken !== undefined) return { option: cmd.options.find((o) => o.attributeName() === key)?.long ?? key, value: taken };
  }
  return undefined;
}

function emptyValue(what: string): AzbkError {
  return new AzbkError('AZBK_BAD_INPUT', `${what} was given an empty value.`, {
    hint: 'An empty shell variable is the usual cause ("$DIR" with DIR unset or empty): give the value itself, or leave the option out.',
  });
}
