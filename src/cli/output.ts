/** Everything azbk prints goes through here: text for people, JSON for programs. */
import fs from 'node:fs';
import { AzbkError } from '../shared/errors.js';

export interface Output {
  readonly json: boolean;
  /** A line of text (suppressed in --json mode). */
  line(text: string): void;
  /** The command's result: JSON in --json mode, otherwise nothing (the command printed lines). */
  result(value: unknown): void;
  /** A warning on stderr (in both modes). */
  warn(text: string): void;
  /** Part of a JSON result too large to build whole, written as it comes (--json mode only). */
  piece(text: string): void;
  /** An event of a command that runs until stopped: one JSON line each (JSON Lines; --json mode only). */
  event(value: unknown): void;
}

export function makeOutput(json: boolean): Output {
  return {
    json,
    line: (text) => {
      if (!json) process.stdout.write(text + '\n');
    },
    result: (value) => {
      if (json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
    },
    warn: (text) => process.stderr.write(`azbk: ${text}\n`),
    piece: (text) => {
      if (json) process.stdout.write(text);
    },
    event: (value) => {
      if (json) process.stdout.write(JSON.stringify(value) + '\n');
    },
  };
}

/** Prints an error: one line with its code and message, one with the hint. */
export function printError(err: AzbkError, json: boolean): void {
  if (json) printJsonError(err);
  // One line each, whatever a path or value named in them holds (a newline, a terminal escape).
  process.stderr.write(`azbk: error ${err.code}: ${printable(err.message)}\n  hint: ${printable(err.hint)}\n`);
}

/**
 * An error as the JSON document on stdout that --json gives instead of a result: on one line, so
 * that it also ends the JSON Lines of a command that prints events (watch). `now`: written
 * synchronously, by a process that exits next (a stop on a signal).
 */
export function printJsonError(err: AzbkError, now = false): void {
  const text = JSON.stringify({ error: { code: err.code, message: err.message, hint: err.hint, exitCode: err.exitCode } }) + '\n';
  if (!now) {
    process.stdout.write(text);
    return;
  }
  // At once, for a process about to exit: a write through the stream could still be queued.
  try {
    fs.writeSync(1, text);
  } catch {
    // stdout is gone: the exit code says it
  }
}

/** `n` and the word for that many: counted(1, 'file') -> "1 file", counted(2, 'file') -> "2 files". */
export function counted(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Text from elsewhere (file names, the vault) with control characters shown as \xNN, so none acts
 * on the terminal: a name holding an escape sequence could otherwise rewrite or hide what is shown.
 * The characters that reorder text (bidirectional overrides, isolates and marks), separate lines,
 * or show as nothing and serve no name (a zero-width space, a soft hyphen, a byte order mark, the
 * invisible operators) are shown as \u{NNNN}: a name could otherwise show as another. So could a
 * name that holds such an escape as text (`a\x0ab` against `a` newline `b`): a backslash is shown
 * as \x5c where what follows it is shown starting with `x`, `u` or a backslash, and as itself
 * elsewhere (a Windows path stays readable). Joiners (U+200C, U+200D), which some scripts and
 * emoji need, are shown as they are, as are the composed and decomposed forms of one letter.
 */
export function printable(s: string): string {
  const shown = s
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\u0000${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(/[\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g, (c) => `\u0001${c.charCodeAt(0).toString(16)}}`);
  // Escapes are marked with U+0000 and U+0001 above (none is left of the text's own): each
  // becomes a backslash once the text's backslashes are settled.
  return shown
    .replace(/\\(?=[xu\\\u0000\u0001])/g, '\\x5c')
    .replace(/\u0000/g, '\\x')
    .replace(/\u0001/g, '\\u{');
}
