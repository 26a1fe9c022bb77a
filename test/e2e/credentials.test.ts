/**
 * Vault credentials files: issuing them, their validity window, and registration refusing expired,
 * altered or misdirected ones without registering anything.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createVault, DIST, expectExit, expectNoStack, PASSPHRASE, runCli, writePassphrase, type Vault, tempDir } from '../helpers/cli.js';
import { exists, vaultObjects } from '../helpers/fs-tree.js';

const DAY = 24 * 60 * 60 * 1000;

interface CredentialsFile {
  vaultId: string;
  vaultName: string;
  endpoint: string;
  certFingerprint: string | null;
  issued: string;
  expires: string;
  token: string;
}

/** Registers a fresh machine with `credentials`; returns the result and its AZBK_HOME. */
async function register(root: string, credentials: string, name = 'M1') {
  const home = path.join(root, `home-${name}-${Math.random().toString(36).slice(2)}`);
  const pass = await writePassphrase(root, PASSPHRASE);
  const r = await runCli(['register', '--vault-credentials', credentials, '--passphrase-file', pass, '--machine-name', name], { home });
  return { r, home };
}

/** Asserts nothing was registered: no local registration or secrets, no machine or key in the vault. */
async function expectNothingRegistered(home: string, vault: Vault): Promise<void> {
  expect(await exists(path.join(home, 'registration.json'))).toBe(false);
  expect(await exists(path.join(home, 'secrets.json'))).toBe(false);
  expect(await vaultObjects(vault.dir, 'machines')).toEqual([]);
  expect(await vaultObjects(vault.dir, 'keys')).toEqual([]);
}

async function readCreds(file: string): Promise<CredentialsFile> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as CredentialsFile;
}

async function writeCreds(root: string, name: string, creds: unknown): Promise<string> {
  const file = path.join(root, `${name}.VaultCredentials`);
  await fs.writeFile(file, JSON.stringify(creds, null, 2));
  return file;
}

describe.concurrent('vault create and vault credentials', () => {
  it('writes an owner-only credentials file valid for 10 days by default, or --valid-days', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const st = await fs.stat(vault.credentials);
    expect(st.mode & 0o777).toBe(0o600);
    const c = await readCreds(vault.credentials);
    expect(Date.parse(c.expires) - Date.parse(c.issued)).toBe(10 * DAY);
    expect(c.endpoint).toBe(pathToFileURL(vault.dir).href);

    const out = path.join(root, 'three-days.VaultCredentials');
    const r = await runCli(['vault', 'credentials', '--path', vault.dir, '--out', out, '--valid-days', '3', '--json']);
    expectExit(r, 0);
    const c3 = await readCreds(out);
    expect(Date.parse(c3.expires) - Date.parse(c3.issued)).toBe(3 * DAY);
    expect(c3.vaultId).toBe(c.vaultId);
    expectExit((await register(root, out)).r, 0);
  });

  it('refuses --valid-days outside 1..10 with exit 2 and writes nothing', async (ctx) => {
    const root = await tempDir(ctx);
    for (const days of ['11', '0', '1.5', 'ten', '-1']) {
      const dir = path.join(root, `v${days}`);
      const cred = path.join(root, `c${days}.VaultCredentials`);
      const r = await runCli(['vault', 'create', '--path', dir, '--name', 'V', '--credentials-out', cred, '--valid-days', days]);
      expectExit(r, 2);
      expectNoStack(r);
      expect(await exists(dir)).toBe(false);
      expect(await exists(cred)).toBe(false);
    }
    const vault = await createVault(root);
    const out = path.join(root, 'eleven.VaultCredentials');
    const r = await runCli(['vault', 'credentials', '--path', vault.dir, '--out', out, '--valid-days', '11']);
    expectExit(r, 2);
    expect(r.stderr).toMatch(/valid-days/);
    expect(await exists(out)).toBe(false);
  });

  it('never overwrites a file, refuses a non-empty folder, and reports a missing vault with exit 10', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const before = await fs.readFile(vault.credentials, 'utf8');
    const again = await runCli(['vault', 'credentials', '--path', vault.dir, '--out', vault.credentials]);
    expectExit(again, 2);
    expect(again.stderr).toContain(`${vault.credentials} already exists; azbk will not overwrite it.\n  hint: Name a new file, or move that one away first.`);
    expect(await fs.readFile(vault.credentials, 'utf8')).toBe(before);

    const second = await runCli(['vault', 'create', '--path', vault.dir, '--name', 'Other', '--credentials-out', path.join(root, 'x.VaultCredentials')]);
    expectExit(second, 2);
    expect(second.stderr).toContain(`${vault.dir} holds a vault already.\n  hint: To register machines with it, get a credentials file: azbk vault credentials --path ${vault.dir} --out FILE.`);
    expect(await exists(path.join(root, 'x.VaultCredentials'))).toBe(false);

    const missing = await runCli(['vault', 'credentials', '--path', path.join(root, 'no vault here'), '--out', path.join(root, 'y.VaultCredentials')]);
    expectExit(missing, 10);
    expectNoStack(missing);
    expect(missing.stderr).toContain('hint: Check --path');

    // Into a folder that is not there: refused, no folder made, and (vault create) no vault either.
    const nowhere = path.join(root, 'no such folder');
    const out = await runCli(['vault', 'credentials', '--path', vault.dir, '--out', path.join(nowhere, 'z.VaultCredentials')]);
    expectExit(out, 2);
    expect(out.stderr).toContain(`the folder ${nowhere} does not exist`);
    const created = await runCli(['vault', 'create', '--path', path.join(root, 'new vault'), '--name', 'New', '--credentials-out', path.join(nowhere, 'n.VaultCredentials')]);
    expectExit(created, 2);
    expect(await exists(nowhere)).toBe(false);
    expect(await exists(path.join(root, 'new vault'))).toBe(false);
  });
});

describe.concurrent('vault credentials --endpoint', () => {
  it('refuses a user and password in the address without showing them, on the screen or in the log, and port 0', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const out = path.join(root, 'served.VaultCredentials');
    for (const endpoint of ['https://bob7:s3cret@backup.example:8443', 'https://bob7:s3cret@backup.example:99999', 'https://backup.example:0']) {
      const r = await runCli(['vault', 'credentials', '--path', vault.dir, '--endpoint', endpoint, '--out', out], { home });
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stdout + r.stderr, endpoint).not.toMatch(/bob7|s3cret/);
      expect(r.stderr, endpoint).toContain(endpoint.includes('@') ? 'https://***@backup.example' : 'port 0');
    }
    const log = await fs.readFile(path.join(home, 'logs', 'azbk.log'), 'utf8');
    expect(log).toContain('AZBK_BAD_INPUT');
    expect(log).not.toMatch(/bob7|s3cret/);
    expect(await exists(out)).toBe(false);
  });
});

describe.concurrent('register with bad credentials', () => {
  it('refuses expired credentials with exit 13, says to download new ones, registers nothing', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const { issueCredentials } = (await import(pathToFileURL(path.join(DIST, 'vault', 'credentials.js')).href)) as {
      issueCredentials: (p: Record<string, unknown>) => CredentialsFile;
    };
    const key = JSON.parse(await fs.readFile(path.join(vault.dir, 'vault', 'signing-key'), 'utf8')) as { privateKey: string };
    const good = await readCreds(vault.credentials);
    const expired = issueCredentials({
      vaultId: good.vaultId,
      vaultName: good.vaultName,
      endpoint: good.endpoint,
      certFingerprint: null,
      privateKeyPem: key.privateKey,
      now: new Date(Date.now() - 11 * DAY),
      validDays: 10,
    });
    const file = await writeCreds(root, 'expired', expired);
    const { r, home } = await register(root, file);
    expectExit(r, 13);
    expectNoStack(r);
    expect(r.stderr).toMatch(/expired/i);
    expect(r.stderr).toMatch(/download a new credentials file/i);
    await expectNothingRegistered(home, vault);

    // The same signing key with a current date works, so it was only the date.
    const fresh = issueCredentials({ ...expired, privateKeyPem: key.privateKey, now: new Date(), validDays: 10 });
    expectExit((await register(root, await writeCreds(root, 'fresh', fresh))).r, 0);
  });

  it('refuses altered credentials with exit 13 and registers nothing', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    const good = await readCreds(vault.credentials);
    const [payload, sig] = good.token.split('.') as [string, string];
    const sigBytes = Buffer.from(sig, 'base64url');
    sigBytes[10] = sigBytes[10]! ^ 0x01;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const later = new Date(Date.parse(good.expires) + DAY).toISOString();
    const variants: Record<string, unknown> = {
      vaultName: { ...good, vaultName: 'SomeOtherVault' },
      expires: { ...good, expires: later },
      signature: { ...good, token: `${payload}.${sigBytes.toString('base64url')}` },
      // The claims re-encoded with a later expiry, keeping the old signature.
      claims: {
        ...good,
        expires: later,
        token: `${Buffer.from(JSON.stringify({ ...claims, expires: later })).toString('base64url')}.${sig}`,
      },
      vaultId: { ...good, vaultId: '0'.repeat(32) },
    };
    for (const [what, creds] of Object.entries(variants)) {
      const { r, home } = await register(root, await writeCreds(root, what, creds));
      expect(r.code, `altered ${what}: ${r.stderr}`).toBe(13);
      expectNoStack(r);
      await expectNothingRegistered(home, vault);
    }
    const notJson = path.join(root, 'garbage.VaultCredentials');
    await fs.writeFile(notJson, 'this is not a credentials file');
    expectExit((await register(root, notJson)).r, 13);
    // The untouched file still works.
    expectExit((await register(root, vault.credentials)).r, 0);
  });

  it('reports a vault folder that is gone with exit 10', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    await fs.rename(vault.dir, path.join(root, 'moved away'));
    const { r, home } = await register(root, vault.credentials);
    expectExit(r, 10);
    expectNoStack(r);
    expect(await exists(path.join(home, 'registration.json'))).toBe(false);
    expect(await exists(vault.dir), 'the vault folder must not be recreated').toBe(false);
  });
});

describe.concurrent('vault limit', () => {
  it('registers 50 machines and refuses the 51st with exit 14', async (ctx) => {
    const root = await tempDir(ctx);
    const vault = await createVault(root);
    expectExit((await register(root, vault.credentials, 'real-1')).r, 0);
    // 48 more machine records, as the vault writes them (registering each would take minutes).
    await fs.mkdir(path.join(vault.dir, 'machines'), { recursive: true });
    for (let i = 0; i < 48; i++) {
      const id = (0x10 + i).toString(16).padStart(32, 'a');
      const rec = { id, name: `filler-${i}`, os: 'linux-x64', hostname: 'h', registered: new Date(Date.now() + i).toISOString(), secretHash: '0'.repeat(64) };
      await fs.writeFile(path.join(vault.dir, 'machines', id), JSON.stringify(rec));
    }
    expectExit((await register(root, vault.credentials, 'real-50')).r, 0);
    expect(await vaultObjects(vault.dir, 'machines')).toHaveLength(50);
    const { r, home } = await register(root, vault.credentials, 'real-51');
    expectExit(r, 14);
    expectNoStack(r);
    expect(await exists(path.join(home, 'registration.json'))).toBe(false);
    expect(await vaultObjects(vault.dir, 'machines')).toHaveLength(50);
  });
});
