import { createCipheriv, hkdfSync } from 'node:crypto';
import { compress } from 'zstd-napi';
import { describe, expect, it } from 'vitest';
import type { VaultKeys } from '../../src/core/keys.js';
import { objectKeyId, openObject, sealObject, sealSteps, type ObjectKind } from '../../src/core/sealed-object.js';
import { expectCorrupt, flipped, testKeys } from './fixtures.js';

const keys = testKeys();

/**
 * Seals raw plaintext bytes (the zstd frame inside) by the documented layout, to feed openObject
 * content sealObject would never write.
 */
function sealRaw(k: VaultKeys, kind: ObjectKind, name: string, body: Buffer): Buffer {
  const magic = Buffer.from('AZBKOBJ1');
  const keyId = Buffer.from(k.keyId, 'hex');
  const nonce = Buffer.alloc(12, 9);
  const key = Buffer.from(hkdfSync('sha256', k.metaKey, nonce, 'azbk object v1', 32));
  const kindBytes = Buffer.from(kind);
  const nameBytes = Buffer.from(name);
  const nameLen = Buffer.alloc(4);
  nameLen.writeUInt32LE(nameBytes.length);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(Buffer.concat([magic, keyId, Buffer.of(kindBytes.length), kindBytes, nameLen, nameBytes]));
  return Buffer.concat([magic, keyId, nonce, c.update(body), c.final(), c.getAuthTag()]);
}

describe('sealed objects', () => {
  const value = { version: 1, paths: ['/home/ann', 'C:\\Users\\Ann'], stats: { files: 3, bytes: 12345 }, note: 'é ✓' };

  it('round-trips JSON values', () => {
    for (const v of [value, [], 'text', 0, null, { deep: { list: [1, 2, { x: true }] } }]) {
      const sealed = sealObject(keys, 'point', 'p1', v);
      expect(openObject(keys, 'point', 'p1', sealed)).toEqual(v);
    }
  });

  it('round-trips a large object, written in pieces, as one zstd frame that records its size', () => {
    const v = { version: 1, files: Array.from({ length: 30_000 }, (_, i) => ({ path: `/home/ann/f${i}`, content: [String(i).padStart(64, 'a')] })) };
    const sealed = sealObject(keys, 'checkpoint', 'c1', v);
    expect(sealed.length).toBeLessThan(JSON.stringify(v).length / 2);
    expect(openObject(keys, 'checkpoint', 'c1', sealed)).toEqual(v);
    // a small object sealed next still opens: the compression context starts afresh
    expect(openObject(keys, 'point', 'p1', sealObject(keys, 'point', 'p1', value))).toEqual(value);
  });

  it('round-trips text of every width, in small pieces, one that nearly fills the kept buffer, and one too large for it', () => {
    // One, two, three and four bytes of UTF-8 (the last a surrogate pair in the string), in many
    // pieces written through a buffer kept for the purpose; then one piece of three-byte
    // characters that needs all but a few bytes of its 1 MiB (room for fewer bytes per character
    // fails here); then pieces too large for it.
    const names = Array.from({ length: 20_000 }, (_, i) => `/home/ann/${i}-a-é-✓-😀`);
    const wide = '✓'.repeat(349_500);
    const huge = '😀é✓'.repeat(200_000);
    for (const v of [{ version: 1, names }, { version: 1, wide }, { version: 1, huge }, { version: 1, names: names.slice(0, 10), huge, more: names }]) {
      const sealed = sealObject(keys, 'checkpoint', 'c1', v);
      expect(openObject(keys, 'checkpoint', 'c1', sealed)).toEqual(v);
    }
  });

  it('seals objects made in steps taken in turn, and one abandoned halfway spoils none after it', () => {
    const many = (n: number, tag: string) => ({ version: 1, files: Array.from({ length: n }, (_, i) => ({ path: `/${tag}/f${i}`, content: [String(i).padStart(64, tag)] })) });
    const a = many(20_000, 'a');
    const b = many(15_000, 'b');
    const sa = sealSteps(keys, 'index', 'a', a);
    const sb = sealSteps(keys, 'checkpoint', 'b', b);
    let doneA: Buffer | undefined;
    let doneB: Buffer | undefined;
    let turns = 0;
    while (doneA === undefined || doneB === undefined) {
      if (doneA === undefined) {
        const r = sa.next();
        if (r.done === true) doneA = r.value;
      }
      if (doneB === undefined) {
        const r = sb.next();
        if (r.done === true) doneB = r.value;
      }
      // a one-piece object sealed at once between the steps of the two
      expect(openObject(keys, 'point', 'p', sealObject(keys, 'point', 'p', value))).toEqual(value);
      turns++;
    }
    expect(turns).toBeGreaterThan(10);
    expect(openObject(keys, 'index', 'a', doneA)).toEqual(a);
    expect(openObject(keys, 'checkpoint', 'b', doneB)).toEqual(b);

    // Steps left off in the middle of compressing: the next object still comes out whole.
    const left = sealSteps(keys, 'index', 'x', a);
    for (let i = 0; i < 40; i++) left.next();
    left.return(Buffer.alloc(0));
    expect(openObject(keys, 'checkpoint', 'b', sealObject(keys, 'checkpoint', 'b', b))).toEqual(b);
  });

  it('has the documented layout and readable key family', () => {
    const sealed = sealObject(keys, 'index', 'abc', value);
    expect(sealed.subarray(0, 8).toString('latin1')).toBe('AZBKOBJ1');
    expect(sealed.subarray(8, 24).toString('hex')).toBe(keys.keyId);
    expect(objectKeyId(sealed)).toBe(keys.keyId);
    expect(objectKeyId(Buffer.from('AZBKPAK1 and more bytes than the minimum length of an object...'))).toBeNull();
    expect(objectKeyId(sealed.subarray(0, 40))).toBeNull();
    // Compressed: a repetitive value takes far less room than its JSON.
    const big = { names: Array.from({ length: 5000 }, (_, i) => `file-${i % 10}.txt`) };
    expect(sealObject(keys, 'checkpoint', 'c', big).length).toBeLessThan(JSON.stringify(big).length / 5);
  });

  it('detects a change to any byte', () => {
    const sealed = sealObject(keys, 'checkpoint', 'job-1', value);
    for (let i = 0; i < sealed.length; i++) expectCorrupt(() => openObject(keys, 'checkpoint', 'job-1', flipped(sealed, i)));
    expectCorrupt(() => openObject(keys, 'checkpoint', 'job-1', sealed.subarray(0, sealed.length - 1)));
    expectCorrupt(() => openObject(keys, 'checkpoint', 'job-1', Buffer.alloc(0)));
  });

  it('refuses another name, kind or key family', () => {
    const sealed = sealObject(keys, 'point', 'p1', value);
    expectCorrupt(() => openObject(keys, 'point', 'p2', sealed));
    expectCorrupt(() => openObject(keys, 'point', 'p1 ', sealed));
    expectCorrupt(() => openObject(keys, 'checkpoint', 'p1', sealed));
    expectCorrupt(() => openObject(testKeys(2), 'point', 'p1', sealed));
    // Same master key, other family id: refused by the key id before decryption.
    expectCorrupt(() => openObject({ ...keys, keyId: testKeys(2).keyId }, 'point', 'p1', sealed));
    // Kind and name are delimited: moving a character between them changes the AAD.
    const s2 = sealObject(keys, 'index', 'x', value);
    expectCorrupt(() => openObject(keys, 'index', 'x\0', s2));
  });

  it('refuses malformed content that authenticates', () => {
    const bad = [
      compress(Buffer.from('{"version": 1,')), // truncated JSON
      compress(Buffer.from('')), // no JSON at all
      compress(Buffer.from([0x22, 0xff, 0xfe, 0x22])), // invalid UTF-8
      Buffer.from('{"not":"compressed"}'),
      Buffer.concat([compress(Buffer.from('{}')), Buffer.of(0)]), // trailing bytes
    ];
    for (const body of bad) expectCorrupt(() => openObject(keys, 'index', 'i', sealRaw(keys, 'index', 'i', body)));
    // The helper itself is faithful: good content opens.
    expect(openObject(keys, 'index', 'i', sealRaw(keys, 'index', 'i', compress(Buffer.from('{"a":1}'))))).toEqual({ a: 1 });
  });

  it('refuses values JSON cannot hold', () => {
    expect(() => sealObject(keys, 'point', 'p', undefined)).toThrow(TypeError);
    expect(() => sealObject(keys, 'point', 'p', { n: 1n })).toThrow(TypeError);
  });
});
