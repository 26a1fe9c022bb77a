import { describe, expect, it } from 'vitest';
import { compileExcludes, excludesKey, MAX_EXCLUDES } from '../../src/core/exclude.js';

const leftOut = (patterns: string[], abs: string) => compileExcludes(patterns)!(abs, abs.slice(abs.lastIndexOf('/') + 1));

describe('exclusions', () => {
  it('match a pattern without a / against each name, at any depth', () => {
    expect(leftOut(['*.tmp'], '/home/ann/a.tmp')).toBe(true);
    expect(leftOut(['*.tmp'], '/home/ann/deep/er/b.tmp')).toBe(true);
    expect(leftOut(['*.tmp'], '/home/ann/a.tmp.txt')).toBe(false);
    expect(leftOut(['node_modules'], '/src/app/node_modules')).toBe(true);
    expect(leftOut(['node_modules'], '/src/app/node_modules2')).toBe(false);
    // The name only: the folders above it are not looked at.
    expect(leftOut(['ann'], '/home/ann/a.txt')).toBe(false);
  });

  it('match a pattern that starts with / against the whole path', () => {
    expect(leftOut(['/home/ann/.cache'], '/home/ann/.cache')).toBe(true);
    expect(leftOut(['/home/ann/.cache'], '/home/bob/.cache')).toBe(false);
    expect(leftOut(['/srv/**/*.log'], '/srv/a/b/c.log')).toBe(true);
    expect(leftOut(['/srv/**/*.log'], '/srv/c.log')).toBe(true);
    expect(leftOut(['/srv/*.log'], '/srv/a/c.log')).toBe(false);
  });

  it('match a pattern with a / inside against the end of the path, from a whole name on', () => {
    expect(leftOut(['build/out'], '/src/app/build/out')).toBe(true);
    expect(leftOut(['build/out'], '/build/out')).toBe(true);
    expect(leftOut(['build/out'], '/src/rebuild/out')).toBe(false);
    expect(leftOut(['build/out'], '/src/build/out/x')).toBe(false);
  });

  it('take a / at the end as the entry itself, folder or not', () => {
    expect(leftOut(['cache/'], '/home/ann/cache')).toBe(true);
    expect(leftOut(['/home/ann/cache//'], '/home/ann/cache')).toBe(true);
  });

  it('leave out what any one pattern matches, and nothing when there are none', () => {
    expect(leftOut(['*.o', '/tmp/x'], '/tmp/x')).toBe(true);
    expect(leftOut(['*.o', '/tmp/x'], '/a/b.o')).toBe(true);
    expect(leftOut(['*.o', '/tmp/x'], '/a/b.c')).toBe(false);
    expect(compileExcludes([])).toBeNull();
  });

  it('refuses what is not a pattern', () => {
    for (const bad of [[''], ['/'], ['//'], ['a\0b'], ['[z-a]'], ['x\\'], ['y'.repeat(5000)], Array.from({ length: MAX_EXCLUDES + 1 }, (_, i) => `p${i}`)]) {
      expect(() => compileExcludes(bad), JSON.stringify(bad).slice(0, 40)).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT' }));
    }
  });

  it('tells a change of the set, not of its order', () => {
    expect(excludesKey(['b', 'a', 'b'])).toBe(excludesKey(['a', 'b']));
    expect(excludesKey(['a'])).not.toBe(excludesKey(['a', 'b']));
    expect(excludesKey([])).not.toBe(excludesKey(['']));
  });
});
