/** Facts about other processes. */
import fs from 'node:fs';
import { errnoCode } from './files.js';

/**
 * True while process `pid` exists (also when it belongs to another user) and has not ended. A
 * process that ended but that its parent has not waited for yet (a zombie: a killed watcher whose
 * parent never reaps, as under a container's first process that does not) still has its pid and
 * its /proc entry: on Linux its state tells.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errnoCode(err) !== 'EPERM') return false;
  }
  return !ended(pid);
}

/** On Linux, whether /proc says `pid` has ended (zombie or dead); false where that cannot be read. */
function ended(pid: number): boolean {
  const state = procStat(pid)?.[0];
  return state === 'Z' || state === 'X';
}

/**
 * The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses),
 * from the state on; null where there is no such file (not Linux, or no such process).
 */
function procStat(pid: number): string[] | null {
  if (process.platform !== 'linux') return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * What tells process `pid` apart from a later one given the same pid: on Linux, the boot and the
 * time it started (from /proc); elsewhere null (only whether the pid is alive can be known).
 */
export function processIdentity(pid: number): string | null {
  // The 20th field after the command name is the start time.
  const start = procStat(pid)?.[19];
  if (start === undefined) return null;
  try {
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return `${boot}/${start}`;
  } catch {
    return null;
  }
}

/** True while the process that had `identity` (see processIdentity; null: any process with that pid) runs. */
export function sameProcessAlive(pid: number, identity: string | null): boolean {
  if (!processAlive(pid)) return false;
  return identity === null || processIdentity(pid) === identity;
}
