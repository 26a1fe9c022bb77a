/** A pack the vault lost, and a machine that does not know it (a fresh one, after a disaster). */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { AgentContext } from '../../src/agent/context.js';
import type { PackId } from '../../src/core/ids.js';
import { layout } from '../../src/vault/layout.js';
import { runBackup, type BackupResult } from '../../src/agent/backup.js';
import { recordMissingPacks } from '../../src/agent/file-cache.js';
import { writeRandomFile } from './fs-tree.js';
import { withMethods, type TestMachine } from './machine.js';

/**
 * Deletes a pack as a disk can lose it: the biggest (a data pack, when a big file was backed up)
 * or the smallest (the folder listings' own, when the files are big).
 */
export async function losePack(m: TestMachine, which: 'biggest' | 'smallest'): Promise<PackId> {
  const packs: { pack: PackId; size: number }[] = [];
  for await (const key of m.base.list('packs/')) packs.push({ pack: path.posix.basename(key) as PackId, size: (await m.base.stat(key))!.size });
  packs.sort((a, b) => (which === 'biggest' ? b.size - a.size : a.size - b.size));
  await m.base.delete(layout.pack(packs[0]!.pack));
  return packs[0]!.pack;
}

/** The context of a machine that has forgotten what it knew of the vault, listing index files in the order `order` gives. */
export async function forgetful(m: TestMachine, order: (names: string[]) => string[]): Promise<AgentContext> {
  await fs.rm(path.join(m.ctx.paths.home, 'cache'), { recursive: true, force: true });
  const session = withMethods(m.ctx.session, (s) => ({ listIndex: async () => order(await s.listIndex()) }));
  return { ...m.ctx, session };
}

/**
 * Backs up `src` (a 20 MiB file and a small one), loses the pack `which` (see losePack) and,
 * as after verify found it missing, backs up again, which stores its data again. `before`: the
 * index files the first backup left.
 */
export async function lostAndStoredAgain(m: TestMachine, which: 'biggest' | 'smallest'): Promise<{ src: string; first: BackupResult; second: BackupResult; before: Set<string>; pack: PackId }> {
  const src = path.join(m.dir, 'src');
  await writeRandomFile(path.join(src, 'a.bin'), 20 * 1024 * 1024);
  await fs.writeFile(path.join(src, 'b.txt'), 'small\n');
  const first = await runBackup(m.ctx, { include: [src] });
  const before = new Set(await m.ctx.session.listIndex());
  const pack = await losePack(m, which);
  recordMissingPacks(m.ctx.paths.home, m.ctx.registration.vaultId, m.keys.keyId, [pack]);
  const second = await runBackup(m.ctx, { include: [src] });
  return { src, first, second, before, pack };
}
