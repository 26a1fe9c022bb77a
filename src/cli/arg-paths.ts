/**
 * Paths given on the command line. The process gets its arguments as text: bytes that are not
 * valid UTF-8 (a Latin-1 name, say) arrive as U+FFFD, and the path then names another file, or
 * none. A backup of it would quietly store another folder, a restore write elsewhere.
 */
import { AzbkError } from '../shared/errors.js';

const REPLACEMENT = '\uFFFD';

/** `values` of `option`, refused (AZBK_USAGE) when one holds U+FFFD, which cannot be told from bytes lost on the way. */
export function textPaths<T extends string | readonly string[] | undefined>(option: string, values: T): T {
  const list: readonly string[] = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  const bad = list.find((v) => v.includes(REPLACEMENT));
  if (bad !== undefined) {
    throw new AzbkError('AZBK_USAGE', `${option} ${bad} holds U+FFFD, which is what bytes that are not valid UTF-8 arrive as: azbk cannot tell which path it names.`, {
      hint: 'Give a folder above it instead (names inside a folder are read as they are stored).',
    });
  }
  return values;
}
