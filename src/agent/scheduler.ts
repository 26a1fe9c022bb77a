/**
 * Puts the schedule of `azbk backup --now` where the system runs scheduled jobs: the user's
 * crontab (Linux, macOS) or Task Scheduler (Windows). Each AZBK_HOME has entries of its own,
 * marked with a tag made from its path, so that setting a schedule again replaces them and the
 * user's other entries stay as they were. The jobs run as the user who set them.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { catchUpMinute, cronCatchUp, cronTimes, MAX_RUNS_PER_DAY, type Schedule } from '../core/schedule.js';
import { dayNames, formatClock } from '../core/week.js';
import { AzbkError } from '../shared/errors.js';
import { writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';
import type { Policy } from './policy.js';

/** What a scheduled job runs: this Node.js, this azbk, with this AZBK_HOME, its output to `log`. */
export interface ScheduledCommand {
  readonly node: string;
  readonly script: string;
  readonly home: string;
  readonly log: string;
}

/** The command that runs this azbk with `paths`' AZBK_HOME. */
export function scheduledCommand(paths: HomePaths): ScheduledCommand {
  return { node: process.execPath, script: path.resolve(process.argv[1] ?? ''), home: paths.home, log: path.join(paths.logs, 'scheduled.log') };
}

/**
 * Whether a scheduled job can read secrets from the OS keychain. Cron runs jobs outside the user's
 * session, where neither the Secret Service nor the macOS login keychain answers; Task Scheduler
 * runs them as the user, logged on, where the Credential Manager does.
 */
export const KEYCHAIN_REACHES_SCHEDULED_JOBS = process.platform === 'win32';

/** Whether `policy`'s schedule needs the secrets in the file: it has one, and its jobs cannot reach a keychain. */
export function scheduleNeedsSecretsFile(policy: Policy): boolean {
  return !KEYCHAIN_REACHES_SCHEDULED_JOBS && policy.schedule !== undefined;
}

/**
 * The tag of one AZBK_HOME's entries, from the folder it really is: the same home named through a
 * link (or another spelling) has one set of entries, which setting the schedule through either
 * name replaces, and `off` removes.
 */
export function scheduleTag(home: string): string {
  return tagOf(realHome(home));
}

/**
 * The tags entries of `home` may have: its own (see scheduleTag), and the one of the name it is
 * given by when that differs (entries made before tags came from the real folder).
 */
function scheduleTags(home: string): string[] {
  return [...new Set([scheduleTag(home), tagOf(path.resolve(home))])];
}

const tagOf = (home: string) => createHash('sha256').update(home).digest('hex').slice(0, 12);

/** The folder `home` really is; as given when it cannot be looked at (not made yet). */
function realHome(home: string): string {
  try {
    return fs.realpathSync.native(home);
  } catch {
    return path.resolve(home);
  }
}

const failed = (message: string, cause?: unknown, hint?: string) =>
  new AzbkError('AZBK_SCHEDULER_FAILED', message, { ...(cause === undefined ? {} : { cause }), ...(hint === undefined ? {} : { hint }) });

function checkPaths(cmd: ScheduledCommand): void {
  for (const p of [cmd.node, cmd.script, cmd.home, cmd.log]) {
    // A control character would end or split the line; on POSIX a backslash before a % cannot be
    // written so that cron keeps it.
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(p) || (process.platform !== 'win32' && p.includes('\\'))) {
      throw new AzbkError('AZBK_BAD_INPUT', `A path with a control character${process.platform === 'win32' ? '' : ' or a backslash'} cannot go into a schedule: ${JSON.stringify(p)}.`, {
        hint: 'Use an AZBK_HOME and an azbk install whose paths have none.',
      });
    }
  }
}

// ---- cron -------------------------------------------------------------------------------------

/** A word for sh, in single quotes; cron reads an unescaped % as a newline, hence \%. */
const shellWord = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`.replace(/%/g, '\\%');

const BEGIN = (tag: string) => `# azbk ${tag} begin: scheduled backups of one AZBK_HOME, set by azbk policy set --schedule`;
const END = (tag: string) => `# azbk ${tag} end`;

/** The crontab lines of `schedule` (none for null), between their markers. */
export function cronBlock(schedule: Schedule | null, given: ScheduledCommand): string[] {
  if (schedule === null) return [];
  // AZBK_HOME as the folder it really is: set through any name of it, the lines are the same.
  const home = realHome(given.home);
  const cmd = { ...given, home, log: path.join(home, path.relative(given.home, given.log)) };
  checkPaths(cmd);
  const tag = scheduleTag(cmd.home);
  // The log's folder is made first (owner-only): without it the shell could not open the log, and
  // azbk would never start, nor say why. The log is owner-only too (cron's umask is 022).
  const logs = shellWord(path.dirname(cmd.log));
  const run = (extra: string) => `umask 077; mkdir -p -m 700 ${logs} 2>/dev/null; AZBK_HOME=${shellWord(cmd.home)} ${shellWord(cmd.node)} ${shellWord(cmd.script)} backup --now${extra} >>${shellWord(cmd.log)} 2>&1`;
  // The times of day, then the hourly check that catches up a run missed (the machine was off).
  return [BEGIN(tag), ...cronTimes(schedule).map((t) => `${t} ${run('')}`), `${cronCatchUp(schedule)} ${run(' --catch-up')}`, END(tag)];
}

/** `lines` as the latin1 text the crontab is handled in: their UTF-8 bytes, one character each. */
function asBytes(lines: readonly string[]): string[] {
  return lines.map((l) => Buffer.from(l, 'utf8').toString('latin1'));
}

/**
 * The spans [begin, end] of `tag`'s blocks in `lines`. A begin marker without its end, or an end
 * without its begin, is refused: what lies around it cannot be told apart from the user's lines.
 */
function blocks(lines: readonly string[], tag: string): [number, number][] {
  const unpaired = (found: 'begin' | 'end') =>
    failed(`The crontab has an azbk ${found} marker for this AZBK_HOME (${tag}) without its ${found === 'begin' ? 'end' : 'begin'}.`, undefined, 'Remove the azbk lines for it with crontab -e, then set the schedule again.');
  const out: [number, number][] = [];
  let open = -1;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === BEGIN(tag)) {
      if (open >= 0) throw unpaired('begin');
      open = i;
    } else if (lines[i] === END(tag)) {
      if (open < 0) throw unpaired('end');
      out.push([open, i]);
      open = -1;
    }
  }
  if (open >= 0) throw unpaired('begin');
  return out;
}

const splitLines = (crontab: string) => {
  const lines = crontab.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
};

/**
 * `crontab` with the blocks of `tag` replaced by `block` (removed when it is empty), which goes at
 * the end. Every other line is kept as it was.
 */
export function replaceCronBlock(crontab: string, tag: string, block: readonly string[]): string {
  const lines = splitLines(crontab);
  const spans = blocks(lines, tag);
  const kept = lines.filter((_, i) => !spans.some(([b, e]) => i >= b && i <= e));
  const out = [...kept, ...block];
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

/** The lines of `tag`'s blocks in `crontab`, markers left out; empty when there is none. */
export function cronEntries(crontab: string, tag: string): string[] {
  const lines = splitLines(crontab);
  return blocks(lines, tag).flatMap(([b, e]) => lines.slice(b + 1, e));
}

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a program (no shell) with `input` on stdin; rejects only when it cannot be started or takes
 * over 30 s. Its output and `input` are read and written as latin1, one character per byte, so
 * that a crontab goes back byte for byte whatever its encoding.
 */
function run(program: string, args: readonly string[], input?: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(failed(`${program} could not be run: ${e.message}`, e));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('latin1'), stderr: Buffer.concat(err).toString('utf8').trim() });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(Buffer.from(input ?? '', 'latin1'));
  });
}

/** What a program that failed said: the first line of its stderr, or its exit code. */
const said = (r: Ran) => r.stderr.split('\n')[0] || `exit ${r.code}`;

/** The user's crontab; empty when there is none. */
async function readCrontab(): Promise<string> {
  const r = await run('crontab', ['-l']);
  if (r.code === 0) return r.stdout;
  if (/no crontab/i.test(r.stderr)) return '';
  throw failed(`crontab -l failed: ${said(r)}`);
}

/**
 * Reads the crontab and returns what writes it with `schedule` (nothing is changed until then).
 * That reads it again, so that a change made meanwhile (the user's, or another AZBK_HOME's) is
 * kept.
 */
async function planCron(schedule: Schedule | null, cmd: ScheduledCommand): Promise<() => Promise<void>> {
  const block = asBytes(cronBlock(schedule, cmd));
  // This home's block in place of its own, and none under another name of it.
  const [tag, ...others] = scheduleTags(cmd.home);
  const replaced = (crontab: string) => others.reduce((text, other) => replaceCronBlock(text, other, []), replaceCronBlock(crontab, tag!, block));
  replaced(await readCrontab());
  return async () => {
    const old = await readCrontab();
    const next = replaced(old);
    if (next === old) return;
    const r = await run('crontab', ['-'], next);
    if (r.code !== 0) throw failed(`crontab could not be written: ${said(r)}`);
  };
}

// ---- Task Scheduler -----------------------------------------------------------------------------

/** The name of `tag`'s n-th task (one per time of day). */
export const taskName = (tag: string, n: number) => `azbk\\backup-${tag}-${n}`;

/** The name of `tag`'s hourly task that catches up a missed run. */
export const catchUpTaskName = (tag: string) => `azbk\\backup-${tag}-catch-up`;

/** The schtasks arguments that create the hourly catch-up task (see cronCatchUp), running `script`. */
export function schtasksCatchUp(schedule: Schedule, tag: string, script: string): string[] {
  const minute = catchUpMinute(schedule);
  return ['/Create', '/F', '/TN', catchUpTaskName(tag), '/SC', 'HOURLY', '/ST', formatClock(minute), '/TR', `"${script}" --catch-up`];
}

/** The schtasks arguments that create the task of time `n` of `schedule`, running `script`. */
export function schtasksCreate(schedule: Schedule, n: number, tag: string, script: string): string[] {
  const t = schedule.times[n]!;
  return ['/Create', '/F', '/TN', taskName(tag, n + 1), '/SC', 'WEEKLY', '/D', dayNames(schedule.days).toUpperCase(), '/ST', formatClock(t), '/TR', `"${script}"`];
}

/** A batch file for Task Scheduler: its /TR holds at most 261 characters, a path fits. */
function batchFile(cmd: ScheduledCommand): string {
  const q = (s: string) => `"${s.replace(/%/g, '%%')}"`;
  // UTF-8 text: cmd reads it so only after chcp 65001.
  // %* passes on what the task adds (--catch-up for the hourly one).
  return ['@echo off', 'chcp 65001 >nul', `set "AZBK_HOME=${cmd.home.replace(/%/g, '%%')}"`, `${q(cmd.node)} ${q(cmd.script)} backup --now %* >>${q(cmd.log)} 2>&1`, ''].join('\r\n');
}

async function installTasks(schedule: Schedule | null, cmd: ScheduledCommand): Promise<void> {
  const tags = scheduleTags(cmd.home);
  const tag = tags[0]!;
  const script = path.join(cmd.home, 'scheduled-backup.cmd');
  if (schedule !== null) await writeFileAtomic(script, batchFile(cmd), { mode: 0o600 });
  for (const name of tags.flatMap((t) => [...Array.from({ length: MAX_RUNS_PER_DAY }, (_, i) => taskName(t, i + 1)), catchUpTaskName(t)])) {
    // Only a task that exists is deleted, and that must succeed.
    if ((await run('schtasks', ['/Query', '/TN', name])).code !== 0) continue;
    const r = await run('schtasks', ['/Delete', '/F', '/TN', name]);
    if (r.code !== 0) throw failed(`schtasks could not delete the task ${name}: ${said(r)}`);
  }
  if (schedule === null) return;
  const made: string[] = [];
  for (const args of [...schedule.times.map((_, n) => schtasksCreate(schedule, n, tag, script)), schtasksCatchUp(schedule, tag, script)]) {
    const r = await run('schtasks', args);
    if (r.code !== 0) {
      // None of it stays: the policy then says no schedule, and so does Task Scheduler.
      for (const name of made) await run('schtasks', ['/Delete', '/F', '/TN', name]);
      throw failed(`schtasks could not create the task (the earlier schedule is removed): ${said(r)}`);
    }
    made.push(args[3]!);
  }
}

// ---- either -------------------------------------------------------------------------------------

/**
 * Checks that `schedule` can be installed for `cmd`'s AZBK_HOME (its paths; on POSIX, that the
 * crontab can be read and its azbk markers are whole) and returns what installs it, replacing the
 * earlier one; null removes it. Nothing changes until the returned function is called.
 */
export async function planSchedule(schedule: Schedule | null, cmd: ScheduledCommand): Promise<() => Promise<void>> {
  if (schedule !== null) checkPaths(cmd);
  if (process.platform === 'win32') return () => installTasks(schedule, cmd);
  return planCron(schedule, cmd);
}

/**
 * Whether the crontab holds `schedule` for `cmd`'s AZBK_HOME as `planSchedule` would write it:
 * 'same', 'other' (other lines: other times, or another Node.js or azbk), 'none' (no lines), or
 * null on Windows, where it is not looked at. Throws when the crontab cannot be read or its azbk
 * markers are not whole.
 */
export async function installedSchedule(schedule: Schedule | null, cmd: ScheduledCommand): Promise<'same' | 'other' | 'none' | null> {
  if (process.platform === 'win32') return null;
  const crontab = await readCrontab();
  const entries = scheduleTags(cmd.home).flatMap((tag) => cronEntries(crontab, tag));
  if (entries.length === 0) return 'none';
  const expected = schedule === null ? [] : asBytes(cronBlock(schedule, cmd)).slice(1, -1);
  return entries.length === expected.length && entries.every((e, i) => e === expected[i]) ? 'same' : 'other';
}
