/**
 * The blob writer's index order: an index file never names a pack while a pack started before it
 * is still being stored, so nothing indexed can refer to a blob that might still be lost.
 */
import { randomBytes } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BlobIndex } from '../../src/agent/blob-index.js';
import { BlobWriter } from '../../src/agent/blob-writer.js';
import { createMachine } from '../helpers/machine.js';

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

describe('blob writer', () => {
  it('indexes only packs whose predecessors are all stored', async () => {
    const m = await createMachine();
    const index = new BlobIndex();
    // Every blob fills a pack; several uploads may run at once.
    const writer = new BlobWriter(m.ctx.session, m.keys, index, { packSize: 1000, uploads: 4 });
    const gates = [gate(), gate()];
    let n = 0;
    m.hooks.beforePutPack = async () => {
      const i = n++;
      if (i < gates.length) await gates[i]!.wait;
    };
    const a = await writer.add('data', randomBytes(2000)); // pack 1: held
    const flushing = writer.flush();
    await setImmediate(); // the flush now waits for pack 1 only
    const b = await writer.add('data', randomBytes(2000)); // pack 2: held
    const c = await writer.add('tree', randomBytes(2000)); // pack 3: stored at once
    gates[0]!.open();
    await flushing;
    expect(index.has('data', a)).toBe(true);
    expect(index.has('data', b)).toBe(false);
    expect(index.has('tree', c), 'pack 3 waits for pack 2').toBe(false);

    gates[1]!.open();
    await writer.flush();
    expect(index.has('data', b)).toBe(true);
    expect(index.has('tree', c)).toBe(true);
    expect(writer.stats.indexFiles).toBe(2);
  });
});
