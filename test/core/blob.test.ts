import { createCipheriv, createHmac } from 'node:crypto';
import { compress } from 'zstd-napi';
import { describe, expect, it } from 'vitest';
import { BLOB_OVERHEAD, blobId, decodeBlob, encodeBlob, MAX_BLOB_SIZE } from '../../src/core/blob.js';
import type { BlobId, BlobType } from '../../src/core/ids.js';
import type { VaultKeys } from '../../src/core/keys.js';
import { expectCorrupt, flipped, randomData, rng, testKeys } from './fixtures.js';

const keys = testKeys();

/** Seals an arbitrary body (flag byte included) the way encodeBlob does, to test decodeBlob. */
function sealBody(k: VaultKeys, type: BlobType, id: string, body: Buffer): Buffer {
  const idBytes = Buffer.from(id, 'hex');
  const key = createHmac('sha256', k.dataKey).update('azbk blob key v1\0').update(idBytes).digest();
  const nonce = Buffer.alloc(12, 7);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(Buffer.concat([Buffer.of(type === 'data' ? 1 : 2), idBytes]));
  return Buffer.concat([nonce, c.update(body), c.final(), c.getAuthTag()]);
}

describe('blobs', () => {
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['small', Buffer.from('hello, vault')],
    ['compressible', Buffer.from('the same line again and again\n'.repeat(20_000))],
    ['random', randomData(300_000)],
  ];

  it('decompresses into a given scratch buffer when the blob fits, and into a buffer of its own when not', () => {
    const plain = Buffer.from('the same line again and again\n'.repeat(20_000));
    const enc = encodeBlob(keys, 'data', plain);
    const scratch = Buffer.alloc(plain.length + 10, 0xee);
    const fits = decodeBlob(keys, 'data', enc.id, enc.sealed, scratch);
    expect(fits.equals(plain)).toBe(true);
    expect(fits.buffer).toBe(scratch.buffer);
    const small = Buffer.alloc(plain.length - 1);
    const own = decodeBlob(keys, 'data', enc.id, enc.sealed, small);
    expect(own.equals(plain)).toBe(true);
    expect(own.buffer).not.toBe(small.buffer);
    expect(small.every((b) => b === 0)).toBe(true);
    // A damaged blob fails the same way with a scratch buffer.
    expectCorrupt(() => decodeBlob(keys, 'data', enc.id, flipped(enc.sealed, 40), scratch));
  });

  it('deciphers in pieces: a raw blob given a scratch buffer lands in one buffer kept for the thread, a blob without one in its own', () => {
    // Random data is stored raw; the sizes are not multiples of the cipher's piece.
    const a = randomData(300_001, 11);
    const b = randomData(200_003, 12);
    const encA = encodeBlob(keys, 'data', a);
    const encB = encodeBlob(keys, 'data', b);
    expect(encA.sealed.length).toBe(BLOB_OVERHEAD + a.length); // raw, not compressed
    const scratch = Buffer.alloc(16);
    const first = decodeBlob(keys, 'data', encA.id, encA.sealed, scratch);
    expect(first.equals(a)).toBe(true);
    expect(first.buffer === scratch.buffer).toBe(false);
    const second = decodeBlob(keys, 'data', encB.id, encB.sealed, scratch);
    expect(second.equals(b)).toBe(true);
    // (buffers compared by identity as booleans: a failing toBe would diff their bytes)
    expect(second.buffer === first.buffer, 'the kept buffer again, not a fresh one').toBe(true);
    // Without a scratch buffer the result is the caller's to keep.
    const own = decodeBlob(keys, 'data', encA.id, encA.sealed);
    decodeBlob(keys, 'data', encB.id, encB.sealed);
    decodeBlob(keys, 'data', encB.id, encB.sealed, scratch);
    expect(own.equals(a)).toBe(true);
    expect(own.buffer === first.buffer).toBe(false);
    // Damage in the first, a middle or the last piece fails with a scratch buffer too.
    for (const i of [12, 13, 12 + 16 * 1024, 12 + 100_000, encA.sealed.length - 17, encA.sealed.length - 1]) {
      expectCorrupt(() => decodeBlob(keys, 'data', encA.id, flipped(encA.sealed, i), scratch));
    }
    // A body larger than the kept buffer may grow to gets a buffer of its own.
    const big = randomData(17 * 1024 * 1024 + 5, 13);
    const encBig = encodeBlob(keys, 'data', big);
    const gotBig = decodeBlob(keys, 'data', encBig.id, encBig.sealed, scratch);
    expect(gotBig.equals(big)).toBe(true);
    expect(decodeBlob(keys, 'data', encB.id, encB.sealed, scratch).buffer === first.buffer).toBe(true);
    expect(gotBig.equals(big)).toBe(true);
  });

  for (const [name, plain] of cases) {
    it(`round-trips ${name} data`, () => {
      for (const type of ['data', 'tree'] as const) {
        const enc = encodeBlob(keys, type, plain);
        expect(enc.id).toBe(createHmac('sha256', keys.idKey).update(plain).digest('hex'));
        expect(enc.id).toBe(blobId(keys, plain));
        expect(enc.rawLength).toBe(plain.length);
        expect(decodeBlob(keys, type, enc.id, enc.sealed).equals(plain)).toBe(true);
      }
    });
  }

  it('compresses what compresses and stores the rest raw', () => {
    const text = cases[2]![1];
    expect(encodeBlob(keys, 'data', text).sealed.length).toBeLessThan(text.length / 10);
    const random = cases[3]![1];
    expect(encodeBlob(keys, 'data', random).sealed.length).toBe(random.length + BLOB_OVERHEAD);
    expect(encodeBlob(keys, 'data', Buffer.alloc(0)).sealed.length).toBe(BLOB_OVERHEAD);
  });

  it('uses a fresh nonce each time and accepts a precomputed id and a level', () => {
    const plain = cases[2]![1];
    const a = encodeBlob(keys, 'data', plain);
    const b = encodeBlob(keys, 'data', plain, { id: a.id, level: 19 });
    expect(a.sealed.equals(b.sealed)).toBe(false);
    expect(decodeBlob(keys, 'data', a.id, b.sealed).equals(plain)).toBe(true);
  });

  it('detects a change to any byte of a small sealed blob', () => {
    for (const plain of [Buffer.from('tiny'), cases[2]![1].subarray(0, 3000)]) {
      const enc = encodeBlob(keys, 'data', plain);
      for (let i = 0; i < enc.sealed.length; i++) expectCorrupt(() => decodeBlob(keys, 'data', enc.id, flipped(enc.sealed, i)));
    }
  });

  it('detects a change to sampled bytes of a big sealed blob, and truncation', () => {
    const enc = encodeBlob(keys, 'data', randomData(2 * 1024 * 1024, 5));
    const r = rng(3);
    const positions = [0, 11, 12, 13, enc.sealed.length - 17, enc.sealed.length - 16, enc.sealed.length - 1];
    for (let n = 0; n < 200; n++) positions.push(Math.floor(r() * enc.sealed.length));
    for (const i of positions) expectCorrupt(() => decodeBlob(keys, 'data', enc.id, flipped(enc.sealed, i)));
    expectCorrupt(() => decodeBlob(keys, 'data', enc.id, enc.sealed.subarray(0, enc.sealed.length - 1)));
    expectCorrupt(() => decodeBlob(keys, 'data', enc.id, Buffer.concat([enc.sealed, Buffer.of(0)])));
    expectCorrupt(() => decodeBlob(keys, 'data', enc.id, enc.sealed.subarray(0, BLOB_OVERHEAD - 1)));
  });

  it('refuses the wrong type, the wrong id, another blob and other keys', () => {
    const a = encodeBlob(keys, 'data', Buffer.from('file A'));
    const b = encodeBlob(keys, 'data', Buffer.from('file B'));
    expectCorrupt(() => decodeBlob(keys, 'tree', a.id, a.sealed));
    expectCorrupt(() => decodeBlob(keys, 'data', b.id, a.sealed));
    expectCorrupt(() => decodeBlob(keys, 'data', 'zz' as BlobId, a.sealed));
    expectCorrupt(() => decodeBlob(testKeys(2), 'data', a.id, a.sealed));
  });

  it('refuses bodies that authenticate but are wrong inside', () => {
    const plain = Buffer.from('x'.repeat(5000));
    const id = blobId(keys, plain);
    // Correct plaintext under an unknown flag.
    expectCorrupt(() => decodeBlob(keys, 'data', id, sealBody(keys, 'data', id, Buffer.concat([Buffer.of(2), plain]))));
    // Empty body (no flag).
    expectCorrupt(() => decodeBlob(keys, 'data', id, sealBody(keys, 'data', id, Buffer.alloc(0))));
    // Content that does not match the id it is sealed under.
    const other = Buffer.from('y'.repeat(5000));
    expectCorrupt(() => decodeBlob(keys, 'data', id, sealBody(keys, 'data', id, Buffer.concat([Buffer.of(0), other]))));
    // Garbage flagged as zstd, and zstd with trailing bytes.
    expectCorrupt(() => decodeBlob(keys, 'data', id, sealBody(keys, 'data', id, Buffer.from('\x01not zstd at all'))));
    const frame = compress(plain);
    const trailing = Buffer.concat([Buffer.of(1), frame, Buffer.of(0)]);
    expectCorrupt(() => decodeBlob(keys, 'data', id, sealBody(keys, 'data', id, trailing)));
    // The same frame without the trailing byte decodes.
    expect(decodeBlob(keys, 'data', id, sealBody(keys, 'data', id, Buffer.concat([Buffer.of(1), frame]))).equals(plain)).toBe(
      true,
    );
  });

  it('refuses a zstd bomb without inflating it', () => {
    // A frame declaring more than MAX_BLOB_SIZE: compressed zeros are tiny.
    const bomb = compress(Buffer.alloc(MAX_BLOB_SIZE + 1));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const id = blobId(keys, Buffer.alloc(0));
    const before = process.memoryUsage().arrayBuffers;
    expectCorrupt(() => decodeBlob(keys, 'data', id, sealBody(keys, 'data', id, Buffer.concat([Buffer.of(1), bomb]))));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(MAX_BLOB_SIZE);
  });

  it('refuses to encode more than MAX_BLOB_SIZE', () => {
    expect(() => encodeBlob(keys, 'data', new Uint8Array(MAX_BLOB_SIZE + 1))).toThrow(RangeError);
  });
});

describe('HMAC-SHA256', () => {
  it('gives the known answers of RFC 4231 (a short key, a 4-byte key, a key longer than a block)', async () => {
    const { hmacSha256 } = await import('../../src/core/hmac.js');
    const cases: [Buffer, string, string][] = [
      [Buffer.alloc(20, 0x0b), 'Hi There', 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
      [Buffer.from('Jefe'), 'what do ya want for nothing?', '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
      [Buffer.alloc(131, 0xaa), 'Test Using Larger Than Block-Size Key - Hash Key First', '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    ];
    for (const [key, msg, want] of cases) expect(hmacSha256(key, Buffer.from(msg)).toString('hex')).toBe(want);
  });

  it('is exactly HMAC-SHA256 for short, block-sized and long keys and any split of the message', async () => {
    const { createHmac, randomBytes } = await import('node:crypto');
    const { hmacSha256 } = await import('../../src/core/hmac.js');
    for (const keyLen of [0, 16, 32, 64, 65, 200]) {
      const key = randomBytes(keyLen);
      for (const msgLen of [0, 1, 63, 64, 1000]) {
        const msg = randomBytes(msgLen);
        const want = createHmac('sha256', key).update(msg).digest();
        expect(hmacSha256(key, msg).equals(want)).toBe(true);
        expect(hmacSha256(key, msg.subarray(0, msgLen >> 1), msg.subarray(msgLen >> 1)).equals(want)).toBe(true);
      }
    }
  });
});
