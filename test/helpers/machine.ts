/**
 * An in-process registered machine for agent tests, without the CLI: a vault over a store of the
 * test's choosing (by default memory, behind a FaultyBlobStore for injected faults and a
 * RetryingBlobStore that does not really sleep), a registration, a session whose pack uploads can
 * be hooked, fresh keys, and an AgentContext with AZBK_HOME in a temporary folder.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { BlobIndex } from '../../src/agent/blob-index.js';
import type { AgentContext } from '../../src/agent/context.js';
import { fromSegments } from '../../src/agent/fspath.js';
import { openPoint } from '../../src/agent/points.js';
import { decodeBlob } from '../../src/core/blob.js';
import type { BlobId, MachineId, PackId } from '../../src/core/ids.js';
import { deriveKeys, generateMasterKey, type VaultKeys } from '../../src/core/keys.js';
import { homePaths } from '../../src/shared/paths.js';
import { decodeTree, wholeTree, type FileNode, type Tree } from '../../src/core/tree.js';
import type { PointInfo, VaultSession } from '../../src/vault/api.js';
import type { BlobStore } from '../../src/vault/storage/blobstore.js';
import { FaultyBlobStore } from '../../src/vault/storage/faulty-store.js';
import { MemoryBlobStore } from '../../src/vault/storage/memory-store.js';
import { RetryingBlobStore, type RetryEvent } from '../../src/vault/storage/retrying-store.js';
import { Vault } from '../../src/vault/vault.js';
import { makeTempDir } from './tmp.js';

/** Hooks around the session's pack uploads; tests set and clear them as they go. */
export interface SessionHooks {
  /** awaited before a pack is stored */
  beforePutPack?: (id: PackId) => Promise<void> | void;
  /** awaited after a pack was stored */
  afterPutPack?: (id: PackId) => Promise<void> | void;
}

export interface TestMachine {
  readonly ctx: AgentContext;
  readonly keys: VaultKeys;
  readonly vault: Vault;
  /** the store at the bottom (memory unless given) */
  readonly base: BlobStore;
  /** faults go here: it sits between the base store and the retrying store */
  readonly faulty: FaultyBlobStore;
  /** every retry the RetryingBlobStore made */
  readonly retries: RetryEvent[];
  readonly hooks: SessionHooks;
  /** a temporary folder of the test's own (sources, restore targets) */
  readonly dir: string;
  /** Total bytes of the packs in the base store. */
  packBytes(): Promise<number>;
}

export interface MachineOptions {
  /** the bottom store (default: a new MemoryBlobStore) */
  readonly base?: BlobStore;
  /** tries per store operation (default 5) */
  readonly attempts?: number;
}

/**
 * `session` with the methods `over` gives in place of its own (`over` gets the session itself,
 * to call the originals), and its own for the rest: to count calls and inject faults.
 */
export function withMethods(session: VaultSession, over: (inner: VaultSession) => Partial<VaultSession>): VaultSession {
  const replaced = over(session) as Record<PropertyKey, unknown>;
  return new Proxy(session, {
    get(target, prop) {
      if (Object.hasOwn(replaced, prop)) return replaced[prop];
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Delegates to `inner`, calling `hooks` around putPack. */
function hookSession(inner: VaultSession, hooks: SessionHooks): VaultSession {
  return withMethods(inner, (s) => ({
    putPack: async (id: PackId, data: Uint8Array) => {
      await hooks.beforePutPack?.(id);
      await s.putPack(id, data);
      await hooks.afterPutPack?.(id);
    },
  }));
}

/** Creates a vault and registers one machine with it; must be called inside a test. */
export async function createMachine(opts: MachineOptions = {}): Promise<TestMachine> {
  const dir = await makeTempDir('azbk-agent-');
  const home = path.join(dir, 'home');
  await fs.mkdir(home, { mode: 0o700 });
  const base = opts.base ?? new MemoryBlobStore();
  const faulty = new FaultyBlobStore(base, { sleep: async () => undefined });
  const retries: RetryEvent[] = [];
  const store = new RetryingBlobStore(faulty, {
    attempts: opts.attempts ?? 5,
    sleep: async () => undefined,
    onRetry: (e) => retries.push(e),
  });
  const vault = await Vault.create(store, { name: 't' });
  const creds = await vault.credentials({ endpoint: 'memory://t', certFingerprint: null, validDays: 1 });
  const machineName = 'm1';
  const { machineId, secret } = await vault.register({ token: creds.token, machineName, os: 'test', hostname: 'h', reregister: false });
  const hooks: SessionHooks = {};
  const session = hookSession(await vault.session(machineId, secret), hooks);
  const keys = deriveKeys(generateMasterKey());
  const cfg = await vault.config();
  const ctx: AgentContext = {
    paths: homePaths(home),
    registration: {
      version: 1,
      vaultId: cfg.id,
      vaultName: cfg.name,
      endpoint: 'memory://t',
      certFingerprint: null,
      machineId,
      machineName,
      keyId: keys.keyId,
      registered: new Date().toISOString(),
    },
    session,
    keys,
  };
  const packBytes = async () => {
    let total = 0;
    for await (const key of base.list('packs/')) total += (await base.stat(key))?.size ?? 0;
    return total;
  };
  return { ctx, keys, vault, base, faulty, retries, hooks, dir, packBytes };
}

/** `m`'s machine, as the vault lists it. */
export function ownMachine(m: TestMachine): { id: MachineId; name: string } {
  return { id: m.ctx.registration.machineId, name: m.ctx.registration.machineName };
}

/**
 * The root listing of `point`. A point holds the listings of the folders above its paths too, with
 * their times: another process making or removing anything in the system's temporary folder
 * changes that folder's time, so the listing of its parent. Two backups of an unchanged tree under
 * it store the same listings (and nothing new) only when their roots are equal.
 */
export async function rootTree(m: TestMachine, point: PointInfo): Promise<BlobId> {
  return (await openPoint(m.ctx, m.keys, ownMachine(m), point)).manifest.tree;
}

/** What a point holds, read straight from the vault: its files by absolute path, and its tree ids (each part of a listing in parts). */
export interface PointContents {
  readonly index: BlobIndex;
  readonly files: Map<string, FileNode>;
  readonly trees: Set<BlobId>;
}

/** Walks every tree of `point` (of `m`'s own machine and keys). */
export async function readPoint(m: TestMachine, point: PointInfo): Promise<PointContents> {
  const index = await BlobIndex.load(m.ctx.session, m.keys);
  const { manifest } = await openPoint(m.ctx, m.keys, ownMachine(m), point);
  const files = new Map<string, FileNode>();
  const trees = new Set<BlobId>();
  const read = async (id: BlobId): Promise<Tree> => {
    trees.add(id);
    const loc = index.get('tree', id);
    if (loc === undefined) throw new Error(`tree ${id} is not indexed`);
    const sealed = await m.ctx.session.readPack(loc.pack, loc.entry.offset, loc.entry.length);
    return decodeTree(decodeBlob(m.keys, 'tree', id, sealed));
  };
  const visit = async (segs: string[], id: BlobId): Promise<void> => {
    for (const node of (await wholeTree(id, await read(id), read)).nodes) {
      if (node.type === 'dir') await visit([...segs, node.name], node.subtree);
      else if (node.type === 'file') files.set(fromSegments([...segs, node.name]), node);
    }
  };
  await visit([], manifest.tree);
  return { index, files, trees };
}

/**
 * A pack holding some of `file`'s chunks and none of the point's directory listings, so losing it
 * loses file data only; throws when there is none (make the file bigger than two packs).
 */
export function dataOnlyPack(c: PointContents, file: string): PackId {
  const node = c.files.get(file);
  if (node === undefined) throw new Error(`${file} is not in the point`);
  const treePacks = new Set([...c.trees].map((t) => c.index.get('tree', t)?.pack));
  const pack = node.content.map((id) => c.index.get('data', id)?.pack).find((p) => p !== undefined && !treePacks.has(p));
  if (pack === undefined) throw new Error(`every pack of ${file} also holds directory listings`);
  return pack;
}

/** The files of `c` with at least one chunk in `pack`. */
export function filesInPack(c: PointContents, pack: PackId): string[] {
  return [...c.files].filter(([, f]) => f.content.some((id) => c.index.get('data', id)?.pack === pack)).map(([p]) => p);
}
