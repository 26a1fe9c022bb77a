import { compress, decompress } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { describe, expect, it } from 'vitest';
import { runSteps } from '../../src/shared/steps.js';
import { OverLimit, withSize, zstdCompressPieces, zstdDecompress } from '../../src/core/zstd.js';

function frameOf(pieces: (string | Uint8Array)[], limit = 1 << 30): Buffer {
  return Buffer.concat(runSteps(zstdCompressPieces(pieces, 3, limit)));
}

describe('zstd frames made in pieces', () => {
  it('record the size they come to, for this module and for any zstd decoder', () => {
    const text = Array.from({ length: 40_000 }, (_, i) => `{"path":"/home/ann/é/${i}","size":${i * 7}}`);
    const pieces: (string | Uint8Array)[] = [];
    for (let i = 0; i < text.length; i += 1000) pieces.push(text.slice(i, i + 1000).join(','));
    pieces.push(Buffer.from('✓ bytes, not text'));
    const whole = Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
    const frame = frameOf(pieces);
    expect(binding.getFrameContentSize(frame)).toBe(whole.length);
    expect(frame.length).toBeLessThan(whole.length / 4);
    expect(zstdDecompress(frame, whole.length).equals(whole)).toBe(true);
    expect(decompress(frame).equals(whole)).toBe(true);
    // one piece, and none at all
    expect(zstdDecompress(frameOf(['{}']), 2).toString()).toBe('{}');
    expect(zstdDecompress(frameOf([]), 0).length).toBe(0);
  });

  it('refuse to go past the limit', () => {
    expect(() => frameOf(['a'.repeat(600), 'b'.repeat(600)], 1000)).toThrow(OverLimit);
    // the context given back is not spoilt by it
    expect(zstdDecompress(frameOf(['after']), 5).toString()).toBe('after');
  });

  it('write the size only into a header of the shape they make, or keep the one zstd wrote', () => {
    const text = Buffer.from('a frame that records its size already');
    const sized = compress(text);
    expect(binding.getFrameContentSize(sized)).toBe(text.length);
    expect(withSize(sized, text.length)).toBe(sized);
    expect(() => withSize(sized, text.length + 1)).toThrow(TypeError);
    expect(() => withSize(Buffer.from('not a zstd frame at all'), 1)).toThrow(TypeError);
    const frame = frameOf(['x'.repeat(100)]);
    expect(() => withSize(frame, 2 ** 32)).toThrow(TypeError);
  });
});
