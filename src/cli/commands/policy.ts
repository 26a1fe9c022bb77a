/** azbk policy: what `azbk backup --now` backs up when it names nothing, and bandwidth limits. */
import type { Command } from 'commander';
import { parseHours, parseRate, type BandwidthPolicy } from '../../core/bandwidth.js';
import { parseDays } from '../../core/week.js';
import { loadPolicy, updatePolicy, type Policy } from '../../agent/policy.js';
import { AzbkError } from '../../shared/errors.js';
import { formatBytes } from '../output.js';
import { action } from '../run.js';

interface SetOpts {
  include?: string[];
  workHours?: string;
  workDays?: string;
  workBandwidth?: string;
  offBandwidth?: string;
  json?: boolean;
}

function usage(message: string): AzbkError {
  return new AzbkError('AZBK_USAGE', message);
}

/** Parses a bandwidth option: a rate such as 512K or 10M (bytes per second); 0 means no limit. */
export function parseRateOption(s: string, flag: string): number | null {
  const n = parseRate(s);
  if (n === null) throw usage(`${flag} must be a rate such as 512K or 10M (bytes per second; 0 for no limit), not ${s}.`);
  return n === 0 ? null : n;
}

function bandwidthFrom(o: SetOpts, old: BandwidthPolicy | undefined): BandwidthPolicy | undefined {
  if (o.workHours === undefined && o.workDays === undefined && o.workBandwidth === undefined && o.offBandwidth === undefined) return undefined;
  const base: BandwidthPolicy = old ?? { workDays: [1, 2, 3, 4, 5], workStart: 9 * 60, workEnd: 17 * 60, work: null, off: null };
  const hours = o.workHours === undefined ? { start: base.workStart, end: base.workEnd } : parseHours(o.workHours);
  if (hours === null) throw usage(`--work-hours must look like 09:00-17:00, not ${o.workHours}.`);
  const days = o.workDays === undefined ? [...base.workDays] : parseDays(o.workDays);
  if (days === null) throw usage(`--work-days must look like mon-fri or mon,wed,fri, not ${o.workDays}.`);
  return {
    workDays: days,
    workStart: hours.start,
    workEnd: hours.end,
    work: o.workBandwidth === undefined ? base.work : parseRateOption(o.workBandwidth, '--work-bandwidth'),
    off: o.offBandwidth === undefined ? base.off : parseRateOption(o.offBandwidth, '--off-bandwidth'),
  };
}

const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
const rateText = (r: number | null) => (r === null ? 'unlimited' : `${formatBytes(r)}/s`);

function describe(p: Policy): string[] {
  const lines = [p.include.length === 0 ? 'Include: (nothing yet)' : `Include: ${p.include.join(', ')}`];
  const b = p.bandwidth;
  if (b !== undefined) {
    const days = b.workDays.map((d) => ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][d]).join(',');
    lines.push(`Bandwidth: ${rateText(b.work)} during work hours (${days} ${hhmm(b.workStart)}-${hhmm(b.workEnd)}), ${rateText(b.off)} otherwise`);
  }
  return lines;
}

export function policyCommand(program: Command): void {
  const policy = program.command('policy').description("show or set this machine's backup policy");
  policy
    .command('set')
    .description('set what to back up and the bandwidth limits; options not given keep their value')
    .option('--include <path...>', 'files or folders to back up')
    .option('--work-hours <from-to>', 'work hours, e.g. 09:00-17:00 (local time)')
    .option('--work-days <days>', 'work days, e.g. mon-fri')
    .option('--work-bandwidth <rate>', 'limit during work hours, e.g. 1M (bytes/s; 0 = none)')
    .option('--off-bandwidth <rate>', 'limit outside work hours (bytes/s; 0 = none)')
    .option('--json', 'print the result as JSON')
    .action(
      action('policy set', async ({ paths, out }, o: SetOpts) => {
        const old = await loadPolicy(paths);
        const bandwidth = bandwidthFrom(o, old.bandwidth);
        if (o.include === undefined && bandwidth === undefined) throw usage('Nothing to set: give --include or a bandwidth option.');
        const p = await updatePolicy(paths, { ...(o.include ? { include: o.include } : {}), ...(bandwidth ? { bandwidth } : {}) });
        for (const line of describe(p)) out.line(line);
        out.result(p);
      }),
    );
  policy
    .command('show')
    .description('show the policy')
    .option('--json', 'print the result as JSON')
    .action(
      action('policy show', async ({ paths, out }) => {
        const p = await loadPolicy(paths);
        for (const line of describe(p)) out.line(line);
        out.result(p);
      }),
    );
}
