/**
 * The routes of the vault service (listed at the top of server.ts). Each one validates its input
 * with a schema, calls one Vault or VaultSession method and shapes the reply; the rules are the
 * vault's, not the routes'.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KeyId, MachineId, PackId, PointId } from '../core/ids.js';
import type { KeyEnvelope } from '../core/keys.js';
import { RETENTION_RANGE, type Retention } from '../core/retention.js';
import { AzbkError, type ErrorCode } from '../shared/errors.js';
import type { VaultSession } from './api.js';
import { HEADER, OBJECT_LIMIT, sha256Hex, splitPacks } from './http-protocol.js';
import { layout } from './layout.js';
import { MAX_POINT_PACKS } from './vault.js';
import type { Vault } from './vault.js';

/** Resolves the machine behind a request (see SessionCache in server.ts). */
export interface Authenticator {
  /** onRequest hook: throws AZBK_CREDENTIALS_INVALID (401) unless the request names a machine. */
  authenticate(req: FastifyRequest): Promise<void>;
  /** The session of a request that passed `authenticate`. */
  of(req: FastifyRequest): VaultSession;
}

/** An error with an HTTP status of its own (411, 415, 416), still carrying an AZBK code. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly azbkCode: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const str = (pattern: string, maxLength = 256) => ({ type: 'string', pattern, maxLength }) as const;
const HEX64 = str('^[0-9a-f]{64}$');
const HEX32 = str('^[0-9a-f]{32}$');
const PACK_COUNT = str('^[0-9]{1,7}$');
const POINT = str('^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$');
const CHECKPOINT = str('^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{32}-[0-9]{6}$');
const params = (props: Record<string, unknown>) => ({ type: 'object', required: Object.keys(props), properties: props });
const count = ([minimum, maximum]: readonly [number, number]) => ({ type: 'integer', minimum, maximum }) as const;
const POLICY_BODY = {
  type: 'object',
  required: ['retention'],
  additionalProperties: false,
  properties: {
    retention: {
      type: 'object',
      required: Object.keys(RETENTION_RANGE),
      additionalProperties: false,
      properties: Object.fromEntries(Object.entries(RETENTION_RANGE).map(([k, range]) => [k, count(range)])),
    },
  },
} as const;
const SHA_HEADER = { type: 'object', required: [HEADER.sha256], properties: { [HEADER.sha256]: HEX64 } };

/**
 * Bytes of request and reply bodies the server holds at once: uploads are read whole, and so are
 * the packs and ranges it sends. A request that would go over the limit is answered 503 before
 * its body is read, and the client tries again a little later; one on its own always fits. One
 * machine holds at most a share of the limit (beyond one request of any size while at most half the
 * limit is held): a machine that starts uploads and never finishes them, or never reads what it
 * asked for, cannot keep the others waiting, nor can two of them.
 */
export class ByteBudget {
  #used = 0;
  readonly #held = new Map<string, number>();
  /** what each reply holds: taken more than once (a body counted as it arrives), given back once */
  readonly #holds = new WeakMap<FastifyReply, { bytes: number }>();

  /** `share`: what one machine may hold, as a part of `limit` (default a quarter). */
  constructor(
    readonly limit: number,
    readonly share = 0.25,
  ) {}

  /**
   * Takes `bytes` for the machine (or address) `holder` until `reply` is sent or its connection
   * closes; 503 when they do not fit now. One reply takes for one holder.
   */
  take(reply: FastifyReply, bytes: number, holder: string): void {
    const own = this.#held.get(holder) ?? 0;
    // Past its share, a holder's first request still fits, but only in the first half of the
    // limit: two holders' uploads of the largest size, stalled, would otherwise fill it all.
    const pastShare = own + bytes > this.limit * this.share && (own > 0 || (this.#used > 0 && this.#used + bytes > this.limit / 2));
    const busy = (this.#used > 0 && this.#used + bytes > this.limit) || pastShare;
    if (busy) throw new HttpError(503, 'AZBK_VAULT_UNREACHABLE', 'The vault server is busy; try again shortly.');
    this.#used += bytes;
    this.#held.set(holder, own + bytes);
    const hold = this.#holds.get(reply);
    if (hold !== undefined) {
      hold.bytes += bytes;
      return;
    }
    const taken = { bytes };
    this.#holds.set(reply, taken);
    reply.raw.once('close', () => {
      this.#used -= taken.bytes;
      const left = this.#held.get(holder)! - taken.bytes;
      if (left === 0) this.#held.delete(holder);
      else this.#held.set(holder, left);
    });
  }

  /** Bytes taken now. */
  get used(): number {
    return this.#used;
  }
}

/** Route config of the uploads (see isUploadRoute). */
const UPLOAD = { upload: true } as const;

/** Whether the request is for an upload route, whose body the route itself counts in its budget. */
export function isUploadRoute(req: FastifyRequest): boolean {
  return (req.routeOptions.config as { upload?: unknown } | undefined)?.upload === true;
}

/** onRequest hook of uploads: octet-stream with a Content-Length, refused before the body is read. */
async function requireUpload(req: FastifyRequest): Promise<void> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/octet-stream') throw new HttpError(415, 'AZBK_BAD_INPUT', 'Uploads are application/octet-stream.');
  const length = req.headers['content-length'];
  if (length === undefined || !/^\d{1,12}$/.test(length)) throw new HttpError(411, 'AZBK_BAD_INPUT', 'Uploads need a Content-Length.');
  if (Number(length) > OBJECT_LIMIT) throw new HttpError(413, 'AZBK_BAD_INPUT', 'The request body is too large.');
}

/**
 * A point's or checkpoint's body (hash checked), split from the packs it names (see withPacks).
 * An agent of an earlier version names none: it does not know which packs prune deleted either,
 * so it could write points that need them, and is refused.
 */
function bodyWithPacks(req: FastifyRequest): { data: Buffer; packs: string[] } {
  const count = req.headers[HEADER.packCount];
  if (count === undefined) throw new AzbkError('AZBK_BAD_INPUT', 'This vault service prunes: upgrade azbk on this machine to back up to it (restores work meanwhile).');
  const all = body(req, true);
  const parts = splitPacks(all, Number(count), MAX_POINT_PACKS);
  if (parts === null) throw new AzbkError('AZBK_BAD_INPUT', `The body does not hold the packs it says it names (at most ${MAX_POINT_PACKS}).`);
  return parts;
}

/** The uploaded bytes, checked against X-Azbk-Content-Sha256 when the route asks for it. */
function body(req: FastifyRequest, checkHash: boolean): Buffer {
  const data = req.body;
  if (!Buffer.isBuffer(data)) throw new HttpError(415, 'AZBK_BAD_INPUT', 'Uploads are application/octet-stream.');
  if (checkHash && sha256Hex(data) !== req.headers[HEADER.sha256]) {
    throw new AzbkError('AZBK_BAD_INPUT', `The upload does not match its ${HEADER.sha256}: it was damaged or cut short.`);
  }
  return data;
}

const octets = (reply: FastifyReply, data: Buffer) => reply.type('application/octet-stream').send(data);

/** Parses `Range: bytes=a-b` (one closed range) into offset and length; 416 for anything else. */
function parseRange(header: string): { offset: number; length: number } {
  const m = /^bytes=(\d{1,15})-(\d{1,15})$/.exec(header.trim());
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (m === null || last < first || last - first + 1 > OBJECT_LIMIT) {
    throw new HttpError(416, 'AZBK_BAD_INPUT', 'Only one range bytes=FIRST-LAST of at most 256 MiB is served.');
  }
  return { offset: first, length: last - first + 1 };
}

/**
 * Closes an upload whose body comes too slowly to arrive within `requestMs` (the request timeout),
 * which would fail it then anyway: checked once `requestMs / 15` has passed (a minute of the
 * quarter of an hour), every `requestMs / 30`, by the bytes its connection has read since the
 * request began. The budget it held is free at once, not after the timeout: machines whose
 * uploads send a byte a minute could otherwise hold all of it, reconnecting every 15 minutes.
 */
function closeIfTooSlow(req: FastifyRequest, reply: FastifyReply, declared: number, requestMs: number, log: (msg: string) => void): void {
  const socket = req.raw.socket;
  const start = socket.bytesRead;
  const began = Date.now();
  const timer = setInterval(() => {
    const elapsed = Date.now() - began;
    if (elapsed < requestMs / 15) return;
    const got = socket.bytesRead - start;
    if (got >= declared) return clearInterval(timer); // all of it here: the route has it
    // At the pace so far, the rest would arrive after the request timeout.
    if (got === 0 || (elapsed * declared) / got > requestMs) {
      clearInterval(timer);
      log(`upload closed: ${got} of ${declared} bytes in ${Math.round(elapsed / 1000)} s would not arrive within ${Math.round(requestMs / 1000)} s`);
      req.raw.destroy();
    }
  }, requestMs / 30);
  timer.unref();
  reply.raw.once('close', () => clearInterval(timer));
}

/** Registers every route on `app` (mounted under /v1); `requestMs`: the server's request timeout. */
export async function registerRoutes(app: FastifyInstance, ctx: { vault: Vault; sessions: Authenticator; budget: ByteBudget; requestMs: number }): Promise<void> {
  const { vault, sessions, budget, requestMs } = ctx;
  /** onRequest hook of uploads: requireUpload, then the body's bytes from the budget, given back early if they come too slowly. */
  const upload = async (req: FastifyRequest, reply: FastifyReply) => {
    await requireUpload(req);
    const declared = Number(req.headers['content-length']);
    budget.take(reply, declared, sessions.of(req).machineId);
    closeIfTooSlow(req, reply, declared, requestMs, (msg) => req.log.warn({ code: 'AZBK_VAULT_UNREACHABLE' }, msg));
  };

  /**
   * Reads the object stored at `key` (an index file, a checkpoint, a point record) with `read`,
   * which reads it whole and checks it, for a reply: its stored size is taken from the budget
   * before it is read (503 when it does not fit, and the client asks again), until the reply is
   * sent. Taken once read, a burst of reads of a large object held them all before most were refused.
   */
  const held = async <T>(reply: FastifyReply, req: FastifyRequest, key: string, read: () => Promise<T>, bytesOf: (t: T) => Buffer): Promise<T> => {
    const machine = sessions.of(req).machineId;
    const size = (await vault.storedSize(key)) ?? 0; // none: the read says so
    budget.take(reply, size, machine);
    const got = await read();
    // Stored meanwhile (it was not there a moment ago): the rest of it too.
    const more = bytesOf(got).length - size;
    if (more > 0) budget.take(reply, more, machine);
    return got;
  };

  app.get('/config', async () => vault.config());

  app.post<{ Body: { token: string } }>('/register/keys', {
    schema: { body: { type: 'object', required: ['token'], additionalProperties: false, properties: { token: { type: 'string', maxLength: 8192 } } } },
  }, async (req) => ({ keys: await vault.listKeysForRegistration(req.body.token) }));

  app.post<{ Body: { token: string; machineName: string; os: string; hostname: string; reregister: boolean; newKey?: KeyEnvelope; keyProof?: string } }>('/register', {
    schema: {
      body: {
        type: 'object',
        required: ['token', 'machineName', 'os', 'hostname', 'reregister'],
        additionalProperties: false,
        properties: {
          token: { type: 'string', maxLength: 8192 },
          machineName: { type: 'string', maxLength: 64 },
          os: { type: 'string', maxLength: 64 },
          hostname: { type: 'string', maxLength: 255 },
          reregister: { type: 'boolean' },
          newKey: { type: 'object' },
          keyProof: HEX64,
        },
      },
    },
  }, async (req, reply) => reply.code(201).send(await vault.register(req.body)));

  await app.register(async (auth) => {
    auth.addHook('onRequest', sessions.authenticate);
    const s = sessions.of;

    auth.get('/session', async (req) => ({ machineId: s(req).machineId }));
    auth.get('/keys', async (req) => ({ keys: await s(req).listKeys() }));
    auth.post<{ Body: KeyEnvelope }>('/keys', { schema: { body: { type: 'object' } } }, async (req, reply) => {
      await s(req).addKey(req.body);
      return reply.code(204).send();
    });
    auth.get('/machines', async (req) => ({ machines: await s(req).listMachines() }));
    auth.post<{ Body: { retention: Retention } }>('/policy', { schema: { body: POLICY_BODY } }, async (req, reply) => {
      await s(req).putPolicy(req.body.retention);
      return reply.code(204).send();
    });

    auth.get('/pruned-packs', async (req) => s(req).listPrunedPacks());
    auth.put<{ Params: { id: string } }>('/packs/:id', {
      schema: { params: params({ id: HEX64 }) },
      onRequest: upload,
      bodyLimit: OBJECT_LIMIT,
      config: UPLOAD,
    }, async (req, reply) => {
      await s(req).putPack(req.params.id as PackId, body(req, false));
      return reply.code(204).send();
    });
    auth.get<{ Params: { id: string } }>('/packs/:id', { schema: { params: params({ id: HEX64 }) } }, async (req, reply) => {
      const id = req.params.id as PackId;
      const range = req.headers.range;
      if (range === undefined) {
        const size = await s(req).statPack(id);
        if (size === null) throw new AzbkError('AZBK_VAULT_CORRUPT', `Pack ${id} is missing from the vault.`);
        budget.take(reply, size, s(req).machineId);
        return octets(reply, await s(req).readPack(id, 0, size));
      }
      const { offset, length } = parseRange(range);
      budget.take(reply, length, s(req).machineId);
      const data = await s(req).readPack(id, offset, length);
      reply.code(206).header('content-range', `bytes ${offset}-${offset + length - 1}/*`);
      return octets(reply, data);
    });
    auth.head<{ Params: { id: string } }>('/packs/:id', { schema: { params: params({ id: HEX64 }) } }, async (req, reply) => {
      const size = await s(req).statPack(req.params.id as PackId);
      if (size === null) return reply.code(404).header('content-length', '0').send();
      return reply.code(200).header('content-type', 'application/octet-stream').header('content-length', String(size)).send();
    });

    auth.put<{ Params: { name: string } }>('/index/:name', {
      schema: { params: params({ name: HEX64 }), headers: SHA_HEADER },
      onRequest: upload,
      bodyLimit: OBJECT_LIMIT,
      config: UPLOAD,
    }, async (req, reply) => {
      await s(req).putIndex(req.params.name, body(req, true));
      return reply.code(204).send();
    });
    auth.get('/index', async (req) => ({ names: await s(req).listIndex() }));
    auth.get('/packs', async (req) => ({ ids: await s(req).listPacks() }));
    auth.get<{ Params: { name: string } }>('/index/:name', { schema: { params: params({ name: HEX64 }) } }, async (req, reply) =>
      octets(reply, await held(reply, req, layout.index(req.params.name), () => s(req).readIndex(req.params.name), (d) => d)),
    );

    auth.post<{ Params: { id: string }; Headers: Record<string, string> }>('/machines/:id/points', {
      schema: {
        params: params({ id: HEX32 }),
        headers: {
          type: 'object',
          required: [HEADER.sha256, HEADER.keyId, HEADER.jobId],
          properties: { [HEADER.sha256]: HEX64, [HEADER.keyId]: HEX32, [HEADER.jobId]: HEX32, [HEADER.packCount]: PACK_COUNT },
        },
      },
      onRequest: upload,
      bodyLimit: OBJECT_LIMIT,
      config: UPLOAD,
    }, async (req, reply) => {
      const session = s(req);
      if (req.params.id !== session.machineId) throw new AzbkError('AZBK_FORBIDDEN', 'A machine may write recovery points only under its own id.');
      const { data, packs } = bodyWithPacks(req);
      const info = await session.putPoint({ keyId: req.headers[HEADER.keyId] as KeyId, jobId: req.headers[HEADER.jobId]!, manifest: data, packs: packs as PackId[] });
      return reply.code(201).send(info);
    });
    auth.get<{ Params: { id: string } }>('/machines/:id/policy', { schema: { params: params({ id: HEX32 }) } }, async (req) =>
      s(req).readRetention(req.params.id as MachineId),
    );
    auth.get<{ Params: { id: string } }>('/machines/:id/points', { schema: { params: params({ id: HEX32 }) } }, async (req) => ({
      points: await s(req).listPoints(req.params.id as MachineId),
    }));
    auth.get<{ Params: { id: string; point: string } }>('/machines/:id/points/:point', {
      schema: { params: params({ id: HEX32, point: POINT }) },
    }, async (req, reply) => {
      const [machine, point] = [req.params.id as MachineId, req.params.point as PointId];
      const r = await held(reply, req, layout.point(machine, point), () => s(req).readPoint(machine, point), (p) => p.manifest);
      reply.header(HEADER.keyId, r.keyId).header(HEADER.jobId, r.jobId).header(HEADER.pointTime, r.time);
      return octets(reply, r.manifest);
    });

    auth.put<{ Params: { job: string; seq: string } }>('/checkpoints/:job/:seq', {
      schema: { params: params({ job: HEX32, seq: str('^[0-9]{1,6}$') }), headers: { ...SHA_HEADER, properties: { ...SHA_HEADER.properties, [HEADER.packCount]: PACK_COUNT } } },
      onRequest: upload,
      bodyLimit: OBJECT_LIMIT,
      config: UPLOAD,
    }, async (req, reply) => {
      const { data, packs } = bodyWithPacks(req);
      const info = await s(req).putCheckpoint({ jobId: req.params.job, seq: Number(req.params.seq), data, packs: packs as PackId[] });
      return reply.code(201).send(info);
    });
    auth.get('/checkpoints', async (req) => ({ checkpoints: await s(req).listCheckpoints() }));
    auth.get<{ Params: { name: string } }>('/checkpoints/:name', { schema: { params: params({ name: CHECKPOINT }) } }, async (req, reply) =>
      octets(reply, await held(reply, req, layout.checkpoint(s(req).machineId, req.params.name), () => s(req).readCheckpoint(req.params.name), (d) => d)),
    );
  });
}
