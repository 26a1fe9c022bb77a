/**
 * The vault over HTTPS: VaultEntry and VaultSession implemented against a vault server (routes in
 * server.ts). Errors arrive as the same AzbkError codes the embedded vault throws, and every reply
 * is checked before use: a hostile server or network cannot hand the agent a malformed value.
 */
import { isHex32, isHex64, POINT_ID, type KeyId, type MachineId, type PackId, type PointId } from '../core/ids.js';
import type { KeyEnvelope } from '../core/keys.js';
import { pickRetention, validRetention, type Retention } from '../core/retention.js';
import { AzbkError } from '../shared/errors.js';
import type { CheckpointInfo, MachineInfo, NewPoint, NewPointData, PointInfo, PrunedPacks, PointRecord, RegisterRequest, Registration, RetentionState, VaultEntry, VaultSession } from './api.js';
import { parseVaultConfig, type VaultConfig } from './config.js';
import { bearer, HEADER, JSON_LIMIT, JSON_RESPONSE_LIMIT, OBJECT_LIMIT, sha256Hex, withPacks } from './http-protocol.js';
import { HttpTransport, type FileBody, type TransportOptions, type TransportRequest } from './http-transport.js';
import { timeOfPointId } from './layout.js';
import { parseCheckpointName } from './vault.js';
import { byText } from '../shared/text-order.js';

const INDEX_NAME = /^[0-9a-f]{64}$/;
const SECRET = /^[A-Za-z0-9+/]{43}=$/;
const MAX_LIST = 1_000_000;
/** distinct retention policies in force at once that a reply may name (each costs a pass over the points) */
const MAX_POLICIES = 1000;

const bad = (what: string) => new AzbkError('AZBK_VAULT_CORRUPT', `The vault server sent an invalid ${what}.`);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown, max = 4096): v is string => typeof v === 'string' && v.length <= max;

function list(v: unknown, field: string): unknown[] {
  const items = isObj(v) ? v[field] : undefined;
  if (!Array.isArray(items) || items.length > MAX_LIST) throw bad(`${field} list`);
  return items;
}

/**
 * `items` when each is there once, in the order a vault lists them (ascending: its ids are
 * ASCII). A hostile server listing one point (or checkpoint, or machine) a hundred thousand times
 * would have the agent read it as often.
 */
function eachOnce<T>(items: T[], key: (t: T) => string, what: string): T[] {
  for (let i = 1; i < items.length; i++) if (!(key(items[i - 1]!) < key(items[i]!))) throw bad(`${what} list (not in order, or one twice)`);
  return items;
}

function header(h: Record<string, string | string[] | undefined>, name: string): string {
  const v = h[name];
  if (typeof v !== 'string') throw bad(`${name} header`);
  return v;
}

function pointInfo(v: unknown, machine: MachineId): PointInfo {
  if (!isObj(v) || !isStr(v.id) || !POINT_ID.test(v.id) || v.machineId !== machine || v.time !== timeOfPointId(v.id)) throw bad('recovery point');
  return { id: v.id as PointId, machineId: machine, time: v.time };
}

function checkpointInfo(v: unknown): CheckpointInfo {
  const info = isObj(v) && isStr(v.name) ? parseCheckpointName(v.name) : null;
  if (info === null || v === null || (v as CheckpointInfo).time !== info.time || (v as CheckpointInfo).jobId !== info.jobId || (v as CheckpointInfo).seq !== info.seq) {
    throw bad('checkpoint');
  }
  return info;
}

/** The routes whose replies are lists that grow with the vault (its packs, index files, points...). */
const LISTS = /^\/v1\/(packs|index|pruned-packs|checkpoints|machines|machines\/[0-9a-f]{32}\/points)$/;

/** Sends JSON requests and checks JSON replies. */
class Api {
  constructor(
    readonly transport: HttpTransport,
    readonly auth: string | null,
  ) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.auth === null ? extra : { authorization: this.auth, ...extra };
  }

  async json(method: 'GET' | 'POST', path: string, body?: unknown, more: Partial<TransportRequest> = {}): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined && payload.length > JSON_LIMIT) throw new AzbkError('AZBK_BAD_INPUT', 'The request is too large for the vault server.');
    const res = await this.transport.request({
      method,
      path,
      headers: this.headers(payload === undefined ? {} : { 'content-type': 'application/json' }),
      ...(payload === undefined ? {} : { body: payload }),
      // A list may be long; any other reply is small, and a hostile server that drips one
      // (see ReplyPace) holds the command for minutes, not hours.
      limit: LISTS.test(path) ? JSON_RESPONSE_LIMIT : JSON_LIMIT,
      idempotent: true,
      ...more,
    });
    if (res.status === 204) return undefined;
    try {
      return JSON.parse(res.body.toString('utf8')) as unknown;
    } catch {
      throw bad(`reply to ${method} ${path}`);
    }
  }

  /**
   * Uploads bytes with their SHA-256, so the server can refuse a damaged or cut-short body. A file
   * body comes with its hash (`sha256`, hex), taken as it was written.
   */
  async upload(method: 'PUT' | 'POST', path: string, data: Uint8Array | FileBody, extra: Record<string, string> = {}, sha256?: string): Promise<unknown> {
    if (data.length > OBJECT_LIMIT) throw new AzbkError('AZBK_BAD_INPUT', 'The object is too large for the vault server.');
    const hash = data instanceof Uint8Array ? sha256Hex(data) : sha256;
    if (hash === undefined) throw new TypeError('a file body needs its SHA-256');
    const res = await this.transport.request({
      method,
      path,
      headers: this.headers({ 'content-type': 'application/octet-stream', [HEADER.sha256]: hash, ...extra }),
      body: data,
      limit: JSON_LIMIT,
      idempotent: true,
    });
    if (res.status === 204) return undefined;
    try {
      return JSON.parse(res.body.toString('utf8')) as unknown;
    } catch {
      throw bad(`reply to ${method} ${path}`);
    }
  }

  /** A GET of bytes, at most `limit` of them (a reply that says or sends more is refused unread). */
  async bytes(path: string, notFound: () => AzbkError, headers: Record<string, string> = {}, into?: Buffer, limit = OBJECT_LIMIT) {
    return this.transport.request({ method: 'GET', path, headers: this.headers(headers), limit, idempotent: true, notFound, ...(into === undefined ? {} : { into }) });
  }
}

/** A vault service reached over HTTPS. */
export class HttpVault implements VaultEntry {
  readonly #api: Api;
  #config: VaultConfig | undefined;

  /**
   * A client for the vault at `endpoint` (https://host:port). With `certFingerprint` (hex SHA-256
   * of the certificate) only that certificate is accepted; with null the usual CA checks apply.
   */
  constructor(endpoint: string, certFingerprint: string | null, options: TransportOptions = {}) {
    this.#api = new Api(new HttpTransport(new URL(endpoint), certFingerprint, options), null);
  }

  async config(): Promise<VaultConfig> {
    if (this.#config === undefined) {
      const v = await this.#api.json('GET', '/v1/config');
      try {
        this.#config = parseVaultConfig(v);
      } catch {
        throw bad('vault config');
      }
    }
    return this.#config;
  }

  async register(req: RegisterRequest): Promise<Registration> {
    // Not retried once sent: a second registration after a lost reply would find the name taken.
    // Nor said to be unreachable then: the vault may have registered the machine.
    const lostReply = (why: string, cause: unknown) =>
      new AzbkError('AZBK_VAULT_UNREACHABLE', `The vault's reply to the registration was lost (${why}): the machine may have been registered.`, {
        hint: 'Register again with --reregister, the same --machine-name and the same passphrase: that takes over the registration if it was made (only its passphrase can), or makes it.',
        cause,
      });
    const v = await this.#api.json('POST', '/v1/register', req, { idempotent: false, lostReply });
    if (!isObj(v) || !isHex32(v.machineId) || !isStr(v.secret) || !SECRET.test(v.secret)) throw bad('registration');
    return { machineId: v.machineId as MachineId, secret: v.secret };
  }

  async session(machineId: MachineId, secret: string): Promise<VaultSession> {
    const api = new Api(this.#api.transport, bearer(machineId, secret));
    const v = await api.json('GET', '/v1/session');
    if (!isObj(v) || v.machineId !== machineId) throw bad('session');
    return new HttpSession(api, machineId, () => this.config());
  }

  async listKeysForRegistration(token: string): Promise<unknown[]> {
    return list(await this.#api.json('POST', '/v1/register/keys', { token }), 'keys');
  }

  /** Closes the connections (idle ones never keep the process alive anyway). */
  close(): Promise<void> {
    return this.#api.transport.close();
  }
}

/** A registered machine's session over HTTPS. */
class HttpSession implements VaultSession {
  /** whether the server knows prune (and so takes a point's pack list); undefined until asked */
  #prunes: boolean | undefined;

  constructor(
    private readonly api: Api,
    readonly machineId: MachineId,
    readonly config: () => Promise<VaultConfig>,
  ) {}

  async listKeys(): Promise<unknown[]> {
    return list(await this.api.json('GET', '/v1/keys'), 'keys');
  }

  async addKey(envelope: KeyEnvelope): Promise<void> {
    await this.api.json('POST', '/v1/keys', envelope);
  }

  async listMachines(): Promise<MachineInfo[]> {
    const machines = list(await this.api.json('GET', '/v1/machines'), 'machines').map((m) => {
      if (!isObj(m) || !isHex32(m.id) || !isStr(m.name, 64) || !isStr(m.os, 64) || !isStr(m.hostname, 255) || !isStr(m.registered, 64)) throw bad('machine');
      return { id: m.id as MachineId, name: m.name, os: m.os, hostname: m.hostname, registered: m.registered };
    });
    // (listed by when they registered: each once is checked in the order of their ids)
    eachOnce(machines.map((m) => m.id).sort(), (id) => id, 'machines');
    return machines;
  }

  async putPack(id: PackId, data: Uint8Array): Promise<void> {
    if (!isHex64(id)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    await this.api.upload('PUT', `/v1/packs/${id}`, data);
  }

  /** The pack in `file` (its id is its SHA-256), read from the file again for each attempt. */
  async putPackFile(id: PackId, file: string, length: number): Promise<void> {
    if (!isHex64(id)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    await this.api.upload('PUT', `/v1/packs/${id}`, { file, length }, {}, id);
  }

  /** Packs go over the network whole: from memory (putPack) or from a file (putPackFile). */
  startPack(): null {
    return null;
  }

  async readPack(id: PackId, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (!isHex64(id)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > OBJECT_LIMIT) {
      throw new AzbkError('AZBK_BAD_INPUT', `Invalid pack range (offset ${offset}, length ${length}).`);
    }
    const missing = () => new AzbkError('AZBK_VAULT_CORRUPT', `Pack ${id} is missing from the vault.`);
    if (length === 0) {
      // No byte range names zero bytes; the embedded vault still fails for a missing pack.
      if ((await this.statPack(id)) === null) throw missing();
      return Buffer.alloc(0);
    }
    const res = await this.api.bytes(`/v1/packs/${id}`, missing, { range: `bytes=${offset}-${offset + length - 1}` }, into, length);
    if (res.status !== 206 || res.body.length !== length) throw new AzbkError('AZBK_VAULT_CORRUPT', `The vault server sent ${res.body.length} bytes of pack ${id}, not ${length}.`);
    if (!String(res.headers['content-range']).startsWith(`bytes ${offset}-${offset + length - 1}/`)) throw bad(`range of pack ${id}`);
    return res.body;
  }

  async statPack(id: PackId): Promise<number | null> {
    if (!isHex64(id)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    const res = await this.api.transport.request({ method: 'HEAD', path: `/v1/packs/${id}`, headers: this.api.headers(), limit: 0, idempotent: true, accept: [404] });
    if (res.status === 404) return null;
    const size = Number(header(res.headers, 'content-length'));
    if (!Number.isSafeInteger(size) || size < 0 || size > OBJECT_LIMIT) throw bad('pack size');
    return size;
  }

  async listPacks(): Promise<PackId[]> {
    // A server of an earlier version has no such request.
    const old = () => new AzbkError('AZBK_VAULT_TOO_OLD', 'The vault service runs an earlier version of azbk, which cannot list its packs.');
    const ids = list(await this.api.json('GET', '/v1/packs', undefined, { notFound: old }), 'ids').map((id) => {
      if (!isStr(id) || !isHex64(id)) throw bad('pack id');
      return id as PackId;
    });
    return eachOnce(ids, (id) => id, 'pack');
  }

  async putIndex(name: string, data: Uint8Array): Promise<void> {
    if (!INDEX_NAME.test(name)) throw new AzbkError('AZBK_BAD_INPUT', 'An index name is 64 hex digits.');
    await this.api.upload('PUT', `/v1/index/${name}`, data);
  }

  async listIndex(): Promise<string[]> {
    const names = list(await this.api.json('GET', '/v1/index'), 'names').map((n) => {
      if (!isStr(n) || !INDEX_NAME.test(n)) throw bad('index name');
      return n;
    });
    return eachOnce(names, (n) => n, 'index');
  }

  async readIndex(name: string): Promise<Buffer> {
    if (!INDEX_NAME.test(name)) throw new AzbkError('AZBK_BAD_INPUT', 'An index name is 64 hex digits.');
    return (await this.api.bytes(`/v1/index/${name}`, () => new AzbkError('AZBK_VAULT_CORRUPT', `Index ${name} is missing from the vault.`))).body;
  }

  async putPoint(p: NewPointData): Promise<NewPoint> {
    const v = await this.uploadWithPacks('POST', `/v1/machines/${this.machineId}/points`, p.manifest, p.packs, { [HEADER.keyId]: p.keyId, [HEADER.jobId]: p.jobId });
    // A vault server of an earlier version expires nothing and says nothing of it.
    const expired = isObj(v) && v.expired === undefined ? [] : list(v, 'expired');
    if (!expired.every((id) => isStr(id) && POINT_ID.test(id))) throw bad('list of expired points');
    return { ...pointInfo(v, this.machineId), expired: expired as PointId[] };
  }

  /**
   * Uploads a point or checkpoint followed by the packs it names (see withPacks). AZBK_VAULT_TOO_OLD
   * for a server of an earlier version, which would store the pack list as part of the object.
   */
  private async uploadWithPacks(method: 'PUT' | 'POST', path: string, data: Uint8Array, packs: readonly PackId[], extra: Record<string, string> = {}): Promise<unknown> {
    if (!packs.every(isHex64)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    await this.needsPrune();
    return this.api.upload(method, path, withPacks(data, packs), { ...extra, [HEADER.packCount]: String(packs.length) });
  }

  /** AZBK_VAULT_TOO_OLD for a server of an earlier version (see uploadWithPacks). */
  private async needsPrune(): Promise<void> {
    if (this.#prunes === undefined) await this.listPrunedPacks();
    if (this.#prunes !== true) throw new AzbkError('AZBK_VAULT_TOO_OLD', 'The vault service runs an earlier version of azbk, which cannot take the backups of this one.');
  }

  async listPrunedPacks(opts: { forBackup?: boolean } = {}): Promise<PrunedPacks> {
    // A server of an earlier version has no such request: it never pruned anything.
    const old = new AzbkError('AZBK_VAULT_TOO_OLD', 'no prune');
    const v = await this.api.json('GET', '/v1/pruned-packs', undefined, { notFound: () => old }).catch((err: unknown) => {
      if (err !== old) throw err;
      return null;
    });
    if (v === null) {
      this.#prunes = false;
      if (opts.forBackup === true) await this.needsPrune();
      return { condemned: [], gone: [] };
    }
    const condemned = list(v, 'condemned');
    const gone = list(v, 'gone');
    if (!condemned.every(isHex64) || !gone.every(isHex64)) throw bad('list of pruned packs');
    this.#prunes = true;
    return { condemned: condemned as PackId[], gone: gone as PackId[] };
  }

  async readRetention(machine: MachineId): Promise<RetentionState> {
    if (!isHex32(machine)) throw new AzbkError('AZBK_BAD_INPUT', 'Bad machine id.');
    const v = await this.api.json('GET', `/v1/machines/${machine}/policy`);
    const inForce = isObj(v) && v.inForce === null ? null : list(v, 'inForce');
    const valid =
      isObj(v) &&
      (v.newest === null || validRetention(v.newest)) &&
      (inForce === null || (inForce.length >= 1 && inForce.length <= MAX_POLICIES && inForce.every(validRetention))) &&
      isStr(v.now, 64) &&
      !Number.isNaN(Date.parse(v.now));
    if (!valid) throw bad('retention');
    return { newest: v.newest === null ? null : pickRetention(v.newest as Retention), inForce: inForce === null ? null : (inForce as Retention[]).map(pickRetention), now: v.now as string };
  }

  async putPolicy(retention: Retention): Promise<void> {
    await this.api.json('POST', '/v1/policy', { retention: pickRetention(retention) });
  }

  async listPoints(machine: MachineId): Promise<PointInfo[]> {
    if (!isHex32(machine)) throw new AzbkError('AZBK_BAD_INPUT', 'Bad machine id.');
    return eachOnce(list(await this.api.json('GET', `/v1/machines/${machine}/points`), 'points').map((p) => pointInfo(p, machine)), (p) => p.id, 'points');
  }

  async readPoint(machine: MachineId, id: PointId): Promise<PointRecord> {
    if (!isHex32(machine) || !POINT_ID.test(id)) throw new AzbkError('AZBK_BAD_INPUT', 'Bad point id.');
    const notFound = () => new AzbkError('AZBK_POINT_NOT_FOUND', `Recovery point ${id} does not exist.`);
    const res = await this.api.bytes(`/v1/machines/${machine}/points/${id}`, notFound);
    const keyId = header(res.headers, HEADER.keyId);
    const jobId = header(res.headers, HEADER.jobId);
    const time = header(res.headers, HEADER.pointTime);
    if (!isHex32(keyId) || !isStr(jobId, 64) || !isStr(time, 64)) throw bad(`recovery point ${id}`);
    return { id, machineId: machine, time, keyId: keyId as KeyId, jobId, manifest: res.body };
  }

  async putCheckpoint(p: { jobId: string; seq: number; data: Uint8Array; packs?: readonly PackId[] }): Promise<CheckpointInfo> {
    if (!isHex32(p.jobId) || !Number.isInteger(p.seq) || p.seq < 1 || p.seq > 999_999) throw new AzbkError('AZBK_BAD_INPUT', 'Bad job id or checkpoint number.');
    const info = checkpointInfo(await this.uploadWithPacks('PUT', `/v1/checkpoints/${p.jobId}/${p.seq}`, p.data, p.packs ?? []));
    if (info.jobId !== p.jobId || info.seq !== p.seq) throw bad('checkpoint');
    return info;
  }

  async listCheckpoints(): Promise<CheckpointInfo[]> {
    const out = list(await this.api.json('GET', '/v1/checkpoints'), 'checkpoints').map(checkpointInfo);
    return eachOnce(out.sort((a, b) => byText(a.name, b.name)), (c) => c.name, 'checkpoints');
  }

  async readCheckpoint(name: string): Promise<Buffer> {
    if (parseCheckpointName(name) === null) throw new AzbkError('AZBK_BAD_INPUT', 'Bad checkpoint name.');
    return (await this.api.bytes(`/v1/checkpoints/${name}`, () => new AzbkError('AZBK_VAULT_CORRUPT', `Checkpoint ${name} is missing.`))).body;
  }
}
