/** The command line itself: help, usage errors (exit 2), error format in text and --json. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, expectExit, expectNoStack, parseJson, runCli, tempDir } from '../helpers/cli.js';
import { exists } from '../helpers/fs-tree.js';

describe.concurrent('azbk command line', () => {
  it('--help exits 0, lists the commands and the exit codes', async () => {
    const r = await runCli(['--help']);
    expectExit(r, 0);
    for (const cmd of ['vault', 'register', 'backup', 'points', 'restore', 'policy']) expect(r.stdout).toContain(cmd);
    expect(r.stdout).toMatch(/10 vault unreachable or not found/);
    expect(r.stdout).toMatch(/13 credentials invalid or expired/);
    const sub = await runCli(['restore', '--help']);
    expectExit(sub, 0);
    expect(sub.stdout).toContain('--conflict');
  });

  it('every command listed in the help has help of its own, with its exit codes (a run loads only the command it runs)', async () => {
    const commandsIn = (help: string) => [...help.split(/\nCommands:\n/)[1]!.matchAll(/^  ([a-z-]+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    const top = commandsIn((await runCli(['--help'])).stdout);
    const vault = commandsIn((await runCli(['vault', '--help'])).stdout);
    expect(top).toEqual(['vault', 'register', 'policy', 'backup', 'points', 'ls', 'find', 'jobs', 'status', 'secrets', 'passphrase', 'restore', 'verify', 'watch']);
    expect(vault).toEqual(['create', 'credentials', 'serve', 'prune']);
    const policy = commandsIn((await runCli(['policy', '--help'])).stdout);
    const passphrase = commandsIn((await runCli(['passphrase', '--help'])).stdout);
    expect(policy).toEqual(['set', 'show']);
    expect(passphrase).toEqual(['check', 'add']);
    const groups = { vault, policy, passphrase };
    const runs = [...top.filter((c) => !(c in groups)).map((c) => [c]), ...Object.entries(groups).flatMap(([g, subs]) => subs.map((c) => [g, c]))];
    const helps = await Promise.all(runs.map((args) => runCli([...args, '--help'])));
    for (const [i, args] of runs.entries()) {
      expectExit(helps[i]!, 0);
      expect(helps[i]!.stdout).toContain(`Usage: azbk ${args.join(' ')} `);
      // Each says how it ends.
      expect(helps[i]!.stdout, args.join(' ')).toMatch(/Exit codes: 0 /);
    }
  });

  it('exits as usual, without a stack trace, when the reader of its output has gone', async () => {
    for (const args of [['--version'], ['--help']]) {
      const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy(); // closed before azbk writes anything: its first write fails with EPIPE
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, 'close')) as [number | null];
      expect(code, `${args.join(' ')}: ${stderr}`).toBe(0);
      expect(stderr).toBe('');
    }
  });

  it('usage errors exit 2 without a stack trace', async (ctx) => {
    const root = await tempDir(ctx);
    const home = path.join(root, 'home');
    for (const args of [
      ['no-such-command'],
      ['backup', '--now', '--bogus-option'],
      ['restore'], // --point is required
      ['register'], // --vault-credentials is required
      ['vault', 'create', '--path', path.join(root, 'v')], // --name and --credentials-out missing
      ['restore', '--point', 'latest', '--passphrase-file', path.join(root, 'p.txt')], // needs --machine
    ]) {
      const r = await runCli(args, { home });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expectNoStack(r);
      expect(r.stderr.length, `${args.join(' ')} explains itself`).toBeGreaterThan(0);
    }
    expect(await exists(path.join(root, 'v'))).toBe(false);
    // With --json, the mistake is one JSON error on stdout too (the usage stays on stderr).
    for (const args of [['backup', '--now', '--json', '--bogus-option'], ['restore', '--json'], ['status', '--json', 'extra']]) {
      const r = await runCli(args, { home });
      expectExit(r, 2);
      const { error } = parseJson(r);
      expect(error, args.join(' ')).toMatchObject({ code: 'AZBK_USAGE', exitCode: 2, message: expect.stringMatching(/\S/), hint: expect.stringMatching(/--help/) });
    }
    // Help is no mistake.
    expect((await runCli(['status', '--help', '--json'], { home })).stdout).not.toContain('"error"');
  });

  it('a command without its subcommand prints the usage and exits 2; asking for help exits 0', async () => {
    const missing = [[], ['vault'], ['policy'], ['passphrase']];
    const asked = [['--help'], ['vault', '--help'], ['policy', '--help'], ['help'], ['help', 'vault'], ['--version']];
    const results = await Promise.all([...missing, ...asked].map((args) => runCli(args)));
    for (const [i, args] of missing.entries()) {
      const r = results[i]!;
      expect(r.code, `azbk ${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`Usage: azbk ${args.join(' ')}`.trimEnd());
      expect(r.stdout).toBe('');
      expectNoStack(r);
    }
    for (const i of asked.keys()) expectExit(results[missing.length + i]!, 0);
  });

  it('reports an error as one line with a code and a hint, and as JSON with --json', async (ctx) => {
    const root = await tempDir(ctx);
    const home = path.join(root, 'home');
    const text = await runCli(['points'], { home });
    expectExit(text, 2);
    expect(text.stderr).toMatch(/^azbk: error AZBK_NOT_REGISTERED: .+\n  hint: .+\n$/);
    expect(text.stdout).toBe('');

    const json = await runCli(['points', '--json'], { home });
    expectExit(json, 2);
    const err = parseJson(json).error;
    expect(err).toMatchObject({ code: 'AZBK_NOT_REGISTERED', exitCode: 2 });
    expect(typeof err.message).toBe('string');
    expect(typeof err.hint).toBe('string');
    expect(await exists(path.join(home, 'registration.json'))).toBe(false);
  });
});
