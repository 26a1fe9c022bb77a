import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Chunker, DEFAULT_CHUNKER, type ChunkerParams } from '../../src/core/chunker.js';
import { randomData, rng } from './fixtures.js';

const SMALL: ChunkerParams = { min: 2 * 1024, avg: 8 * 1024, max: 64 * 1024 };

/** Chunks `data` pushed in pieces of the sizes `sizes()` returns. */
function chunk(data: Buffer, params: ChunkerParams, sizes: () => number = () => data.length, seed?: Uint8Array) {
  const c = new Chunker(params, seed);
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; ) {
    const n = Math.max(1, sizes());
    out.push(...c.push(data.subarray(off, off + n)));
    off += n;
  }
  out.push(...c.finish());
  return out;
}

const lengths = (chunks: Buffer[]) => chunks.map((c) => c.length);
const hashes = (chunks: Buffer[]) => chunks.map((c) => createHash('sha256').update(c).digest('hex'));

function expectValid(chunks: Buffer[], data: Buffer, p: ChunkerParams): void {
  expect(Buffer.concat(chunks).equals(data)).toBe(true);
  chunks.forEach((c, i) => {
    expect(c.length).toBeLessThanOrEqual(p.max);
    if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(p.min);
    expect(c.length).toBeGreaterThan(0);
  });
}

describe('Chunker', () => {
  const data = randomData(2 * 1024 * 1024);

  it('cuts the same bytes at the same places, within [min, max]', () => {
    const a = chunk(data, SMALL);
    const b = chunk(data, SMALL);
    expect(lengths(a)).toEqual(lengths(b));
    expectValid(a, data, SMALL);
    expect(a.length).toBeGreaterThan(100);
    // Normalized chunking keeps the mean near avg (it lands a little above it).
    const mean = data.length / a.length;
    expect(mean).toBeGreaterThan(SMALL.avg * 0.8);
    expect(mean).toBeLessThan(SMALL.avg * 1.6);
  });

  it('gives the same chunks however the input is split into pushes', () => {
    const whole = lengths(chunk(data, SMALL));
    const small = data.subarray(0, 256 * 1024);
    expect(lengths(chunk(small, SMALL, () => 1))).toEqual(lengths(chunk(small, SMALL)));
    expect(lengths(chunk(data, SMALL, () => 4096))).toEqual(whole);
    const r = rng(7);
    expect(lengths(chunk(data, SMALL, () => Math.floor(r() * 200_000)))).toEqual(whole);
    const r2 = rng(8);
    expect(lengths(chunk(data, SMALL, () => Math.floor(r2() * 3000)))).toEqual(whole);
  });

  it('moves only the boundaries next to an insert near the start', () => {
    const big = randomData(20 * 1024 * 1024, 2);
    const edited = Buffer.concat([big.subarray(0, 5000), Buffer.from('inserted!'), big.subarray(5000)]);
    const before = hashes(chunk(big, SMALL));
    const after = hashes(chunk(edited, SMALL));
    const kept = new Set(before);
    const changed = after.filter((h) => !kept.has(h));
    expect(before.length).toBeGreaterThan(1000);
    expect(changed.length).toBeLessThanOrEqual(2);
  });

  it('gives zero chunks for empty input, one for small input', () => {
    const c = new Chunker(SMALL);
    expect(c.push(Buffer.alloc(0))).toEqual([]);
    expect(c.finish()).toEqual([]);
    const tiny = randomData(SMALL.min - 1);
    const one = chunk(tiny, SMALL);
    expect(one).toHaveLength(1);
    expect(one[0]!.equals(tiny)).toBe(true);
  });

  it('cuts at max when no boundary is found (all zero bytes)', () => {
    const zeros = Buffer.alloc(SMALL.max * 3 + 100);
    const chunks = chunk(zeros, SMALL, () => 10_000);
    expectValid(chunks, zeros, SMALL);
  });

  it('can be reused for a new stream after finish', () => {
    const c = new Chunker(SMALL);
    c.push(data.subarray(0, 12345));
    c.finish();
    const again = [...c.push(data), ...c.finish()];
    expect(lengths(again)).toEqual(lengths(chunk(data, SMALL)));
  });

  it('returns copies that pushed buffers cannot change', () => {
    const input = Buffer.from(data);
    const c = new Chunker(SMALL);
    const chunks = [...c.push(input), ...c.finish()];
    input.fill(0);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('cuts elsewhere under a different seed', () => {
    const a = lengths(chunk(data, SMALL, undefined, Buffer.from('seed one')));
    const b = lengths(chunk(data, SMALL, undefined, Buffer.from('seed two')));
    const plain = lengths(chunk(data, SMALL));
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(plain);
    expect(lengths(chunk(data, SMALL, undefined, Buffer.from('seed one')))).toEqual(a);
  });

  it('refuses impossible params', () => {
    expect(() => new Chunker({ min: 10, avg: 3000, max: 10_000 })).toThrow(RangeError);
    expect(() => new Chunker({ min: 5000, avg: 4096, max: 10_000 })).toThrow(RangeError);
    expect(() => new Chunker({ min: 1024, avg: 4096, max: 2048 })).toThrow(RangeError);
    expect(() => new Chunker({ min: 0, avg: 4096, max: 8192 })).toThrow(RangeError);
  });

  it('keeps default-sized chunks within [512 KiB, 8 MiB] with a mean near 1 MiB', () => {
    const big = randomData(40 * 1024 * 1024, 3);
    const chunks = chunk(big, DEFAULT_CHUNKER, () => 3 * 1024 * 1024 + 17);
    expectValid(chunks, big, DEFAULT_CHUNKER);
    const mean = big.length / chunks.length;
    expect(mean).toBeGreaterThan(0.8 * DEFAULT_CHUNKER.avg);
    expect(mean).toBeLessThan(1.6 * DEFAULT_CHUNKER.avg);
    expect(lengths(chunk(big, DEFAULT_CHUNKER))).toEqual(lengths(chunks));
  });

  it('yields the same chunks as views (cut, end), one stream after another in one chunker', () => {
    const r = rng(7);
    const c = new Chunker(SMALL);
    for (const stream of [data.subarray(0, 300 * 1024), data.subarray(100 * 1024, 900 * 1024), data.subarray(5, 6)]) {
      const hashed: string[] = [];
      const keep = (v: Buffer) => hashed.push(createHash('sha256').update(v).digest('hex'));
      for (let off = 0; off < stream.length; ) {
        const n = 1 + Math.floor(r() * 40 * 1024);
        // A copy of the input, overwritten once the chunks are taken: as a reader reuses its buffer.
        const piece = Buffer.from(stream.subarray(off, off + n));
        for (const v of c.cut(piece)) keep(v);
        piece.fill(0);
        off += n;
      }
      for (const v of c.end()) keep(v);
      expect(hashed).toEqual(hashes(chunk(Buffer.from(stream), SMALL)));
    }
  });
});

