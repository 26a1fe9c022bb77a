/** Registration: passphrase rules, generated passphrases, and no half-registered states. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createVault, expectExit, expectNoStack, parseJson, PASSPHRASE, runCli, writePassphrase, tempDir } from '../helpers/cli.js';
import { exists, vaultObjects } from '../helpers/fs-tree.js';

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
