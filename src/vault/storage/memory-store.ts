/**
 * An in-memory BlobStore for unit tests and throwaway vaults. It follows the same contract as the
 * disk and Azure backends, including key validation.
 */
import type { BlobStore } from './blobstore.js';
import { clipRange, validateKey, validatePrefix, type ByteRange } from './keys.js';

/**
 * A BlobStore held in a Map. Buffers are copied on the way in and out, so callers can neither
 * change stored objects by mutating what they passed to `put` nor by mutating what `get` returned.
 * `list` iterates over a snapshot of the keys taken when iteration starts.
 */
export class MemoryBlobStore implements BlobStore {
  readonly #objects = new Map<string, Buffer>();

  async put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
    validateKey(key);
    if (this.#objects.has(key)) return 'exists';
    this.#objects.set(key, Buffer.from(data));
    return 'created';
  }

  async get(key: string, range?: ByteRange): Promise<Buffer | null> {
    validateKey(key);
    const data = this.#objects.get(key);
    const { start, end } = clipRange(data?.length ?? 0, range);
    if (data === undefined) return null;
    return Buffer.from(data.subarray(start, end));
  }

  async stat(key: string): Promise<{ size: number } | null> {
    validateKey(key);
    const data = this.#objects.get(key);
    return data === undefined ? null : { size: data.length };
  }

  async *list(prefix: string): AsyncIterable<string> {
    validatePrefix(prefix);
    for (const key of [...this.#objects.keys()]) {
      if (key.startsWith(prefix)) yield key;
    }
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    this.#objects.delete(key);
  }

  /** The number of objects held; for tests. */
  get size(): number {
    return this.#objects.size;
  }
}
