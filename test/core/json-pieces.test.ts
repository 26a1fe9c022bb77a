import { describe, expect, it } from 'vitest';
import { jsonPieces } from '../../src/core/json-pieces.js';

const text = (v: unknown) => [...jsonPieces(v)].join('');

describe('jsonPieces', () => {
  it('makes exactly the text JSON.stringify makes', () => {
    const date = new Date(Date.UTC(2026, 10, 30, 4, 5, 6));
    const values: unknown[] = [
      0, -1.5, 'text', 'é ✓ "quoted" \\ \n', true, null, [], {}, [[]], [{}], { a: [] },
      { version: 1, files: [{ path: '/a', content: ['ab', 'cd'] }, { path: '/b', content: [] }], partials: [] },
      { skip: undefined, fn: () => 1, sym: Symbol('s'), keep: 1, nested: { skip: undefined, deep: { deeper: [1, { x: undefined }] } } },
      [undefined, () => 1, Symbol('s'), 1, [undefined], { u: undefined }],
      { when: date, list: [date], toJSON0: { toJSON: () => 'own' } },
      { list: Object.assign([1, 2], { toJSON: () => 'whole' }), inner: [Object.assign([3], { toJSON: () => ['x'] })] },
      { 2: 'b', 1: 'a', z: 1, y: 2, '10': 'ten' },
      Object.assign(Object.create(null) as Record<string, unknown>, { bare: [1, 2] }),
    ];
    for (const v of values) expect(text(v)).toBe(JSON.stringify(v));
  });

  it('gives a large value in pieces of bounded size that make its whole text', () => {
    const files = Array.from({ length: 20_000 }, (_, i) => ({ path: `/src/file-${i}.c`, size: i, content: [`${i}`.padStart(64, '0')] }));
    const value = { version: 1, files };
    const pieces = [...jsonPieces(value)];
    expect(pieces.length).toBeGreaterThan(20);
    const run = JSON.stringify(files.slice(0, 256)).length; // the longest part written whole here
    for (const p of pieces) expect(p.length).toBeLessThan(64 * 1024 + run);
    expect(pieces.join('')).toBe(JSON.stringify(value));
  });

  it('splits deeper when asked: an index of one big pack comes in bounded pieces, not the pack whole', () => {
    const blobs = Array.from({ length: 6_000 }, (_, i) => ({ type: 'data', id: `${i}`.padStart(64, 'f'), offset: i * 100, length: 90, rawLength: 200 }));
    const index = { version: 1, packs: [{ id: 'a'.repeat(64), blobs }, { id: 'b'.repeat(64), blobs: blobs.slice(0, 10) }] };
    const whole = [...jsonPieces(index)];
    const split = [...jsonPieces(index, 4)];
    expect(Math.max(...whole.map((p) => p.length))).toBeGreaterThan(JSON.stringify(blobs).length);
    const run = JSON.stringify(blobs.slice(0, 256)).length;
    for (const p of split) expect(p.length).toBeLessThan(64 * 1024 + run);
    expect(split.join('')).toBe(JSON.stringify(index));
    expect(whole.join('')).toBe(JSON.stringify(index));
    for (const v of [{ a: [[[[1, [2]]], {}]], b: { c: { d: { e: [undefined] } } } }, [[[{ x: undefined, y: [() => 1] }]]]]) {
      for (const depth of [1, 3, 4, 6]) expect([...jsonPieces(v, depth)].join('')).toBe(JSON.stringify(v));
    }
  });

  it('refuses a value JSON.stringify cannot write, as sealing did', () => {
    expect(() => [...jsonPieces(undefined)]).toThrow(TypeError);
    expect(() => [...jsonPieces(() => 1)]).toThrow(TypeError);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = { again: cyclic };
    expect(() => [...jsonPieces(cyclic)]).toThrow(TypeError);
    expect(() => [...jsonPieces({ n: 1n })]).toThrow(TypeError);
  });
});
