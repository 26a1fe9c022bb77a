/**
 * Private zstd helpers: single-frame compression, and decompression that refuses to allocate more
 * than a caller-given limit (the frame's declared content size is checked before any output
 * buffer exists).
 */
import binding from 'zstd-napi/binding.js';
import { corrupt } from './validate.js';

/** Inputs whose compressed form may be larger than this get their own output buffer. */
const SCRATCH_LIMIT = 16 * 1024 * 1024;
let scratch = Buffer.alloc(0);

/**
 * Compresses `data` into one zstd frame that records its content size. The result is a view of a
 * buffer reused by the next call: copy or consume it first (the sealing code encrypts it at once).
 * One context per level is kept: setting parameters for every call costs more than small inputs.
 */
export function zstdCompress(data: Uint8Array, level: number): Buffer {
  const c = context(level);
  const bound = binding.compressBound(data.length);
  let out = scratch;
  if (bound > out.length) {
    out = Buffer.allocUnsafeSlow(bound);
    if (bound <= SCRATCH_LIMIT) scratch = out;
  }
  return out.subarray(0, c.compress2(out, data));
}

const contexts = new Map<number, InstanceType<typeof binding.CCtx>>();

function context(level: number): InstanceType<typeof binding.CCtx> {
  let c = contexts.get(level);
  if (c === undefined) {
    c = new binding.CCtx();
    c.setParameter(binding.CParameter.compressionLevel, level);
    contexts.set(level, c);
  }
  return c;
}

/**
 * A streaming context with the buffers a frame made in steps uses: its output, and the UTF-8 of a
 * text piece. Kept with the context, not made for each frame: the output buffer (about 128 KiB) was
 * a fresh allocation for every sealed object, a few hundred of them in a large backup, and each
 * 64 Ki-character piece of their JSON a buffer of its own. Both are used up before each step ends,
 * so one pair for the module would do; one per context stays right even if `out` were to start
 * another frame, for a few MiB at most (a context per frame made at once: two or three).
 */
interface Stream {
  readonly c: InstanceType<typeof binding.CCtx>;
  readonly out: Buffer;
  text: Buffer;
}

/** Streaming contexts not in use, per level: a frame made in steps keeps one until it ends. */
const idleStreams = new Map<number, Stream[]>();

/**
 * The window of a streamed frame, 128 KiB: a streaming context holds its window (2 MiB at level 3
 * otherwise), and one is kept per frame being made at once. The JSON of sealed objects repeats
 * itself at short range: an index file of 30,000 blobs came out 5% smaller than with the level's
 * own 2 MiB, and a fifth faster.
 */
const STREAM_WINDOW_LOG = 17;

/**
 * Text pieces are encoded into a buffer kept with the context, at most this large: a piece that
 * could need more (3 bytes per UTF-16 code unit) gets a buffer of its own.
 */
const TEXT_SCRATCH_LIMIT = 1024 * 1024;
/** The text buffer's first size: room for a piece of jsonPieces' usual 64 Ki characters of ASCII, and more. */
const TEXT_SCRATCH_FIRST = 256 * 1024;

function takeStream(level: number): Stream {
  let idle = idleStreams.get(level);
  if (idle === undefined) idleStreams.set(level, (idle = []));
  const s = idle.pop();
  if (s !== undefined) return s;
  const c = new binding.CCtx();
  c.setParameter(binding.CParameter.compressionLevel, level);
  c.setParameter(binding.CParameter.windowLog, STREAM_WINDOW_LOG);
  return { c, out: Buffer.allocUnsafe(binding.cStreamOutSize()), text: Buffer.alloc(0) };
}

/** The UTF-8 of `piece`, in the stream's text buffer when it fits (valid until the next piece). */
function utf8Of(s: Stream, piece: string): Buffer {
  // A UTF-16 code unit takes at most 3 bytes of UTF-8 (a surrogate pair, two units, takes 4).
  const room = piece.length * 3;
  if (room > TEXT_SCRATCH_LIMIT) return Buffer.from(piece, 'utf8');
  if (s.text.length < room) s.text = Buffer.allocUnsafe(Math.min(TEXT_SCRATCH_LIMIT, Math.max(room, 2 * s.text.length, TEXT_SCRATCH_FIRST)));
  return s.text.subarray(0, s.text.write(piece, 'utf8'));
}

/**
 * Compresses `pieces` (bytes, or text written as UTF-8) into one zstd frame that records its
 * content size (as zstdCompress does), without knowing that size ahead: the frame is made as one
 * of unknown size, then its header is written again with the size it came to (see withSize). The
 * text is thus made once, not once more first to count its bytes. Throws OverLimit once the
 * pieces pass `limit` bytes. A step (a `yield`) follows each piece: a caller may do other work
 * between steps (see runSliced), as the frame has a context of its own. Returns the frame in
 * parts, in order (each a buffer of its own).
 */
export function* zstdCompressPieces(pieces: Iterable<Uint8Array | string>, level: number, limit: number): Generator<void, Buffer[]> {
  const s = takeStream(level);
  const { c, out: buf } = s;
  const parts: Buffer[] = [];
  let size = 0;
  c.reset(binding.ResetDirective.sessionOnly); // a frame abandoned half-made is dropped; its size unknown
  try {
    for (const p of pieces) {
      const piece = typeof p === 'string' ? utf8Of(s, p) : p;
      size += piece.length;
      if (size > limit) throw new OverLimit(`more than ${limit} bytes to compress`);
      for (let at = 0; at < piece.length; ) {
        const [, produced, consumed] = c.compressStream2(buf, piece.subarray(at), binding.EndDirective.continue);
        at += consumed;
        if (produced > 0) parts.push(Buffer.from(buf.subarray(0, produced)));
      }
      yield;
    }
    for (let left = 1; left > 0; ) {
      const [remaining, produced] = c.compressStream2(buf, EMPTY, binding.EndDirective.end);
      left = remaining;
      if (produced > 0) parts.push(Buffer.from(buf.subarray(0, produced)));
    }
  } finally {
    idleStreams.get(level)!.push(s);
  }
  // The header comes whole in the first part (zstd writes it with the first block), but it costs
  // nothing to be sure.
  if (parts.length > 1 && parts[0]!.length < 6) parts.splice(0, parts.length, Buffer.concat(parts));
  parts[0] = withSize(parts[0] ?? EMPTY, size);
  return parts;
}

/** What zstdCompressPieces throws when its pieces pass the limit. */
export class OverLimit extends RangeError {}

const FRAME_MAGIC = 0xfd2fb528;

/**
 * A zstd frame made without a known size (`frame`, or its start from the header on), with `size`
 * written into its header (RFC 8878, 3.1.1.1). Such a header is the magic number, a descriptor
 * byte with no content size and no single-segment flag, then the window descriptor (and a
 * dictionary id, never used here). The descriptor's size field becomes 2 (4 bytes), and the 4
 * bytes follow the window descriptor; the blocks after the header do not change. A frame whose
 * header already records `size` is returned as it is (zstd records it when all the input came
 * at once, as with none at all). A header of another shape, or one that records another size, is
 * refused (TypeError), and so is a size of 4 GiB or more.
 */
export function withSize(frame: Buffer, size: number): Buffer {
  if (frame.length < 6 || frame.readUInt32LE(0) !== FRAME_MAGIC) throw new TypeError('not a zstd frame');
  const descriptor = frame[4]!;
  if ((descriptor & 0b1110_0000) !== 0 && binding.getFrameContentSize(frame) === size) return frame;
  // content size field 0, single segment 0, reserved bit 0, dictionary id 0
  if ((descriptor & 0b1110_1011) !== 0) throw new TypeError('zstd frame header of an unexpected shape');
  if (!Number.isInteger(size) || size < 0 || size >= 2 ** 32) throw new TypeError(`cannot record a content size of ${size}`);
  const head = Buffer.alloc(10);
  head.writeUInt32LE(FRAME_MAGIC, 0);
  head[4] = descriptor | (2 << 6);
  head[5] = frame[5]!; // the window descriptor
  head.writeUInt32LE(size, 6);
  return Buffer.concat([head, frame.subarray(6)]);
}

const EMPTY = Buffer.alloc(0);

let dctx: InstanceType<typeof binding.DCtx> | undefined;

/**
 * Decompresses exactly one zstd frame whose header declares its content size, at most `limit`
 * bytes. Throws AZBK_VAULT_CORRUPT on anything else: no declared size, too large, trailing
 * bytes, or a frame that does not decode to the declared size. With `into`, a frame that fits is
 * decompressed there and the result is a view of it.
 */
export function zstdDecompress(data: Uint8Array, limit: number, into?: Buffer): Buffer {
  let size: number | null;
  let frameLength: number;
  try {
    size = binding.getFrameContentSize(data);
    frameLength = binding.findFrameCompressedSize(data);
  } catch (err) {
    throw corrupt('compressed data is not a valid zstd frame', err);
  }
  if (size === null) throw corrupt('zstd frame does not declare its size');
  if (size > limit) throw corrupt(`zstd frame declares ${size} bytes, more than the limit of ${limit}`);
  if (frameLength !== data.length) throw corrupt('unexpected bytes after the zstd frame');
  const out = into !== undefined && size <= into.length ? into.subarray(0, size) : Buffer.allocUnsafe(size);
  let written: number;
  try {
    dctx ??= new binding.DCtx();
    written = dctx.decompress(out, data);
  } catch (err) {
    throw corrupt('zstd frame does not decompress', err);
  }
  if (written !== size) throw corrupt('zstd frame is shorter than it declares');
  return out;
}
