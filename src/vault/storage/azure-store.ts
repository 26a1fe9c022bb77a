/**
 * The BlobStore of a vault in an Azure Blob Storage container: one block blob per object, named
 * by its key.
 *
 * Atomic put without overwrite: every write is conditional on the blob not existing
 * (If-None-Match: *), and the service checks the condition when it makes the blob visible:
 * - up to `singleShotBytes` (default 16 MiB), one Put Blob request carries the whole object;
 * - larger objects are staged as uncommitted blocks (Put Block, in parallel) and made visible by
 *   one conditional Put Block List. Uncommitted blocks are invisible to get, stat and list, so a
 *   reader never sees half an object, and a writer that dies leaves only blocks the service
 *   discards (at the next commit of that name, or after 7 days).
 * Of many concurrent writers of one key exactly one commit succeeds; the others get 409/412 and
 * return 'exists'. When a losing writer's blocks were discarded by the winner's commit, its own
 * commit may fail with InvalidBlockList instead: it then returns 'exists' too.
 *
 * Each object carries its writer's random id in its metadata, so a put whose reply was lost and
 * which the SDK retried still returns 'created' rather than 'exists'.
 *
 * Failures: network errors, timeouts, 5xx and other unexpected replies throw
 * AZBK_VAULT_UNREACHABLE (callers may retry); a missing container throws AZBK_VAULT_NOT_FOUND for
 * every operation. Messages name the key and the container URL, never the connection string, the
 * account key or a SAS token.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  BlobServiceClient,
  StorageRetryPolicyType,
  type BlobClient,
  type BlockBlobClient,
  type ContainerClient,
} from '@azure/storage-blob';
import { AzbkError, isAzbkError } from '../../shared/errors.js';
import type { BlobStore } from './blobstore.js';
import { clipRange, validateKey, validatePrefix, type ByteRange } from './keys.js';

const MiB = 1024 * 1024;

/** Options of AzureBlobStore; every field has a default. */
export interface AzureBlobStoreOptions {
  /** Create the container when it does not exist (default false: AZBK_VAULT_NOT_FOUND). */
  readonly createContainer?: boolean;
  /**
   * How long a request may make no progress (no reply, no bytes sent or received) before it is
   * abandoned with AZBK_VAULT_UNREACHABLE (default 60 s). Slow but moving transfers never time out.
   */
  readonly timeoutMs?: number;
  /** Objects up to this size are written with one request (default 16 MiB, at most 256 MiB). */
  readonly singleShotBytes?: number;
  /** Block size of larger objects (default 8 MiB). */
  readonly blockBytes?: number;
  /** Blocks uploaded in parallel per object (default 4). */
  readonly concurrency?: number;
  /** Keys per list request (default 5000, the service's maximum). */
  readonly pageSize?: number;
}

type Op = 'put' | 'get' | 'stat' | 'list' | 'delete' | 'create';

/** Container names: 3-63 lowercase letters, digits and single dashes, not at either end. */
const CONTAINER_NAME = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/;

/** The service's largest Put Blob that the SDK allows, and the largest block. */
const MAX_SINGLE_SHOT = 256 * MiB;
const MAX_BLOCK = 4000 * MiB;
/** The service allows at most 50,000 blocks in a blob. */
const MAX_BLOCKS = 50_000;
/** The longest delay setTimeout honours (about 24.8 days). */
const MAX_TIMER = 2 ** 31 - 1;
/** Bytes handed to the socket at a time when uploading, so progress is seen while sending. */
const CHUNK = 64 * 1024;

/** The conditional create: fail unless no blob of that name exists. */
const IF_NONE_MATCH = { ifNoneMatch: '*' } as const;
/** The metadata entry holding the id of the put that wrote an object. */
const WRITER = 'azbkwriter';

/**
 * Throws AZBK_BAD_INPUT unless `name` is a valid Azure container name: 3 to 63 characters,
 * lowercase letters, digits and dashes, starting and ending with a letter or digit, with no two
 * dashes in a row.
 */
export function validateContainerName(name: string): string {
  if (typeof name !== 'string' || !CONTAINER_NAME.test(name)) {
    // Shown only when it cannot be a secret given by mistake (a connection string, a key): those
    // hold '=', ';', '+' or '/'.
    const shown = typeof name === 'string' && /^[A-Za-z0-9._-]{1,80}$/.test(name) ? JSON.stringify(name) : '(the name given)';
    throw new AzbkError(
      'AZBK_BAD_INPUT',
      `Invalid Azure container name ${shown}: use 3 to 63 lowercase letters, digits and single dashes, starting and ending with a letter or digit.`,
    );
  }
  return name;
}

/**
 * A BlobStore over one Azure Blob Storage container. Make it with `fromConnectionString`, or
 * pass a ContainerClient of your own (e.g. one authenticated with a token credential); the store
 * adds its own no-progress timeout to every request, and expects the client's own retries to be
 * few (RetryingBlobStore retries AZBK_VAULT_UNREACHABLE).
 *
 * Differences from the general contract:
 * - keys are blob names as they are. Azure documents limits the contract does not have: at most
 *   254 '/'-separated segments, and it advises against names ending in '.'. Azurite accepts both;
 *   should Azure reject a name (400 InvalidResourceName, InvalidUri or OutOfRangeInput), the
 *   store throws AZBK_BAD_INPUT. Vault keys (hex ids) meet these limits anyway;
 * - every operation throws AZBK_VAULT_NOT_FOUND when the container does not exist (the disk
 *   store reads a missing folder as empty);
 * - blobs whose names are not valid keys (written by other tools) are not listed.
 * Storage accounts with a hierarchical namespace (Data Lake Gen2) are not supported.
 */
export class AzureBlobStore implements BlobStore {
  /** The container's name. */
  readonly container: string;
  /** The container's URL without any query (so without a SAS token), for messages. */
  readonly url: string;
  readonly #client: ContainerClient;
  readonly #timeoutMs: number;
  readonly #singleShotBytes: number;
  readonly #blockBytes: number;
  readonly #concurrency: number;
  readonly #pageSize: number;

  constructor(client: ContainerClient, options: AzureBlobStoreOptions = {}) {
    this.container = validateContainerName(client.containerName);
    const url = new URL(client.url);
    this.url = `${url.origin}${url.pathname}`;
    this.#client = client;
    this.#timeoutMs = positive('timeoutMs', options.timeoutMs ?? 60_000, MAX_TIMER);
    this.#singleShotBytes = positive('singleShotBytes', options.singleShotBytes ?? 16 * MiB, MAX_SINGLE_SHOT, 0);
    this.#blockBytes = positive('blockBytes', options.blockBytes ?? 8 * MiB, MAX_BLOCK);
    this.#concurrency = positive('concurrency', options.concurrency ?? 4, 64);
    this.#pageSize = positive('pageSize', options.pageSize ?? 5000, 5000);
  }

  /**
   * Opens the container `container` of the storage account named by `connectionString` (account
   * key or SAS form, e.g. from the Azure portal). With `createContainer` the container is created
   * when missing, which needs the network; otherwise nothing is sent until the first operation.
   * A malformed connection string or container name throws AZBK_BAD_INPUT.
   */
  static async fromConnectionString(
    connectionString: string,
    container: string,
    options: AzureBlobStoreOptions = {},
  ): Promise<AzureBlobStore> {
    validateContainerName(container);
    let service: BlobServiceClient;
    try {
      service = BlobServiceClient.fromConnectionString(connectionString, {
        // Few and quick: RetryingBlobStore does the patient retrying.
        retryOptions: {
          retryPolicyType: StorageRetryPolicyType.EXPONENTIAL,
          maxTries: 2,
          retryDelayInMs: 500,
          maxRetryDelayInMs: 2000,
        },
      });
    } catch (err) {
      throw badConnectionString(err);
    }
    const store = new AzureBlobStore(service.getContainerClient(container), options);
    if (options.createContainer) await store.#createContainer();
    return store;
  }

  async put(key: string, data: Uint8Array): Promise<'created' | 'exists'> {
    validateKey(key);
    const blob = this.#client.getBlockBlobClient(key);
    const writer = randomUUID();
    const metadata = { [WRITER]: writer };
    return this.#run('put', key, async (dog) => {
      try {
        if (data.length <= this.#singleShotBytes) {
          await blob.upload(bodyOf(data), data.length, {
            conditions: IF_NONE_MATCH,
            metadata,
            abortSignal: dog.signal,
            onProgress: dog.kick,
          });
        } else {
          await this.#putBlocks(blob, data, metadata, dog);
        }
        return 'created';
      } catch (err) {
        const { status, code } = restInfo(err);
        const taken = status === 412 || (status === 409 && code === 'BlobAlreadyExists');
        const blocksLost = status === 400 && code === 'InvalidBlockList';
        if (!taken && !blocksLost) throw err;
        // Someone holds the name: another writer, or this put itself when a reply was lost and
        // the SDK sent the request again.
        const owner = await this.#writerOf(blob, dog);
        if (owner === undefined) {
          if (blocksLost) throw err; // no blob after all: our blocks were lost; retryable
          return 'exists'; // it existed a moment ago and was deleted since
        }
        return owner === writer ? 'created' : 'exists';
      }
    });
  }

  async get(key: string, range?: ByteRange): Promise<Buffer | null> {
    validateKey(key);
    clipRange(0, range); // reject a bad range before sending anything
    if (range?.length === 0) {
      const stat = await this.#stat('get', key);
      return stat === null ? null : Buffer.alloc(0);
    }
    const blob = this.#client.getBlobClient(key);
    const offset = range?.offset ?? 0;
    // An absurdly long range reads to the end; the service may reject such a header.
    const count = range === undefined || range.length > 2 ** 48 ? undefined : range.length;
    return this.#run('get', key, async (dog) => {
      let response;
      try {
        response = await blob.download(offset, count, { abortSignal: dog.signal, maxRetryRequests: 1 });
      } catch (err) {
        const { status, code } = restInfo(err);
        if (status === 404 && code !== 'ContainerNotFound') return null;
        // 416: the range starts at or past the end (every range of an empty object does).
        if (status === 416) return Buffer.alloc(0);
        throw err;
      }
      return await readBody(response.readableStreamBody, response.contentLength ?? 0, dog, () =>
        describeFailure('get', key, this.url),
      );
    });
  }

  async stat(key: string): Promise<{ size: number } | null> {
    validateKey(key);
    return await this.#stat('stat', key);
  }

  async *list(prefix: string): AsyncIterable<string> {
    validatePrefix(prefix);
    let continuationToken: string | undefined;
    do {
      const page = await this.#run('list', prefix, async (dog) => {
        const pages = this.#client
          .listBlobsFlat({ prefix: prefix === '' ? undefined : prefix, abortSignal: dog.signal })
          .byPage({ continuationToken, maxPageSize: this.#pageSize });
        const next = await pages.next();
        return next.done ? undefined : next.value;
      });
      continuationToken = page?.continuationToken || undefined;
      for (const item of page?.segment.blobItems ?? []) {
        if (item.name.startsWith(prefix) && isKey(item.name)) yield item.name;
      }
    } while (continuationToken !== undefined);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    const blob = this.#client.getBlobClient(key);
    await this.#run('delete', key, async (dog) => {
      await blob.deleteIfExists({ deleteSnapshots: 'include', abortSignal: dog.signal });
    });
  }

  async #createContainer(): Promise<void> {
    await this.#run('create', '', async (dog) => {
      await this.#client.createIfNotExists({ abortSignal: dog.signal });
    });
  }

  #stat(op: Op, key: string): Promise<{ size: number } | null> {
    const blob = this.#client.getBlobClient(key);
    return this.#run(op, key, async (dog) => {
      try {
        const properties = await blob.getProperties({ abortSignal: dog.signal });
        return { size: properties.contentLength ?? 0 };
      } catch (err) {
        const { status, code } = restInfo(err);
        if (status === 404 && code !== 'ContainerNotFound') return null;
        throw err;
      }
    });
  }

  /** The writer id in the metadata of the blob, '' when it has none, undefined when missing. */
  async #writerOf(blob: BlobClient, dog: Watchdog): Promise<string | undefined> {
    try {
      const properties = await blob.getProperties({ abortSignal: dog.signal });
      return properties.metadata?.[WRITER] ?? '';
    } catch (err) {
      const { status, code } = restInfo(err);
      if (status === 404 && code !== 'ContainerNotFound') return undefined;
      throw err;
    }
  }

  /**
   * Stages `data` as blocks with ids of one fixed length (the service requires that of all blocks
   * of a blob, other writers' included; this is the SDK's own format), then commits them if no
   * blob of that name exists.
   */
  async #putBlocks(
    blob: BlockBlobClient,
    data: Uint8Array,
    metadata: Record<string, string>,
    dog: Watchdog,
  ): Promise<void> {
    const count = Math.ceil(data.length / this.#blockBytes);
    if (count > MAX_BLOCKS) {
      throw new AzbkError('AZBK_BAD_INPUT', `An object of ${data.length} bytes needs more than ${MAX_BLOCKS} blocks.`);
    }
    const prefix = randomUUID();
    const ids = Array.from({ length: count }, (_, i) => blockId(prefix, i));
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < count) {
        const i = next++;
        const start = i * this.#blockBytes;
        const part = data.subarray(start, Math.min(start + this.#blockBytes, data.length));
        try {
          await blob.stageBlock(ids[i]!, bodyOf(part), part.length, {
            abortSignal: dog.signal,
            onProgress: dog.kick,
          });
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    // Every worker stops after its current block once one fails, and all are awaited, so no
    // request outlives the put.
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, count) }, worker));
    if (failure !== undefined) throw failure.error;
    await blob.commitBlockList(ids, { conditions: IF_NONE_MATCH, metadata, abortSignal: dog.signal });
  }

  /** Runs `fn` under a fresh no-progress timeout, turning what it throws into AzbkErrors. */
  async #run<T>(op: Op, key: string, fn: (dog: Watchdog) => Promise<T>): Promise<T> {
    const dog = new Watchdog(this.#timeoutMs);
    try {
      return await fn(dog);
    } catch (err) {
      throw toAzureStorageError(err, op, key, this.url, dog.fired ? this.#timeoutMs : undefined);
    } finally {
      dog.stop();
    }
  }
}

/**
 * Aborts its signal when `kick` has not been called for `ms` milliseconds: a request that makes no
 * progress is abandoned, however long a moving transfer takes.
 */
class Watchdog {
  readonly #controller = new AbortController();
  readonly #ms: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.kick();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get fired(): boolean {
    return this.#controller.signal.aborted;
  }

  readonly kick = (): void => {
    if (this.fired) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#controller.abort(), this.#ms);
  };

  stop(): void {
    clearTimeout(this.#timer);
  }
}

/** A request body over `data` that the SDK can create again for a retry, sent in small chunks. */
function bodyOf(data: Uint8Array): Buffer | (() => NodeJS.ReadableStream) {
  const whole = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (whole.length <= CHUNK) return whole;
  return () => {
    let offset = 0;
    return new Readable({
      highWaterMark: CHUNK,
      read() {
        if (offset >= whole.length) {
          this.push(null);
          return;
        }
        const end = Math.min(offset + CHUNK, whole.length);
        this.push(whole.subarray(offset, end));
        offset = end;
      },
    });
  };
}

/** The SDK's block id format: a 48-character string (prefix, zero-padded index), base64. */
function blockId(prefix: string, index: number): string {
  return Buffer.from(`${prefix}${String(index).padStart(48 - prefix.length, '0')}`).toString('base64');
}

/** Reads a download body of `expected` bytes, kicking the watchdog for every chunk. */
async function readBody(
  body: NodeJS.ReadableStream | undefined,
  expected: number,
  dog: Watchdog,
  failure: () => string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    if (body !== undefined) {
      for await (const chunk of body) {
        dog.kick();
        const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        chunks.push(buffer);
        received += buffer.length;
      }
    }
  } catch (err) {
    if (dog.fired) throw err; // reported as a timeout
    throw new AzbkError('AZBK_VAULT_UNREACHABLE', `${failure()}: the download broke off after ${received} of ${expected} bytes.`, {
      cause: err,
    });
  }
  if (received !== expected) {
    throw new AzbkError('AZBK_VAULT_UNREACHABLE', `${failure()}: received ${received} of ${expected} bytes.`);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
}

function isKey(name: string): boolean {
  try {
    validateKey(name);
    return true;
  } catch {
    return false;
  }
}

function positive(name: string, value: number, max: number, min = 1): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new AzbkError('AZBK_BAD_INPUT', `Invalid AzureBlobStore option ${name}: ${String(value)} (${min} to ${max}).`);
  }
  return value;
}

/** Status and service error code of an SDK error (RestError), when it has them. */
function restInfo(err: unknown): { status?: number; code?: string } {
  if (typeof err !== 'object' || err === null) return {};
  const e = err as { name?: unknown; statusCode?: unknown; code?: unknown; details?: { errorCode?: unknown } };
  if (e.name !== 'RestError') return {};
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const detail = e.details?.errorCode;
  const code = typeof detail === 'string' ? detail : typeof e.code === 'string' ? e.code : undefined;
  return { status, code };
}

const CREDENTIALS_HINT =
  'Check the account name and key (or the SAS token, its permissions and expiry) in the Azure Storage connection string, and that the clock of this machine is right.';

function describeFailure(op: Op, key: string, url: string): string {
  switch (op) {
    case 'list':
      return `Cannot list vault objects under "${key}" in ${url}`;
    case 'create':
      return `Cannot create the Azure container ${url}`;
    default:
      return `Cannot ${op} vault object "${key}" in ${url}`;
  }
}

/**
 * Turns an error thrown by the Azure SDK while doing `op` on `key` in the container at `url` into
 * an AzbkError. AzbkErrors pass through; `timedOutMs` says the request was abandoned for making
 * no progress. A missing container is AZBK_VAULT_NOT_FOUND; a blob name Azure rejects,
 * AZBK_BAD_INPUT; any other reply or network failure AZBK_VAULT_UNREACHABLE, with a hint about the
 * connection string for 401 and 403. Other errors (bugs) pass through unchanged. The message is
 * built from the status and error code only, so it never holds a secret; the SDK's error is the
 * `cause` (the SDK redacts credentials in it).
 */
export function toAzureStorageError(
  err: unknown,
  op: Op,
  key: string,
  url: string,
  timedOutMs?: number,
): unknown {
  if (isAzbkError(err)) return err;
  const what = describeFailure(op, key, url);
  if (timedOutMs !== undefined) {
    const seconds = Math.round(timedOutMs / 100) / 10;
    return new AzbkError('AZBK_VAULT_UNREACHABLE', `${what}: no progress for ${seconds} s.`, { cause: err });
  }
  if (typeof err !== 'object' || err === null || (err as { name?: unknown }).name !== 'RestError') return err;
  const { status, code } = restInfo(err);
  if (status === undefined) {
    // No reply: refused, reset, unknown host, TLS failure, unreadable reply.
    const reason = code === 'PARSE_ERROR' ? 'unreadable reply' : `network error${code ? ` (${code})` : ''}`;
    return new AzbkError('AZBK_VAULT_UNREACHABLE', `${what}: ${reason}.`, { cause: err });
  }
  const answer = `Azure answered ${status}${code ? ` ${code}` : ''}`;
  if (code === 'ContainerNotFound' || code === 'ContainerBeingDeleted') {
    return new AzbkError('AZBK_VAULT_NOT_FOUND', `${what}: the container does not exist (${answer}).`, {
      cause: err,
      hint: 'Check the container name and the storage account in the connection string.',
    });
  }
  if (status === 401 || status === 403) {
    return new AzbkError('AZBK_VAULT_UNREACHABLE', `${what}: access denied (${answer}).`, {
      cause: err,
      hint: CREDENTIALS_HINT,
    });
  }
  if (status === 400 && (code === 'InvalidResourceName' || code === 'OutOfRangeInput' || code === 'InvalidUri')) {
    if (op !== 'list' && op !== 'create') {
      return new AzbkError('AZBK_BAD_INPUT', `Azure Blob Storage rejects the object key "${key}" (${answer}).`, {
        cause: err,
      });
    }
  }
  return new AzbkError('AZBK_VAULT_UNREACHABLE', `${what}: ${answer}.`, { cause: err });
}

/** The AzbkError for a connection string the SDK cannot parse; it never quotes the string. */
function badConnectionString(err: unknown): AzbkError {
  // The SDK's own messages are fixed sentences ("Invalid AccountName in the provided Connection
  // String"); anything else is left out in case it quotes the input.
  const message = err instanceof Error ? err.message : '';
  const detail = /^Invalid [A-Za-z]+ in the provided( SAS)? Connection String/.test(message)
    ? `: ${message.replace(/\.?$/, '')}`
    : '';
  return new AzbkError('AZBK_BAD_INPUT', `The Azure Storage connection string is not valid${detail}.`, {
    hint: 'Copy the connection string of the storage account from the Azure portal (Access keys), or use the AccountName, AccountKey and BlobEndpoint form.',
  });
}
