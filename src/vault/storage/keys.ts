/**
 * Validation of BlobStore inputs, shared by every backend so they all accept and reject the same
 * keys, prefixes and ranges (see the contract in blobstore.ts).
 */
import { AzbkError } from '../../shared/errors.js';

/** The longest key a BlobStore accepts, in characters. */
export const MAX_KEY_LENGTH = 512;

const SEGMENT = /^[A-Za-z0-9._-]+$/;
const PARTIAL_SEGMENT = /^[A-Za-z0-9._-]*$/;
const RULE = "use '/'-separated names of letters, digits, '.', '_' and '-', with no '.' or '..' part";

/** True when `s` can be one '/'-separated segment of a key: allowed characters, not '.' or '..'. */
export function isKeySegment(s: string): boolean {
  return SEGMENT.test(s) && s !== '.' && s !== '..';
}

function describe(value: string): string {
  // JSON.stringify shows NUL, backslashes and spaces unambiguously; long keys are cut short.
  const shown = value.length > 80 ? `${value.slice(0, 80)}...` : value;
  return JSON.stringify(shown);
}

/**
 * Returns `key` unchanged when it is a valid object key: 1 to 512 characters, '/'-separated
 * segments of [A-Za-z0-9._-], no empty, '.' or '..' segment (so no leading, trailing or doubled
 * '/'). Otherwise throws AzbkError AZBK_BAD_INPUT.
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    const shown = typeof key === 'string' ? describe(key) : typeof key;
    const rule = `it must have 1 to ${MAX_KEY_LENGTH} characters`;
    throw new AzbkError('AZBK_BAD_INPUT', `Invalid object key ${shown}: ${rule}.`);
  }
  if (!key.split('/').every(isKeySegment)) {
    throw new AzbkError('AZBK_BAD_INPUT', `Invalid object key ${describe(key)}: ${RULE}.`);
  }
  return key;
}

/**
 * Returns `prefix` unchanged when it is a valid list prefix: '' (everything), or a string prefix of
 * a valid key: at most 512 characters, whole valid segments each followed by '/', then a possibly
 * empty start of a segment (any of [A-Za-z0-9._-], so '..' matches '..a'). Prefixes match keys as
 * plain strings: 'a/b' matches 'a/b', 'a/bc' and 'a/b/c'; 'a/b/' matches only 'a/b/c'.
 * Otherwise throws AZBK_BAD_INPUT.
 */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || prefix.length > MAX_KEY_LENGTH) {
    const rule = `it must have at most ${MAX_KEY_LENGTH} characters`;
    throw new AzbkError('AZBK_BAD_INPUT', `Invalid list prefix: ${rule}.`);
  }
  const cut = prefix.lastIndexOf('/');
  const head = prefix.slice(0, Math.max(cut, 0));
  const tail = prefix.slice(cut + 1);
  if ((cut >= 0 && !head.split('/').every(isKeySegment)) || !PARTIAL_SEGMENT.test(tail)) {
    throw new AzbkError('AZBK_BAD_INPUT', `Invalid list prefix ${describe(prefix)}: ${RULE}.`);
  }
  return prefix;
}

/** A byte range of an object, as passed to `BlobStore.get`. */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
  /**
   * A buffer the store may read the bytes into when they fit (the result is then a view of it),
   * so that a caller reading many ranges can reuse one; a store may ignore it.
   */
  readonly into?: Buffer;
}

/**
 * Clips `range` to an object of `size` bytes and returns the [start, end) byte positions; the whole
 * object when `range` is undefined. Throws AZBK_BAD_INPUT unless offset and length are
 * non-negative safe integers.
 */
export function clipRange(
  size: number,
  range: ByteRange | undefined,
): { start: number; end: number } {
  if (range === undefined) return { start: 0, end: size };
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    const shown = `offset ${String(offset)}, length ${String(length)}`;
    throw new AzbkError(
      'AZBK_BAD_INPUT',
      `Invalid byte range (${shown}): both must be whole numbers of 0 or more.`,
    );
  }
  const start = Math.min(offset, size);
  return { start, end: Math.min(size, start + length) };
}
