/**
 * Content-defined chunking (FastCDC with a gear hash and normalized chunking).
 * Pure: buffers in, chunks out. The same bytes and seed always give the same boundaries; an insert
 * near the start of a stream moves only the boundaries next to it.
 */

export interface ChunkerParams {
  /** No chunk is shorter than this, except the last one of a stream. */
  readonly min: number;
  /** Target average chunk size; a power of two. */
  readonly avg: number;
  /** No chunk is longer than this. */
  readonly max: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

/**
 * Streams bytes into chunks. `push` returns the chunks completed by the new bytes (possibly none);
 * `finish` returns the rest (at most one chunk; none for an empty stream). Memory held is at most
 * `max` plus the last pushed buffer. Returned buffers are owned by the caller.
 * `seed` selects the gear table (a keyed table hides chunk sizes from the vault); without it a
 * fixed table is used.
 */
export class Chunker {
  constructor(params: ChunkerParams = DEFAULT_CHUNKER, seed?: Uint8Array) {
    void params;
    void seed;
    throw new Error('not implemented');
  }
  push(data: Uint8Array): Buffer[] {
    void data;
    throw new Error('not implemented');
  }
  finish(): Buffer[] {
    throw new Error('not implemented');
  }
}
