/**
 * Secrets in the OS keychain, through the CLI, against a real Secret Service (GNOME Keyring on a
 * private D-Bus bus, helpers/secret-service.ts): register keeps them there when one works, jobs
 * read them from there, a process without the keychain is told so, schedules need them in the
 * file, and azbk secrets moves them both ways.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVault, expectExit, expectNoStack, parseJson, runCli, writePassphrase, PASSPHRASE, type CliResult } from '../helpers/cli.js';
import { HAS_SECRET_SERVICE, startSecretService, type SecretService } from '../helpers/secret-service.js';
import { makeTempDir } from '../helpers/tmp.js';

// CI installs the Secret Service (.ci/run): there the test must run, not be skipped.
if (process.env.CI === 'true' && !HAS_SECRET_SERVICE && process.platform === 'linux') {
  throw new Error('dbus-daemon, gnome-keyring-daemon and secret-tool are needed in CI (.ci/run installs them)');
}

describe.skipIf(!HAS_SECRET_SERVICE)('secrets in the OS keychain', () => {
  let keyring: SecretService;
  beforeAll(async () => {
    keyring = await startSecretService();
  });
  afterAll(() => keyring?.stop());

  interface Keychained {
    secrets: { store: string; service: string; account: string };
  }

  it('keeps a registered machine secrets in the keychain, backs up and restores from it, and moves them to the file and back', async () => {
    const tmp = await makeTempDir('azbk-keychain-');
    const vault = await createVault(tmp);
    const passphraseFile = await writePassphrase(tmp, PASSPHRASE);
    const home = path.join(tmp, 'home');
    const withKeyring = { home, env: keyring.env };
    const without = { home };
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'a.txt'), 'kept with a key from the keychain\n');

    const reg = await runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', passphraseFile, '--machine-name', 'K', '--json'], withKeyring);
    expectExit(reg, 0);
    const { secrets: item } = parseJson<Keychained>(reg);
    expect(item).toMatchObject({ store: 'keychain', service: 'azbk', account: expect.stringMatching(/^K\.[0-9a-f]{12}$/) });
    // The secrets are in the keychain (read by secret-tool, not azbk), and nowhere under AZBK_HOME.
    const stored = JSON.parse((await keyring.lookup(item.service, item.account)) ?? 'null') as { machineSecret: string; masterKey: string };
    expect(Buffer.from(stored.masterKey, 'base64')).toHaveLength(32);
    await expect(fs.stat(path.join(home, 'secrets.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    const registration = await fs.readFile(path.join(home, 'registration.json'), 'utf8');
    expect(registration).not.toContain(stored.machineSecret);
    expect(registration).not.toContain(stored.masterKey);

    const status = await runCli(['status', '--json'], withKeyring);
    expectExit(status, 0);
    expect(parseJson(status)).toMatchObject({ secrets: item });
    expect((await runCli(['status'], without)).stdout).toContain(`Secrets: in the keychain (service azbk, account ${item.account}), so jobs need no passphrase (scheduled jobs cannot reach it)`);

    const b = await runCli(['backup', '--now', '--include', data, '--json'], withKeyring);
    expectExit(b, 0);
    const target = path.join(tmp, 'restored');
    expectExit(await runCli(['restore', '--point', 'latest', '--target', target], withKeyring), 0);
    expect(await fs.readFile(path.join(target, data, 'a.txt'), 'utf8')).toBe('kept with a key from the keychain\n');

    // Without the keychain (as in a cron job): a clear error, no stack, nothing half done.
    const cut = await runCli(['backup', '--now', '--include', data], without);
    expectExit(cut, 1);
    expectNoStack(cut);
    expect(cut.stderr).toContain('AZBK_KEYCHAIN_UNAVAILABLE');
    expect(cut.stderr).toContain('azbk secrets --store file');
    for (const s of [stored.machineSecret, stored.masterKey]) expect(cut.stdout + cut.stderr + b.stdout + reg.stdout).not.toContain(s);

    // A schedule is refused while the secrets are in the keychain; nothing is installed.
    const sched = await runCli(['policy', 'set', '--include', data, '--schedule', '09:00'], withKeyring);
    expectExit(sched, 2);
    expect(sched.stderr).toContain('AZBK_SECRETS_IN_KEYCHAIN');
    expect(parseJson(await runCli(['policy', 'show', '--json'], withKeyring))).not.toHaveProperty('schedule.times');

    // To the file: the item goes, the file is the owner's only, and jobs need no keychain.
    const toFile = await runCli(['secrets', '--store', 'file', '--json'], withKeyring);
    expectExit(toFile, 0);
    expect(parseJson(toFile)).toMatchObject({ moved: true, secrets: { store: 'file', path: path.join(home, 'secrets.json') } });
    expect(await keyring.lookup(item.service, item.account)).toBeNull();
    expect((await fs.stat(path.join(home, 'secrets.json'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await fs.readFile(path.join(home, 'secrets.json'), 'utf8'))).toMatchObject(stored);
    expectExit(await runCli(['backup', '--now', '--include', data], without), 0);

    // And back: a new item holds the same secrets, the file is gone.
    const back = await runCli(['secrets', '--store', 'keychain', '--json'], withKeyring);
    expectExit(back, 0);
    const again = parseJson<Keychained & { moved: boolean }>(back).secrets;
    expect(again.account).not.toBe(item.account);
    expect(JSON.parse((await keyring.lookup(again.service, again.account)) ?? 'null')).toMatchObject(stored);
    await expect(fs.stat(path.join(home, 'secrets.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expectExit(await runCli(['points', '--json'], withKeyring), 0);
    const show = await runCli(['secrets'], withKeyring);
    expect(show.stdout).toContain(`kept in the keychain (service azbk, account ${again.account})`);

    // A copy left in the file by a move that stopped is pointed out, and removed by the next move there.
    await fs.writeFile(path.join(home, 'secrets.json'), JSON.stringify(stored), { mode: 0o600 });
    const warned = await runCli(['status'], without);
    expectExit(warned, 0);
    expect(warned.stderr).toContain(`A copy of the secrets is left in ${path.join(home, 'secrets.json')}`);
    expect(parseJson(await runCli(['secrets', '--json'], without))).toMatchObject({ stray: path.join(home, 'secrets.json') });
    // Not while the keychain cannot be read: that copy may be the only one that can.
    const blind = await runCli(['secrets', '--store', 'keychain'], without);
    expectExit(blind, 1);
    expect(blind.stderr).toContain('AZBK_KEYCHAIN_UNAVAILABLE');
    expect((await fs.stat(path.join(home, 'secrets.json'))).isFile()).toBe(true);
    const tidy = await runCli(['secrets', '--store', 'keychain'], withKeyring);
    expectExit(tidy, 0);
    expect(tidy.stdout).toContain('is removed');
    await expect(fs.stat(path.join(home, 'secrets.json'))).rejects.toMatchObject({ code: 'ENOENT' });

    // Registering again replaces the item with a new one and removes the old.
    const rereg = await runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', passphraseFile, '--machine-name', 'K', '--reregister', '--json'], withKeyring);
    expectExit(rereg, 0);
    const third = parseJson<Keychained>(rereg).secrets;
    expect(await keyring.lookup(again.service, again.account)).toBeNull();
    expect(await keyring.lookup(third.service, third.account)).not.toBeNull();
    expectExit(await runCli(['backup', '--now', '--include', data], withKeyring), 0);
  }, 120_000);

  it('gives up on a keychain that never answers, with exit 1 and the secrets where they were', async () => {
    const tmp = await makeTempDir('azbk-keychain-');
    // A session bus that takes the connection and never says a word.
    const socket = path.join(tmp, 'mute-bus');
    const mute = net.createServer((c) => c.on('data', () => undefined));
    await new Promise<void>((resolve) => mute.listen(socket, resolve));
    try {
      const vault = await createVault(tmp);
      const home = path.join(tmp, 'home');
      const reg = await runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', await writePassphrase(tmp, PASSPHRASE), '--machine-name', 'H', '--secret-store', 'file'], { home });
      expectExit(reg, 0);
      const hung = await runCli(['secrets', '--store', 'keychain'], { home, env: { DBUS_SESSION_BUS_ADDRESS: `unix:path=${socket}` }, timeout: 50_000 });
      expectExit(hung, 1);
      expectNoStack(hung);
      expect(hung.stderr).toContain('AZBK_KEYCHAIN_UNAVAILABLE');
      expect(hung.stderr).toContain('did not answer within 15 s');
      expect(parseJson(await runCli(['secrets', '--json'], { home }))).toMatchObject({ secrets: { store: 'file' } });
      expectExit(await runCli(['points'], { home }), 0);
    } finally {
      mute.close();
    }
  }, 90_000);

  it('registers with the file where no keychain works, and refuses --secret-store keychain there before the vault is asked', async () => {
    const tmp = await makeTempDir('azbk-keychain-');
    const vault = await createVault(tmp);
    const passphraseFile = await writePassphrase(tmp, PASSPHRASE);
    const register = (home: string, extra: string[], env?: Record<string, string>): Promise<CliResult> =>
      runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', passphraseFile, ...extra, '--json'], { home: path.join(tmp, home), ...(env ? { env } : {}) });

    const refused = await register('home-1', ['--machine-name', 'N1', '--secret-store', 'keychain']);
    expectExit(refused, 1);
    expectNoStack(refused);
    expect(refused.stderr).toContain('AZBK_KEYCHAIN_UNAVAILABLE');
    await expect(fs.stat(path.join(tmp, 'home-1', 'registration.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.readdir(path.join(vault.dir, 'machines')).catch(() => [])).toEqual([]);

    const auto = await register('home-2', ['--machine-name', 'N2']);
    expectExit(auto, 0);
    expect(parseJson(auto)).toMatchObject({ secrets: { store: 'file' }, noKeychain: expect.stringContaining('DBUS_SESSION_BUS_ADDRESS') });
    expect((await fs.stat(path.join(tmp, 'home-2', 'secrets.json'))).mode & 0o777).toBe(0o600);
    const toKeychain = await runCli(['secrets', '--store', 'keychain'], { home: path.join(tmp, 'home-2') });
    expectExit(toKeychain, 1);
    expect(toKeychain.stderr).toContain('AZBK_KEYCHAIN_UNAVAILABLE');
    expect((await fs.stat(path.join(tmp, 'home-2', 'secrets.json'))).isFile()).toBe(true); // still where it was
    // Moving them where they are changes nothing (and never removes them).
    const same = await runCli(['secrets', '--store', 'file', '--json'], { home: path.join(tmp, 'home-2') });
    expectExit(same, 0);
    expect(parseJson(same)).toMatchObject({ moved: false, secrets: { store: 'file' } });
    expect((await fs.stat(path.join(tmp, 'home-2', 'secrets.json'))).isFile()).toBe(true);
    // Nor is a file others may read said to be kept safe: refused, as every command refuses it.
    await fs.chmod(path.join(tmp, 'home-2', 'secrets.json'), 0o644);
    const open = await runCli(['secrets', '--store', 'file'], { home: path.join(tmp, 'home-2') });
    expectExit(open, 1);
    expect(open.stdout).not.toContain('already');
    await fs.chmod(path.join(tmp, 'home-2', 'secrets.json'), 0o600);

    // Where one works, the secrets move into it; an item deleted from the keychain is reported
    // as such, and registering again mends it.
    const home2 = { home: path.join(tmp, 'home-2'), env: keyring.env };
    const moved = await runCli(['secrets', '--store', 'keychain', '--json'], home2);
    expectExit(moved, 0);
    const item = parseJson<Keychained>(moved).secrets;
    await expect(fs.stat(path.join(tmp, 'home-2', 'secrets.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    await keyring.clear(item.service, item.account);
    const lost = await runCli(['points'], home2);
    expectExit(lost, 2);
    expectNoStack(lost);
    expect(lost.stderr).toContain(`secrets are missing from the keychain, or damaged there (service azbk, account ${item.account})`);
    expect(lost.stderr).toContain('--reregister');
    expectExit(await register('home-2', ['--machine-name', 'N2', '--reregister'], keyring.env), 0);
    expectExit(await runCli(['points'], home2), 0);

    // With a keychain at hand, --secret-store file still means the file.
    const file = await register('home-3', ['--machine-name', 'N3', '--secret-store', 'file'], keyring.env);
    expectExit(file, 0);
    expect(parseJson(file)).toMatchObject({ secrets: { store: 'file' } });
    expect(parseJson(file)).not.toHaveProperty('noKeychain');

    // A home with a schedule keeps its secrets in the file even where a keychain works (cron could
    // not reach it), and refuses --secret-store keychain. The schedule is written into policy.json
    // as policy set writes it, so that this test leaves the crontab to the schedule test.
    await fs.writeFile(path.join(tmp, 'home-3', 'policy.json'), JSON.stringify({ version: 1, include: [tmp], schedule: { times: [540], days: [0, 1, 2, 3, 4, 5, 6] } }), { mode: 0o600 });
    const scheduled = await register('home-3', ['--machine-name', 'N3', '--reregister'], keyring.env);
    expectExit(scheduled, 0);
    expect(parseJson(scheduled)).toMatchObject({ secrets: { store: 'file' }, noKeychain: 'scheduled backups are set, and cron jobs cannot reach one' });
    const forced = await register('home-3', ['--machine-name', 'N3', '--reregister', '--secret-store', 'keychain'], keyring.env);
    expectExit(forced, 2);
    expect(forced.stderr).toContain('AZBK_SECRETS_IN_KEYCHAIN');
    expect((await fs.stat(path.join(tmp, 'home-3', 'secrets.json'))).mode & 0o777).toBe(0o600);

    const bad = await register('home-4', ['--machine-name', 'N4', '--secret-store', 'vault']);
    expectExit(bad, 2);
    expect(bad.stderr).toContain('--secret-store is auto, keychain or file');
  }, 120_000);
});
