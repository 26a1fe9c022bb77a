import { describe, expect, it } from 'vitest';
import type { BlobId } from '../../src/core/ids.js';
import { decodeTree, encodeTree, encodeTreePart, isPortableName, isSafeName, splitTree, wholeTree, type Tree, type TreeNode } from '../../src/core/tree.js';
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
    expectCorrupt(() => decodeTree(Buffer.from(JSON.stringify({ version: 3, nodes: [] }))));
    // Only a part of a listing names a next part, and by its id.
    expectCorrupt(() => decodeTree(Buffer.from(JSON.stringify({ version: 1, nodes: [], next: ID }))));
    expectCorrupt(() => decodeTree(Buffer.from(JSON.stringify({ version: 2, nodes: [], next: 'nothex' }))));
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

  describe('a listing in parts', () => {
    const named = (n: number) => Array.from({ length: n }, (_, i) => file(`file-${String(i).padStart(4, '0')}`));
    /** The parts of `nodes` stored as a backup stores them, from the last, in a map by id. */
    const store = (parts: readonly TreeNode[][]) => {
      const blobs = new Map<BlobId, Tree>();
      let next: BlobId | undefined;
      for (let i = parts.length - 1; i >= 0; i--) {
        const id = String(i).padStart(64, 'c') as BlobId;
        blobs.set(id, decodeTree(encodeTreePart(parts[i]!, next)));
        next = id;
      }
      return { first: next!, blobs, read: async (id: BlobId) => blobs.get(id) ?? Promise.reject(new Error(`no blob ${id}`)) };
    };

    it('splits into parts of at most the limit, in name order, and reads back whole', async () => {
      const nodes = named(100);
      const limit = 1500;
      const { parts, tooLarge } = splitTree([...nodes].reverse(), limit);
      expect(tooLarge).toEqual([]);
      expect(parts.length).toBeGreaterThan(5);
      expect(parts.flat()).toEqual(nodes);
      parts.forEach((p, i) => expect(encodeTreePart(p, i < parts.length - 1 ? ID : undefined).length).toBeLessThanOrEqual(limit));
      const { first, blobs, read } = store(parts);
      const whole = await wholeTree(first, blobs.get(first)!, read);
      expect(whole).toEqual({ version: 1, nodes });
      // The same nodes give the same parts: equal folders share their listings.
      expect(splitTree(nodes, limit)).toEqual({ parts, tooLarge });
    });

    it('leaves out an entry too large for a part on its own', () => {
      const big: TreeNode = { type: 'file', name: 'big', mode: 0o644, mtime: '1', size: 40 << 20, content: Array.from({ length: 40 }, () => ID) };
      const { parts, tooLarge } = splitTree([...named(10), big], 1500);
      expect(tooLarge).toEqual([big]);
      expect(parts.flat()).toEqual(named(10));
    });

    it('takes a whole listing as it is, and refuses a part on its own, a part after a whole one, a loop and a name in two parts', async () => {
      const whole = decodeTree(encodeTree(named(3)));
      expect(await wholeTree(ID, whole, () => Promise.reject(new Error('not read')))).toBe(whole);
      const lone = decodeTree(encodeTreePart(named(3), undefined));
      await expect(wholeTree(ID, lone, () => Promise.reject(new Error('not read')))).rejects.toMatchObject({ code: 'AZBK_VAULT_CORRUPT' });
      const twoParts = decodeTree(encodeTreePart(named(2), ID));
      await expect(wholeTree('dd'.repeat(32) as BlobId, twoParts, async () => whole)).rejects.toThrow(/a part of it is not one/);
      // A part naming itself, or the first: the chain never ends.
      const selfNamed = decodeTree(encodeTreePart([file('z')], ID));
      await expect(wholeTree('dd'.repeat(32) as BlobId, twoParts, async () => selfNamed)).rejects.toThrow(/loop/);
      await expect(wholeTree(ID, twoParts, async () => twoParts)).rejects.toThrow(/loop/);
      const again = decodeTree(encodeTreePart(named(1), undefined));
      await expect(wholeTree('dd'.repeat(32) as BlobId, twoParts, async () => again)).rejects.toThrow(/duplicate name/);
    });
  });
});
