/**
 * AzureBlobStore against Azurite: the shared BlobStore suite, then what only Azure has
 * (conditional creates racing, block uploads, containers, credentials, a service that dies or
 * freezes mid-test).
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { inspect } from 'node:util';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import type { MachineId, PackId } from '../../src/core/ids.js';
import { AzbkError } from '../../src/shared/errors.js';
import { layout, pointIdFor } from '../../src/vault/layout.js';
import { prune, prunedPacks } from '../../src/vault/prune.js';
import {
  AzureBlobStore,
  toAzureStorageError,
  validateContainerName,
  type AzureBlobStoreOptions,
} from '../../src/vault/storage/azure-store.js';
import { RetryingBlobStore } from '../../src/vault/storage/retrying-store.js';
import { Vault } from '../../src/vault/vault.js';
import {
  AZURITE_ACCOUNT_KEY,
  azuriteConnectionString,
  startAzurite,
  type Azurite,
} from '../helpers/azurite.js';
import { expectAzbkError, listAll, runBlobStoreConformance } from './storage-conformance.js';

const MiB = 1024 * 1024;

let azurite: Azurite;

beforeAll(async () => {
  azurite = await startAzurite();
});

afterAll(async () => {
  await azurite?.stop();
});

/** A container name no other test uses. */
function containerName(): string {
  return `azbk-${randomBytes(8).toString('hex')}`;
}

/** A store over a new, empty container of the shared Azurite. */
function freshStore(options: AzureBlobStoreOptions = {}): Promise<AzureBlobStore> {
  return AzureBlobStore.fromConnectionString(azurite.connectionString, containerName(), {
    createContainer: true,
    ...options,
  });
}

/** The SDK's own client for the container of `store`, to look behind its back. */
function rawContainer(store: AzureBlobStore): ContainerClient {
  return BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(store.container);
}

/** Small blocks, so that every object but the smallest goes through Put Block and Put Block List. */
const IN_BLOCKS: AzureBlobStoreOptions = { singleShotBytes: 100 * 1024, blockBytes: 100 * 1024 };

runBlobStoreConformance('AzureBlobStore on Azurite', () => freshStore());
runBlobStoreConformance('AzureBlobStore on Azurite, in blocks', () => freshStore(IN_BLOCKS), {
  largeObjectBytes: 4 * MiB,
});

/** Everything an error shows when printed or logged. */
function everythingIn(err: unknown): string {
  const e = err as AzbkError;
  return [e.message, e.hint, String(e.cause), inspect(err, { depth: 6 }), JSON.stringify(err)].join('\n');
}

/** Asserts that nothing printable in `err` holds the account key or the connection string. */
function expectNoSecret(err: unknown, connectionString: string, key = AZURITE_ACCOUNT_KEY): void {
  const text = everythingIn(err);
  expect(text).not.toContain(key);
  expect(text).not.toContain(key.slice(0, 20));
  expect(text).not.toContain(connectionString);
}

/** What `promise` rejects with, and how long that took. */
async function failure(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const start = Date.now();
  try {
    await promise;
  } catch (error) {
    return { error, ms: Date.now() - start };
  }
  throw new Error('expected a rejection');
}

/** What the proxy of `proxyToAzurite` does to some requests; each rule gets the URL path. */
interface ProxyRules {
  /** Forward the request, then close the connection instead of passing the reply on. */
  readonly dropReply?: (req: IncomingMessage, path: string) => boolean;
  /** Forward the request, pass on the reply's head and first 64 KiB, then nothing more. */
  readonly stallReply?: (req: IncomingMessage, path: string) => boolean;
  /** Read nothing of the request and never answer. */
  readonly stallRequest?: (req: IncomingMessage, path: string) => boolean;
}

/**
 * Starts an HTTP proxy in front of the shared Azurite that misbehaves as `rules` say, for the
 * current test, and returns its blob endpoint.
 */
async function proxyToAzurite(rules: ProxyRules): Promise<string> {
  const sockets = new Set<Socket>();
  const proxy = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    if (rules.stallRequest?.(req, path)) {
      req.pause();
      return;
    }
    const upstream = httpRequest(
      { host: '127.0.0.1', port: azurite.port, method: req.method, path: req.url, headers: req.headers },
      (reply) => {
        if (rules.dropReply?.(req, path)) {
          reply.resume();
          reply.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        if (rules.stallReply?.(req, path)) {
          let passed = 0;
          reply.on('data', (chunk: Buffer) => {
            if (passed < 64 * 1024) res.write(chunk.subarray(0, 64 * 1024 - passed));
            passed += chunk.length;
            if (passed >= 64 * 1024) reply.pause();
          });
          return;
        }
        reply.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  proxy.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });
  const { port } = proxy.address() as AddressInfo;
  return `http://127.0.0.1:${port}/devstoreaccount1`;
}

describe('AzureBlobStore', () => {
  test('a put of an existing key never changes the stored object', async () => {
    const store = await freshStore(IN_BLOCKS);
    const raw = rawContainer(store);
    const first = randomBytes(300 * 1024); // in blocks
    expect(await store.put('k', first)).toBe('created');
    const before = await raw.getBlobClient('k').getProperties();
    for (const other of [Buffer.alloc(0), Buffer.from('small'), randomBytes(300 * 1024), randomBytes(1 * MiB), first]) {
      expect(await store.put('k', other)).toBe('exists');
    }
    const after = await raw.getBlobClient('k').getProperties();
    expect(after.etag).toBe(before.etag);
    expect(after.lastModified).toEqual(before.lastModified);
    expect((await store.get('k'))?.equals(first)).toBe(true);
  });

  for (const [name, options] of [
    ['in one request', {}],
    ['in blocks', { singleShotBytes: 1 * MiB, blockBytes: 1 * MiB }],
  ] as const) {
    test(`of 10 concurrent puts of one 5 MiB key exactly one creates it, whole (${name})`, async () => {
      const store = await freshStore(options);
      const contents = Array.from({ length: 10 }, () => randomBytes(5 * MiB));
      const results = await Promise.all(contents.map((data) => store.put('packs/ab/race', data)));
      expect(results.filter((r) => r === 'created')).toHaveLength(1);
      const stored = await store.get('packs/ab/race');
      expect(stored?.equals(contents[results.indexOf('created')]!)).toBe(true);
      expect(await store.stat('packs/ab/race')).toEqual({ size: 5 * MiB });
      expect(await listAll(store, '')).toEqual(['packs/ab/race']);
    });
  }

  test('reads across block boundaries', async () => {
    const store = await freshStore({ singleShotBytes: 1000, blockBytes: 1000 });
    const data = randomBytes(10_500);
    expect(await store.put('b', data)).toBe('created');
    const blocks = await rawContainer(store).getBlockBlobClient('b').getBlockList('committed');
    expect(blocks.committedBlocks).toHaveLength(11);
    expect(await store.get('b', { offset: 999, length: 2002 })).toEqual(data.subarray(999, 3001));
    expect(await store.get('b', { offset: 10_000, length: 1000 })).toEqual(data.subarray(10_000));
    expect(await store.get('b')).toEqual(data);
  });

  test('blocks a writer staged but never committed are invisible and do not block a put', async () => {
    const store = await freshStore(IN_BLOCKS);
    const blob = rawContainer(store).getBlockBlobClient('packs/cd/crashed');
    // Block ids of 48 characters before base64, like the SDK's and the store's own.
    const id = (i: number): string => Buffer.from(`crashed-writer-${String(i).padStart(33, '0')}`).toString('base64');
    await blob.stageBlock(id(0), Buffer.from('half of'), 7);
    await blob.stageBlock(id(1), Buffer.from(' an object'), 10);
    expect(await store.get('packs/cd/crashed')).toBeNull();
    expect(await store.stat('packs/cd/crashed')).toBeNull();
    expect(await listAll(store, '')).toEqual([]);
    const data = randomBytes(250 * 1024);
    expect(await store.put('packs/cd/crashed', data)).toBe('created');
    expect((await store.get('packs/cd/crashed'))?.equals(data)).toBe(true);
  });

  test('a put whose reply was lost and which the SDK sent again returns created', async () => {
    // The proxy stores the first put of each lost-* object but drops the reply: the SDK sees a
    // reset connection and sends the put again, which finds the blob this very put wrote.
    const dropped = new Set<string>();
    const endpoint = await proxyToAzurite({
      dropReply: (req, path) => {
        const isPut = req.method === 'PUT' && !(req.url ?? '').includes('comp=block&');
        if (!isPut || !path.includes('/lost-') || dropped.has(path)) return false;
        dropped.add(path);
        return true;
      },
    });
    const store = await freshStore(IN_BLOCKS);
    const lossy = await AzureBlobStore.fromConnectionString(azuriteConnectionString(endpoint), store.container, IN_BLOCKS);
    const small = randomBytes(1000);
    const big = randomBytes(300 * 1024);
    expect(await lossy.put('lost-small', small)).toBe('created');
    expect(await lossy.put('lost-big', big)).toBe('created');
    const base = `/devstoreaccount1/${store.container}`;
    expect([...dropped].sort()).toEqual([`${base}/lost-big`, `${base}/lost-small`]);
    expect((await store.get('lost-small'))?.equals(small)).toBe(true);
    expect((await store.get('lost-big'))?.equals(big)).toBe(true);
    // Objects that others wrote, with or without a writer id, are still 'exists'.
    expect(await lossy.put('lost-small', small)).toBe('exists');
    await rawContainer(store).getBlockBlobClient('foreign').upload('x', 1);
    expect(await store.put('foreign', Buffer.from('y'))).toBe('exists');
  });

  test('a transfer that stops moving midway times out with AZBK_VAULT_UNREACHABLE', async () => {
    // The proxy passes the first 64 KiB of stall-* downloads and then nothing, and never reads the
    // body of stall-* uploads.
    const endpoint = await proxyToAzurite({
      stallReply: (req, path) => req.method === 'GET' && path.includes('/stall-'),
      stallRequest: (req, path) => req.method === 'PUT' && path.includes('/stall-'),
    });
    const store = await freshStore();
    const data = randomBytes(8 * MiB);
    await store.put('stall-down', data);
    const connectionString = azuriteConnectionString(endpoint);
    const stalling = await AzureBlobStore.fromConnectionString(connectionString, store.container, {
      timeoutMs: 1000,
      singleShotBytes: 1 * MiB,
      blockBytes: 1 * MiB,
    });
    for (const [name, op] of [
      ['get', () => stalling.get('stall-down')],
      ['get range', () => stalling.get('stall-down', { offset: 1000, length: 4 * MiB })],
      ['put in one request', () => stalling.put('stall-up', data.subarray(0, 1 * MiB))],
      ['put in blocks', () => stalling.put('stall-up', data)],
    ] as const) {
      const { error, ms } = await failure(op());
      expect(error, name).toMatchObject({ name: 'AzbkError', code: 'AZBK_VAULT_UNREACHABLE' });
      expect((error as AzbkError).message, name).toMatch(/no progress for 1 s/);
      expect(ms, name).toBeLessThan(4000);
      expectNoSecret(error, connectionString);
    }
    expect(await store.stat('stall-up')).toBeNull();
  });

  test('list pages through many keys and skips blobs that are not valid keys', async () => {
    const store = await freshStore({ pageSize: 7 });
    const keys = Array.from({ length: 40 }, (_, i) => `index/${String(i).padStart(3, '0')}`);
    await Promise.all(keys.map((key) => store.put(key, Buffer.from(key))));
    const raw = rawContainer(store);
    // (Not 'a/./b' or 'a\\b': the SDK's URL handling turns those into 'a/b' before sending.)
    for (const name of ['index/has space', 'index/é', 'index/a//b', 'index/trailing/']) {
      await raw.getBlockBlobClient(name).upload('x', 1);
    }
    expect(await listAll(store, 'index/')).toEqual(keys);
    expect(await listAll(store, 'index/00')).toEqual(keys.slice(0, 10));
  });

  test('a missing container is AZBK_VAULT_NOT_FOUND for every operation', async () => {
    const store = await AzureBlobStore.fromConnectionString(azurite.connectionString, containerName());
    for (const op of [
      () => store.put('config', Buffer.from('{}')),
      () => store.put('big', randomBytes(100)),
      () => store.get('config'),
      () => store.get('config', { offset: 0, length: 0 }),
      () => store.get('config', { offset: 5, length: 10 }),
      () => store.stat('config'),
      () => store.delete('config'),
      () => listAll(store, ''),
    ]) {
      await expectAzbkError(op(), 'AZBK_VAULT_NOT_FOUND');
    }
    const inBlocks = await AzureBlobStore.fromConnectionString(azurite.connectionString, store.container, IN_BLOCKS);
    await expectAzbkError(inBlocks.put('big', randomBytes(300 * 1024)), 'AZBK_VAULT_NOT_FOUND');
    // Deleted under a store that created it.
    const created = await freshStore();
    await created.put('k', Buffer.from('x'));
    await rawContainer(created).delete();
    await expectAzbkError(created.get('k'), 'AZBK_VAULT_NOT_FOUND');
  });

  test('createContainer creates the container once and keeps what it holds', async () => {
    const name = containerName();
    const a = await AzureBlobStore.fromConnectionString(azurite.connectionString, name, { createContainer: true });
    await a.put('config', Buffer.from('{}'));
    const b = await AzureBlobStore.fromConnectionString(azurite.connectionString, name, { createContainer: true });
    expect((await b.get('config'))?.toString()).toBe('{}');
  });

  test('rejects bad container names and connection strings with AZBK_BAD_INPUT, quoting no secret', async () => {
    for (const name of ['ab', 'a'.repeat(64), 'Upper', 'a--b', '-ab', 'ab-', 'a_b', 'a.b', '$root', '']) {
      expect(() => validateContainerName(name)).toThrow(AzbkError);
      await expectAzbkError(AzureBlobStore.fromConnectionString(azurite.connectionString, name), 'AZBK_BAD_INPUT');
    }
    for (const name of ['abc', 'a-b-c', 'a'.repeat(63), '0vault-1']) expect(validateContainerName(name)).toBe(name);
    // A connection string given as the container by mistake: its key is not quoted (it was, cut at 80).
    const given = 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleS10aGF0';
    expect(() => validateContainerName(given)).toThrow(/Invalid Azure container name \(the name given\)/);
    expect(() => validateContainerName('Upper')).toThrow(/"Upper"/);
    const secret = 'c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs=';
    for (const bad of [
      `DefaultEndpointsProtocol=https;AccountKey=${secret}`,
      `DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey=${secret}`,
      `AccountName=a;SharedAccessSignature=sv=2020&sig=${secret}`,
      `nonsense ${secret}`,
    ]) {
      const { error } = await failure(AzureBlobStore.fromConnectionString(bad, 'vault'));
      expect(error).toMatchObject({ name: 'AzbkError', code: 'AZBK_BAD_INPUT' });
      expectNoSecret(error, bad, secret);
    }
  });

  test('a wrong account key is AZBK_VAULT_UNREACHABLE with a hint about the connection string', async () => {
    const store = await freshStore();
    const wrongKey = Buffer.from('not the key of this account, not at all').toString('base64');
    const connectionString = azuriteConnectionString(azurite.blobEndpoint, wrongKey);
    const wrong = await AzureBlobStore.fromConnectionString(connectionString, store.container);
    for (const op of [
      () => wrong.put('k', Buffer.from('x')),
      () => wrong.get('k'),
      () => wrong.stat('k'),
      () => wrong.delete('k'),
      () => listAll(wrong, ''),
    ]) {
      const { error } = await failure(op());
      expect(error).toMatchObject({ name: 'AzbkError', code: 'AZBK_VAULT_UNREACHABLE' });
      expect((error as AzbkError).message).toMatch(/access denied \(Azure answered 403/);
      expect((error as AzbkError).hint).toMatch(/connection string/);
      expectNoSecret(error, connectionString, wrongKey);
    }
    // Waiting does not mend a wrong key: the vault's retrying store reports it at once.
    const retries: unknown[] = [];
    const retrying = new RetryingBlobStore(wrong, { onRetry: (e) => retries.push(e) });
    await expect(retrying.get('k')).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    await expect(retrying.put('k', Buffer.from('x'))).rejects.toMatchObject({ code: 'AZBK_VAULT_UNREACHABLE' });
    expect(retries).toEqual([]);
  });

  test('SDK errors without a reply or status map to AzbkErrors; bugs pass through', () => {
    const url = 'https://acct.blob.core.windows.net/vault';
    const restError = (props: object): Error => Object.assign(new Error('x'), { name: 'RestError', ...props });
    expect(toAzureStorageError(restError({ code: 'ECONNRESET' }), 'get', 'k', url)).toMatchObject({
      code: 'AZBK_VAULT_UNREACHABLE',
      message: `Cannot get vault object "k" in ${url}: network error (ECONNRESET).`,
    });
    expect(toAzureStorageError(restError({ statusCode: 503, code: 'ServerBusy' }), 'list', 'packs/', url)).toMatchObject({
      code: 'AZBK_VAULT_UNREACHABLE',
      message: `Cannot list vault objects under "packs/" in ${url}: Azure answered 503 ServerBusy.`,
    });
    expect(toAzureStorageError(restError({ statusCode: 400, code: 'InvalidResourceName' }), 'put', 'k', url)).toMatchObject({
      code: 'AZBK_BAD_INPUT',
    });
    expect(toAzureStorageError(new Error('aborted'), 'put', 'k', url, 1500)).toMatchObject({
      code: 'AZBK_VAULT_UNREACHABLE',
      message: `Cannot put vault object "k" in ${url}: no progress for 1.5 s.`,
    });
    const bug = new TypeError('bad arg');
    expect(toAzureStorageError(bug, 'put', 'k', url)).toBe(bug);
  });
});

describe('AzureBlobStore when Azurite goes away', () => {
  /** A store on an Azurite of its own, which the test may stop or freeze. */
  async function ownAzurite(timeoutMs: number): Promise<{ server: Azurite; store: AzureBlobStore }> {
    const server = await startAzurite();
    onTestFinished(() => server.stop());
    const store = await AzureBlobStore.fromConnectionString(server.connectionString, containerName(), {
      createContainer: true,
      timeoutMs,
    });
    return { server, store };
  }

  /** Runs every operation and expects each to fail with AZBK_VAULT_UNREACHABLE within `maxMs`. */
  async function expectAllUnreachable(store: AzureBlobStore, connectionString: string, maxMs: number): Promise<void> {
    const ops: [string, () => Promise<unknown>][] = [
      ['put', () => store.put('new', randomBytes(1000))],
      ['put in blocks', () => store.put('new-big', randomBytes(20 * MiB))],
      ['get', () => store.get('k')],
      ['get range', () => store.get('k', { offset: 1, length: 5 })],
      ['stat', () => store.stat('k')],
      ['list', () => listAll(store, '')],
      // Not 'k': a frozen Azurite carries out the delete when it wakes up.
      ['delete', () => store.delete('other')],
    ];
    await Promise.all(
      ops.map(async ([name, op]) => {
        const { error, ms } = await failure(op());
        expect(error, name).toMatchObject({ name: 'AzbkError', code: 'AZBK_VAULT_UNREACHABLE' });
        expect(ms, name).toBeLessThan(maxMs);
        expectNoSecret(error, connectionString);
      }),
    );
  }

  test('a stopped Azurite makes operations fail fast with AZBK_VAULT_UNREACHABLE', async () => {
    const { server, store } = await ownAzurite(5000);
    const big = randomBytes(40 * MiB);
    await store.put('k', Buffer.from('stored'));
    await store.put('big', big);
    // Stop it while a download and an upload are under way.
    const download = failure(store.get('big'));
    const upload = failure(store.put('big-2', big));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await server.stop();
    for (const { error, ms } of [await download, await upload]) {
      expect(error).toMatchObject({ name: 'AzbkError', code: 'AZBK_VAULT_UNREACHABLE' });
      expect(ms).toBeLessThan(5000);
      expectNoSecret(error, server.connectionString);
    }
    await expectAllUnreachable(store, server.connectionString, 5000);
  });

  test.skipIf(process.platform === 'win32')(
    'a frozen Azurite makes operations time out with AZBK_VAULT_UNREACHABLE, then work again',
    async () => {
      const { server, store } = await ownAzurite(1000);
      await store.put('k', Buffer.from('stored'));
      server.pause();
      try {
        await expectAllUnreachable(store, server.connectionString, 4000);
        const { error } = await failure(store.get('k'));
        expect((error as AzbkError).message).toMatch(/no progress for 1 s/);
      } finally {
        server.resume();
      }
      expect((await store.get('k'))?.toString()).toBe('stored');
    },
  );
});

test('a prune pass condemns, then deletes, the packs no point names, as on a disk', async () => {
  const store = await freshStore();
  const [keep, drop] = [randomBytes(1000), randomBytes(3000)];
  const ids = [keep, drop].map((d) => createHash('sha256').update(d).digest('hex') as PackId) as [PackId, PackId];
  await store.put(layout.pack(ids[0]), keep);
  await store.put(layout.pack(ids[1]), drop);
  const machine = 'ab'.repeat(16) as MachineId;
  const t0 = new Date('2026-03-02T10:00:00Z');
  const id = pointIdFor(t0);
  await store.put(layout.point(machine, id), Buffer.from(JSON.stringify({ version: 1, id, machineId: machine, packs: [ids[0]] })));
  expect(await prune(store, t0)).toMatchObject({ skipped: null, points: 1, packs: 2, condemned: 1 });
  expect(await prunedPacks(store)).toEqual({ condemned: [ids[1]], gone: [] });
  expect(await prune(store, new Date(t0.getTime() + 15 * 86_400_000))).toMatchObject({ purged: 1, purgedBytes: 3000, waiting: 0 });
  expect(await listAll(store, 'packs/')).toEqual([layout.pack(ids[0])]);
  expect(await prunedPacks(store)).toEqual({ condemned: [], gone: [ids[1]] });
});


test('vault servers sharing a container register a machine name once', async () => {
  const store = await freshStore();
  const first = await Vault.create(store, { name: 'Shared' });
  const { token } = await first.credentials({ endpoint: 'https://vault.test:8443', certFingerprint: 'ab'.repeat(32), validDays: 1 });
  const servers = [first, await Vault.open(store), await Vault.open(store)];
  const req = { token, machineName: 'web1', os: 'linux-x64', hostname: 'h', reregister: false };
  const results = await Promise.allSettled(servers.map((v) => v.register(req)));
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  expect((await first.machines()).map((m) => m.name)).toEqual(['web1']);
});
