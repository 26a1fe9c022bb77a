/**
 * Shell-style patterns, for finding names and paths in recovery points: `*` any run of characters
 * but `/`, `**` any run including `/`, `?` one character but `/`, `[abc]`, `[a-z]` and `[!a]` (or
 * `[^a]`) one character of (or not of) a set, and `\x` the character x itself. A `[` without its
 * `]` is itself. The pattern matches the whole text. AZBK_BAD_INPUT for a set such as `[z-a]`.
 */
import { AzbkError } from '../shared/errors.js';

/** The pattern as a regular expression (see above); `ignoreCase` for letters of either case. */
export function globToRegExp(pattern: string, ignoreCase = false): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        re += '.*';
        while (pattern[i + 1] === '*') i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escape(pattern[++i]!);
    else if (c === '[') {
      const set = bracket(pattern, i);
      if (set === null) re += '\\[';
      else {
        re += set.re;
        i = set.end;
      }
    } else re += escape(c);
  }
  try {
    return new RegExp(`^${re}$`, ignoreCase ? 'iu' : 'u');
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', `${pattern} is not a pattern azbk can use (a range out of order?).`);
  }
}

/** The set that starts with `[` at `start`, as a character class, and where it ends; null when it has no `]`. */
function bracket(pattern: string, start: number): { re: string; end: number } | null {
  let i = start + 1;
  let negate = false;
  if (pattern[i] === '!' || pattern[i] === '^') {
    negate = true;
    i++;
  }
  let body = '';
  // A `]` first in the set is one of its characters.
  for (let first = true; i < pattern.length; i++, first = false) {
    const c = pattern[i]!;
    if (c === ']' && !first) return { re: `[${negate ? '^/' : ''}${body}]`, end: i };
    if (c === '-' && !first && pattern[i + 1] !== ']') body += '-';
    else if (c === '\\' && i + 1 < pattern.length) body += escapeInClass(pattern[++i]!);
    else body += escapeInClass(c);
  }
  return null;
}

function escape(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

function escapeInClass(c: string): string {
  return /[\]\\^-]/.test(c) ? `\\${c}` : c;
}
