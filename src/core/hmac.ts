/**
 * HMAC-SHA256 with the key's padded blocks hashed once: each MAC then costs two hash-state copies
 * instead of a new keyed object. For the many small chunks of a source tree this is most of the
 * cost of hashing. The result is exactly HMAC-SHA256 (RFC 2104), which the tests check.
 */
import { createHash, type Hash } from 'node:crypto';

const BLOCK = 64;

class PreparedHmac {
  private readonly inner: Hash;
  private readonly outer: Hash;

  constructor(key: Uint8Array) {
    let k = Buffer.from(key);
    if (k.length > BLOCK) k = createHash('sha256').update(k).digest();
    const ipad = Buffer.alloc(BLOCK, 0x36);
    const opad = Buffer.alloc(BLOCK, 0x5c);
    for (let i = 0; i < k.length; i++) {
      ipad[i]! ^= k[i]!;
      opad[i]! ^= k[i]!;
    }
    this.inner = createHash('sha256').update(ipad);
    this.outer = createHash('sha256').update(opad);
  }

  mac(parts: readonly Uint8Array[]): Buffer {
    const h = this.inner.copy();
    for (const p of parts) h.update(p);
    return this.outer.copy().update(h.digest()).digest();
  }
}

const prepared = new WeakMap<Uint8Array, PreparedHmac>();

/** HMAC-SHA256(key, concatenation of `parts`). `key` should be a long-lived buffer (it is cached). */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  let p = prepared.get(key);
  if (p === undefined) {
    p = new PreparedHmac(key);
    prepared.set(key, p);
  }
  return p.mac(parts);
}
