/**
 * Where azbk keeps its local state. Everything lives under AZBK_HOME, which defaults to the
 * platform's config folder: `$XDG_CONFIG_HOME/azbk` or `~/.config/azbk` on Linux,
 * `~/Library/Application Support/azbk` on macOS, `%LOCALAPPDATA%\azbk` on Windows. On Windows azbk
 * cannot check a folder's permissions (access lists, not modes): a folder in the user's own profile
 * is readable by that user alone (and the system's administrators) from the start, where one made
 * in ProgramData would let every user of the machine read the secrets.
 */
import os from 'node:os';
import path from 'node:path';

/** The AZBK_HOME folder for this process. */
export function azbkHome(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  const explicit = env.AZBK_HOME;
  if (explicit !== undefined && explicit !== '') return path.resolve(explicit);
  switch (platform) {
    case 'win32':
      return path.win32.join(env.LOCALAPPDATA !== undefined && path.win32.isAbsolute(env.LOCALAPPDATA) ? env.LOCALAPPDATA : path.win32.join(os.homedir(), 'AppData', 'Local'), 'azbk');
    case 'darwin':
      return path.join(os.homedir(), 'Library', 'Application Support', 'azbk');
    default:
      // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says: it would name a folder under whatever the current one is.
      return path.join(env.XDG_CONFIG_HOME !== undefined && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config'), 'azbk');
  }
}

/** The files and folders under AZBK_HOME. */
export function homePaths(home: string) {
  return {
    home,
    registration: path.join(home, 'registration.json'),
    secrets: path.join(home, 'secrets.json'),
    policy: path.join(home, 'policy.json'),
    lock: path.join(home, 'job.lock'),
    /** held while `policy set` changes the policy (and the schedule), so that two do not interleave */
    policyLock: path.join(home, 'policy.lock'),
    /** how far the running job got, for status (see agent/running.ts) */
    progress: path.join(home, 'progress.json'),
    jobs: path.join(home, 'jobs.jsonl'),
    logs: path.join(home, 'logs'),
    log: path.join(home, 'logs', 'azbk.log'),
    vaults: path.join(home, 'vaults'),
    /** packs on their way to a vault service, one file each while it is uploaded */
    spool: path.join(home, 'spool'),
    /** a mark per running restore, naming its temporary files (see restore-leftovers.ts) */
    restores: path.join(home, 'restores'),
  } as const;
}
export type HomePaths = ReturnType<typeof homePaths>;
