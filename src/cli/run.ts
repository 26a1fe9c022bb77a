/**
 * The one exit handler: every command action runs through `action`, which turns an AzbkError into
 * a message, a hint and its exit code, and anything else into AZBK_INTERNAL (details go to the
 * log, never a stack trace on the screen).
 */
import { AzbkError, ExitCode } from '../shared/errors.js';
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
    const json = opts?.json === true;
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
      await body({ paths, log, out }, ...args);
      log.info({ command: name, exitCode }, 'command finished');
    } catch (err) {
      const e =
        err instanceof AzbkError
          ? err
          : new AzbkError('AZBK_INTERNAL', `Unexpected error: ${err instanceof Error ? err.message : String(err)}`);
      log.error({ command: name, code: e.code, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'command failed');
      printError(e, json);
      exitCode = e.exitCode;
    }
  };
}
