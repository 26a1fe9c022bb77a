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
 * Compresses `pieces` (bytes, or text written as UTF-8), `size` bytes in all, into one zstd frame
 * that records its content size (as zstdCompress does), handing each part of the frame to `out` as
 * it is made: a view of a buffer kept with the context, to consume at once. Throws when the pieces
 * do not add up to `size`. A step (a `yield`) follows each piece: a caller may do other work
 * between steps (see runSliced), as the frame has a context of its own.
 */
export function* zstdCompressPieces(pieces: Iterable<Uint8Array | string>, size: number, level: number, out: (part: Buffer) => void): Generator<void, void> {
  const s = takeStream(level);
  const { c, out: buf } = s;
  c.reset(binding.ResetDirective.sessionOnly); // a frame abandoned half-made is dropped
  c.setPledgedSrcSize(size);
  try {
    for (const p of pieces) {
      const piece = typeof p === 'string' ? utf8Of(s, p) : p;
      for (let at = 0; at < piece.length; ) {
        const [, produced, consumed] = c.compressStream2(buf, piece.subarray(at), binding.EndDirective.continue);
        at += consumed;
        if (produced > 0) out(buf.subarray(0, produced));
      }
      yield;
    }
    for (let left = 1; left > 0; ) {
      const [remaining, produced] = c.compressStream2(buf, EMPTY, binding.EndDirective.end);
      left = remaining;
      if (produced > 0) out(buf.subarray(0, produced));
    }
  } finally {
    idleStreams.get(level)!.push(s);
  }
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
