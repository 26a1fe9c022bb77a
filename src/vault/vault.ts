/**
 * The vault's rules, in one place for both the embedded vault and the vault service: creation,
 * credentials, registration (at most `limits.machines` machines, unique names, secrets kept only
 * as hashes), and machine sessions that may read and append but never delete or overwrite.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import os from 'node:os';
import { isHex32, isHex64, MACHINE_NAME, POINT_ID, type KeyId, type MachineId, type PackId, type PointId } from '../core/ids.js';
import { MAX_KEY_ENVELOPES, parseEnvelope, type KeyEnvelope } from '../core/keys.js';
import { packIdOf } from '../core/pack.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import { absentOf } from '../shared/missing.js';
import type { Retention } from '../core/retention.js';
import type { CheckpointInfo, MachineInfo, NewPoint, NewPointData, PackStream, PrunedPacks, PointInfo, PointRecord, RegisterRequest, Registration, RetentionState, VaultEntry, VaultSession } from './api.js';
import { checkVaultName, newVaultConfig, parseVaultConfig, type VaultConfig } from './config.js';
import { issueCredentials, verifyToken, type CredentialsFile } from './credentials.js';
import { baseName, layout, pointIdFor, timeOfPointId } from './layout.js';
import { hashedPackStream, type PackSink } from './pack-stream.js';
import { dailyPrune, gonePacks, packsOfRecord, prunedPacks, revive, withPacks } from './prune.js';
import { expirePoints, retentionState, writePolicy } from './retention.js';
import { putOwn, type BlobStore } from './storage/blobstore.js';
import { byText } from '../shared/text-order.js';

const MAX_OBJECT = 256 * 1024 * 1024;
const INDEX_NAME = /^[0-9a-f]{64}$/;
const JOB_ID = /^[0-9a-f]{32}$/;
const CHECKPOINT_NAME = /^(\d{8}T\d{9}Z)-([0-9a-f]{32})-(\d{6})$/;
const MAX_CHECKPOINT_SEQ = 999_999;
/** packs a point may name: 16 TiB of 16 MiB packs */
export const MAX_POINT_PACKS = 1_000_000;

interface MachineRecord extends MachineInfo {
  readonly secretHash: string;
  /** SHA-256 of the key family's proof it was registered with (none for records of older versions) */
  readonly proofHash?: string;
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v, null, 1));
const hashSecret = (secret: Buffer) => createHash('sha256').update(secret).digest('hex');
const forbidden = (message: string) => new AzbkError('AZBK_FORBIDDEN', message);

/** How recent a check that the vault is still there will do before a pack is stored (see Vault.present). */
const PRESENT_FOR_PACKS_MS = 5000;

/**
 * Stores `data` under `key` unless it exists. Writing the same bytes again succeeds (a retry
 * after a lost reply); other bytes under an existing key are an overwrite: AZBK_FORBIDDEN.
 */
async function putOnce(store: BlobStore, key: string, data: Uint8Array, what: string): Promise<void> {
  if (!(await putOwn(store, key, data))) throw forbidden(`${what} already exists with other content; it cannot be overwritten.`);
}

/** How old a machine's re-registration lock must be to be taken as given up (see whileLocked). */
const LOCK_STALE_MS = 2 * 60_000;

function parseJson(data: Buffer, what: string): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    throw new AzbkError('AZBK_VAULT_CORRUPT', `The vault object ${what} is not valid JSON.`);
  }
}

/** A stored record: a JSON object (not null, an array or another value), else AZBK_VAULT_CORRUPT. */
function parseRecord(data: Buffer, what: string): Record<string, unknown> {
  const v = parseJson(data, what);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AzbkError('AZBK_VAULT_CORRUPT', `The vault object ${what} is not a record.`);
  return v as Record<string, unknown>;
}

/** The record, or undefined when it is not one (an object put in the storage by something else is passed over, not fatal to every reader). */
function recordOrNothing(data: Buffer, what: string): Record<string, unknown> | undefined {
  try {
    return parseRecord(data, what);
  } catch {
    return undefined;
  }
}

/** A vault over a BlobStore. `now` is the vault's clock: it, not the agent, dates points. */
export class Vault implements VaultEntry {
  /** registrations and new key envelopes wait for the one before them (their checks and writes are one step) */
  private serial: Promise<unknown> = Promise.resolve();
  /** told the id of each machine (re)registered, so that a server forgets sessions it remembers */
  onRegistered: ((id: MachineId) => void) | undefined;
  /**
   * Takes work a reply need not wait for (a new point's daily prune), set by a vault server, whose
   * process outlives the request. Unset, such work is done before the call returns: an embedded
   * vault's command may exit right after it.
   */
  runLater: ((what: string, work: () => Promise<unknown>) => void) | undefined;

  private constructor(
    private readonly store: BlobStore,
    private readonly cfg: VaultConfig,
    private readonly now: () => Date,
  ) {}

  /** Creates a new vault in an empty store; AZBK_VAULT_EXISTS if it already holds one. */
  static async create(store: BlobStore, p: { name: string; now?: () => Date; maxMachines?: number }): Promise<Vault> {
    checkVaultName(p.name);
    const now = p.now ?? (() => new Date());
    if ((await store.stat(layout.config)) !== null) {
      throw new AzbkError('AZBK_VAULT_EXISTS', 'A vault already exists there.');
    }
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    let cfg = newVaultConfig({
      id: randomBytes(16).toString('hex'),
      name: p.name,
      created: now(),
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      maxMachines: p.maxMachines,
    });
    // The signing key first: a config without one would be a vault that cannot register anyone.
    // One left by a create that failed before its config (a container is not checked for being
    // empty) is the key: its public half goes into the config.
    let signing: Buffer = json({ alg: 'ed25519', privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
    if ((await store.put(layout.signingKey, signing)) === 'exists') {
      if ((await store.stat(layout.config)) !== null) throw new AzbkError('AZBK_VAULT_EXISTS', 'A vault already exists there.');
      signing = (await store.get(layout.signingKey)) ?? signing;
      const damagedKey = () => new AzbkError('AZBK_VAULT_CORRUPT', 'The vault has a damaged signing key and no config.');
      const kept = parseRecord(signing, 'signing key').privateKey;
      if (typeof kept !== 'string') throw damagedKey();
      let key;
      try {
        key = createPrivateKey(kept);
      } catch {
        throw damagedKey();
      }
      if (key.asymmetricKeyType !== 'ed25519') throw damagedKey();
      cfg = { ...cfg, signing: { ...cfg.signing, publicKey: createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString() } };
    }
    // A reply lost on the first try makes the retry find its own config: the same bytes are success.
    await putOnce(store, layout.config, json(cfg), 'A vault').catch((err: unknown) => {
      throw isAzbkError(err, 'AZBK_FORBIDDEN') ? new AzbkError('AZBK_VAULT_EXISTS', 'A vault already exists there.') : err;
    });
    return new Vault(store, cfg, now);
  }

  /** Opens the vault in `store`; AZBK_VAULT_NOT_FOUND when there is none. */
  static async open(store: BlobStore, p: { now?: () => Date } = {}): Promise<Vault> {
    const data = await store.get(layout.config);
    if (data === null) throw new AzbkError('AZBK_VAULT_NOT_FOUND', 'No vault was found there.');
    return new Vault(store, parseVaultConfig(parseJson(data, 'config')), p.now ?? (() => new Date()));
  }

  async config(): Promise<VaultConfig> {
    return this.cfg;
  }

  /** when the storage was last found to hold the vault's config (see present) */
  #seenAt = 0;

  /**
   * Throws AZBK_VAULT_NOT_FOUND unless the storage still holds the vault's config. A vault folder
   * moved or unmounted while in use may leave an empty folder in its place: nothing is written
   * there as if it were the vault (points, machines and keys the vault would never see), and a
   * machine is not told it is unknown. `recentMs`: a check this recent will do (for packs, many
   * a second).
   */
  async present(recentMs = 0): Promise<void> {
    if (recentMs > 0 && Date.now() - this.#seenAt < recentMs) return;
    if ((await this.store.stat(layout.config)) === null) {
      throw new AzbkError('AZBK_VAULT_NOT_FOUND', "The vault's storage no longer holds the vault (moved, removed or not mounted).");
    }
    this.#seenAt = Date.now();
  }

  /**
   * The stored size of an object a machine reads whole (see `layout`), or null when there is none:
   * a server takes that much from its memory budget before it reads the object.
   */
  async storedSize(key: string): Promise<number | null> {
    return (await this.store.stat(key))?.size ?? null;
  }

  /** A fresh, signed credentials file for this vault. */
  async credentials(p: { endpoint: string; certFingerprint: string | null; validDays: number }): Promise<CredentialsFile> {
    const data = await this.store.get(layout.signingKey);
    if (data === null) throw new AzbkError('AZBK_VAULT_CORRUPT', 'The vault has lost its signing key.');
    const key = parseRecord(data, 'vault/signing-key');
    if (typeof key.privateKey !== 'string') throw new AzbkError('AZBK_VAULT_CORRUPT', 'The vault signing key is damaged.');
    return issueCredentials({
      vaultId: this.cfg.id,
      vaultName: this.cfg.name,
      endpoint: p.endpoint,
      certFingerprint: p.certFingerprint,
      privateKeyPem: key.privateKey,
      now: this.now(),
      validDays: p.validDays,
    });
  }

  private verify(token: string): void {
    verifyToken(token, { vaultId: this.cfg.id, publicKeyPem: this.cfg.signing.publicKey, now: this.now() });
  }

  async listKeysForRegistration(token: string): Promise<unknown[]> {
    this.verify(token);
    return this.readKeys();
  }

  /** Every passphrase envelope in the vault, as untrusted JSON. */
  async readKeys(): Promise<unknown[]> {
    const out: unknown[] = [];
    for await (const key of this.store.list(layout.keysPrefix)) {
      const data = await this.store.get(key);
      const env = data !== null && data.length < 64 * 1024 ? recordOrNothing(data, key) : undefined;
      if (env !== undefined) out.push(env);
    }
    return out;
  }

  addKey(envelope: KeyEnvelope): Promise<void> {
    return this.inTurn(() => this.addKeyNow(envelope));
  }

  private async addKeyNow(envelope: KeyEnvelope): Promise<void> {
    let env: KeyEnvelope;
    try {
      env = parseEnvelope(envelope);
    } catch (err) {
      throw new AzbkError('AZBK_BAD_INPUT', `The key envelope is not valid: ${err instanceof Error ? err.message : String(err)}`);
    }
    // Every agent that asks for a passphrase tries the envelopes in turn: a machine must not be
    // able to plant enough of them to make that take hours.
    let count = 0;
    for await (const key of this.store.list(layout.keysPrefix)) if (key !== layout.key(env.id)) count++;
    if (count >= MAX_KEY_ENVELOPES) {
      throw new AzbkError('AZBK_VAULT_LIMIT', `The vault already holds ${count} passphrase envelopes, its limit.`, {
        hint: 'Use a passphrase already in use with this vault (machines that share one share their data), or another vault.',
      });
    }
    await this.present();
    await putOnce(this.store, layout.key(env.id), json(env), `Key envelope ${env.id}`);
  }

  async machines(): Promise<MachineRecord[]> {
    const found = new Map<string, MachineRecord>();
    for (const prefix of [layout.machinesPrefix, layout.machinesBeforePrefix]) {
      for await (const key of this.store.list(prefix)) {
        const rec = await this.machineAt(key);
        if (rec !== undefined && !found.has(rec.id)) found.set(rec.id, rec);
      }
    }
    return [...found.values()].sort((a, b) => byText(a.registered, b.registered));
  }

  /** The machine record under `key`, if it is one and names the machine the key does. */
  private async machineAt(key: string): Promise<MachineRecord | undefined> {
    const data = await this.store.get(key);
    if (data === null) return undefined;
    const rec = recordOrNothing(data, key) as Partial<MachineRecord> | undefined;
    if (rec === undefined || !isHex32(rec.id) || !key.endsWith(`/${rec.id}`)) return undefined;
    return typeof rec.name === 'string' && typeof rec.secretHash === 'string' ? (rec as MachineRecord) : undefined;
  }

  /**
   * A machine's record; the one a re-registration replaces when the new one was never written
   * (the storage failed, or the process stopped, between the two).
   */
  private async machineRecord(id: MachineId): Promise<Buffer | null> {
    return (await this.store.get(layout.machine(id))) ?? (await this.store.get(layout.machineBefore(id)));
  }

  /**
   * Registers a machine. One registration at a time: the name and limit checks and the write are
   * one step for this process. Vault servers sharing one storage account can both find a name
   * free: the name is claimed too (see claimName), and only one of them gets it. (Both can still
   * pass the machine limit's check at once, and register one machine past it.)
   */
  register(req: RegisterRequest): Promise<Registration> {
    return this.inTurn(() => this.registerNow(req));
  }

  /** Runs `step` once the registrations and envelopes before it are done. */
  private inTurn<T>(step: () => Promise<T>): Promise<T> {
    const turn = this.serial.then(step);
    this.serial = turn.catch(() => undefined);
    return turn;
  }

  private async registerNow(req: RegisterRequest): Promise<Registration> {
    this.verify(req.token);
    await this.present();
    if (!MACHINE_NAME.test(req.machineName)) {
      throw new AzbkError('AZBK_BAD_INPUT', 'A machine name has 1 to 64 letters, digits, dots, dashes or underscores.');
    }
    const machines = await this.machines();
    const existing = machines.find((m) => m.name.toLowerCase() === req.machineName.toLowerCase());
    if (existing && !req.reregister) {
      throw new AzbkError('AZBK_MACHINE_NAME_TAKEN', `A machine named ${req.machineName} is already registered with this vault.`);
    }
    if (req.keyProof !== undefined && !isHex64(req.keyProof)) throw new AzbkError('AZBK_BAD_INPUT', 'A key proof is 64 hex digits.');
    const proofHash = req.keyProof === undefined ? undefined : hashSecret(Buffer.from(req.keyProof, 'hex'));
    if (existing?.proofHash !== undefined && (proofHash === undefined || !timingSafeEqual(Buffer.from(proofHash, 'hex'), Buffer.from(existing.proofHash, 'hex')))) {
      throw new AzbkError('AZBK_MACHINE_NAME_TAKEN', `The machine ${existing.name} was registered with another passphrase: only that passphrase can register it again (or choose another --machine-name).`, {
        hint: 'Give the passphrase that machine was registered with (--passphrase-file), or register under another --machine-name.',
      });
    }
    if (!existing && machines.length >= this.cfg.limits.machines) {
      throw new AzbkError('AZBK_VAULT_LIMIT', `The vault already holds ${machines.length} machines, its limit.`);
    }
    if (req.newKey !== undefined) await this.addKeyNow(req.newKey); // in this turn already
    const secret = randomBytes(32);
    const id = existing?.id ?? (randomBytes(16).toString('hex') as MachineId);
    const record: MachineRecord = {
      id,
      name: req.machineName,
      os: String(req.os).slice(0, 64),
      hostname: String(req.hostname).slice(0, 255),
      registered: this.now().toISOString(),
      secretHash: hashSecret(secret),
      ...(proofHash === undefined ? {} : { proofHash }),
    };
    // Re-registration replaces the record: only the vault itself ever removes an object. The old
    // record is kept under its own key first and is the machine's until the new one is written,
    // so a storage failure or a stop between the two loses neither the machine nor its name.
    const atTheSameTime = () => new AzbkError('AZBK_MACHINE_NAME_TAKEN', `A machine named ${req.machineName} was registered at the same time.`);
    const write = async () => {
      try {
        // A retry after a lost reply finds its own record: the same bytes are success.
        await putOnce(this.store, layout.machine(id), json(record), `Machine ${id}`);
      } catch (err) {
        if (isAzbkError(err, 'AZBK_FORBIDDEN')) throw atTheSameTime();
        throw err;
      }
    };
    if (existing) {
      await this.whileLocked(id, req.machineName, async () => {
        await this.keepBefore(id);
        await write();
        // The new record stands: a copy left behind (a failed delete) is never read again.
        await this.store.delete(layout.machineBefore(id)).catch(() => undefined);
      });
    } else await write();
    // The record first, then the name: a claim always has its machine. A new machine that finds
    // the name claimed by another takes its record back. One registered again keeps its name
    // (claimed now, if an earlier version registered it).
    if (!(await this.claimName(req.machineName, id)) && !existing) {
      await this.store.delete(layout.machine(id)).catch(() => undefined);
      throw (await this.orphanClaim(req.machineName)) ?? atTheSameTime();
    }
    this.onRegistered?.(id);
    return { machineId: id, secret: secret.toString('base64') };
  }

  /**
   * Runs `step`, a re-registration of machine `id`, holding the machine's lock: vault servers
   * sharing a store, and embedded vaults of two processes, would otherwise interleave two
   * re-registrations so that one removes the record the other kept (see keepBefore). A lock left
   * by a registration that was stopped is taken over once LOCK_STALE_MS old.
   */
  private async whileLocked(id: MachineId, name: string, step: () => Promise<void>): Promise<void> {
    const first = layout.machineLock(id);
    const mine = json({ time: this.now().toISOString(), nonce: randomBytes(16).toString('hex') });
    const busy = () =>
      new AzbkError('AZBK_MACHINE_NAME_TAKEN', `The machine ${name} is being registered again elsewhere at this moment.`, {
        hint: `Try again in ${LOCK_STALE_MS / 60_000} minutes, once that registration is over (or has been given up).`,
      });
    // A lock given up is taken over under a key of its own, named by what it holds: one taker
    // gets it (a conditional create), and the given-up locks it passed go when it is done.
    const passed: { key: string; held: Buffer }[] = [];
    let key = first;
    for (let tries = 0; ; tries++) {
      if (tries >= 8) throw busy();
      if ((await this.store.put(key, mine)) === 'created') break;
      const held = await this.store.get(key);
      if (held === null) continue; // given back meanwhile
      if (held.equals(mine)) break; // ours: a put retried after its reply was lost
      const since = Date.parse(String(recordOrNothing(held, key)?.time));
      if (this.now().getTime() - since < LOCK_STALE_MS) throw busy();
      passed.push({ key, held });
      key = `${first}.${createHash('sha256').update(held).digest('hex').slice(0, 32)}`;
    }
    // Each lock passed must still be the one given up: else its holder, or another taker, is done
    // with it, and a new holder may be at work (whose lock stays).
    for (const p of passed) {
      if (!(await this.store.get(p.key))?.equals(p.held)) {
        await this.store.delete(key).catch(() => undefined);
        throw busy();
      }
    }
    try {
      await step();
    } finally {
      for (const p of passed) await this.store.delete(p.key).catch(() => undefined);
      await this.store.delete(key).catch(() => undefined);
    }
  }

  /**
   * Moves machine `id`'s record aside to machineBefore, where it stands for the machine until the
   * new one is written; called under the machine's lock. A record only there (an earlier
   * re-registration cut off) stays.
   */
  private async keepBefore(id: MachineId): Promise<void> {
    const current = await this.store.get(layout.machine(id));
    if (current === null) return;
    await this.store.delete(layout.machineBefore(id));
    await this.store.put(layout.machineBefore(id), current);
    await this.store.delete(layout.machine(id));
  }

  /**
   * Claims `name` for the machine `id` by a conditional create (the store never overwrites): true
   * when the claim is that machine's, made now or before (a retry after a lost reply).
   */
  private async claimName(name: string, id: MachineId): Promise<boolean> {
    return putOwn(this.store, layout.machineName(name), Buffer.from(id, 'utf8'));
  }

  /**
   * The error for a name whose claim names a machine the vault has no record of (removed from the
   * storage by hand: the record is written before the claim, and a registration never removes a
   * claim), or null. Such a claim is not taken over: two registrations could each take it.
   */
  private async orphanClaim(name: string): Promise<AzbkError | null> {
    const holder = (await this.store.get(layout.machineName(name)))?.toString('utf8');
    if (holder === undefined || !isHex32(holder) || (await this.machineRecord(holder as MachineId)) !== null) return null;
    return new AzbkError('AZBK_MACHINE_NAME_TAKEN', `The name ${name} is held by machine ${holder}, whose record is no longer in the vault (removed from its storage by hand?).`, {
      hint: `Register under another --machine-name, or have the vault's owner remove ${layout.machineName(name)} from its storage.`,
    });
  }

  async session(machineId: MachineId, secret: string): Promise<VaultSession> {
    const denied = () => new AzbkError('AZBK_CREDENTIALS_INVALID', 'The vault does not recognise this machine.', {
      hint: 'Register the machine again with a fresh credentials file: azbk register --reregister.',
    });
    if (!isHex32(machineId)) throw denied();
    const data = await this.machineRecord(machineId);
    if (data === null) {
      await this.present(); // an empty folder where the vault was knows no machine: not this one's fault
      throw denied();
    }
    const rec = parseRecord(data, 'machine record');
    const given = Buffer.from(hashSecret(Buffer.from(secret, 'base64')), 'hex');
    const stored = Buffer.from(String(rec.secretHash), 'hex');
    if (given.length !== stored.length || !timingSafeEqual(given, stored)) throw denied();
    return new Session(this, this.store, machineId, this.now);
  }
}

/** A registered machine's view of the vault: read anything encrypted, append, never delete. */
class Session implements VaultSession {
  constructor(
    private readonly vault: Vault,
    private readonly store: BlobStore,
    readonly machineId: MachineId,
    private readonly now: () => Date,
  ) {}

  config(): Promise<VaultConfig> {
    return this.vault.config();
  }

  listKeys(): Promise<unknown[]> {
    return this.vault.readKeys();
  }

  addKey(envelope: KeyEnvelope): Promise<void> {
    return this.vault.addKey(envelope);
  }

  async listMachines(): Promise<MachineInfo[]> {
    return (await this.vault.machines()).map(({ secretHash: _h, proofHash: _p, ...info }) => info);
  }

  async putPack(id: PackId, data: Uint8Array): Promise<void> {
    if (!isHex64(id)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    if (data.length > MAX_OBJECT) throw new AzbkError('AZBK_BAD_INPUT', 'The pack is too large.');
    if (packIdOf(data) !== id) {
      // Packs are content-addressed: other bytes under an existing pack's id are an overwrite.
      if ((await this.store.stat(layout.pack(id))) !== null) throw forbidden(`Pack ${id} already exists with other content.`);
      throw new AzbkError('AZBK_BAD_INPUT', 'The pack does not match its id.');
    }
    await this.vault.present(PRESENT_FOR_PACKS_MS);
    await this.store.put(layout.pack(id), data);
  }

  /**
   * A pack streamed into a store that writes objects in pieces: the vault hashes the bytes as they
   * pass, so the pack is named by what was written, as putPack's check ensures for a whole one.
   */
  startPack(): PackStream | null {
    const store = this.store;
    if (store.openWriter === undefined) return null;
    const sink = store.openWriter().then((w): PackSink => ({
      write: (data) => w.write(data),
      finish: async (id) => {
        await this.vault.present(PRESENT_FOR_PACKS_MS);
        await w.finish(layout.pack(id));
      },
      abort: () => w.abort(),
    }));
    return hashedPackStream(sink, MAX_OBJECT);
  }

  async readPack(id: PackId, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (!isHex64(id)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    const data = await this.store.get(layout.pack(id), into === undefined ? { offset, length } : { offset, length, into });
    if (data === null) {
      // Every pack of a vault moved or unmounted looks missing, and a pack found missing is
      // remembered as lost (a restore leaves its blobs out): not when the whole vault is gone.
      await this.vault.present();
      throw new AzbkError('AZBK_VAULT_CORRUPT', `Pack ${id} is missing from the vault.`);
    }
    if (data.length !== length) throw new AzbkError('AZBK_VAULT_CORRUPT', `Pack ${id} is shorter than its index says.`);
    return data;
  }

  async statPack(id: PackId): Promise<number | null> {
    if (!isHex64(id)) throw new AzbkError('AZBK_BAD_INPUT', 'A pack id is 64 hex digits.');
    const size = (await this.store.stat(layout.pack(id)))?.size ?? null;
    if (size === null) await this.vault.present(); // as readPack
    return size;
  }

  async listPacks(): Promise<PackId[]> {
    const out: PackId[] = [];
    for await (const key of this.store.list(layout.packsPrefix)) {
      const id = baseName(key) as PackId;
      if (isHex64(id) && key === layout.pack(id)) out.push(id);
    }
    return out.sort();
  }

  async putIndex(name: string, data: Uint8Array): Promise<void> {
    if (!INDEX_NAME.test(name)) throw new AzbkError('AZBK_BAD_INPUT', 'An index name is 64 hex digits.');
    if (data.length > MAX_OBJECT) throw new AzbkError('AZBK_BAD_INPUT', 'The index is too large.');
    await this.vault.present();
    await putOnce(this.store, layout.index(name), data, `Index ${name}`);
  }

  async listIndex(): Promise<string[]> {
    const out: string[] = [];
    for await (const key of this.store.list(layout.indexPrefix)) {
      const name = baseName(key);
      if (INDEX_NAME.test(name)) out.push(name);
    }
    return out.sort();
  }

  async readIndex(name: string): Promise<Buffer> {
    if (!INDEX_NAME.test(name)) throw new AzbkError('AZBK_BAD_INPUT', 'An index name is 64 hex digits.');
    const data = await this.store.get(layout.index(name));
    if (data === null) throw new AzbkError('AZBK_VAULT_CORRUPT', `Index ${name} is missing from the vault.`);
    return data;
  }

  async putPoint(p: NewPointData): Promise<NewPoint> {
    const packs = validPackList(p.packs);
    const newest = (await this.listPoints(this.machineId)).at(-1);
    await this.checkPacks(packs, newest);
    const point = await this.writePoint(p, packs, newest);
    // A prune pass running now may have marked one of them gone before it saw this point (it
    // looks again for new points before it deletes, so one of the two sees the other): the point
    // is taken back, and the agent stores that data again. So it is when the check itself fails:
    // a point stays only once it is known to need no pack being deleted.
    try {
      const gone = new Set(await gonePacks(this.store));
      const lost = packs.find((id) => gone.has(id));
      if (lost !== undefined) throw new AzbkError('AZBK_PACK_GONE', `Pack ${lost}, which the new recovery point needs, is being pruned.`);
    } catch (err) {
      await this.store.delete(layout.point(this.machineId, point.id)).catch(() => undefined);
      await this.store.delete(layout.pointOfJob(this.machineId, p.jobId)).catch(() => undefined);
      throw err;
    }
    await revive(this.store, packs).catch(() => 0);
    // The point is written whatever happens next; each runs again after a later point.
    const expired = await expirePoints(this.store, this.machineId, await this.listPoints(this.machineId), this.now()).catch(() => []);
    await this.dropFinishedCheckpoints(p.jobId, point.time).catch(() => undefined);
    // The day's prune may take long on a large vault: a server answers first (see Vault.runLater).
    const prune = () => dailyPrune(this.store, this.now());
    if (this.vault.runLater !== undefined) this.vault.runLater('daily prune', prune);
    else await prune().catch(() => null);
    return { ...point, expired };
  }

  listPrunedPacks(): Promise<PrunedPacks> {
    return prunedPacks(this.store);
  }

  /**
   * AZBK_PACK_GONE unless the vault holds every pack of `packs` that this machine's newest point
   * does not name (prune keeps those; a backup that changed little names few others).
   */
  private async checkPacks(packs: readonly PackId[], newest: PointInfo | undefined): Promise<void> {
    const data = newest === undefined ? null : await this.store.get(layout.point(this.machineId, newest.id));
    const known = new Set(data === null ? [] : (packsOfRecord(data) ?? []));
    const rest = packs.filter((id) => !known.has(id));
    const [missing] = await absentOf(rest, async (id) => (await this.store.stat(layout.pack(id)))?.size ?? null);
    if (missing !== undefined) throw new AzbkError('AZBK_PACK_GONE', `Pack ${missing}, which the new recovery point needs, is not in the vault.`);
  }

  /**
   * Deletes the checkpoints of job `jobId`, which wrote the point dated `time`, and of every other
   * job of this machine whose newest checkpoint is dated at or before it: a backup resumes only a
   * job with a checkpoint newer than the machine's newest point (findResumable). A job's
   * checkpoints go all together, since a resume reads them from the first.
   */
  private async dropFinishedCheckpoints(jobId: string, time: string): Promise<void> {
    const jobs = new Map<string, CheckpointInfo[]>();
    for (const c of await this.listCheckpoints()) jobs.set(c.jobId, [...(jobs.get(c.jobId) ?? []), c]);
    for (const [job, list] of jobs) {
      if (job !== jobId && list.some((c) => c.time > time)) continue;
      for (const c of list) {
        await this.store.delete(layout.checkpoint(this.machineId, c.name));
        await this.store.delete(layout.checkpointPacks(this.machineId, c.name));
      }
    }
  }

  async putPolicy(retention: Retention): Promise<void> {
    await this.vault.present();
    await writePolicy(this.store, this.machineId, retention, this.now());
  }

  async readRetention(machine: MachineId): Promise<RetentionState> {
    if (!isHex32(machine)) throw new AzbkError('AZBK_BAD_INPUT', 'Bad machine id.');
    return retentionState(this.store, machine, this.now());
  }

  /** Writes the point; `newest` is this machine's newest point before it, if any. */
  private async writePoint(p: NewPointData, packs: readonly PackId[], newest: PointInfo | undefined): Promise<PointInfo> {
    if (!isHex32(p.keyId) || !JOB_ID.test(p.jobId)) throw new AzbkError('AZBK_BAD_INPUT', 'Bad key or job id.');
    if (p.manifest.length > MAX_OBJECT) throw new AzbkError('AZBK_BAD_INPUT', 'The manifest is too large.');
    // A retry after a lost reply must not make a second point: one job writes one point, so when
    // the job has made one with the same manifest, that is the point asked for. Another point of
    // the same job: two copies of one registration (a cloned AZBK_HOME) both resumed the job, and
    // its agents count on one point per job (see point-history.ts).
    await this.vault.present();
    const sameJob = (made: string) =>
      new AzbkError('AZBK_FORBIDDEN', `Backup job ${p.jobId} of this machine made recovery point ${made} already: another copy of this machine's registration (a copied AZBK_HOME, a cloned system) resumed the same backup.`, {
        hint: 'Give each copy a machine of its own: in the copy, azbk register --vault-credentials FILE --reregister --machine-name NEW-NAME (with its passphrase), then back up again there.',
      });
    const claim = layout.pointOfJob(this.machineId, p.jobId);
    const claimed = (await this.store.get(claim))?.toString('utf8');
    // The job's point, or (points made before jobs claimed theirs) the newest, which stands for its job.
    const r = await this.pointOf(claimed ?? newest?.id);
    if (r !== null && r.jobId === p.jobId && r.keyId === p.keyId && r.manifest.equals(p.manifest)) return { id: r.id, machineId: r.machineId, time: r.time };
    if (r !== null && r.jobId === p.jobId) throw sameJob(r.id);
    // A claim whose point was taken back (see putPoint), or is damaged, blocks nothing.
    if (claimed !== undefined) await this.store.delete(claim);
    for (;;) {
      const time = this.now();
      const id = pointIdFor(time);
      const record = withPacks({ version: 1, id, machineId: this.machineId, time: time.toISOString(), keyId: p.keyId, jobId: p.jobId, manifest: Buffer.from(p.manifest).toString('base64') }, packs);
      const key = layout.point(this.machineId, id);
      const body = json(record);
      // 'exists' with our own bytes: the store retried a put whose reply was lost.
      if (await putOwn(this.store, key, body)) {
        // Two copies writing a point of one job at once: one claims the job, the other's point goes.
        const mine = Buffer.from(id, 'utf8');
        if ((await this.store.put(claim, mine)) === 'exists') {
          const winner = (await this.store.get(claim))?.toString('utf8');
          // Gone meanwhile (its point taken back): the job's point is this one.
          if (winner === undefined) await this.store.put(claim, mine);
          else if (winner !== id) {
            await this.store.delete(key);
            throw sameJob(winner.slice(0, 40));
          }
        }
        return { id, machineId: this.machineId, time: record.time };
      }
    }
  }

  /**
   * This machine's point `id`; null when there is none (or no such id), or it is damaged. A storage
   * that does not answer is not taken for a point not there: that error is thrown.
   */
  private async pointOf(id: string | undefined): Promise<PointRecord | null> {
    if (id === undefined || !POINT_ID.test(id)) return null;
    return this.readPoint(this.machineId, id as PointId).catch((err: unknown) => {
      if (isAzbkError(err, 'AZBK_POINT_NOT_FOUND') || isAzbkError(err, 'AZBK_VAULT_CORRUPT')) return null;
      throw err;
    });
  }

  async putCheckpoint(p: { jobId: string; seq: number; data: Uint8Array; packs?: readonly PackId[] }): Promise<CheckpointInfo> {
    if (!JOB_ID.test(p.jobId) || !Number.isInteger(p.seq) || p.seq < 1 || p.seq > MAX_CHECKPOINT_SEQ) {
      throw new AzbkError('AZBK_BAD_INPUT', 'Bad job id or checkpoint number.');
    }
    if (p.data.length > MAX_OBJECT) throw new AzbkError('AZBK_BAD_INPUT', 'The checkpoint is too large.');
    const packs = validPackList(p.packs ?? []);
    await this.vault.present();
    const stamp = pointIdFor(this.now()).slice(0, 19);
    const name = `${stamp}-${p.jobId}-${String(p.seq).padStart(6, '0')}`;
    // The packs the job stored since its last checkpoint, named first: prune keeps them until the
    // checkpoint goes, so a job that stops and resumes days later still finds them.
    if (packs.length > 0) await putOnce(this.store, layout.checkpointPacks(this.machineId, name), json(withPacks({ version: 1 }, packs)), `Checkpoint ${name}`);
    await putOnce(this.store, layout.checkpoint(this.machineId, name), p.data, `Checkpoint ${name}`);
    await revive(this.store, packs).catch(() => 0);
    return parseCheckpointName(name)!;
  }

  async listCheckpoints(): Promise<CheckpointInfo[]> {
    const out: CheckpointInfo[] = [];
    for await (const key of this.store.list(layout.checkpointsPrefix(this.machineId))) {
      const info = parseCheckpointName(baseName(key));
      if (info !== null) out.push(info);
    }
    return out.sort((a, b) => byText(a.name, b.name));
  }

  async readCheckpoint(name: string): Promise<Buffer> {
    if (parseCheckpointName(name) === null) throw new AzbkError('AZBK_BAD_INPUT', 'Bad checkpoint name.');
    const data = await this.store.get(layout.checkpoint(this.machineId, name));
    if (data === null) throw new AzbkError('AZBK_VAULT_CORRUPT', `Checkpoint ${name} is missing.`);
    return data;
  }

  async listPoints(machine: MachineId): Promise<PointInfo[]> {
    if (!isHex32(machine)) throw new AzbkError('AZBK_BAD_INPUT', 'Bad machine id.');
    const out: PointInfo[] = [];
    for await (const key of this.store.list(layout.pointsPrefix(machine))) {
      const id = baseName(key);
      if (POINT_ID.test(id)) out.push({ id: id as PointId, machineId: machine, time: timeOfPointId(id) });
    }
    return out.sort((a, b) => byText(a.id, b.id));
  }

  async readPoint(machine: MachineId, id: PointId): Promise<PointRecord> {
    if (!isHex32(machine) || !POINT_ID.test(id)) throw new AzbkError('AZBK_BAD_INPUT', 'Bad point id.');
    const data = await this.store.get(layout.point(machine, id));
    if (data === null) throw new AzbkError('AZBK_POINT_NOT_FOUND', `Recovery point ${id} does not exist.`);
    const r = parseRecord(data, `point ${id}`);
    if (r.id !== id || r.machineId !== machine || !isHex32(r.keyId) || typeof r.jobId !== 'string' || typeof r.manifest !== 'string' || typeof r.time !== 'string') {
      throw new AzbkError('AZBK_VAULT_CORRUPT', `Recovery point ${id} is damaged.`);
    }
    return { id, machineId: machine, time: r.time, keyId: r.keyId as KeyId, jobId: r.jobId, manifest: Buffer.from(r.manifest, 'base64') };
  }
}

/** A point's pack list, sorted and each once; AZBK_BAD_INPUT when it is not one. */
function validPackList(packs: unknown): PackId[] {
  if (!Array.isArray(packs) || packs.length > MAX_POINT_PACKS || !packs.every(isHex64)) {
    throw new AzbkError('AZBK_BAD_INPUT', `A recovery point names up to ${MAX_POINT_PACKS} packs, each by 64 hex digits.`);
  }
  return [...new Set(packs as PackId[])].sort();
}

/** Parses a checkpoint object name: <vault time>-<job id>-<seq>. */
export function parseCheckpointName(name: string): CheckpointInfo | null {
  const m = CHECKPOINT_NAME.exec(name);
  if (m === null) return null;
  return { name, time: timeOfPointId(m[1]!), jobId: m[2]!, seq: Number(m[3]) };
}


/** This machine's OS, as recorded at registration. */
export function osName(): string {
  return `${os.platform()}-${os.arch()}`;
}
