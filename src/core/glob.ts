/**
 * Shell-style patterns, for finding names and paths in recovery points: `*` any run of characters
 * but `/`, `**` any run including `/`, `?` one character but `/`, `[abc]`, `[a-z]` and `[!a]` (or
 * `[^a]`) one character of (or not of) a set, and `\x` the character x itself. A `[` without its
 * `]` is itself. A `**` with a `/` after it that starts the pattern or follows a `/` also stands,
 * with that `/`, for no folder at all (`/etc/` then `**` then `/a.conf` matches `/etc/a.conf`), but
 * never for part of a name. The pattern matches the whole text.
 *
 * Matching runs the pattern as a set of positions over the text, one character at a time: its
 * time is the text's length times the pattern's, whatever either holds. (A regular expression
 * backtracks, and a name from a hostile vault could make `*a*a*a*b` take hours.)
 */
import { AzbkError } from '../shared/errors.js';

type Token =
  | { readonly t: 'char'; readonly c: string }
  | { readonly t: 'one' }
  | { readonly t: 'set'; readonly negate: boolean; readonly chars: string; readonly ranges: readonly (readonly [number, number])[] }
  | { readonly t: 'star' }
  | { readonly t: 'globstar' }
  /** before a `**` that may stand for no folder with the `/` after it: reached, it reaches both the `**` and past the `/` */
  | { readonly t: 'nofolder' };

/**
 * The pattern as a test of a whole text; `ignoreCase` for letters of either case (each character
 * folded alone). Pattern and text are compared in Unicode's composed form (NFC), so an accented
 * letter typed one way matches a name stored the other way. AZBK_BAD_INPUT for a set such as `[z-a]`,
 * and for a `\` that ends the pattern (it escapes nothing: `\\` is a backslash).
 */
export function compileGlob(pattern: string, ignoreCase = false): (text: string) => boolean {
  const fold = (c: string) => (ignoreCase ? c.toLowerCase() : c);
  const tokens = parse([...pattern.normalize('NFC')], pattern, fold);
  const m = tokens.length;
  /**
   * Positions reached without taking a character: past a star (it may match nothing), and past a
   * `**` and its `/` when reaching them (no folder at all), so that `/etc/` then `**` then
   * `/*.conf` matches `/etc/a.conf` as well as `/etc/nginx/a.conf`. The skip is taken from the
   * marker before the `**`, not from the `**` itself: there it would also follow characters the
   * `**` had taken, and `**` then `/x` would match `abx`.
   */
  const close = (at: Uint8Array) => {
    for (let j = 0; j < m; j++) {
      if (at[j] === 0) continue;
      const t = tokens[j]!.t;
      if (t === 'star' || t === 'globstar' || t === 'nofolder') at[j + 1] = 1;
      if (t === 'nofolder') at[j + 3] = 1;
    }
  };
  return (text) => {
    let at = new Uint8Array(m + 1);
    let next = new Uint8Array(m + 1);
    at[0] = 1;
    close(at);
    for (const c of text.normalize('NFC')) {
      next.fill(0);
      let any = false;
      for (let j = 0; j < m; j++) {
        if (at[j] === 0) continue;
        const tok = tokens[j]!;
        let to = -1;
        if (tok.t === 'char') to = tok.c === fold(c) ? j + 1 : -1;
        else if (tok.t === 'one') to = c === '/' ? -1 : j + 1;
        else if (tok.t === 'set') to = inSet(tok, c) || (ignoreCase && (inSet(tok, c.toLowerCase()) || inSet(tok, c.toUpperCase()))) ? j + 1 : -1;
        else if (tok.t === 'star') to = c === '/' ? -1 : j;
        else if (tok.t === 'globstar') to = j;
        if (to >= 0) {
          next[to] = 1;
          any = true;
        }
      }
      if (!any) return false;
      close(next);
      [at, next] = [next, at];
    }
    return at[m] === 1;
  };
}

/** Whether `c` is one of the set's characters; never `/`, which separates names. */
function inSet(tok: Extract<Token, { t: 'set' }>, c: string): boolean {
  if (c === '/') return false;
  const code = c.codePointAt(0)!;
  const hit = tok.chars.includes(c) || tok.ranges.some(([lo, hi]) => code >= lo && code <= hi);
  return tok.negate ? !hit : hit;
}

function parse(p: readonly string[], pattern: string, fold: (c: string) => string): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      let globstar = false;
      while (p[i + 1] === '*') {
        globstar = true;
        i++;
      }
      // Two stars in a row would only multiply the positions: one stands for both.
      const last = tokens.at(-1);
      if (last?.t === 'globstar' || (last?.t === 'star' && !globstar)) continue;
      if (last?.t === 'star') tokens.pop();
      // A whole folder's worth of `**`, with its `/`, may also be no folder (see compileGlob).
      const before = tokens.at(-1);
      if (globstar && p[i + 1] === '/' && (before === undefined || (before.t === 'char' && before.c === '/'))) tokens.push({ t: 'nofolder' });
      tokens.push(globstar ? { t: 'globstar' } : { t: 'star' });
    } else if (c === '?') tokens.push({ t: 'one' });
    else if (c === '\\') {
      if (i + 1 === p.length) {
        throw new AzbkError('AZBK_BAD_INPUT', `${pattern} is not a pattern azbk can use: it ends in a \\ that escapes nothing.`, {
          hint: 'Write two backslashes for a backslash itself (the first escapes the second), or leave it out.',
        });
      }
      tokens.push({ t: 'char', c: fold(p[++i]!) });
    } else if (c === '[') {
      const set = bracket(p, i, pattern);
      if (set === null) tokens.push({ t: 'char', c: fold(c) });
      else {
        tokens.push(set.token);
        i = set.end;
      }
    } else tokens.push({ t: 'char', c: fold(c) });
  }
  return tokens;
}

/** The set that starts with `[` at `start`, and where it ends; null when it has no `]`. */
function bracket(p: readonly string[], start: number, pattern: string): { token: Token; end: number } | null {
  let i = start + 1;
  let negate = false;
  if (p[i] === '!' || p[i] === '^') {
    negate = true;
    i++;
  }
  let chars = '';
  const ranges: [number, number][] = [];
  // A `]` first in the set is one of its characters.
  for (let first = true; i < p.length; i++, first = false) {
    let c = p[i]!;
    if (c === ']' && !first) return { token: { t: 'set', negate, chars, ranges }, end: i };
    if (c === '\\' && i + 1 < p.length) c = p[++i]!;
    if (p[i + 1] === '-' && p[i + 2] !== undefined && p[i + 2] !== ']') {
      let hi = p[i + 2]!;
      i += 2;
      if (hi === '\\' && i + 1 < p.length) hi = p[++i]!;
      const range: [number, number] = [c.codePointAt(0)!, hi.codePointAt(0)!];
      if (range[0] > range[1]) throw new AzbkError('AZBK_BAD_INPUT', `${pattern} is not a pattern azbk can use: the range ${c}-${hi} is out of order.`);
      ranges.push(range);
    } else chars += c;
  }
  return null;
}
