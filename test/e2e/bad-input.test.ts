/**
 * Ordinary mistakes end 2 with a message that names what is wrong, never as an internal error:
 * a vault folder that cannot be made, an address that cannot be listened on, the root folder as a
 * policy's path, and an empty value (an empty shell variable) where a path or any other value goes.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createServer } from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, createVault, expectExit, expectNoStack, parseJson, runCli, setupMachine, show, tempDir, type CliResult } from '../helpers/cli.js';
import { exists } from '../helpers/fs-tree.js';

const linux = process.platform === 'linux';
const root = process.getuid?.() === 0;

/** Asserts exit 2 with AZBK_BAD_INPUT, no internal error, and a message matching each of `says`. */
function expectBadInput(r: CliResult, ...says: (string | RegExp)[]): void {
  expectExit(r, 2);
  expectNoStack(r);
  expect(r.stderr, show(r)).toMatch(/^azbk: error AZBK_BAD_INPUT: /);
  for (const s of says) {
    if (typeof s === 'string') expect(r.stderr, show(r)).toContain(s);
    else expect(r.stderr, show(r)).toMatch(s);
  }
}

/** A `crontab` first on PATH that records what would be written to the crontab in `root/crontab`. */
async function fakeCrontab(dir: string): Promise<{ env: Record<string, string>; written: string }> {
  const bin = path.join(dir, 'bin');
  const written = path.join(dir, 'crontab');
  await fs.mkdir(bin);
  await fs.writeFile(
    path.join(bin, 'crontab'),
    `#!/bin/sh\nif [ "$1" = -l ]; then echo "no crontab for user" >&2; exit 1; fi\ncat > '${written}'\n`,
    { mode: 0o755 },
  );
  return { env: { PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` }, written };
}

describe.concurrent('bad input exits 2 and says what is wrong', () => {
  it('vault create names the folder it cannot make, and why', async (ctx) => {
    const dir = await tempDir(ctx);
    const file = path.join(dir, 'file');
    await fs.writeFile(file, 'not a folder\n');
    const cases: [string, RegExp][] = [
      [file, /it is a file, not a folder \(EEXIST\)/],
      [path.join(file, 'v'), /a part of the path is a file, not a folder \(ENOTDIR\)/],
    ];
    if (linux) {
      // /proc takes no new folders (ENOENT), which sent Node's recursive mkdir round for ever.
      cases.push([`/proc/azbk-${randomBytes(4).toString('hex')}`, /\(ENOENT\)/]);
      cases.push([`/sys/azbk-${randomBytes(4).toString('hex')}/v`, /\((EPERM|EACCES|ENOENT)\)/]);
    }
    if (process.platform !== 'win32' && !root) {
      const readOnly = path.join(dir, 'read-only');
      await fs.mkdir(readOnly, { mode: 0o555 });
      cases.push([path.join(readOnly, 'v'), /permission denied \(EACCES\)/]);
    }
    const results = await Promise.all(cases.map(([p]) => runCli(['vault', 'create', '--path', p, '--name', 'n'], { timeout: 20_000 })));
    for (const [i, [p, why]] of cases.entries()) expectBadInput(results[i]!, `Cannot make the vault folder ${p}: `, why);
    expect(await fs.readFile(file, 'utf8')).toBe('not a folder\n');
    // A name refused leaves no folder behind.
    const deep = path.join(dir, 'v', 'deep');
    expectBadInput(await runCli(['vault', 'create', '--path', deep, '--name', 'a/b']), 'A vault name has 1 to 64 letters', /digits/);
    expect(await exists(path.join(dir, 'v'))).toBe(false);
  });

  it('vault serve names the address it cannot listen on, and why', async (ctx) => {
    const dir = await tempDir(ctx);
    const vault = await createVault(dir);
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    ctx.onTestFinished(() => void taken.close());
    const port = (taken.address() as { port: number }).port;
    const serve = (listen: string) => runCli(['vault', 'serve', '--path', vault.dir, '--listen', listen], { timeout: 20_000 });
    expectBadInput(await serve(`127.0.0.1:${port}`), `Cannot listen on 127.0.0.1:${port}: `, /in use .*\(EADDRINUSE\)/);
    // TEST-NET-1 (RFC 5737): an address no machine here has
    expectBadInput(await serve('192.0.2.1:8443'), 'Cannot listen on 192.0.2.1:8443: ', /not one of this machine \(EADDRNOTAVAIL\)/);
  });

  it.skipIf(process.platform === 'win32')('policy set refuses the root folder whole, as every backup would, and changes nothing', async (ctx) => {
    const dir = await tempDir(ctx);
    const m = await setupMachine(dir);
    const cron = await fakeCrontab(dir);
    const policyFile = path.join(m.home, 'policy.json');
    expectExit(await m.run(['policy', 'set', '--include', dir]), 0);
    const before = await fs.readFile(policyFile, 'utf8');
    for (const args of [
      ['--include', '/', '--schedule', '09:00'],
      ['--include', dir, '/', '--schedule', '09:00'],
      ['--include', '/'],
    ]) {
      const r = await m.run(['policy', 'set', ...args], { env: cron.env });
      expectBadInput(r, 'The root folder / cannot be backed up as a whole.');
    }
    expect(await fs.readFile(policyFile, 'utf8')).toBe(before);
    expect(await exists(cron.written)).toBe(false);
    // what a backup says of it, word for word
    const b = await m.run(['backup', '--now', '--include', '/']);
    expectBadInput(b, 'The root folder / cannot be backed up as a whole.');
  });

  it('refuses an AZBK_HOME that is a file, naming it, instead of calling what is under it damaged', async (ctx) => {
    const dir = await tempDir(ctx);
    const home = path.join(dir, 'home-file');
    await fs.writeFile(home, 'not a folder\n');
    for (const args of [['status'], ['backup', '--now'], ['points']]) {
      expectBadInput(await runCli(args, { home, timeout: 20_000 }), `AZBK_HOME (${home}) is not a folder.`);
    }
    expect(await fs.readFile(home, 'utf8')).toBe('not a folder\n');
    // Below a file: the same, not an internal error.
    expectBadInput(await runCli(['status'], { home: path.join(home, 'sub'), timeout: 20_000 }), `AZBK_HOME (${path.join(home, 'sub')}) is below a file, not a folder.`);
  });

  it('says AZBK_LOCAL_IO, naming the file, when AZBK_HOME cannot be written as it must (a file where its cache folder goes), and when the output cannot be written', async (ctx) => {
    const dir = await tempDir(ctx);
    const m = await setupMachine(dir);
    const src = path.join(dir, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a.txt'), 'a\n');
    const cache = path.join(m.home, 'cache');
    await fs.rm(cache, { recursive: true, force: true });
    await fs.writeFile(cache, 'in the way\n');
    const r = await m.run(['backup', '--now', '--include', src]);
    expectExit(r, 1);
    expectNoStack(r);
    expect(r.stderr).toContain(`AZBK_LOCAL_IO: Cannot mkdir ${cache} (EEXIST).`);
    expect(r.stderr).not.toContain('bug');
    await fs.rm(cache);
    if (process.platform === 'linux') {
      // stdout on a full device: one line on stderr, no stack, the exit code of AZBK_LOCAL_IO
      const fd = openSync('/dev/full', 'w');
      try {
        const full = spawnSync(process.execPath, [BIN, 'points'], { env: { ...process.env, AZBK_HOME: m.home }, stdio: ['ignore', fd, 'pipe'], encoding: 'utf8', timeout: 30_000 });
        expect(full.status).toBe(1);
        expect(full.stderr).toContain("azbk: error AZBK_LOCAL_IO: Cannot write the command's output (ENOSPC).");
        expect(full.stderr).not.toMatch(/\n\s+at /);
      } finally {
        closeSync(fd);
      }
    }
  });

  it('refuses an empty value (an empty shell variable) instead of taking the current folder', async (ctx) => {
    const dir = await tempDir(ctx);
    const m = await setupMachine(dir);
    const src = path.join(dir, 'data');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a.txt'), 'a\n');
    expectExit(await m.run(['backup', '--now', '--include', src]), 0);
    // The current folder of each run: an empty value must not turn into it.
    const cwd = path.join(dir, 'cwd');
    await fs.mkdir(cwd);
    await fs.writeFile(path.join(cwd, 'here.txt'), 'here\n');
    const policyFile = path.join(m.home, 'policy.json');
    const runs: [readonly string[], string][] = [
      [['backup', '--now', '--include', ''], '--include'],
      [['backup', '--now', '--include', src, ''], '--include'],
      [['restore', '--point', 'latest', '--target', ''], '--target'],
      [['restore', '--point', 'latest', '--target', path.join(dir, 'out'), '--path', ''], '--path'],
      [['restore', '--point', 'latest', '--machine', 'A', '--passphrase-file', ''], '--passphrase-file'],
      [['policy', 'set', '--include', ''], '--include'],
      [['vault', 'create', '--path', '', '--name', 'n'], '--path'],
      [['vault', 'serve', '--path', ''], '--path'],
      [['vault', 'credentials', '--path', m.vault.dir, '--out', ''], '--out'],
      [['register', '--vault-credentials', '', '--passphrase-file', m.passphraseFile, '--reregister'], '--vault-credentials'],
      [['passphrase', 'check', '--passphrase-file', ''], '--passphrase-file'],
      [['ls', '--point', 'latest', ''], 'PATHS'],
    ];
    const results = await Promise.all(runs.map(([args]) => m.run(args, { cwd })));
    for (const [i, [, what]] of runs.entries()) {
      expectBadInput(results[i]!, `${what} was given an empty value.`, /hint: An empty shell variable is the usual cause/);
    }
    expect((await fs.readdir(cwd)).sort()).toEqual(['here.txt']);
    expect(JSON.parse(await fs.readFile(policyFile, 'utf8').catch(() => '{}')).include ?? []).not.toContain('');
    const jobs = await m.run(['jobs', '--json']);
    expectExit(jobs, 0);
    expect(parseJson<{ jobs: { kind: string }[] }>(jobs).jobs.filter((j) => j.kind === 'backup'), 'one backup ran: the first').toHaveLength(1);
  });

  it('refuses an option whose value was forgotten, so that the next option was taken for it', async (ctx) => {
    const dir = await tempDir(ctx);
    const m = await setupMachine(dir);
    const policyFile = path.join(m.home, 'policy.json');
    const before = await fs.readFile(policyFile, 'utf8').catch(() => null);
    const set = await m.run(['policy', 'set', '--include', '--json']);
    expectExit(set, 2);
    // --json was asked for: the error is one JSON document.
    expect(parseJson(set)).toEqual({ error: expect.objectContaining({ code: 'AZBK_USAGE', message: '--include has no value: --json, which follows it, is an option of this command.' }) });
    expect(await fs.readFile(policyFile, 'utf8').catch(() => null)).toBe(before);
    const ls = await m.run(['ls', '--point', '-r']);
    expectExit(ls, 2);
    expectNoStack(ls);
    expect(ls.stderr).toContain('--point has no value: -r, which follows it, is an option of this command.');
    // A value that only looks like an option, given as a path, is taken.
    expectExit(await m.run(['policy', 'set', '--include', path.join(dir, '--json')]), 0);
  });
});
