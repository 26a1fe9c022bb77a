/** azbk points: lists the recovery points of this or another machine. */
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { openManifest, pointKeyId } from '../../agent/manifest.js';
import { fromSegments } from '../../agent/fspath.js';
import { findMachine } from '../../agent/points.js';
import { vaultRetention } from '../../agent/policy.js';
import { retainUnder, type KeptBy } from '../../core/retention.js';
import type { PointInfo, RetentionState } from '../../vault/api.js';
import { MAX_EXPIRED_PER_PASS } from '../../vault/retention.js';
import { ExitCode, isAzbkError } from '../../shared/errors.js';
import { counted, printable } from '../output.js';
import { formatBytes } from '../../core/size.js';
import { action, setExitCode } from '../run.js';

/**
 * Why each point stays under the vault's retention when the machine's next backup runs (every rule
 * of every policy in force that keeps it), or [] for one it expires; undefined when none is in
 * force or the vault does not say. Judged by the vault's clock, with the point that backup adds.
 */
function keptBy(points: readonly PointInfo[], state: RetentionState | null): Map<PointInfo, KeptBy[]> | undefined {
  if (state === null || state.inForce === null) return undefined;
  const now = new Date(state.now);
  const next = { time: state.now } as PointInfo;
  const all = [...points, next];
  const kept = retainUnder(all, (x) => x.time, state.inForce, now);
  return new Map(points.map((p) => [p, kept.get(p) ?? []]));
}

function retentionLine(state: RetentionState | null): string {
  if (state === null) return 'Retention: not known (this vault service does not say).';
  if (state.newest === null && state.inForce === null) return 'Retention: none set; the vault keeps every point.';
  if (state.inForce === null) return 'Retention: not in force yet (a policy that keeps fewer points takes effect 14 days after it is set); every point is kept.';
  return "Retention: in force; each point shows what keeps it at the machine's next backup.";
}

interface Opts {
  machine?: string;
  json?: boolean;
}

export function pointsCommand(program: Command): void {
  program
    .command('points')
    .description('list recovery points (oldest first)')
    .option('--machine <name>', 'another machine of the vault')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 listed, 2 no machine of that name, 3 some points could not be read (marked damaged,\nnamed on stderr), 10 vault unreachable, 13 credentials invalid.')
    .action(
      action('points', async ({ paths, out }, o: Opts) => {
        const ctx = await openAgent(paths);
        const machine = await findMachine(ctx, o.machine);
        const points = await ctx.session.listPoints(machine.id);
        // Not known from a vault service of an earlier version.
        const retention = await vaultRetention(ctx.session, machine.id);
        const reasons = keptBy(points, retention);
        let expiring = 0;
        const rows = [];
        for (const p of points) {
          // Details are encrypted; they are shown for points this machine's keys open.
          // A point made under another passphrase shows none; one that cannot be read is marked.
          let details: { paths?: string[]; files?: number; bytes?: number; damaged?: string } | undefined;
          try {
            const rec = await ctx.session.readPoint(p.machineId, p.id);
            if (pointKeyId(rec) === ctx.keys.keyId) {
              const m = openManifest(ctx.keys, rec.jobId, rec.manifest, machine);
              details = { paths: m.paths.map(fromSegments), files: m.stats.files, bytes: m.stats.bytes };
            }
          } catch (err) {
            // Gone since it was listed (expired by a backup of that machine): nothing to show.
            if (isAzbkError(err, 'AZBK_POINT_NOT_FOUND')) continue;
            if (!isAzbkError(err, 'AZBK_VAULT_CORRUPT')) throw err;
            details = { damaged: err.message };
          }
          const kept = reasons?.get(p);
          // A backup expires at most MAX_EXPIRED_PER_PASS points, oldest first; the rest go with later ones.
          const expires = kept?.length === 0 ? (++expiring <= MAX_EXPIRED_PER_PASS ? 'next' : 'later') : undefined;
          rows.push({ ...p, machineName: machine.name, ...details, ...(kept ? { keptBy: kept } : {}), ...(expires ? { expires } : {}) });
        }
        if (rows.length === 0) out.line(`No recovery points for ${machine.name} yet.`);
        else out.line(retentionLine(retention));
        for (const r of rows) {
          const extra = r.damaged !== undefined
            ? '  [damaged: cannot be read]'
            : r.files === undefined ? '' : `  ${counted(r.files, 'file')}, ${formatBytes(r.bytes ?? 0)}  ${printable((r.paths ?? []).join(', '))}`;
          const kept = r.keptBy === undefined ? '' : r.keptBy.length === 0 ? `  [expires with ${r.expires === 'next' ? 'the next backup' : 'a later backup'}]` : `  [kept: ${r.keptBy.join(', ')}]`;
          out.line(`${r.id}  ${r.time}${extra}${kept}`);
        }
        const damaged = rows.filter((r) => r.damaged !== undefined);
        if (damaged.length > 0) {
          out.warn(`${damaged.length} recovery point(s) cannot be read; they cannot be restored:`);
          for (const r of damaged) out.warn(`  ${r.id}: ${printable(r.damaged ?? '')}`);
          setExitCode(ExitCode.partial);
        }
        out.result({ machine: { id: machine.id, name: machine.name }, retention, points: rows });
      }),
    );
}
