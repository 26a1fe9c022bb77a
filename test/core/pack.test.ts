import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeBlob, encodeBlob } from '../../src/core/blob.js';
import type { BlobId } from '../../src/core/ids.js';
import { PACK_TRAILER_BYTES, PackBuilder, packIdOf, packTailLength, readPackHeader, readPackTail, type FinishedPack } from '../../src/core/pack.js';
import { sealObject } from '../../src/core/sealed-object.js';
import { expectCorrupt, flipped, randomData, testKeys } from './fixtures.js';

const keys = testKeys();

function buildPack(): { pack: FinishedPack; plains: Buffer[] } {
  const plains = [
    Buffer.from('a small file'),
    Buffer.from('compressible '.repeat(1000)),
    randomData(40_000, 9),
    Buffer.alloc(0),
  ];
  const builder = new PackBuilder(keys);
  plains.forEach((p, i) => {
    const enc = encodeBlob(keys, i === 1 ? 'tree' : 'data', p);
    builder.add(i === 1 ? 'tree' : 'data', enc.id, enc.sealed, enc.rawLength);
  });
  return { pack: builder.finish(), plains };
}

/** Pack bytes with `header` (a sealed object) in place of the real one. */
function withHeader(blobArea: Buffer, header: Buffer): Buffer {
  const trailer = Buffer.alloc(12);
  trailer.writeUInt32LE(header.length);
  trailer.write('AZBKPAK1', 4, 'latin1');
  return Buffer.concat([blobArea, header, trailer]);
}

describe('packs', () => {
  it("reads a pack's header from its tail alone, told the pack's size", () => {
    const { pack } = buildPack();
    const length = packTailLength(pack.data.subarray(pack.data.length - PACK_TRAILER_BYTES));
    const tail = pack.data.subarray(pack.data.length - length);
    expect(readPackTail(keys, tail, pack.data.length)).toEqual(pack.entries);
    // Told another size, the entries do not cover the blobs: damaged.
    expectCorrupt(() => readPackTail(keys, tail, pack.data.length + 1));
    expectCorrupt(() => readPackTail(keys, tail.subarray(1), pack.data.length));
    expectCorrupt(() => packTailLength(Buffer.from('not a pack at all')));
  });

  it('builds a pack whose header reads back and whose blobs decode', () => {
    const { pack, plains } = buildPack();
    expect(pack.id).toBe(createHash('sha256').update(pack.data).digest('hex'));
    expect(packIdOf(pack.data)).toBe(pack.id);
    expect(pack.data.subarray(pack.data.length - 8).toString('latin1')).toBe('AZBKPAK1');
    const entries = readPackHeader(keys, pack.data);
    expect(entries).toEqual(pack.entries);
    entries.forEach((e, i) => {
      const sealed = pack.data.subarray(e.offset, e.offset + e.length);
      expect(decodeBlob(keys, e.type, e.id, sealed).equals(plains[i]!)).toBe(true);
      expect(e.rawLength).toBe(plains[i]!.length);
    });
  });

  it('counts size and blobs, and refuses use after finish', () => {
    const b = new PackBuilder(keys);
    expect([b.size, b.count]).toEqual([0, 0]);
    const enc = encodeBlob(keys, 'data', Buffer.from('x'));
    const entry = b.add('data', enc.id, enc.sealed, 1);
    expect(entry).toEqual({ type: 'data', id: enc.id, offset: 0, length: enc.sealed.length, rawLength: 1 });
    expect([b.size, b.count]).toEqual([enc.sealed.length, 1]);
    b.finish();
    expect(() => b.add('data', enc.id, enc.sealed, 1)).toThrow();
    expect(() => b.finish()).toThrow();
  });

  it('refuses entries it could not read back', () => {
    const b = new PackBuilder(keys);
    const enc = encodeBlob(keys, 'data', Buffer.from('x'));
    expect(() => b.add('data', 'nothex' as BlobId, enc.sealed, 1)).toThrow(RangeError);
    expect(() => b.add('blob' as 'data', enc.id, enc.sealed, 1)).toThrow(RangeError);
    expect(() => b.add('data', enc.id, Buffer.alloc(5), 1)).toThrow(RangeError);
    expect(() => b.add('data', enc.id, enc.sealed, -1)).toThrow(RangeError);
    expect(b.count).toBe(0);
  });

  it('detects a change to any byte of the header, trailer or blob area', () => {
    const { pack } = buildPack();
    const headerStart = pack.data.length - 12 - pack.data.readUInt32LE(pack.data.length - 12);
    for (let i = headerStart; i < pack.data.length; i++) expectCorrupt(() => readPackHeader(keys, flipped(pack.data, i)));
    // A blob byte leaves the header readable, but the blob and the pack id no longer match.
    const damaged = flipped(pack.data, 20);
    expect(readPackHeader(keys, damaged)).toEqual(pack.entries);
    expect(packIdOf(damaged)).not.toBe(pack.id);
    const e = pack.entries[0]!;
    expectCorrupt(() => decodeBlob(keys, e.type, e.id, damaged.subarray(e.offset, e.offset + e.length)));
  });

  it('refuses truncated, extended and foreign packs', () => {
    const { pack } = buildPack();
    expectCorrupt(() => readPackHeader(keys, pack.data.subarray(1)));
    expectCorrupt(() => readPackHeader(keys, pack.data.subarray(0, pack.data.length - 1)));
    expectCorrupt(() => readPackHeader(keys, Buffer.concat([Buffer.of(0), pack.data])));
    expectCorrupt(() => readPackHeader(keys, Buffer.alloc(0)));
    expectCorrupt(() => readPackHeader(keys, Buffer.from('AZBKPAK1')));
    expectCorrupt(() => readPackHeader(testKeys(2), pack.data));
  });

  it('refuses authentic headers whose content is wrong', () => {
    const { pack } = buildPack();
    const area = pack.data.subarray(0, pack.entries.at(-1)!.offset + pack.entries.at(-1)!.length);
    const ok = pack.entries.map((e) => ({ ...e }));
    const seal = (v: unknown) => withHeader(area, sealObject(keys, 'pack-header', '', v));
    expect(readPackHeader(keys, seal({ version: 1, blobs: ok }))).toEqual(pack.entries);
    const variants: unknown[] = [
      { version: 2, blobs: ok },
      { version: 1 },
      { version: 1, blobs: {} },
      [ok],
      { version: 1, blobs: ok.slice(1) }, // gap at the start
      { version: 1, blobs: ok.slice(0, -1) }, // does not reach the header
      { version: 1, blobs: [ok[1], ok[0], ...ok.slice(2)] }, // out of order
      { version: 1, blobs: ok.map((e, i) => (i === 0 ? { ...e, type: 'file' } : e)) },
      { version: 1, blobs: ok.map((e, i) => (i === 0 ? { ...e, id: e.id.toUpperCase() } : e)) },
      { version: 1, blobs: ok.map((e, i) => (i === 0 ? { ...e, rawLength: -1 } : e)) },
      { version: 1, blobs: ok.map((e, i) => (i === 0 ? { ...e, rawLength: 0.5 } : e)) },
      { version: 1, blobs: ok.map((e, i) => (i === 0 ? { ...e, length: String(e.length) } : e)) },
      { version: 1, blobs: ok.map((e, i) => (i === 2 ? { ...e, rawLength: 10 } : e)) }, // longer than raw + overhead
    ];
    for (const v of variants) expectCorrupt(() => readPackHeader(keys, seal(v)));
    // A header sealed as another kind is refused.
    const asIndex = withHeader(area, sealObject(keys, 'index', '', { version: 1, blobs: ok }));
    expectCorrupt(() => readPackHeader(keys, asIndex));
  });

  it('reads an empty pack', () => {
    const pack = new PackBuilder(keys).finish();
    expect(readPackHeader(keys, pack.data)).toEqual([]);
  });
});
