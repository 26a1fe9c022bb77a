import { describe, expect, it } from 'vitest';
import type { BlobId } from '../../src/core/ids.js';
import { decodeTree, encodeTree, isPortableName, isSafeName, type TreeNode } from '../../src/core/tree.js';
import { isAzbkError } from '../../src/shared/errors.js';

const ID = 'ab'.repeat(32) as BlobId;
const file = (name: string): TreeNode => ({ type: 'file', name, mode: 0o644, mtime: '1700000000123456789', size: 3, content: [ID] });

function expectCorrupt(f: () => unknown): void {
  try {
    f();
  } catch (err) {
    expect(isAzbkError(err, 'AZBK_VAULT_CORRUPT')).toBe(true);
    return;
  }
  throw new Error('expected AZBK_VAULT_CORRUPT');
}

describe('trees', () => {
  it('round-trip, sorted by name, so equal folders give equal bytes', () => {
    const nodes: TreeNode[] = [file('b'), { type: 'dir', name: 'a', mode: 0o755, mtime: '1', subtree: ID }, { type: 'symlink', name: 'c', mode: 0o777, mtime: '2', target: '../x' }];
    const a = encodeTree(nodes);
    expect(a.equals(encodeTree([...nodes].reverse()))).toBe(true);
    expect(decodeTree(a).nodes.map((n) => n.name)).toEqual(['a', 'b', 'c']);
    expect(decodeTree(a).nodes[1]).toEqual(file('b'));
  });

  it('refuses names that could leave the restore target, and duplicates', () => {
    for (const name of ['', '.', '..', 'a/b', '/abs', 'nul\0']) {
      expectCorrupt(() => decodeTree(Buffer.from(JSON.stringify({ version: 1, nodes: [file(name)] }))));
    }
    expectCorrupt(() => decodeTree(encodeTree([file('x'), file('x')])));
  });

  it('refuses malformed entries', () => {
    const bad = [
      { ...file('x'), mode: 0o10000 },
      { ...file('x'), mtime: '12a' },
      { ...file('x'), size: -1 },
      { ...file('x'), content: ['zz'] },
      { type: 'dir', name: 'd', mode: 0o755, mtime: '1', subtree: 'nothex' },
      { type: 'fifo', name: 'p', mode: 0o644, mtime: '1' },
    ];
    for (const n of bad) expectCorrupt(() => decodeTree(Buffer.from(JSON.stringify({ version: 1, nodes: [n] }))));
    expectCorrupt(() => decodeTree(Buffer.from('not json')));
    expectCorrupt(() => decodeTree(Buffer.from(JSON.stringify({ version: 2, nodes: [] }))));
  });

  it('takes a hard-link key of device and inode numbers, and nothing else there', () => {
    const file = { type: 'file', name: 'f', mode: 0o644, mtime: '1', size: 0, content: [] };
    expect(decodeTree(Buffer.from(JSON.stringify({ version: 1, nodes: [{ ...file, link: '2049:1234567' }] }))).nodes[0]).toMatchObject({ link: '2049:1234567' });
    for (const link of [12, '', '1:', ':2', '1:2:3', '../x:1', '1:2 ', '1'.repeat(21) + ':1']) {
      expect(() => decodeTree(Buffer.from(JSON.stringify({ version: 1, nodes: [{ ...file, link }] }))), String(link)).toThrow(/bad hard link/);
    }
  });

  it('tells POSIX-safe names from names Windows can also create', () => {
    expect(isSafeName('back\\slash')).toBe(true);
    expect(isPortableName('back\\slash')).toBe(false);
    expect(isPortableName('a:b')).toBe(false);
    expect(isPortableName('trailing.')).toBe(false);
    expect(isPortableName('ordinary name.txt')).toBe(true);
  });
});
