/**
 * The vault as an HTTPS service, end to end with the built CLI: `azbk vault serve` in a child
 * process, machines registered through https credentials, backup, points, restore on the same and
 * on another machine, certificate pinning, clean shutdown; and two stateless servers over one
 * Azure (Azurite) container.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, BIN, expectExit, expectNoStack, parseJson, runCli, setupMachine, writePassphrase, PASSPHRASE, REPO, type Machine, type Vault } from '../helpers/cli.js';
import { expectSameTree, writeRandomFile } from '../helpers/fs-tree.js';
import { startAzurite, type Azurite } from '../helpers/azurite.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';
import { makeTempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

async function sourceTree(root: string): Promise<string> {
  const src = path.join(root, 'src');
  await fs.mkdir(path.join(src, 'docs', 'empty'), { recursive: true });
  await fs.writeFile(path.join(src, 'docs', 'note.txt'), 'served over https\n');
  await writeRandomFile(path.join(src, 'random.bin'), 3 * MiB + 17);
  await fs.writeFile(path.join(src, 'zeros.bin'), Buffer.alloc(9 * MiB + 5));
  await fs.symlink('docs/note.txt', path.join(src, 'link'));
  return src;
}

/** Writes https credentials for `endpoint` next to the vault; extra args pick the storage. */
async function credentials(root: string, name: string, where: readonly string[], endpoint: string, extra: readonly string[] = [], env?: Record<string, string>) {
  const file = path.join(root, `${name}.VaultCredentials`);
  const r = await runCli(['vault', 'credentials', ...where, '--endpoint', endpoint, '--out', file, ...extra], env ? { env } : {});
  expectExit(r, 0);
  return file;
}

async function setRegistration(m: Machine, change: (r: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(m.home, 'registration.json');
  const reg = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  change(reg);
  await fs.writeFile(file, JSON.stringify(reg, null, 2));
}

/**
 * A vault served from a fresh folder, a machine registered through it, and a source of one 6 MiB
 * file: about 6 s of upload at the 1 MiB/s backupInBackground limits it to.
 */
async function slowUpload(name: string): Promise<{ dir: string; v: string; s: ServeProcess; m: Machine; src: string }> {
  const dir = await makeTempDir();
  const v = path.join(dir, 'vault');
  expectExit(await runCli(['vault', 'create', '--path', v, '--name', name]), 0);
  const s = await startServe(['--path', v]);
  const m = await setupMachine(dir, { name: name.slice(0, 1), vault: { dir: v, credentials: await credentials(dir, name, ['--path', v], s.url) } });
  const src = path.join(dir, 'src');
  await fs.mkdir(src);
  await writeRandomFile(path.join(src, 'big.bin'), 6 * MiB + 3);
  return { dir, v, s, m, src };
}

/** `azbk backup --now --include src` on `m` at 1 MiB/s in a child process: its exit code, and all it printed. */
function backupInBackground(m: Machine, src: string): { child: ReturnType<typeof spawn>; done: Promise<number | null>; out: () => string } {
  const child = spawn(process.execPath, [BIN, 'backup', '--now', '--include', src, '--limit-upload', '1M', '--json'], { cwd: REPO, env: { ...process.env, AZBK_HOME: m.home }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, done, out: () => out };
}

describe('vault service over a folder', () => {
  let root: string;
  let server: ServeProcess;
  let vault: Vault;

  beforeAll(async () => {
    root = await fs.realpath(await fs.mkdtemp(path.join((await import('node:os')).tmpdir(), 'azbk-service-')));
    const dir = path.join(root, 'vault');
    const created = await runCli(['vault', 'create', '--path', dir, '--name', 'Served', '--json']);
    expectExit(created, 0);
    server = await startServe(['--path', dir]);
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(server.fingerprint).toBe(parseJson(created).certFingerprint);
    vault = { dir, credentials: await credentials(root, 'Served', ['--path', dir], server.url) };
  });

  afterAll(async () => {
    await server?.stop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('backs up, lists and restores byte for byte through the service, also on another machine', async () => {
    const creds = JSON.parse(await fs.readFile(vault.credentials, 'utf8'));
    expect(creds.endpoint).toBe(server.url);
    expect(creds.certFingerprint).toBe(server.fingerprint);
    const a = await setupMachine(root, { name: 'A', vault });
    const b = await setupMachine(root, { name: 'B', vault });
    const src = await sourceTree(root);
    const first = await backup(a, [src]);
    expect(first.stats.files).toBe(3);

    const points = await a.run(['points', '--json']);
    expectExit(points, 0);
    expect(JSON.stringify(parseJson(points))).toContain(first.point.id);
    // What the point holds, through the service: the whole tree.
    const listed = await a.run(['ls', '--point', 'latest', '-r', src, '--json']);
    expectExit(listed, 0);
    const names = (await fs.readdir(src, { recursive: true })).map((n) => path.join(src, String(n))).sort();
    expect(parseJson<{ entries: { path: string }[] }>(listed).entries.map((e) => e.path).sort()).toEqual(names);

    const mine = path.join(root, 'restore-A');
    expectExit(await a.run(['restore', '--point', 'latest', '--target', mine]), 0);
    await expectSameTree(src, path.join(mine, src));

    const theirs = path.join(root, 'restore-B');
    const pass = await writePassphrase(root, PASSPHRASE);
    const r = await b.run(['restore', '--machine', 'A', '--point', first.point.id, '--passphrase-file', pass, '--target', theirs]);
    expectExit(r, 0);
    await expectSameTree(src, path.join(theirs, src));

    // Data packs went through the spool, which the backup left empty.
    const spool = path.join(a.home, 'spool');
    expect(await fs.readdir(spool)).toEqual([]);

    // A second backup of unchanged data uploads next to nothing: deduplication works over HTTPS.
    // It also clears what a killed backup left in the spool.
    await fs.writeFile(path.join(spool, `${'0'.repeat(32)}.pack`), 'half a pack');
    const second = await backup(a, [src]);
    expect(second.stats.newBytes).toBeLessThan(MiB);
    expect(await fs.readdir(spool)).toEqual([]);

    // Without a spool, a backup through the service stops at once, saying why.
    await fs.rm(spool, { recursive: true });
    await fs.writeFile(spool, 'in the way');
    const blocked = await a.run(['backup', '--now', '--include', src]);
    expectExit(blocked, 1);
    expect(blocked.stderr).toContain('AZBK_LOCAL_IO');
    expect(blocked.stderr).toContain(spool);
    expectNoStack(blocked);
    await fs.rm(spool);
    expect(server.stderr()).not.toMatch(/Bearer [0-9a-f]{32}:/);
  });

  it('refuses credentials whose fingerprint was altered, or that pin another certificate', async () => {
    const text = await fs.readFile(vault.credentials, 'utf8');
    const altered = path.join(root, 'altered.VaultCredentials');
    await fs.writeFile(altered, text.replace(/"certFingerprint": "[0-9a-f]{64}"/, `"certFingerprint": "${'0'.repeat(64)}"`));
    const pass = await writePassphrase(root, PASSPHRASE);
    const home = path.join(root, 'home-X');
    const r1 = await runCli(['register', '--vault-credentials', altered, '--passphrase-file', pass, '--machine-name', 'X'], { home });
    expectExit(r1, 13);
    expect(r1.stderr).toMatch(/AZBK_CREDENTIALS_INVALID.*certFingerprint/);

    // Properly signed, but pinning another certificate (as if someone were in between).
    const other = path.join(root, 'other-vault');
    expectExit(await runCli(['vault', 'create', '--path', other, '--name', 'Other']), 0);
    const otherCert = path.join(root, 'other-cert.pem');
    await fs.writeFile(otherCert, JSON.parse(await fs.readFile(path.join(other, 'vault', 'tls'), 'utf8')).cert);
    const pinned = await credentials(root, 'pinned', ['--path', vault.dir], server.url, ['--tls-cert', otherCert]);
    const r2 = await runCli(['register', '--vault-credentials', pinned, '--passphrase-file', pass, '--machine-name', 'X'], { home });
    expectExit(r2, 10);
    expectNoStack(r2);
    expect(r2.stderr).toMatch(/AZBK_VAULT_UNREACHABLE.*certificate/);
    // A first registration has no earlier one to blame: the credentials file pins the certificate.
    expect(r2.stderr).toMatch(/hint: .*the credentials file pins.*azbk vault credentials/);
    expect(r2.stderr).not.toContain('pinned at registration');
  });

  it('stops at once on the first Ctrl-C while a backup or restore is still connecting, and records the job as cancelled', async () => {
    const m = await setupMachine(root, { name: 'Early', vault });
    const src = await sourceTree(path.join(root, 'early'));
    await backup(m, [src]);
    // A server that takes connections and answers nothing: the command waits in its TLS handshake.
    process.kill(server.pid, 'SIGSTOP');
    try {
      for (const args of [['backup', '--now', '--include', src, '--json'], ['restore', '--point', 'latest', '--target', path.join(root, 'early-out')]]) {
        const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, AZBK_HOME: m.home }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        let stdout = '';
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
        await sleep(1500);
        const sent = Date.now();
        child.kill('SIGINT');
        const code = await done;
        expect(code, stderr).toBe(130);
        expect(Date.now() - sent).toBeLessThan(5000);
        expect(stderr).toContain(`stopped before the ${args[0]} began`);
        if (args.includes('--json')) expect(JSON.parse(stdout)).toEqual({ error: expect.objectContaining({ code: 'AZBK_CANCELLED', exitCode: 130 }) });
        else expect(stdout).toBe('');
        expect(stderr).not.toMatch(/^\s+at /m);
        const jobs = (await fs.readFile(path.join(m.home, 'jobs.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { kind: string; status: string });
        expect(jobs.at(-1)).toMatchObject({ kind: args[0], status: 'cancelled', error: 'AZBK_CANCELLED' });
        // The job lock went with the process.
        await expect(fs.stat(path.join(m.home, 'job.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
      }
    } finally {
      process.kill(server.pid, 'SIGCONT');
    }
    // The next backup runs as usual.
    await backup(m, [src]);
  }, 60_000);

  it('a backup waits out the vault service crashing and coming back, and completes', async () => {
    let { dir, v, s, m, src } = await slowUpload('Restarted');
    const listen = new URL(s.url).host;
    try {
      // At 1 MiB/s the pack takes about 6 s to upload: the service dies in the middle of it, and
      // is back 8 s later, longer than a command that gives up after its usual few tries waits.
      const job = backupInBackground(m, src);
      await sleep(2500);
      process.kill(s.pid, 'SIGKILL');
      await s.stop();
      await sleep(8000);
      s = await startServe(['--path', v], { listen });
      expect(await job.done, job.out()).toBe(0);
      const target = path.join(dir, 'restored');
      expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
      await expectSameTree(src, path.join(target, src));
    } finally {
      await s.stop();
    }
  }, 90_000);

  it('a backup waiting out a vault service that is down stops within seconds on Ctrl-C', async () => {
    const { s, m, src } = await slowUpload('Down');
    const job = backupInBackground(m, src);
    // The service dies in the middle of the upload and stays down: the backup is patient with it
    // (about a minute of tries) until it is asked to stop.
    await sleep(2500);
    process.kill(s.pid, 'SIGKILL');
    await s.stop();
    await sleep(3000);
    const sent = Date.now();
    job.child.kill('SIGINT');
    const code = await job.done;
    const out = job.out();
    expect(Date.now() - sent, out).toBeLessThan(20_000);
    expect(code, out).toBe(10);
    expect(out).toMatch(/stopping: .*\(press Ctrl-C again to stop at once\)/);
    expect(out).toMatch(/AZBK_VAULT_UNREACHABLE: Cannot reach the vault/);
    expectNoStack({ code, signal: null, stdout: out, stderr: '', ms: 0 });
  }, 60_000);

  it('stops promptly with exit code 0 on SIGTERM', async () => {
    const dir = await makeTempDir();
    const v = path.join(dir, 'vault');
    expectExit(await runCli(['vault', 'create', '--path', v, '--name', 'Stop']), 0);
    const s = await startServe(['--path', v]);
    const stopped = await s.stop();
    expect(stopped.code, s.stderr()).toBe(0);
    expect(stopped.ms).toBeLessThan(5000);
  });
});

describe('a vault service whose certificate is lost', () => {
  it('is not given a new one once machines are registered: serve and credentials refuse, and serve takes the old one back from --tls-cert', async () => {
    const dir = await makeTempDir();
    const v = path.join(dir, 'vault');
    expectExit(await runCli(['vault', 'create', '--path', v, '--name', 'Lost']), 0);
    const first = await startServe(['--path', v]);
    const m = await setupMachine(dir, { vault: { dir: v, credentials: await credentials(dir, 'Lost', ['--path', v], first.url) } });
    expect((await first.stop()).code).toBe(0);
    const tlsFile = path.join(v, 'vault', 'tls');
    const held = JSON.parse(await fs.readFile(tlsFile, 'utf8')) as { cert: string; key: string };
    await fs.rm(tlsFile);

    const serve = await runCli(['vault', 'serve', '--path', v, '--listen', '127.0.0.1:0']);
    const creds = await runCli(['vault', 'credentials', '--path', v, '--endpoint', first.url, '--out', path.join(dir, 'new.VaultCredentials')]);
    for (const r of [serve, creds]) {
      expectExit(r, 1);
      expectNoStack(r);
      expect(r.stderr).toContain("AZBK_VAULT_CORRUPT: The vault's TLS certificate (vault/tls) is missing, though 1 machine is registered");
      expect(r.stderr).toContain('azbk vault serve --tls-cert F --tls-key F');
    }
    expect(serve.stdout).not.toContain('listening on');
    expect(await fs.readdir(path.join(v, 'vault'))).not.toContain('tls');

    // The certificate the machine pins, given back (its key readable by others: said, and used).
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await fs.writeFile(cert, held.cert);
    await fs.writeFile(key, held.key, { mode: 0o644 });
    await fs.chmod(key, 0o644);
    // What is no PEM file is refused before anything is read whole: a device, a folder.
    for (const [flag, bad, why] of [['--tls-cert', '/dev/zero', 'not a regular file'], ['--tls-key', dir, 'not a regular file']] as const) {
      const r = await runCli(['vault', 'serve', '--path', v, '--listen', '127.0.0.1:0', '--tls-cert', flag === '--tls-cert' ? bad : cert, '--tls-key', flag === '--tls-key' ? bad : key]);
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stderr).toContain(`Cannot read the ${flag === '--tls-cert' ? 'TLS certificate' : 'TLS key'} ${bad} (${why})`);
    }
    const zero = await runCli(['vault', 'credentials', '--path', v, '--endpoint', first.url, '--out', path.join(dir, 'z.VaultCredentials'), '--tls-cert', '/dev/zero']);
    expectExit(zero, 2);
    expect(zero.stderr).toContain('Cannot read the TLS certificate /dev/zero (not a regular file)');
    const again = await startServe(['--path', v, '--tls-cert', cert, '--tls-key', key]);
    try {
      expect(again.fingerprint).toBe(first.fingerprint);
      expect(again.stderr()).toContain(`the TLS key ${key} can be read by other users of this machine: keep it owner-only (chmod 600)`);
      await setRegistration(m, (r) => (r.endpoint = again.url));
      expectExit(await m.run(['points']), 0);
    } finally {
      await again.stop();
    }
    // Stored as the vault's own again: served without the files.
    const own = await startServe(['--path', v]);
    expect(own.fingerprint).toBe(first.fingerprint);
    await own.stop();
  });
});

describe.skipIf(process.platform === 'win32')('a vault folder others could change', () => {
  it('is refused by vault serve, vault credentials, vault create and the machines of an embedded vault, which say what to chmod', async () => {
    const dir = await makeTempDir();
    const m = await setupMachine(dir);
    const v = m.vault.dir;
    await fs.chmod(v, 0o777);
    const refused = [
      await runCli(['vault', 'serve', '--path', v, '--listen', '127.0.0.1:0']),
      await runCli(['vault', 'credentials', '--path', v, '--out', path.join(dir, 'loose.VaultCredentials')]),
      await m.run(['points']),
    ];
    for (const r of refused) {
      expectExit(r, 1);
      expectNoStack(r);
      expect(r.stderr).toContain(`AZBK_LOCAL_IO: ${v} is not private: others may change what is in it (mode 777)`);
      expect(r.stderr).toContain(`chmod 700 ${v}`);
    }
    expect(await fs.readdir(dir)).not.toContain('loose.VaultCredentials');
    // An empty folder that was there already is not made a vault in either.
    const open = path.join(dir, 'open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    const created = await runCli(['vault', 'create', '--path', open, '--name', 'Open']);
    expectExit(created, 1);
    expect(created.stderr).toContain(`${open} is not private`);
    expect(await fs.readdir(open)).toEqual([]);
    await fs.chmod(v, 0o700);
    expectExit(await m.run(['points']), 0);
    // One of another user: root's own folder for anyone else; a folder given away for root.
    let theirs = '/';
    if (process.getuid?.() === 0) {
      theirs = path.join(dir, 'theirs');
      await fs.cp(v, theirs, { recursive: true });
      await fs.chown(theirs, 65534, 65534);
    }
    const other = await runCli(['vault', 'serve', '--path', theirs, '--listen', '127.0.0.1:0']);
    expectExit(other, 1);
    expect(other.stderr).toMatch(/is not private: it belongs to another user \(uid \d+\)/);
    expect(other.stderr).toContain('Use the vault as the user who owns its folder');
  });
});

describe('two vault servers over one Azure container', () => {
  let azurite: Azurite;
  beforeAll(async () => {
    azurite = await startAzurite();
  });
  afterAll(async () => {
    await azurite?.stop();
  });

  it('serve the same vault with the same certificate: register via one, back up via the other, restore via the first', async () => {
    const root = await makeTempDir();
    const env = { AZBK_AZURE_CONNECTION_STRING: azurite.connectionString };
    const where = ['--azure', '--container', 'vault-e2e'];
    const created = await runCli(['vault', 'create', ...where, '--name', 'Cloud', '--json'], { env });
    expectExit(created, 0);
    expect(created.stderr).not.toContain('command line'); // no warning: the secret came from the environment
    const one = await startServe(where, { env });
    const two = await startServe(where, { env });
    try {
      expect(one.fingerprint).toBe(parseJson(created).certFingerprint);
      expect(two.fingerprint).toBe(one.fingerprint);
      const vault = { dir: '', credentials: await credentials(root, 'Cloud', where, one.url, [], env) };
      const a = await setupMachine(root, { name: 'A', vault });
      const src = await sourceTree(root);
      await setRegistration(a, (r) => (r.endpoint = two.url));
      const b = await backup(a, [src]);
      expect(b.stats.files).toBe(3);
      await setRegistration(a, (r) => (r.endpoint = one.url));
      const target = path.join(root, 'restored');
      expectExit(await a.run(['restore', '--point', 'latest', '--target', target]), 0);
      await expectSameTree(src, path.join(target, src));
      for (const s of [one, two]) expect(s.stdout() + s.stderr()).not.toContain(azurite.connectionString.split(';').find((p) => p.startsWith('AccountKey='))!.slice(11));
      expect(one.stderr() + two.stderr()).toMatch(/request completed/);
      expect(two.stderr()).toMatch(/"method":"PUT","url":"\/v1\/packs\//);
    } finally {
      expect((await one.stop()).code).toBe(0);
      expect((await two.stop()).code).toBe(0);
    }
  });

  it('warns when the connection string is given on the command line, and never prints it', async () => {
    const r = await runCli(['vault', 'create', '--azure', azurite.connectionString, '--container', 'vault-warn', '--name', 'Warn']);
    expectExit(r, 0);
    expect(r.stderr).toMatch(/AZBK_AZURE_CONNECTION_STRING/);
    expect(r.stdout + r.stderr).not.toContain('AccountKey');
  });
});
