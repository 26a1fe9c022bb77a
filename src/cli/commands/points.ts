/** azbk points: lists the recovery points of this or another machine. */
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { openManifest } from '../../agent/manifest.js';
import { fromSegments } from '../../agent/fspath.js';
import { findMachine } from '../../agent/points.js';
import { formatBytes } from '../output.js';
import { action } from '../run.js';

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
    .action(
      action('points', async ({ paths, out }, o: Opts) => {
        const ctx = await openAgent(paths);
        const machine = await findMachine(ctx, o.machine);
        const points = await ctx.session.listPoints(machine.id);
        const rows = [];
        for (const p of points) {
          // Details are encrypted; they are shown for points this machine's keys open.
          let details: { paths: string[]; files: number; bytes: number } | undefined;
          try {
            const rec = await ctx.session.readPoint(p.machineId, p.id);
            if (rec.keyId === ctx.keys.keyId) {
              const m = openManifest(ctx.keys, rec.jobId, rec.manifest);
              details = { paths: m.paths.map(fromSegments), files: m.stats.files, bytes: m.stats.bytes };
            }
          } catch {
            details = undefined;
          }
          rows.push({ ...p, machineName: machine.name, ...details });
        }
        if (rows.length === 0) out.line(`No recovery points for ${machine.name} yet.`);
        for (const r of rows) {
          const extra = r.files === undefined ? '' : `  ${r.files} files, ${formatBytes(r.bytes ?? 0)}  ${(r.paths ?? []).join(', ')}`;
          out.line(`${r.id}  ${r.time}${extra}`);
        }
        out.result({ machine: { id: machine.id, name: machine.name }, points: rows });
      }),
    );
}
