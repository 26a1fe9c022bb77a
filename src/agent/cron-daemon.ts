/**
 * Whether a cron daemon runs: crontab entries do nothing without one, and nothing else says so.
 * Only looked at on Linux, where a package manager may install cron without starting it (in a
 * container, say). A live process whose name is one of the daemons' counts; where other users'
 * processes are hidden (/proc mounted with hidepid), it cannot be told.
 */
import fs from 'node:fs/promises';

/** Names the usual daemons run under: Debian's cron, cronie and busybox (crond), fcron. */
const DAEMONS: ReadonlySet<string> = new Set(['cron', 'crond', 'fcron']);

/** True or false on Linux; null elsewhere, or where other users' processes cannot be seen. */
export async function cronDaemonRunning(proc = '/proc'): Promise<boolean | null> {
  if (process.platform !== 'linux') return null;
  let pids: string[];
  try {
    // init's name: a process of another user, hidden with the rest where it cannot be read.
    await fs.readFile(`${proc}/1/stat`);
    pids = (await fs.readdir(proc)).filter((name) => /^[1-9][0-9]*$/.test(name));
  } catch {
    return null;
  }
  for (const pid of pids) {
    // A process that ended meanwhile has nothing to read.
    const stat = await fs.readFile(`${proc}/${pid}/stat`, 'utf8').catch(() => '');
    if (isLiveDaemon(stat)) return true;
  }
  return false;
}

/**
 * Whether a /proc/PID/stat line ("PID (NAME) STATE ...") is a daemon's: its name one of theirs,
 * and not a process that has ended and waits for its parent to notice (a zombie) or is dead.
 */
function isLiveDaemon(stat: string): boolean {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return false;
  const state = stat.charAt(close + 2);
  return DAEMONS.has(stat.slice(open + 1, close)) && state !== 'Z' && state !== 'X' && state !== '';
}

/** What to tell a user whose schedule is in the crontab when no daemon runs; null when one does or it cannot be told. */
export async function cronDaemonNote(proc?: string): Promise<string | null> {
  if ((await cronDaemonRunning(proc)) !== false) return null;
  return 'No cron daemon is running (no cron or crond process): scheduled backups will not run until one is started (systemctl start cron, or service cron start).';
}
