/**
 * Puts the schedule of `azbk backup --now` where the system runs scheduled jobs: the user's
 * crontab (Linux, macOS) or Task Scheduler (Windows). Each AZBK_HOME has entries of its own,
 * marked with a tag made from its path, so that setting a schedule again replaces them and the
 * user's other entries stay as they were. The jobs run as the user who set them.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { cronTimes, type Schedule } from '../core/schedule.js';
import { formatClock } from '../core/week.js';
import { AzbkError } from '../shared/errors.js';
import { writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';

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

/** The tag of one AZBK_HOME's entries. */
export function scheduleTag(home: string): string {
  return createHash('sha256').update(home).digest('hex').slice(0, 12);
}

const failed = (message: string, cause?: unknown) => new AzbkError('AZBK_SCHEDULER_FAILED', message, cause === undefined ? undefined : { cause });

function checkPaths(cmd: ScheduledCommand): void {
  for (const p of [cmd.node, cmd.script, cmd.home, cmd.log]) {
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(p)) throw new AzbkError('AZBK_BAD_INPUT', 'A path with a control character cannot go into a schedule.', { hint: 'Use an AZBK_HOME and an azbk install whose paths have none.' });
  }
}

// ---- cron -------------------------------------------------------------------------------------

/** A word for sh, in single quotes; cron reads an unescaped % as a newline, hence \%. */
const shellWord = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`.replace(/%/g, '\\%');

const BEGIN = (tag: string) => `# azbk ${tag} begin: scheduled backups of one AZBK_HOME, set by azbk policy set --schedule`;
const END = (tag: string) => `# azbk ${tag} end`;

/** The crontab lines of `schedule` (none for null), between their markers. */
export function cronBlock(schedule: Schedule | null, cmd: ScheduledCommand): string[] {
  if (schedule === null) return [];
  checkPaths(cmd);
  const tag = scheduleTag(cmd.home);
  const run = `AZBK_HOME=${shellWord(cmd.home)} ${shellWord(cmd.node)} ${shellWord(cmd.script)} backup --now >>${shellWord(cmd.log)} 2>&1`;
  return [BEGIN(tag), ...cronTimes(schedule).map((t) => `${t} ${run}`), END(tag)];
}

/**
 * `crontab` with the block of `tag` replaced by `block` (removed when it is empty); a new block
 * goes at the end. Every other line is kept as it was.
 */
export function replaceCronBlock(crontab: string, tag: string, block: readonly string[]): string {
  const lines = crontab.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const begin = lines.indexOf(BEGIN(tag));
  const end = begin < 0 ? -1 : lines.indexOf(END(tag), begin);
  const kept = begin < 0 || end < 0 ? lines : [...lines.slice(0, begin), ...lines.slice(end + 1)];
  const out = [...kept, ...block];
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

/** The lines of `tag`'s block in `crontab`, markers left out; empty when there is none. */
export function cronEntries(crontab: string, tag: string): string[] {
  const lines = crontab.split('\n');
  const begin = lines.indexOf(BEGIN(tag));
  const end = begin < 0 ? -1 : lines.indexOf(END(tag), begin);
  return begin < 0 || end < 0 ? [] : lines.slice(begin + 1, end);
}

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program (no shell) with `input` on stdin; rejects only when it cannot be started or takes over 30 s. */
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
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8').trim() });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** The user's crontab; empty when there is none. */
async function readCrontab(): Promise<string> {
  const r = await run('crontab', ['-l']);
  if (r.code === 0) return r.stdout;
  if (/no crontab/i.test(r.stderr)) return '';
  throw failed(`crontab -l failed: ${r.stderr.split('\n')[0] || `exit ${r.code}`}`);
}

async function installCron(schedule: Schedule | null, cmd: ScheduledCommand): Promise<void> {
  const old = await readCrontab();
  const next = replaceCronBlock(old, scheduleTag(cmd.home), cronBlock(schedule, cmd));
  if (next === old) return;
  const r = await run('crontab', ['-'], next);
  if (r.code !== 0) throw failed(`crontab could not be written: ${r.stderr.split('\n')[0] || `exit ${r.code}`}`);
}

// ---- Task Scheduler -----------------------------------------------------------------------------

const SCHTASKS_DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/** The name of `tag`'s n-th task (one per time of day). */
export const taskName = (tag: string, n: number) => `azbk\\backup-${tag}-${n}`;

/** The schtasks arguments that create the task of time `n` of `schedule`, running `script`. */
export function schtasksCreate(schedule: Schedule, n: number, tag: string, script: string): string[] {
  const t = schedule.times[n]!;
  return ['/Create', '/F', '/TN', taskName(tag, n + 1), '/SC', 'WEEKLY', '/D', schedule.days.map((d) => SCHTASKS_DAYS[d]).join(','), '/ST', formatClock(t), '/TR', `"${script}"`];
}

/** A batch file for Task Scheduler: its /TR holds at most 261 characters, a path fits. */
function batchFile(cmd: ScheduledCommand): string {
  const q = (s: string) => `"${s.replace(/%/g, '%%')}"`;
  return ['@echo off', `set "AZBK_HOME=${cmd.home.replace(/%/g, '%%')}"`, `${q(cmd.node)} ${q(cmd.script)} backup --now >>${q(cmd.log)} 2>&1`, ''].join('\r\n');
}

async function installTasks(schedule: Schedule | null, cmd: ScheduledCommand): Promise<void> {
  checkPaths(cmd);
  const tag = scheduleTag(cmd.home);
  const script = path.join(cmd.home, 'scheduled-backup.cmd');
  if (schedule !== null) await writeFileAtomic(script, batchFile(cmd), { mode: 0o600 });
  for (let n = 1; n <= 3; n++) {
    // Removing a task that does not exist fails; that is the state wanted.
    await run('schtasks', ['/Delete', '/F', '/TN', taskName(tag, n)]);
  }
  for (let n = 0; n < (schedule?.times.length ?? 0); n++) {
    const r = await run('schtasks', schtasksCreate(schedule!, n, tag, script));
    if (r.code !== 0) throw failed(`schtasks could not create the task: ${r.stderr.split('\n')[0] || `exit ${r.code}`}`);
  }
}

// ---- either -------------------------------------------------------------------------------------

/** Installs `schedule` for `cmd`'s AZBK_HOME, replacing its earlier one; null removes it. */
export async function installSchedule(schedule: Schedule | null, cmd: ScheduledCommand): Promise<void> {
  if (process.platform === 'win32') await installTasks(schedule, cmd);
  else await installCron(schedule, cmd);
}

/** Where the schedule of `cmd`'s AZBK_HOME is installed, for `azbk policy show`; null when it is not. */
export async function installedSchedule(cmd: ScheduledCommand): Promise<string[] | null> {
  if (process.platform === 'win32') return null;
  const entries = cronEntries(await readCrontab(), scheduleTag(cmd.home));
  return entries.length === 0 ? null : entries;
}
