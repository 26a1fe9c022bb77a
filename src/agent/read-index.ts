/** The vault's index for reading points back (restore, ls), through this machine's cache when it can. */
import type { PackId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { isAzbkError } from '../shared/errors.js';
import { BlobIndex } from './blob-index.js';
import type { AgentContext } from './context.js';
import { FileCache } from './file-cache.js';

/**
 * The vault's index, through the local cache of the key family's index files (the backups made
 * here fill it); without the cache when it cannot be opened: reading a point back must not depend on it.
 * The blobs of the packs in `missing` are left out.
 */
export async function loadIndex(ctx: AgentContext, keys: VaultKeys, missing: readonly PackId[]): Promise<BlobIndex> {
  let cache: FileCache | undefined;
  try {
    cache = FileCache.forVault(ctx.paths.home, ctx.registration.vaultId, keys.keyId);
  } catch {
    cache = undefined;
  }
  const opts = { leaveOut: missing };
  if (cache === undefined) return BlobIndex.load(ctx.session, keys, undefined, opts);
  try {
    const index = await BlobIndex.load(ctx.session, keys, cache, opts);
    index.saveSnapshot(cache); // the next command loads it as it is
    return index;
  } catch (err) {
    if (isAzbkError(err)) throw err;
    return BlobIndex.load(ctx.session, keys, undefined, opts); // the cache failed (read-only, damaged)
  } finally {
    try {
      cache.close();
    } catch {
      // nothing to keep
    }
  }
}
