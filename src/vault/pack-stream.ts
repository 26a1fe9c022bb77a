/**
 * A PackStream over a sink that keeps the bytes somewhere until the pack is complete (a vault's
 * temporary file, an agent's spool file): the bytes are hashed in the order of the calls as they
 * pass, the sink writes them, and at the end the pack is named by that hash. A pack with a write
 * that failed, or that was never made, is never named: the sink is dropped instead.
 */
import { createHash } from 'node:crypto';
import type { PackId } from '../core/ids.js';
import { AzbkError } from '../shared/errors.js';
import { InFlight } from '../shared/in-flight.js';
import type { PackStream } from './api.js';

/** Where a pack's bytes go, in the order they come. */
export interface PackSink {
  write(data: Uint8Array): Promise<void>;
  /** Stores the pack under `id` (every write has settled); the sink is done with afterwards, stored or not. */
  finish(id: PackId): Promise<void>;
  /** Drops the pack, once its writes in flight have settled. */
  abort(): Promise<void>;
}

/** A PackStream into the sink `opening` resolves to; more than `maxBytes` in all fails the pack. */
export function hashedPackStream(opening: Promise<PackSink>, maxBytes = Infinity): PackStream {
  opening.catch(() => undefined); // surfaced by the first write or by end
  const hash = createHash('sha256');
  const writes = new InFlight();
  let size = 0;
  let ended = false;
  const drop = () => opening.then((s) => s.abort(), () => undefined);
  return {
    write: (data) => {
      if (ended) return Promise.reject(new Error('PackStream used after end'));
      size += data.length;
      if (size > maxBytes) {
        writes.fail(new AzbkError('AZBK_BAD_INPUT', 'The pack is too large.'));
        return Promise.reject(writes.failure);
      }
      hash.update(data); // now: the bytes are hashed in the order of the calls
      return writes.track(opening.then((s) => s.write(data)));
    },
    end: async () => {
      if (ended) throw new Error('PackStream used after end');
      ended = true;
      await writes.settled();
      // The hash covers every write called; a pack with a write missing is never named.
      if (writes.failure !== undefined) {
        await drop();
        throw writes.failure;
      }
      const id = hash.digest('hex') as PackId;
      await (await opening).finish(id);
      return id;
    },
    abort: async () => {
      if (ended) return; // once it ends, the sink's finish is done with it, stored or not
      ended = true;
      await drop();
    },
  };
}
