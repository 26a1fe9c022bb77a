/**
 * Index files: which pack holds which blob. Stored sealed (kind 'index') under index/<id>.
 * Validated on read: every id hex, every offset/length a safe non-negative integer.
 */
import { entryProblem, toEntry } from './entries.js';
import type { PackId } from './ids.js';
import { isHex64 } from './ids.js';
import type { PackEntry } from './pack.js';
import type { VaultKeys } from './keys.js';
import { openObject, sealSteps } from './sealed-object.js';
import { runSteps, type Steps } from '../shared/steps.js';
import { corrupt, isRecord } from './validate.js';

export interface IndexPack {
  readonly id: PackId;
  readonly blobs: readonly PackEntry[];
}

export interface IndexFile {
  readonly version: 1;
  readonly packs: readonly IndexPack[];
}

/** Why `packs` is not a valid index body, or null: see decodeIndex for the rules. */
function packsProblem(packs: unknown): string | null {
  return runSteps(packsProblemSteps(packs));
}

/** packsProblem in steps, one per pack. */
function* packsProblemSteps(packs: unknown): Steps<string | null> {
  if (!Array.isArray(packs)) return 'packs is not an array';
  const seen = new Set<string>();
  for (const [i, p] of (packs as unknown[]).entries()) {
    if (!isRecord(p) || !isHex64(p.id)) return `pack ${i} has no 64-hex id`;
    if (seen.has(p.id)) return `pack ${p.id} is listed twice`;
    seen.add(p.id);
    if (!Array.isArray(p.blobs)) return `pack ${p.id} has no blob list`;
    for (const [j, b] of (p.blobs as unknown[]).entries()) {
      const problem = entryProblem(b);
      if (problem !== null) return `pack ${p.id} blob ${j}: ${problem}`;
    }
    yield;
  }
  return null;
}

/** Index body, packs, a pack, its blobs: a pack's blobs are written in runs, not the pack whole. */
const INDEX_SPLIT_DEPTH = 4;

/**
 * Seals an index file listing `packs` under `name` (its vault object id). Throws RangeError when
 * an entry would not pass decodeIndex (a bug in the caller, not bad data).
 */
export function encodeIndex(keys: VaultKeys, name: string, packs: readonly IndexPack[]): Buffer {
  return runSteps(encodeIndexSteps(keys, name, packs));
}

/** encodeIndex in steps (see runSliced): an index file of a large backup takes a while. */
export function* encodeIndexSteps(keys: VaultKeys, name: string, packs: readonly IndexPack[]): Steps<Buffer> {
  const problem = yield* packsProblemSteps(packs);
  if (problem !== null) throw new RangeError(`cannot encode index ${name}: ${problem}`);
  const body: IndexFile = {
    version: 1,
    packs: packs.map((p) => ({ id: p.id, blobs: p.blobs.map(toEntry) })),
  };
  yield;
  // Written entry by entry: a pack of small chunks lists thousands, 30-100 ms for one piece.
  return yield* sealSteps(keys, 'index', name, body, INDEX_SPLIT_DEPTH);
}

/**
 * Opens and validates; throws AZBK_VAULT_CORRUPT when tampered or malformed: version 1, pack ids
 * 64 hex and not repeated, every entry valid (type data or tree, hex id, safe non-negative
 * integers, lengths that fit the blob format, ranges within MAX_PACK_SIZE). Returns fresh objects
 * holding only the known fields.
 */
export function decodeIndex(keys: VaultKeys, name: string, data: Uint8Array): IndexFile {
  const value = openObject(keys, 'index', name, data);
  if (!isRecord(value) || value.version !== 1) throw corrupt(`index ${name} is not a version 1 index`);
  const problem = packsProblem(value.packs);
  if (problem !== null) throw corrupt(`index ${name} is malformed: ${problem}`);
  const packs = (value.packs as { id: PackId; blobs: unknown[] }[]).map((p) => ({
    id: p.id,
    blobs: p.blobs.map(toEntry),
  }));
  return { version: 1, packs };
}
