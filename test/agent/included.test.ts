/** The paths a backup is told to include: merged, and those it cannot keep left out with the reason. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileExcludes } from '../../src/core/exclude.js';
import { collectIncluded, includedTrie } from '../../src/agent/included.js';
import { ownFolders } from '../../src/agent/own-folders.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'azbk-included-'));
  for (const d of ['home', 'data/a/b', 'data/cache', 'other', 'real/x']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'data/link'));
  fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'top-link'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(include: string[], exclude: string[] = []) {
  const skipped: [string, string][] = [];
  const warned: [string, string][] = [];
  const own = ownFolders(path.join(dir, 'home'), 'https://vault.example');
  const trie = includedTrie(
    include.map((p) => path.join(dir, p)),
    own,
    compileExcludes(exclude),
    { skip: (p, r) => skipped.push([path.relative(dir, p), r]), warn: (p, r) => warned.push([path.relative(dir, p), r]) },
  );
  const paths = collectIncluded(trie).map((segs) => path.relative(dir, path.join(path.sep, ...segs)));
  return { paths, skipped, warned };
}

describe('includedTrie', () => {
  it('keeps the outermost of nested paths', () => {
    expect(run(['data/a/b', 'data', 'other']).paths.sort()).toEqual(['data', 'other']);
  });

  it('leaves out what is missing, azbk home, and what is below an included link or a link in an included folder', () => {
    const { paths, skipped, warned } = run(['data', 'missing', 'home', 'top-link', 'top-link/x', 'data/link/x']);
    expect(paths.sort()).toEqual(['data', 'top-link']);
    expect(warned).toEqual([['top-link', expect.stringMatching(/^a link: the link itself is backed up/)]]);
    expect(Object.fromEntries(skipped)).toEqual({
      missing: 'not found',
      home: expect.stringMatching(/^it is azbk's own folder/),
      'top-link/x': expect.stringMatching(/^below .*top-link, an included link/),
      'data/link/x': expect.stringMatching(/^below .*data\/link, a link in the included .*data that is backed up as a link/),
    });
  });

  it('leaves out a path inside an included folder that the exclusions leave out', () => {
    const { paths, skipped } = run(['data', 'data/cache', 'other'], ['cache']);
    expect(paths.sort()).toEqual(['data', 'other']);
    expect(skipped).toEqual([['data/cache', expect.stringMatching(/^it is left out by the exclusions, in the included/)]]);
  });

  it('refuses the root folder whole', () => {
    expect(() => includedTrie([path.parse(dir).root], ownFolders(dir, 'https://v'), null, { skip() {}, warn() {} })).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT' }));
  });
});
