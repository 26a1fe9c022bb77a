/** Registration: passphrase rules, generated passphrases, and no half-registered states. */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createVault, expectExit, expectNoStack, parseJson, PASSPHRASE, runCli, writePassphrase, tempDir } from '../helpers/cli.js';
import { exists, vaultObjects } from '../helpers/fs-tree.js';
import { startServe } from '../helpers/serve.js';
import { generateMasterKey, wrapMasterKey } from '../../src/core/keys.js';
import { openEmbeddedVault } from '../../src/vault/connect.js';

function registerArgs(credentials: string, name: string, ...more: string[]): string[] {
  return ['register', '--vault-credentials', credentials, '--machine-name', name, '--json', ...more];
}

async function expectUnregistered(home: string): Promise<void> {
  expect(await exists(path.join(home, 'registration.json')), 'registration.json').toBe(false);
  expect(await exists(path.join(home, 'secrets.json')), 'secrets.json').toBe(false);
}

describe.concurrent('register', () => {
  it('refuses a passphrase shorter than 16 characters with exit 2 and registers nothing', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    // 15 characters; the second one is 30 bytes of UTF-8 but still 15 characters.
    for (const p of ['fifteen-chars-x', '\u00e9'.repeat(15)]) {
      const r = await runCli(registerArgs(vault.credentials, 'short', '--passphrase-file', await writePassphrase(root, p)), { home });
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stdout).toMatch(/AZBK_PASSPHRASE_TOO_SHORT/);
      await expectUnregistered(home);
      expect(await vaultObjects(vault.dir, 'machines')).toEqual([]);
      expect(await vaultObjects(vault.dir, 'keys')).toEqual([]);
    }
    // Exactly 16 characters is enough.
    const ok = await runCli(registerArgs(vault.credentials, 'sixteen', '--passphrase-file', await writePassphrase(root, '\u00e9'.repeat(15) + '!')), { home });
    expectExit(ok, 0);
    expect(await vaultObjects(vault.dir, 'machines')).toHaveLength(1);
  });

  it('stores the local secrets owner-only', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const r = await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', await writePassphrase(root, PASSPHRASE)), { home });
    expectExit(r, 0);
    const reg = parseJson(r);
    expect(reg.machineName).toBe('A');
    expect(reg.newKeyFamily).toBe(true);
    expect((await fs.stat(path.join(home, 'secrets.json'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(home, 'registration.json'))).isFile()).toBe(true);
    // Every file under AZBK_HOME is the owner's alone, the log (which names files) included.
    const modes = new Map<string, number>();
    for (const f of await fs.readdir(home, { recursive: true })) modes.set(f, (await fs.stat(path.join(home, f))).mode & 0o777);
    expect(modes.get(path.join('logs', 'azbk.log'))).toBe(0o600);
    for (const [f, mode] of modes) expect(mode & 0o077, f).toBe(0);
    // A log an earlier version made readable by others is made owner-only by the next command.
    await fs.chmod(path.join(home, 'logs', 'azbk.log'), 0o644);
    expectExit(await runCli(['points'], { home }), 0);
    expect((await fs.stat(path.join(home, 'logs', 'azbk.log'))).mode & 0o777).toBe(0o600);
    // The passphrase itself is not stored anywhere under AZBK_HOME.
    for (const f of await fs.readdir(home, { recursive: true })) {
      const p = path.join(home, f);
      if ((await fs.stat(p)).isFile()) expect(await fs.readFile(p, 'utf8'), f).not.toContain(PASSPHRASE);
    }
    expect(await vaultObjects(vault.dir, 'machines')).toHaveLength(1);
    // Registering the same AZBK_HOME again is refused and changes nothing.
    const before = await fs.readFile(path.join(home, 'registration.json'), 'utf8');
    const again = await runCli(registerArgs(vault.credentials, 'B', '--passphrase-file', await writePassphrase(root, PASSPHRASE)), { home });
    expectExit(again, 2);
    expect(await fs.readFile(path.join(home, 'registration.json'), 'utf8')).toBe(before);
    expect(await vaultObjects(vault.dir, 'machines')).toHaveLength(1);
  });

  it.skipIf(process.platform === 'win32')('refuses an AZBK_HOME or a secrets file others could change or read, and says how to fix it', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    expectExit(await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', await writePassphrase(root, PASSPHRASE)), { home }), 0);
    const points = () => runCli(['points', '--json'], { home });
    await fs.chmod(home, 0o777);
    const open = await points();
    expectExit(open, 1);
    expectNoStack(open);
    expect(open.stderr).toContain(`${home} is not private`);
    expect(open.stderr).toContain(`chmod 700 ${home}`);
    // The policy others could have written is neither shown nor changed.
    const policy = path.join(home, 'policy.json');
    for (const args of [['policy', 'show'], ['policy', 'set', '--work-bandwidth', '1M']]) {
      const r = await runCli(args, { home });
      expectExit(r, 1);
      expect(r.stderr).toContain(`${home} is not private`);
    }
    expect(await exists(policy)).toBe(false);
    await fs.chmod(home, 0o700);
    expectExit(await runCli(['policy', 'show'], { home }), 0);
    await fs.chmod(path.join(home, 'secrets.json'), 0o644);
    const readable = await points();
    expectExit(readable, 1);
    expect(readable.stderr).toContain('others may read it (mode 644)');
    await fs.chmod(path.join(home, 'secrets.json'), 0o600);
    expectExit(await points(), 0);
  });

  it.skipIf(process.platform === 'win32')('warns of a passphrase or credentials file others may read, and uses it', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const pass = await writePassphrase(root, PASSPHRASE);
    expectExit(await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', pass), { home: path.join(root, 'home-a') }), 0);
    const quiet = await runCli(['passphrase', 'check', '--passphrase-file', pass], { home: path.join(root, 'home-a') });
    expectExit(quiet, 0);
    expect(quiet.stderr).toBe('');
    await fs.chmod(pass, 0o644);
    await fs.chmod(vault.credentials, 0o640);
    const r = await runCli(registerArgs(vault.credentials, 'B', '--passphrase-file', pass), { home: path.join(root, 'home-b') });
    expectExit(r, 0);
    expect(r.stderr).toContain(`the credentials file ${vault.credentials} can be read by other users of this machine: keep it owner-only (chmod 600)`);
    expect(r.stderr).toContain(`the passphrase file ${pass} can be read by other users of this machine`);
    const check = await runCli(['passphrase', 'check', '--passphrase-file', pass], { home: path.join(root, 'home-a') });
    expectExit(check, 0);
    expect(check.stderr).toContain(`the passphrase file ${pass} can be read by other users`);
  });

  it.skipIf(process.platform === 'win32')('reads passphrase and credentials files as UTF-8 text from regular files only, never waiting on a pipe', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const latin1 = path.join(root, 'latin1.txt');
    await fs.writeFile(latin1, Buffer.alloc(20, 0xe9)); // not UTF-8: each byte would read as U+FFFD
    const r1 = await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', latin1), { home });
    expectExit(r1, 2);
    expect(r1.stdout + r1.stderr).toContain('not UTF-8 text');
    const fifo = path.join(root, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    for (const args of [registerArgs(fifo, 'A', '--passphrase-file', latin1), registerArgs(vault.credentials, 'A', '--passphrase-file', fifo)]) {
      const r = await runCli(args, { home });
      expectExit(r, 2);
      expect(r.stdout + r.stderr).toContain('not a regular file');
    }
    const tab = await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', await writePassphrase(root, `${PASSPHRASE}\tend`)), { home });
    expectExit(tab, 2);
    // Counted as scrypt gets it: 'e' and a combining accent are one character.
    const nfd = await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', await writePassphrase(root, 'e\u0301'.repeat(15))), { home });
    expectExit(nfd, 2);
    expect(nfd.stdout).toMatch(/AZBK_PASSPHRASE_TOO_SHORT/);
    await expectUnregistered(home);
  });

  it('takes a machine over with --reregister only with the passphrase it was registered with', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const pass = await writePassphrase(root, PASSPHRASE);
    expectExit(await runCli(registerArgs(vault.credentials, 'web', '--passphrase-file', pass), { home: path.join(root, 'a') }), 0);
    const other = await writePassphrase(root, 'quite another passphrase here');
    const taken = await runCli(registerArgs(vault.credentials, 'web', '--passphrase-file', other, '--reregister'), { home: path.join(root, 'b') });
    expectExit(taken, 2);
    expect(taken.stdout).toContain('registered with another passphrase');
    // --reregister was given: the hint asks for the right passphrase, not for --reregister again.
    expect(parseJson(taken).error.hint).toContain('--passphrase-file');
    expect(parseJson(taken).error.hint).not.toContain('--reregister');
    expectExit(await runCli(['points'], { home: path.join(root, 'a') }), 0); // still its own
    // The machine rebuilt elsewhere, with its passphrase, takes its place.
    expectExit(await runCli(registerArgs(vault.credentials, 'web', '--passphrase-file', pass, '--reregister'), { home: path.join(root, 'c') }), 0);
    expectExit(await runCli(['points'], { home: path.join(root, 'c') }), 0);
  });

  it('still opens a key made from a passphrase file as earlier versions read it (byte order mark, a CR, not UTF-8)', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const embedded = await openEmbeddedVault(vault.dir);
    const files: [string, Buffer][] = [
      ['\uFEFFcorrect horse battery staple 42', Buffer.from('\uFEFFcorrect horse battery staple 42\n')],
      ['one line\rwith a CR in it, 40 chars', Buffer.from('one line\rwith a CR in it, 40 chars\r\n')],
      ['\uFFFD'.repeat(16), Buffer.alloc(16, 0xe9)],
    ];
    for (const [i, [earlier, bytes]] of files.entries()) {
      await embedded.addKey(await wrapMasterKey(generateMasterKey(), earlier, { cost: { N: 1024, r: 8, p: 1 } }));
      const file = path.join(root, `old-${i}.txt`);
      await fs.writeFile(file, bytes);
      const r = await runCli(registerArgs(vault.credentials, `old${i}`, '--passphrase-file', file), { home: path.join(root, `home-${i}`) });
      expectExit(r, 0);
      expect(parseJson(r).newKeyFamily, earlier).toBe(false);
    }
  });

  it('refuses a passphrase file whose two readings open two different keys, rather than pick one', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const embedded = await openEmbeddedVault(vault.dir);
    const cheap = { cost: { N: 1024, r: 8, p: 1 } };
    await embedded.addKey(await wrapMasterKey(generateMasterKey(), PASSPHRASE, cheap)); // made from the text
    await embedded.addKey(await wrapMasterKey(generateMasterKey(), `\uFEFF${PASSPHRASE}`, cheap)); // and as an earlier version read the file
    const file = path.join(root, 'bom.txt');
    await fs.writeFile(file, `\uFEFF${PASSPHRASE}\n`);
    const r = await runCli(registerArgs(vault.credentials, 'both', '--passphrase-file', file), { home: path.join(root, 'home') });
    expectExit(r, 2);
    expect(r.stdout).toContain('open two different keys');
    await expectUnregistered(path.join(root, 'home'));
  });

  it('registers the same machine again with --reregister and no --machine-name, not one named after the host', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const pass = await writePassphrase(root, PASSPHRASE);
    const first = parseJson(await runCli(registerArgs(vault.credentials, 'pa', '--passphrase-file', pass), { home }));
    const again = await runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', pass, '--reregister', '--json'], { home });
    expectExit(again, 0);
    expect(parseJson(again)).toMatchObject({ machineName: 'pa', machineId: first.machineId });
    expect(await vaultObjects(vault.dir, 'machines')).toHaveLength(1);
  });

  it('refuses --reregister without --machine-name over a damaged registration: the host name could be another machine', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const pass = await writePassphrase(root, PASSPHRASE);
    // One machine under the host's name (the default), and this one under another name.
    const host = path.join(root, 'host');
    expectExit(await runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', pass], { home: host }), 0);
    const home = path.join(root, 'home');
    const b = parseJson(await runCli(registerArgs(vault.credentials, 'B', '--passphrase-file', pass), { home }));
    const whole = JSON.parse(await fs.readFile(path.join(home, 'registration.json'), 'utf8'));
    await fs.writeFile(path.join(home, 'registration.json'), '{"version":1,', { mode: 0o600 });
    const hinted = await runCli(['points'], { home });
    expect(hinted.stderr).toContain('--machine-name NAME --reregister');

    const r = await runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', pass, '--reregister'], { home });
    expectExit(r, 2);
    expectNoStack(r);
    expect(r.stderr).toMatch(/is damaged\. Which machine this is cannot be told from it, so --reregister needs --machine-name\./);
    // A registration whose JSON is whole but names no machine is damaged too.
    expect(whole.machineName).toBe('B');
    await fs.writeFile(path.join(home, 'registration.json'), JSON.stringify({ ...whole, machineName: null }), { mode: 0o600 });
    const nameless = await runCli(['register', '--vault-credentials', vault.credentials, '--passphrase-file', pass, '--reregister'], { home });
    expectExit(nameless, 2);
    expect(nameless.stderr).toContain('so --reregister needs --machine-name');
    // The machine of the host's name keeps its secret.
    expectExit(await runCli(['points'], { home: host }), 0);
    const again = await runCli(registerArgs(vault.credentials, 'B', '--passphrase-file', pass, '--reregister'), { home });
    expectExit(again, 0);
    expect(parseJson(again).machineId).toBe(b.machineId);
  });

  it('registers again over a damaged local registration with --reregister', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const pass = await writePassphrase(root, PASSPHRASE);
    const text = (...a: string[]) => registerArgs(vault.credentials, 'A', '--passphrase-file', pass, ...a).filter((x) => x !== '--json');
    const first = await runCli(text(), { home });
    expectExit(first, 0);
    expect(first.stdout).toContain('This passphrase starts a new key');
    await fs.writeFile(path.join(home, 'registration.json'), '{"version":1,', { mode: 0o600 });
    expectExit(await runCli(['points'], { home }), 2);
    // One that holds JSON's null is damaged too, not missing: status says so (exit 1).
    await fs.writeFile(path.join(home, 'registration.json'), 'null', { mode: 0o600 });
    const nulled = await runCli(['status'], { home });
    expectExit(nulled, 1);
    expect(nulled.stdout + nulled.stderr).toContain('damaged');
    const again = await runCli(text('--reregister'), { home });
    expectExit(again, 0);
    // The key is its own from before, not another machine's.
    expect(again.stdout).toContain('This passphrase opens a key the vault already has');
    expect(again.stdout).not.toMatch(/other machines/);
    expectExit(await runCli(['points'], { home }), 0);
    // The secrets file gone or damaged: said so by `secrets` too, not shown as where they are kept.
    const secrets = path.join(home, 'secrets.json');
    const kept = await fs.readFile(secrets);
    await fs.rm(secrets);
    const missing = await runCli(['secrets'], { home });
    expectExit(missing, 2);
    expect(missing.stderr).toContain(`This machine's secrets file ${secrets} is missing.`);
    await fs.writeFile(secrets, 'not json', { mode: 0o600 });
    const broken = await runCli(['secrets'], { home });
    expectExit(broken, 2);
    expect(broken.stderr).toContain(`This machine's secrets file ${secrets} is damaged.`);
    // A master key of another key family (well formed, but not the one registered) is damage too:
    // a backup with it would make points this machine could not open. Nothing is written to the vault.
    const other = { ...JSON.parse(kept.toString('utf8')), masterKey: Buffer.alloc(32, 7).toString('base64') };
    await fs.writeFile(secrets, JSON.stringify(other), { mode: 0o600 });
    const data = path.join(root, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'f'), 'x');
    const foreign = await runCli(['backup', '--now', '--include', data], { home });
    expectExit(foreign, 2);
    expect(foreign.stderr).toContain(`This machine's secrets file ${secrets} is damaged.`);
    expect(await exists(path.join(vault.dir, 'packs'))).toBe(false);
    await fs.writeFile(secrets, kept, { mode: 0o600 });
    expectExit(await runCli(['secrets'], { home }), 0);
  });

  it('--generate-passphrase writes a new 0600 file with a strong passphrase that other machines can use', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const out = path.join(root, 'generated passphrase.txt');
    const r = await runCli(registerArgs(vault.credentials, 'A', '--generate-passphrase', out), { home: path.join(root, 'hA') });
    expectExit(r, 0);
    expect(parseJson(r).passphraseFile).toBe(out);
    expect((await fs.stat(out)).mode & 0o777).toBe(0o600);
    const passphrase = (await fs.readFile(out, 'utf8')).split('\n')[0]!;
    expect([...passphrase].length).toBeGreaterThanOrEqual(16);
    expect((await fs.stat(path.join(root, 'hA', 'secrets.json'))).mode & 0o777).toBe(0o600);

    // A second machine using that file joins the same key.
    const b = await runCli(registerArgs(vault.credentials, 'B', '--passphrase-file', out), { home: path.join(root, 'hB') });
    expectExit(b, 0);
    expect(parseJson(b).newKeyFamily).toBe(false);
    expect(await vaultObjects(vault.dir, 'keys')).toHaveLength(1);

    // Two generated passphrases differ.
    const out2 = path.join(root, 'second.txt');
    expectExit(await runCli(registerArgs(vault.credentials, 'C', '--generate-passphrase', out2), { home: path.join(root, 'hC') }), 0);
    expect((await fs.readFile(out2, 'utf8')).split('\n')[0]).not.toBe(passphrase);
  });

  it('--generate-passphrase refuses an existing file with exit 2 and leaves it unchanged', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const out = path.join(root, 'precious.txt');
    await fs.writeFile(out, 'do not overwrite me\n', { mode: 0o644 });
    const home = path.join(root, 'home');
    const r = await runCli(registerArgs(vault.credentials, 'A', '--generate-passphrase', out), { home });
    expectExit(r, 2);
    expectNoStack(r);
    expect(await fs.readFile(out, 'utf8')).toBe('do not overwrite me\n');
    expect((await fs.stat(out)).mode & 0o777).toBe(0o644);
    await expectUnregistered(home);
    expect(await vaultObjects(vault.dir, 'machines')).toEqual([]);
    expect(await vaultObjects(vault.dir, 'keys')).toEqual([]);
  });

  it('leaves no registration and no generated file when registration fails', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const out = path.join(root, 'gen.txt');
    // Bad machine name: refused by the vault after the credentials were checked.
    const r = await runCli(registerArgs(vault.credentials, 'bad name/with slash', '--generate-passphrase', out), { home });
    expectExit(r, 2);
    expectNoStack(r);
    await expectUnregistered(home);
    expect(await exists(out), 'the generated passphrase file is removed again').toBe(false);
    expect(await vaultObjects(vault.dir, 'machines')).toEqual([]);
    expect(await vaultObjects(vault.dir, 'keys')).toEqual([]);

    // A machine name that is taken.
    expectExit(await runCli(registerArgs(vault.credentials, 'taken', '--passphrase-file', await writePassphrase(root, PASSPHRASE)), { home: path.join(root, 'first') }), 0);
    const taken = await runCli(registerArgs(vault.credentials, 'TAKEN', '--passphrase-file', await writePassphrase(root, PASSPHRASE)), { home });
    expectExit(taken, 2);
    await expectUnregistered(home);
    expect(await vaultObjects(vault.dir, 'machines')).toHaveLength(1);
  });

  it('needs a passphrase source when there is no terminal, and only one', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const none = await runCli(registerArgs(vault.credentials, 'A'), { home });
    expectExit(none, 2);
    expect(none.stdout).toMatch(/AZBK_NO_PASSPHRASE/);
    const pass = await writePassphrase(root, PASSPHRASE);
    const both = await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', pass, '--generate-passphrase', path.join(root, 'g.txt')), { home });
    expectExit(both, 2);
    const missing = await runCli(registerArgs(vault.credentials, 'A', '--passphrase-file', path.join(root, 'nope.txt')), { home });
    expectExit(missing, 2);
    const noCreds = await runCli(registerArgs(path.join(root, 'nope.VaultCredentials'), 'A', '--passphrase-file', pass), { home });
    expectExit(noCreds, 2);
    for (const r of [none, both, missing, noCreds]) expectNoStack(r);
    await expectUnregistered(home);
    expect(await exists(path.join(root, 'g.txt'))).toBe(false);
    expect(await vaultObjects(vault.dir, 'machines')).toEqual([]);
  });
});

describe('register through a vault service whose reply is lost', () => {
  it('says the machine may have been registered and to register again with --reregister, which then takes it over', async (ctx) => {
    const root = await tempDir(ctx);
    const dir = path.join(root, 'vault');
    expectExit(await runCli(['vault', 'create', '--path', dir, '--name', 'Lossy']), 0);
    const serve = await startServe(['--path', dir]);
    // In front of it, with the vault's own certificate (the one credentials pin): relays every
    // request, and while `drop` is set, lets a registration through but breaks its reply off.
    const { cert, key } = JSON.parse(await fs.readFile(path.join(dir, 'vault', 'tls'), 'utf8')) as { cert: string; key: string };
    let drop = true;
    let dropped = 0;
    const relay = https.createServer({ cert, key }, (req, res) => {
      const up = https.request(`${serve.url}${req.url}`, { method: req.method, headers: req.headers, rejectUnauthorized: false }, (reply) => {
        if (drop && req.method === 'POST' && req.url === '/v1/register') {
          dropped++;
          reply.resume();
          reply.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(reply.statusCode!, reply.headers);
        reply.pipe(res);
      });
      req.pipe(up);
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    try {
      const credentials = path.join(root, 'Lossy.VaultCredentials');
      expectExit(await runCli(['vault', 'credentials', '--path', dir, '--endpoint', `https://127.0.0.1:${(relay.address() as AddressInfo).port}`, '--out', credentials]), 0);
      const home = path.join(root, 'home');
      const pass = await writePassphrase(root, PASSPHRASE);
      const lost = await runCli(['register', '--vault-credentials', credentials, '--passphrase-file', pass, '--machine-name', 'web1'], { home });
      expectExit(lost, 10);
      expectNoStack(lost);
      expect(dropped).toBe(1);
      expect(lost.stderr).toContain("The vault's reply to the registration was lost");
      expect(lost.stderr).toContain('the machine may have been registered');
      expect(lost.stderr).toContain('--reregister');
      expect(lost.stderr).not.toContain('Cannot reach the vault');
      await expectUnregistered(home);
      expect(await vaultObjects(dir, 'machines')).toHaveLength(1); // it was
      drop = false;
      expectExit(await runCli(['register', '--vault-credentials', credentials, '--passphrase-file', pass, '--machine-name', 'web1', '--reregister'], { home }), 0);
      expect(await vaultObjects(dir, 'machines')).toHaveLength(1);
      expectExit(await runCli(['points'], { home }), 0);
    } finally {
      relay.closeAllConnections();
      relay.close();
      await serve.stop();
    }
  });
});
