/** Finding machines and recovery points, and opening a point with the right keys. */
import type { PassphraseInput } from './passphrase.js';
import type { MachineId } from '../core/ids.js';
import type { VaultKeys } from '../core/keys.js';
import { isSafeName, type TreeNode } from '../core/tree.js';
import { AzbkError, isAzbkError } from '../shared/errors.js';
import type { MachineInfo, PointInfo, PointRecord } from '../vault/api.js';
import type { AgentContext } from './context.js';
import { displayPath } from './fspath.js';
import { openManifest, pointKeyId, type PointManifest } from './manifest.js';
import { unlockFamilies } from './unlock.js';
import { byText } from '../shared/text-order.js';

/** The machine named `name` (case-insensitive), or this machine when `name` is undefined. */
export async function findMachine(ctx: AgentContext, name: string | undefined): Promise<MachineInfo> {
  const machines = await ctx.session.listMachines();
  const wanted = (name ?? ctx.registration.machineName).toLowerCase();
  const m = name === undefined
    ? machines.find((x) => x.id === ctx.registration.machineId)
    : machines.find((x) => x.name.toLowerCase() === wanted);
  if (m === undefined) throw new AzbkError('AZBK_MACHINE_NOT_FOUND', `No machine named ${name ?? ctx.registration.machineName} is registered with the vault.`);
  return m;
}

/** Whether the date a time starts with (YYYY-MM-DD) is a day of the calendar: Date.parse takes 2026-11-31 as December 1st. */
function onCalendar(spec: string): boolean {
  const [y, m, d] = spec.slice(0, 10).split('-').map(Number) as [number, number, number];
  return m >= 1 && m <= 12 && d >= 1 && d <= new Date(Date.UTC(y, m, 0)).getUTCDate();
}

/**
 * Picks a point: 'latest', an exact point id, or an ISO time (the newest point at or before it).
 */
export function pickPoint(points: readonly PointInfo[], spec: string): PointInfo {
  const sorted = [...points].sort((a, b) => byText(a.id, b.id));
  let found: PointInfo | undefined;
  if (spec === 'latest') found = sorted.at(-1);
  else {
    found = sorted.find((p) => p.id === spec);
    if (found === undefined && /^\d{4}-\d{2}-\d{2}/.test(spec)) {
      const t = Date.parse(spec);
      if (!Number.isFinite(t) || !onCalendar(spec)) throw new AzbkError('AZBK_BAD_INPUT', `${spec} is not a valid time.`);
      found = sorted.filter((p) => Date.parse(p.time) <= t).at(-1);
    }
  }
  if (found === undefined) {
    throw new AzbkError('AZBK_POINT_NOT_FOUND', spec === 'latest' ? 'There are no recovery points yet.' : `No recovery point matches ${spec}.`);
  }
  return found;
}

/**
 * The keys that open `machine`'s points: this machine's own (any passphrase given is not needed),
 * or, for another machine, the ones `passphrase` unlocks (AZBK_WRONG_PASSPHRASE when it unlocks none).
 */
export async function keysFor(ctx: AgentContext, machine: MachineId, passphrase: PassphraseInput | undefined): Promise<VaultKeys[]> {
  if (machine === ctx.registration.machineId) return [ctx.keys];
  if (passphrase === undefined) {
    throw new AzbkError('AZBK_NO_PASSPHRASE', "Reading another machine's data needs its passphrase.", {
      hint: 'Give --passphrase-file FILE with the passphrase of the machine that made the backup.',
    });
  }
  const families = await unlockFamilies(await ctx.session.listKeys(), passphrase.readings);
  if (families.length === 0) throw new AzbkError('AZBK_WRONG_PASSPHRASE', 'The passphrase is wrong: it opens no key in this vault.');
  return families;
}

/**
 * Reads and opens a point with whichever of `keys` it was made with (the key families a
 * passphrase opens); AZBK_WRONG_PASSPHRASE when it was made with none of them, AZBK_VAULT_CORRUPT
 * naming the point (and the one before it among `listed`, to restore instead) when it is damaged.
 */
export async function openPoint(
  ctx: AgentContext,
  keys: VaultKeys | readonly VaultKeys[],
  machine: Pick<MachineInfo, 'id' | 'name'>,
  info: PointInfo,
  listed: readonly PointInfo[] = [],
): Promise<{ record: PointRecord; manifest: PointManifest; keys: VaultKeys }> {
  try {
    const record = await ctx.session.readPoint(info.machineId, info.id);
    const keyId = pointKeyId(record);
    const mine = (Array.isArray(keys) ? keys : [keys]).find((k: VaultKeys) => k.keyId === keyId);
    if (mine === undefined) {
      throw new AzbkError('AZBK_WRONG_PASSPHRASE', `The passphrase does not open recovery point ${info.id}.`);
    }
    return { record, manifest: openManifest(mine, record.jobId, record.manifest, machine), keys: mine };
  } catch (err) {
    if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT')) throw err;
    const before = listed.map((p) => p.id).filter((id) => id < info.id).sort(byText).at(-1);
    // (the vault's own word may name the point already)
    const what = err.message.startsWith(`Recovery point ${info.id} `) ? err.message : `Recovery point ${info.id} is damaged: ${err.message}`;
    throw new AzbkError('AZBK_VAULT_CORRUPT', what, {
      hint: `${before === undefined ? 'Choose another point' : `Give --point ${before}, the point before it, or another one`} (azbk points lists them); azbk verify tells what else is damaged.`,
      cause: err,
    });
  }
}

/**
 * The entry at the original absolute path `segs` in the point `pointId` with the manifest `m`
 * (`nodeAt` walks the point's listings from its root): AZBK_BAD_INPUT for a path no entry can have
 * (to `verb` it), AZBK_PATH_NOT_FOUND for one the point does not hold.
 */
export async function entryAt(
  pointId: string,
  m: PointManifest,
  segs: readonly string[],
  nodeAt: (segs: readonly string[]) => Promise<TreeNode | undefined>,
  verb: string,
): Promise<TreeNode> {
  if (segs.length === 0) {
    throw new AzbkError('AZBK_BAD_INPUT', `Cannot ${verb} /: it is the root above the folders the point holds, not one of them.`, {
      hint: 'Name a folder or file of the point, or no path at all for the whole point; azbk ls --point ID lists what it holds.',
    });
  }
  if (!segs.every(isSafeName)) throw new AzbkError('AZBK_BAD_INPUT', `Cannot ${verb} ${displayPath(segs)}.`);
  const node = await nodeAt(segs);
  if (node === undefined || !m.paths.some((p) => p.length <= segs.length && p.every((s, i) => s === segs[i]))) {
    throw new AzbkError('AZBK_PATH_NOT_FOUND', `${displayPath(segs)} is not in recovery point ${pointId}.`, {
      hint: 'Give the original absolute path of a file or folder in the point; azbk ls --point ID lists what it holds.',
    });
  }
  return node;
}

/** Of items at original paths, those not inside another one (an item given twice counts once, the first). */
export function outermost<T extends { readonly segs: readonly string[] }>(items: readonly T[]): T[] {
  const inside = (a: readonly string[], b: readonly string[]) => a.length >= b.length && b.every((s, i) => s === a[i]);
  return items.filter((s, i) => !items.some((o, j) => j !== i && inside(s.segs, o.segs) && (o.segs.length < s.segs.length || j < i)));
}
