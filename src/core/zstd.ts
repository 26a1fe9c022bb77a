/**
 * Private zstd helpers: single-frame compression, and decompression that refuses to allocate more
 * than a caller-given limit (the frame's declared content size is checked before any output
 * buffer exists).
 */
import { Compressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { corrupt } from './validate.js';

/** Compresses `data` into one zstd frame that records its content size. */
export function zstdCompress(data: Uint8Array, level: number): Buffer {
  let c = compressors.get(level);
  if (c === undefined) {
    c = new Compressor();
    c.setParameters({ compressionLevel: level });
    compressors.set(level, c);
  }
  return c.compress(data);
}

/** One context per level, reused: setting parameters for every call costs more than small inputs. */
const compressors = new Map<number, Compressor>();

let dctx: InstanceType<typeof binding.DCtx> | undefined;

/**
 * Decompresses exactly one zstd frame whose header declares its content size, at most `limit`
 * bytes. Throws AZBK_VAULT_CORRUPT on anything else: no declared size, too large, trailing
 * bytes, or a frame that does not decode to the declared size.
 */
export function zstdDecompress(data: Uint8Array, limit: number): Buffer {
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
  const out = Buffer.allocUnsafe(size);
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
