/** Shell patterns for azbk find: what each form matches, and what it does not. */
import { describe, expect, it } from 'vitest';
import { compileGlob } from '../../src/core/glob.js';

const matches = (pattern: string, text: string, ignoreCase = false) => compileGlob(pattern, ignoreCase)(text);

describe('compileGlob', () => {
  it('matches * and ? within a name, ** across folders', () => {
    expect(matches('*.c', 'main.c')).toBe(true);
    expect(matches('*.c', 'main.h')).toBe(false);
    expect(matches('*.c', 'a/main.c')).toBe(false);
    expect(matches('?.txt', 'a.txt')).toBe(true);
    expect(matches('?.txt', 'ab.txt')).toBe(false);
    expect(matches('?.txt', '/.txt')).toBe(false);
    expect(matches('/etc/**/*.conf', '/etc/nginx/conf.d/site.conf')).toBe(true);
    expect(matches('/etc/*.conf', '/etc/nginx/site.conf')).toBe(false);
    expect(matches('/etc/**', '/etc/a/b/c')).toBe(true);
  });

  it('matches sets, ranges and their negation, and a ] first in a set', () => {
    expect(matches('[abc]x', 'bx')).toBe(true);
    expect(matches('[a-c]x', 'dx')).toBe(false);
    expect(matches('[!a-c]x', 'dx')).toBe(true);
    expect(matches('[^a-c]x', 'ax')).toBe(false);
    expect(matches('[!a]', '/')).toBe(false);
    expect(matches('[]a]', ']')).toBe(true);
    expect(matches('[a-]', '-')).toBe(true);
  });

  it('takes everything else literally: regular expression characters, escapes, an unclosed [', () => {
    for (const name of ['a.b', '(a)', 'a+b', 'a{1}', 'x-y', '$HOME', 'a|b', '^a']) expect(matches(name, name), name).toBe(true);
    expect(matches('a.b', 'axb')).toBe(false);
    expect(matches('a\\*b', 'a*b')).toBe(true);
    expect(matches('a\\*b', 'axb')).toBe(false);
    expect(matches('[abc', '[abc')).toBe(true);
    expect(matches('été*', 'été.txt')).toBe(true);
  });

  it('matches the whole text, with case unless told not to', () => {
    expect(matches('main', 'main.c')).toBe(false);
    expect(matches('README', 'readme')).toBe(false);
    expect(matches('README', 'readme', true)).toBe(true);
  });

  it('takes time in proportion to the text, however many stars the pattern has', () => {
    // As a backtracking regular expression this takes longer than the test's timeout.
    const name = 'a'.repeat(4000);
    expect(matches('*a*a*a*a*a*a*a*a*a*a*b', name)).toBe(false);
    expect(matches('**a**a**a**a**a**a**b', `${name}/${name}`)).toBe(false);
    expect(matches('*a*a*a*a*a*a*a*a*a*a', name)).toBe(true);
  });

  it('matches escapes and ranges inside a set, and either case of a range', () => {
    expect(matches('[\\]]', ']')).toBe(true);
    expect(matches('[a\\-z]', '-')).toBe(true);
    expect(matches('[a\\-z]', 'b')).toBe(false);
    expect(matches('[A-Z]*', 'readme', true)).toBe(true);
    expect(matches('[A-Z]*', 'readme')).toBe(false);
    expect(matches('[!a]x', '/x')).toBe(false);
  });

  it('lets ** with its / stand for no folder, and never lets a set match /', () => {
    expect(matches('/etc/**/*.conf', '/etc/a.conf')).toBe(true);
    expect(matches('**/a.conf', '/a.conf')).toBe(true);
    expect(matches('/etc/**/x/*.conf', '/etc/x/a.conf')).toBe(true);
    expect(matches('/etc/**/x/*.conf', '/etc/a.conf')).toBe(false);
    expect(matches('*[.-0]*', 'a/b')).toBe(false);
    expect(matches('[!a]', '/')).toBe(false);
  });

  it('folds case a character at a time, and compares composed and decomposed letters alike', () => {
    expect(matches('*Σ', 'ΟΣ', true)).toBe(true);
    expect(matches('[Z-a]', '_')).toBe(true);
    expect(matches('[Z-a]', '_', true)).toBe(true);
    expect(matches('caf\u00e9', 'cafe\u0301')).toBe(true);
    expect(matches('cafe\u0301*', 'caf\u00e9.txt')).toBe(true);
  });

  it('lets **/ stand for whole folders only: never for the start of a name', () => {
    for (const name of ['x', 'sub/x', 'a/b/c/x', '/tmp/g/x', 'a b/x', 'a\tb/x', 'a\nb/x']) expect(matches('**/x', name), name).toBe(true);
    for (const name of ['abx', 'a x', 'a\tx', 'a\nx', ' x', 'sub/abx', 'sub/a x', 'a b/c x', 'x/y', 'sub/xy']) expect(matches('**/x', name), name).toBe(false);
    expect(matches('/**/x', '/tmp/g/x')).toBe(true);
    expect(matches('/**/x', '/x')).toBe(true);
    expect(matches('/**/x', '/tmp/g/abx')).toBe(false);
    expect(matches('/**/x', '/tmp/g/a x')).toBe(false);
    expect(matches('/tmp/**/x', '/tmp/x')).toBe(true);
    expect(matches('/tmp/**/x', '/tmp/g/sub/x')).toBe(true);
    expect(matches('/tmp/**/x', '/tmp/g/abx')).toBe(false);
    expect(matches('/tmp/**/x', '/tmpx')).toBe(false);
    expect(matches('**/**/x', 'abx')).toBe(false);
    expect(matches('**/**/x', 'a/b/x')).toBe(true);
    expect(matches('**/abx', 'sub/abx')).toBe(true);
    // Within a name, ** is a run of characters (and folders) like any other: it needs its /.
    expect(matches('/tmp/g**/x', '/tmp/gx')).toBe(false);
    expect(matches('/tmp/g**/x', '/tmp/g/x')).toBe(true);
    expect(matches('/tmp/g**/x', '/tmp/go/on/x')).toBe(true);
  });

  it('refuses a range out of order, and a \\ that ends the pattern, with AZBK_BAD_INPUT', () => {
    expect(() => compileGlob('[z-a]')).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT' }));
    for (const p of ['\\', 'a\\', '[a\\']) expect(() => compileGlob(p), p).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT' }));
    // An escaped backslash, and a [ without its ], are characters like any other.
    expect(matches('a\\\\', 'a\\')).toBe(true);
    expect(matches('[', '[')).toBe(true);
  });
});
