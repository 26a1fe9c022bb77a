/**
 * The storage contract every vault backend implements (local disk, Azure Blob Storage, memory).
 *
 * Keys are relative, '/'-separated names made of [A-Za-z0-9._-] segments (no '.' or '..' segment,
 * no leading or trailing '/', at most 512 characters); anything else is rejected with AzbkError
 * AZBK_BAD_INPUT before touching storage.
 *
 * - `put` is atomic and never overwrites: it creates the object whole or not at all. If the key
 *   exists it returns 'exists' and leaves the object as it was. A reader never sees half an object.
 * - `get` returns the whole object, or `length` bytes from `offset`; null when the key is missing.
 *   A range past the end is clipped.
 * - `stat` returns the size, or null when missing.
 * - `list` yields every key that starts with `prefix`, in no particular order.
 * - `delete` removes an object; deleting a missing key is not an error.
 * Transient failures throw AzbkError AZBK_VAULT_UNREACHABLE; callers may retry those.
 */
import type { ByteRange } from './keys.js';

export interface BlobStore {
  put(key: string, data: Uint8Array): Promise<'created' | 'exists'>;
  get(key: string, range?: ByteRange): Promise<Buffer | null>;
  stat(key: string): Promise<{ size: number } | null>;
  list(prefix: string): AsyncIterable<string>;
  delete(key: string): Promise<void>;
}
