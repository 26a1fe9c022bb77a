/**
 * Registering on a terminal: without a passphrase option, azbk asks twice with hidden input. The
 * terminal is a real pseudo-terminal made by `script` (util-linux), answered once each prompt shows.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, createVault, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const SCRIPT = '/usr/bin/script';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `azbk register` on a pseudo-terminal, typing each answer once its prompt appears. */
function registerOnTerminal(home: string, credentials: string, answers: readonly string[]) {
  return onTerminal(home, `register --vault-credentials ${credentials} --machine-name tty`, [/Passphrase \(16\+ characters\): $/, /Passphrase again: $/], answers);
}

/** Runs `azbk ARGS` on a pseudo-terminal, typing each answer once its prompt (one of `prompts`, in turn) appears. */
async function onTerminal(home: string, args: string, prompts: readonly RegExp[], answers: readonly string[]) {
  const cmd = `${process.execPath} ${BIN} ${args}`;
  const child = spawn(SCRIPT, ['-qfec', cmd, '/dev/null'], { env: { ...process.env, AZBK_HOME: home }, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.on('data', (b: Buffer) => (screen += b.toString()));
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  for (const [i, answer] of answers.entries()) {
    for (let t = 0; t < 400 && !prompts[i]!.test(screen.trimEnd() + ' '); t++) await sleep(25);
    await sleep(100);
    child.stdin.write(answer + '\r');
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await done;
  clearTimeout(timer);
  child.stdin.end();
  return { code, screen };
}

describe.skipIf(!existsSync(SCRIPT))('register on a terminal', () => {
  it('asks twice without echoing, and registers', async () => {
    const root = await makeTempDir('azbk-tty-');
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const secret = 'a terminal passphrase 1234';
    const r = await registerOnTerminal(home, vault.credentials, [secret, secret]);
    expect(r.code, r.screen).toBe(0);
    expect(r.screen).toMatch(/Passphrase again:/);
    expect(r.screen).toMatch(/Registered tty/);
    expect(r.screen).not.toContain(secret);
    expect(existsSync(path.join(home, 'registration.json'))).toBe(true);
  }, 60_000);

  it('refuses two different answers, and a short one, with exit 2 and registers nothing', async () => {
    const root = await makeTempDir('azbk-tty-');
    const vault = await createVault(root);
    const home = path.join(root, 'home');
    const differ = await registerOnTerminal(home, vault.credentials, ['first passphrase 123456', 'second passphrase 12345']);
    expect(differ.code, differ.screen).toBe(2);
    expect(differ.screen).toMatch(/AZBK_PASSPHRASE_MISMATCH/);
    // Ctrl-D at an empty prompt: nothing more will come, so it is cancelled (the Enter after it is not read).
    const ended = await registerOnTerminal(home, vault.credentials, ['\u0004']);
    expect(ended.code, ended.screen).toBe(130);
    expect(ended.screen).toMatch(/AZBK_CANCELLED: Cancelled \(end of input\)/);
    const short = await registerOnTerminal(home, vault.credentials, ['too short']);
    expect(short.code, short.screen).toBe(2);
    expect(short.screen).toMatch(/AZBK_PASSPHRASE_TOO_SHORT/);
    expect(existsSync(path.join(home, 'registration.json'))).toBe(false);
    expect(await fs.readdir(path.join(vault.dir, 'machines')).catch(() => [])).toEqual([]);
  }, 60_000);

  it('passphrase check: a short passphrase typed is bad input (exit 2), as one read from a file is', async () => {
    const root = await makeTempDir('azbk-tty-');
    const m = await setupMachine(root);
    const short = await onTerminal(m.home, 'passphrase check', [/Passphrase: $/], ['too short']);
    expect(short.code, short.screen).toBe(2);
    expect(short.screen).toMatch(/AZBK_PASSPHRASE_TOO_SHORT/);
  }, 60_000);
});
