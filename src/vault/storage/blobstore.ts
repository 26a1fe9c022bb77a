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
 * - `openWriter`, offered by stores on a local disk only, writes one object in pieces as they come
 *   and names it at the end, under `put`'s rules, so a large object need not be held in memory.
 * Transient failures throw AzbkError AZBK_VAULT_UNREACHABLE; callers may retry those.
 */
import type { ByteRange } from './keys.js';

/** One object being written by `BlobStore.openWriter`: nobody sees it until `finish` names it. */
export interface ObjectWriter {
  /**
   * Appends `data` after everything written before (in the order of the calls, also while earlier
   * writes are still in flight). The caller keeps `data` unchanged until the promise settles.
   */
  write(data: Uint8Array): Promise<void>;
  /**
   * Waits for every write, makes the object durable and names it `key`, never overwriting: 'exists'
   * when the key is taken (and the written bytes are dropped). The writer is closed afterwards,
   * also when it throws.
   */
  finish(key: string): Promise<'created' | 'exists'>;
  /** Drops what was written and closes the writer; harmless after `finish`. */
  abort(): Promise<void>;
}

export interface BlobStore {
  put(key: string, data: Uint8Array): Promise<'created' | 'exists'>;
  get(key: string, range?: ByteRange): Promise<Buffer | null>;
  stat(key: string): Promise<{ size: number } | null>;
  list(prefix: string): AsyncIterable<string>;
  delete(key: string): Promise<void>;
  openWriter?(): Promise<ObjectWriter>;
}

/**
 * Stores `data` under `key` unless it exists; true when the object holds exactly `data`: made now,
 * or found so (this writer's own put, retried after its reply was lost). False when another's is there.
 */
export async function putOwn(store: BlobStore, key: string, data: Uint8Array): Promise<boolean> {
  if ((await store.put(key, data)) === 'created') return true;
  return (await store.get(key))?.equals(data) === true;
}
