/**
 * Content-defined chunking (FastCDC with a gear hash and normalized chunking).
 * Pure: buffers in, chunks out. The same bytes and seed always give the same boundaries; an insert
 * near the start of a stream moves only the boundaries next to it.
 *
 * The hash is h = (h << 1) + G[byte] over 32 bits, so h after any byte is a function of the last 32
 * bytes only, and its high bits mix all of them. A cut is allowed after a byte that makes the chunk
 * at least `min` long and whose hash has the masked HIGH bits all zero: a harder mask (2 more bits
 * than log2(avg)) while the chunk is shorter than `avg`, an easier one (2 fewer) after, and a
 * forced cut at `max`. Hashing starts WINDOW bytes before `min`, so skipped bytes cost nothing and
 * every test sees the same hash it would if the whole chunk had been hashed.
 */
import { createHmac } from 'node:crypto';

export interface ChunkerParams {
  /** No chunk is shorter than this, except the last one of a stream. */
  readonly min: number;
  /** Target average chunk size; a power of two. */
  readonly avg: number;
  /** No chunk is longer than this. */
  readonly max: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

/** The gear table used when no seed is given. */
const DEFAULT_SEED = Buffer.from('azbk default chunker seed v1', 'utf8');
/** Bytes that influence the 32-bit gear hash. */
const WINDOW = 32;
/** Normalization level: bits added below avg and removed above it. */
const NORMALIZATION = 2;
const MAX_CHUNK_LIMIT = 1 << 30;
const INITIAL_BUFFER = 64 * 1024;

/** 256 32-bit gear values: HMAC-SHA256(seed, label | counter) in counter mode, little endian. */
const gearTables = new Map<string, Uint32Array>();

/** The gear table of a seed, computed once per seed. */
function gearTable(seed: Uint8Array): Uint32Array {
  const key = Buffer.from(seed).toString('hex');
  let table = gearTables.get(key);
  if (table === undefined) {
    table = makeGearTable(seed);
    gearTables.set(key, table);
  }
  return table;
}

function makeGearTable(seed: Uint8Array): Uint32Array {
  const bytes = Buffer.alloc(256 * 4);
  for (let i = 0; i < 32; i++) {
    const block = Buffer.alloc(4);
    block.writeUInt32BE(i);
    createHmac('sha256', seed).update('azbk gear v1').update(block).digest().copy(bytes, i * 32);
  }
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) table[i] = bytes.readUInt32LE(i * 4);
  return table;
}

/** A mask of the top `bits` bits of a 32-bit word. */
function highMask(bits: number): number {
  return bits >= 32 ? 0xffffffff : (~0 << (32 - bits)) >>> 0;
}

function checkParams(p: ChunkerParams): void {
  const { min, avg, max } = p;
  const ints = [min, avg, max].every((v) => Number.isSafeInteger(v));
  if (!ints || min < 1 || min > avg || avg > max || max > MAX_CHUNK_LIMIT) {
    throw new RangeError(`chunker params must satisfy 1 <= min <= avg <= max <= 2^30: ${JSON.stringify(p)}`);
  }
  if ((avg & (avg - 1)) !== 0 || avg < 1 << (NORMALIZATION + 1)) {
    throw new RangeError(`chunker avg must be a power of two >= ${1 << (NORMALIZATION + 1)}: ${avg}`);
  }
}

/**
 * Streams bytes into chunks. `push` returns the chunks completed by the new bytes (possibly none);
 * `finish` returns the rest (at most one chunk; none for an empty stream) and leaves the chunker
 * ready for a new stream. Memory held is at most `max` plus the last pushed buffer. Returned
 * buffers are owned by the caller (always copies, never views of pushed data). `cut` and `end` do
 * the same without copying: each chunk they yield is a view, valid only until the generator goes
 * on, and the chunker keeps its buffer for the next stream. Both must be iterated to the end (an
 * abandoned `cut` loses the rest of its input); `reset` drops a stream given up half way.
 * `seed` selects the gear table (a keyed table hides chunk sizes from the vault); without it a
 * fixed table is used. Throws RangeError for params that are not 1 <= min <= avg <= max <= 2^30
 * with avg a power of two.
 */
export class Chunker {
  private readonly min: number;
  private readonly avg: number;
  private readonly max: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private readonly gear: Uint32Array;
  /** Bytes of the current chunk seen in earlier pushes, held in `buf[0, len)`. */
  private buf: Buffer = Buffer.alloc(0);
  private len = 0;
  private hash = 0;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER, seed?: Uint8Array) {
    checkParams(params);
    this.min = params.min;
    this.avg = params.avg;
    this.max = params.max;
    const bits = Math.log2(params.avg);
    this.maskS = highMask(bits + NORMALIZATION);
    this.maskL = highMask(bits - NORMALIZATION);
    this.gear = gearTable(seed ?? DEFAULT_SEED);
  }

  push(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    for (const chunk of this.cut(data)) out.push(Buffer.from(chunk));
    return out;
  }

  finish(): Buffer[] {
    const out: Buffer[] = [];
    for (const chunk of this.end()) out.push(Buffer.from(chunk));
    this.buf = Buffer.alloc(0);
    return out;
  }

  /** The chunks `data` completes, as views: of `data`, or of the chunker's buffer for a chunk begun earlier. */
  *cut(data: Uint8Array): Generator<Buffer, void, undefined> {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let off = 0;
    while (off < bytes.length) {
      const cut = this.scan(bytes, off);
      if (cut < 0) {
        this.hold(bytes.subarray(off));
        break;
      }
      let chunk = bytes.subarray(off, cut);
      if (this.len > 0) {
        this.hold(chunk);
        chunk = this.buf.subarray(0, this.len);
      }
      this.len = 0;
      this.hash = 0;
      off = cut;
      yield chunk;
    }
  }

  /** The rest of the stream as a last chunk (none if empty), as a view; the chunker is then ready for a new stream. */
  *end(): Generator<Buffer, void, undefined> {
    const len = this.len;
    this.reset();
    if (len > 0) yield this.buf.subarray(0, len);
  }

  /** Drops the current stream (as after a failed read); the chunker is ready for a new one. */
  reset(): void {
    this.len = 0;
    this.hash = 0;
  }

  /** Appends bytes of the current chunk, growing the buffer by doubling up to `max`. */
  private hold(piece: Uint8Array): void {
    const need = this.len + piece.length;
    if (need > this.buf.length) {
      let size = Math.max(this.buf.length * 2, INITIAL_BUFFER);
      while (size < need) size *= 2;
      const grown = Buffer.allocUnsafe(Math.min(size, this.max));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    this.buf.set(piece, this.len);
    this.len = need;
  }

  /**
   * Scans `data` from `start`, continuing the current chunk (`len` bytes long so far). Returns the
   * index in `data` just after the cut, or -1 when `data` ends first (then `hash` is saved).
   */
  private scan(data: Uint8Array, start: number): number {
    const G = this.gear;
    const end = data.length;
    const { min, avg, max } = this;
    let h = this.hash;
    let i = start;
    // `base` is the chunk length before data[start]; the chunk length after data[i] is base + i - start + 1.
    const base = this.len - start;

    // Bytes more than WINDOW before min cannot affect any tested hash: skip them.
    const skip = Math.min(end, start + Math.max(0, min - WINDOW - this.len));
    i = skip;
    // Warm up: hash, no test, until the chunk is min - 1 long.
    let limit = Math.min(end, min - 1 - base);
    for (; i < limit; i++) h = ((h << 1) + G[data[i]!]!) >>> 0;
    // Harder mask while the chunk is shorter than avg.
    const maskS = this.maskS;
    limit = Math.min(end, avg - 1 - base);
    for (; i < limit; i++) {
      h = ((h << 1) + G[data[i]!]!) >>> 0;
      if ((h & maskS) === 0) return i + 1;
    }
    // Easier mask up to max - 1.
    const maskL = this.maskL;
    limit = Math.min(end, max - 1 - base);
    for (; i < limit; i++) {
      h = ((h << 1) + G[data[i]!]!) >>> 0;
      if ((h & maskL) === 0) return i + 1;
    }
    // The byte that makes the chunk max long ends it, whatever its hash.
    if (i < end) return i + 1;
    this.hash = h;
    return -1;
  }
}
