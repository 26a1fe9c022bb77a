/**
 * What a backup leaves out under the folders it includes: shell patterns (see glob.ts). A pattern
 * without a `/` is matched against each name (`*.tmp`, `node_modules`); one that starts with `/`
 * against the whole path (`/home/ann/.cache`, `/srv/**` + `/*.log`); one with a `/` inside but not
 * at its start against the path's end, from a whole name on (`build/out` leaves out every
 * `.../build/out`). A `/` at the end is left off. A folder left out is not looked into. Pure.
 */
import { AzbkError } from '../shared/errors.js';
import { compileGlob } from './glob.js';

/** Whether the entry `name` at the path `abs` (with `/` between names) is left out. */
export type Excluded = (abs: string, name: string) => boolean;

/** Patterns a policy or a command line may hold at most. */
export const MAX_EXCLUDES = 256;
const MAX_PATTERN = 4096;

/** AZBK_BAD_INPUT unless `patterns` are patterns an exclusion can be made of. */
export function checkExcludes(patterns: readonly unknown[]): asserts patterns is readonly string[] {
  if (patterns.length > MAX_EXCLUDES) throw new AzbkError('AZBK_BAD_INPUT', `At most ${MAX_EXCLUDES} patterns may be excluded.`);
  for (const p of patterns) {
    // `/` (all slashes) would be a pattern of nothing once its end is left off.
    if (typeof p !== 'string' || /^\/*$/.test(p) || p.length > MAX_PATTERN || p.includes('\0')) {
      throw new AzbkError('AZBK_BAD_INPUT', `${JSON.stringify(String(p)).slice(0, 80)} is not a pattern to exclude.`, { hint: 'Give a name such as *.tmp, or a path such as /home/ann/.cache.' });
    }
  }
}

/** The test of `patterns` (null when there are none); AZBK_BAD_INPUT for one that is not a pattern. */
export function compileExcludes(patterns: readonly string[]): Excluded | null {
  checkExcludes(patterns);
  if (patterns.length === 0) return null;
  const names: ((text: string) => boolean)[] = [];
  const paths: ((text: string) => boolean)[] = [];
  for (const pattern of patterns) {
    // `cache/` is taken as `cache`: what is left out is the entry, folder or not.
    const p = pattern.length > 1 ? pattern.replace(/(?<=.)\/+$/, '') : pattern;
    if (!p.includes('/')) names.push(compileGlob(p));
    else paths.push(compileGlob(p.startsWith('/') ? p : `/**/${p}`));
  }
  return (abs, name) => names.some((m) => m(name)) || paths.some((m) => m(abs));
}

/** The patterns as one text, the same for the same set whatever their order (to tell a change of them). */
export function excludesKey(patterns: readonly string[]): string {
  return JSON.stringify([...new Set(patterns)].sort());
}
