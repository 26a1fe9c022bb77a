/** A pack the vault lost, and a machine that does not know it (a fresh one, after a disaster). */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { AgentContext } from '../../src/agent/context.js';
import type { PackId } from '../../src/core/ids.js';
import { layout } from '../../src/vault/layout.js';
import { runBackup, type BackupResult } from '../../src/agent/backup.js';
import { recordMissingPacks } from '../../src/agent/file-cache.js';
import { writeRandomFile } from './fs-tree.js';
import { createMachine, rootTree, withMethods, type TestMachine } from './machine.js';

/**
 * Deletes a pack as a disk can lose it: the biggest (a data pack, when a big file was backed up)
 * or the smallest (the folder listings' own, when the files are big).
 */
export async function losePack(m: TestMachine, which: 'biggest' | 'smallest'): Promise<PackId> {
  const pack = await biggestPack(m, which === 'smallest');
  await m.base.delete(layout.pack(pack));
  return pack;
}

/** The vault's biggest pack (or its smallest). */
export async function biggestPack(m: TestMachine, smallest = false): Promise<PackId> {
  const packs: { pack: PackId; size: number }[] = [];
  for await (const key of m.base.list('packs/')) packs.push({ pack: path.posix.basename(key) as PackId, size: (await m.base.stat(key))!.size });
  packs.sort((a, b) => (smallest ? a.size - b.size : b.size - a.size));
  return packs[0]!.pack;
}

/** The context of a machine that has forgotten what it knew of the vault, listing index files in the order `order` gives. */
export async function forgetful(m: TestMachine, order: (names: string[]) => string[]): Promise<AgentContext> {
  await fs.rm(path.join(m.ctx.paths.home, 'cache'), { recursive: true, force: true });
  const session = withMethods(m.ctx.session, (s) => ({ listIndex: async () => order(await s.listIndex()) }));
  return { ...m.ctx, session };
}

/** Machines lostAndStoredAgain makes at most, when the folders above `src` keep changing. */
const ATTEMPTS = 5;

/**
 * A new machine that backs up `src` (a 20 MiB file and a small one), loses the pack `which` (see
 * losePack) and, as after verify found it missing, backs up again, which stores its data again.
 * `before`: the index files the first backup left. The second backup stores again every listing
 * the first stored only when the folders above `src` did not change between the two (see
 * rootTree): when they did (another test made a folder in the temporary folder meanwhile), it
 * starts again with a new machine.
 */
export async function lostAndStoredAgain(
  which: 'biggest' | 'smallest',
): Promise<{ m: TestMachine; src: string; first: BackupResult; second: BackupResult; before: Set<string>; pack: PackId }> {
  for (let attempt = 1; ; attempt++) {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    await writeRandomFile(path.join(src, 'a.bin'), 20 * 1024 * 1024);
    await fs.writeFile(path.join(src, 'b.txt'), 'small\n');
    const first = await runBackup(m.ctx, { include: [src] });
    const before = new Set(await m.ctx.session.listIndex());
    const pack = await losePack(m, which);
    recordMissingPacks(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId, [pack]);
    const second = await runBackup(m.ctx, { include: [src] });
    if ((await rootTree(m, first.point)) === (await rootTree(m, second.point))) return { m, src, first, second, before, pack };
    if (attempt === ATTEMPTS) throw new Error(`The folders above ${src} changed between two backups ${ATTEMPTS} times in a row.`);
  }
}
