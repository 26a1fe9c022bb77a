/**
 * A Secret Service of the tests' own, the keychain of a Linux desktop: a private D-Bus session bus
 * and GNOME Keyring's secrets component on it, its login keyring unlocked, its files in a
 * temporary HOME. The bus activates nothing, so no other daemon answers in its place. `.ci/run`
 * installs dbus-daemon, gnome-keyring and secret-tool; elsewhere the tests that need them are
 * skipped when they are missing.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createTempDir } from './tmp.js';

const run = promisify(execFile);

const PROGRAMS = ['/usr/bin/dbus-daemon', '/usr/bin/dbus-send', '/usr/bin/gnome-keyring-daemon', '/usr/bin/secret-tool'];

/** Whether this machine has what a Secret Service of the tests' own needs (Linux only). */
export const HAS_SECRET_SERVICE = process.platform === 'linux' && PROGRAMS.every((p) => existsSync(p));

export interface SecretService {
  /** what a process needs in its environment to reach it */
  readonly env: { readonly DBUS_SESSION_BUS_ADDRESS: string };
  /** the secret of an item, read with secret-tool (not azbk), or null when there is none */
  lookup(service: string, account: string): Promise<string | null>;
  /** deletes an item with secret-tool, as a user might in the keychain's own program */
  clear(service: string, account: string): Promise<void>;
  stop(): Promise<void>;
}

async function firstLine(child: ChildProcess): Promise<string> {
  let text = '';
  for await (const chunk of child.stdout!) {
    text += String(chunk);
    const nl = text.indexOf('\n');
    if (nl >= 0) return text.slice(0, nl).trim();
  }
  throw new Error('dbus-daemon ended without printing its address');
}

export async function startSecretService(): Promise<SecretService> {
  const dir = await createTempDir('azbk-keyring-');
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children) c.kill('SIGKILL');
    await dir.cleanup();
  };
  try {
    const config = path.join(dir.path, 'bus.conf');
    await fs.writeFile(
      config,
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir=${dir.path}</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>\n`,
    );
    const bus = spawn('/usr/bin/dbus-daemon', [`--config-file=${config}`, '--nofork', '--print-address=1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(bus);
    const address = await firstLine(bus);
    const runtime = path.join(dir.path, 'run');
    await fs.mkdir(runtime, { mode: 0o700 });
    const env = { ...process.env, HOME: dir.path, XDG_RUNTIME_DIR: runtime, XDG_DATA_HOME: path.join(dir.path, 'data'), DBUS_SESSION_BUS_ADDRESS: address };
    // --unlock reads the login keyring's password from stdin (and makes the keyring with it).
    const keyring = spawn('/usr/bin/gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env, stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(keyring);
    keyring.stdin!.end('a password for the tests only');
    for (let i = 0; ; i++) {
      const { stdout } = await run('/usr/bin/dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.secrets'], { env });
      if (stdout.includes('boolean true')) break;
      if (i === 100 || keyring.exitCode !== null) throw new Error('gnome-keyring-daemon did not come up on the test bus');
      await sleep(50);
    }
    return {
      env: { DBUS_SESSION_BUS_ADDRESS: address },
      lookup: async (service, account) => {
        try {
          return (await run('/usr/bin/secret-tool', ['lookup', 'service', service, 'username', account], { env })).stdout;
        } catch {
          return null; // secret-tool exits 1 when nothing matches
        }
      },
      clear: async (service, account) => {
        await run('/usr/bin/secret-tool', ['clear', 'service', service, 'username', account], { env });
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
