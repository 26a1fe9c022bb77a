import { describe, expect, it } from 'vitest';
import { encodeBlob } from '../../src/core/blob.js';
import type { PackId } from '../../src/core/ids.js';
import { decodeIndex, encodeIndex, type IndexPack } from '../../src/core/index-file.js';
import { PackBuilder } from '../../src/core/pack.js';
import { sealObject } from '../../src/core/sealed-object.js';
import { expectCorrupt, flipped, testKeys } from './fixtures.js';

const keys = testKeys();

function samplePacks(): IndexPack[] {
  return [0, 1].map((p) => {
    const b = new PackBuilder(keys);
    for (let i = 0; i < 3; i++) {
      const enc = encodeBlob(keys, i === 0 ? 'tree' : 'data', Buffer.from(`pack ${p} blob ${i} `.repeat(i * 50)));
      b.add(i === 0 ? 'tree' : 'data', enc.id, enc.sealed, enc.rawLength);
    }
    const pack = b.finish();
    return { id: pack.id, blobs: pack.entries };
  });
}

describe('index files', () => {
  const packs = samplePacks();
  const name = 'a'.repeat(64);

  it('round-trips', () => {
    const data = encodeIndex(keys, name, packs);
    expect(decodeIndex(keys, name, data)).toEqual({ version: 1, packs });
    expect(decodeIndex(keys, 'empty', encodeIndex(keys, 'empty', []))).toEqual({ version: 1, packs: [] });
  });

  it('keeps only known fields', () => {
    const extra = packs.map((p) => ({ ...p, color: 'red', blobs: p.blobs.map((b) => ({ ...b, secret: 1 })) }));
    const data = sealObject(keys, 'index', name, { version: 1, packs: extra, more: true });
    expect(decodeIndex(keys, name, data)).toEqual({ version: 1, packs });
  });

  it('detects a change to any byte, and another name or kind', () => {
    const data = encodeIndex(keys, name, packs);
    for (let i = 0; i < data.length; i++) expectCorrupt(() => decodeIndex(keys, name, flipped(data, i)));
    expectCorrupt(() => decodeIndex(keys, 'b'.repeat(64), data));
    expectCorrupt(() => decodeIndex(keys, name, sealObject(keys, 'point', name, { version: 1, packs })));
  });

  it('refuses malformed content that authenticates', () => {
    const [p0, p1] = packs as [IndexPack, IndexPack];
    const e = p0.blobs[1]!;
    const withEntry = (v: unknown) => [{ id: p0.id, blobs: [v] }];
    const variants: unknown[] = [
      null,
      { version: 2, packs },
      { version: 1 },
      { version: 1, packs: {} },
      { version: 1, packs: [p0, p0] },
      { version: 1, packs: [{ ...p1, id: 'f'.repeat(63) }] },
      { version: 1, packs: [{ ...p1, id: p1.id.toUpperCase() as PackId }] },
      { version: 1, packs: [{ id: p1.id }] },
      { version: 1, packs: withEntry(null) },
      { version: 1, packs: withEntry({ ...e, type: 'chunk' }) },
      { version: 1, packs: withEntry({ ...e, id: 'g'.repeat(64) }) },
      { version: 1, packs: withEntry({ ...e, offset: -1 }) },
      { version: 1, packs: withEntry({ ...e, offset: 2 ** 53 }) },
      { version: 1, packs: withEntry({ ...e, offset: 1e300 }) },
      { version: 1, packs: withEntry({ ...e, offset: 1024 * 1024 * 1024 }) },
      { version: 1, packs: withEntry({ ...e, length: 3 }) },
      { version: 1, packs: withEntry({ ...e, length: 1.5 }) },
      { version: 1, packs: withEntry({ ...e, rawLength: 65 * 1024 * 1024 }) },
      { version: 1, packs: withEntry({ ...e, rawLength: null }) },
    ];
    for (const v of variants) expectCorrupt(() => decodeIndex(keys, name, sealObject(keys, 'index', name, v)));
  });

  it('refuses to encode entries it could not decode', () => {
    const [p0] = packs as [IndexPack];
    expect(() => encodeIndex(keys, name, [p0, p0])).toThrow(RangeError);
    expect(() => encodeIndex(keys, name, [{ ...p0, id: 'x' as PackId }])).toThrow(RangeError);
  });
});
