/** --limit-upload / --limit-download, shared by the commands that move data, and how a rate option is read. */
import type { Command } from 'commander';
import type { AgentContext } from '../agent/context.js';
import { loadPolicy } from '../agent/policy.js';
import { policyRate, throttleSession, type RateSource } from '../agent/throttle.js';
import { parseRate } from '../core/bandwidth.js';
import { formatBytes } from '../core/size.js';
import { AzbkError } from '../shared/errors.js';

export interface LimitOpts {
  limitUpload?: string;
  limitDownload?: string;
}

/**
 * The lowest limit a rate option takes (the MARS agent's is 512 kbit/s): the two packs of 16 MiB a
 * backup uploads at once then take under 9 minutes, within the quarter of an hour a vault service
 * gives one request. (A rate of 1 meant as 1M made a backup run for days, its Ctrl-C waiting on
 * the last uploads.)
 */
export const MIN_RATE = 64 * 1024;

/** Parses a bandwidth option: a rate such as 512K or 10M (bytes per second, at least MIN_RATE); 0 means no limit. AZBK_USAGE for anything else. */
export function parseRateOption(s: string, flag: string): number | null {
  const n = parseRate(s);
  if (n === null) throw new AzbkError('AZBK_USAGE', `${flag} must be a rate such as 512K or 10M (bytes per second; 0 for no limit), not ${s}.`);
  if (n > 0 && n < MIN_RATE) throw new AzbkError('AZBK_USAGE', `${flag} ${s} is ${formatBytes(n)}/s: a limit is at least 64K (0 for no limit).`, { hint: 'A rate counts bytes per second: 1M is 1 MiB/s.' });
  return n === 0 ? null : n;
}

/** Adds the two options to a command, or only --limit-download to one that uploads nothing. */
export function limitOptions(cmd: Command, opts: { upload: boolean } = { upload: true }): Command {
  if (opts.upload) cmd.option('--limit-upload <rate>', 'upload at most this many bytes per second, e.g. 2M (default: the policy\'s bandwidth)');
  return cmd.option('--limit-download <rate>', 'download at most this many bytes per second (default: the policy\'s bandwidth)');
}

/** Refuses a malformed limit (AZBK_USAGE) before the job opens the vault or counts as one. */
export function checkLimits(o: LimitOpts): void {
  if (o.limitUpload !== undefined) parseRateOption(o.limitUpload, '--limit-upload');
  if (o.limitDownload !== undefined) parseRateOption(o.limitDownload, '--limit-download');
}

/**
 * The context with its session throttled by the options, or else by the policy's bandwidth;
 * `stopping`: see throttleSession.
 */
export async function withLimits(ctx: AgentContext, o: LimitOpts, stopping?: AbortSignal): Promise<AgentContext> {
  const fromPolicy = policyRate((await loadPolicy(ctx.paths)).bandwidth);
  const fixed = (s: string | undefined, flag: string): RateSource => {
    if (s === undefined) return fromPolicy;
    const n = parseRateOption(s, flag);
    return () => n;
  };
  const upload = fixed(o.limitUpload, '--limit-upload');
  const download = fixed(o.limitDownload, '--limit-download');
  return { ...ctx, session: throttleSession(ctx.session, { upload, download }, stopping) };
}
