/**
 * Running the built azbk CLI the way a user does: `node bin/azbk ...` in a child process, with
 * AZBK_HOME pointing at one simulated machine's folder and no terminal (stdin ignored). Build
 * first (`npm run build`): these helpers run dist/, never src/.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, type TestContext } from 'vitest';
import { createTempDir } from './tmp.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(REPO, 'bin', 'azbk');
export const DIST = path.join(REPO, 'dist');
/** GNU time, for peak memory; null when it is not installed. */
export const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

if (!existsSync(path.join(DIST, 'bundle', 'main.js'))) {
  throw new Error(`${DIST}/bundle/main.js is missing: run \`npm run build\` before the end-to-end tests.`);
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** peak resident set size in KiB, when run with `measure` */
  readonly maxRssKiB?: number;
  /** wall time of the child in milliseconds */
  readonly ms: number;
}

export interface RunOptions {
  /** AZBK_HOME of the simulated machine (omit for commands that need none, e.g. vault create) */
  readonly home?: string;
  /** extra environment variables */
  readonly env?: Record<string, string>;
  /** kill the child after this many ms (default 60 s) */
  readonly timeout?: number;
  readonly cwd?: string;
  /** run under /usr/bin/time -v and report the peak RSS (requires GNU_TIME) */
  readonly measure?: boolean;
}

/** Runs `azbk ...args` and collects its exit code and output. Never rejects for a non-zero exit. */
export async function runCli(args: readonly string[], opts: RunOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Each simulated machine has its own AZBK_HOME, and a keychain only when a test gives it one
  // (helpers/secret-service.ts): neither may leak in from the test runner's shell, whose session
  // bus D-Bus also finds through XDG_RUNTIME_DIR.
  delete env.AZBK_HOME;
  delete env.DBUS_SESSION_BUS_ADDRESS;
  delete env.XDG_RUNTIME_DIR;
  // Nor a proxy: the vault services tests reach are on 127.0.0.1 (test/e2e/proxy.test.ts sets one).
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy']) delete env[name];
  Object.assign(env, opts.env);
  if (opts.home !== undefined) env.AZBK_HOME = opts.home;
  let timeFile: string | undefined;
  let cmd = process.execPath;
  let argv = [BIN, ...args];
  if (opts.measure) {
    if (GNU_TIME === null) throw new Error('runCli: measure needs /usr/bin/time');
    timeFile = path.join(os.tmpdir(), `azbk-time-${process.pid}-${randomBytes(6).toString('hex')}.txt`);
    cmd = GNU_TIME;
    argv = ['-v', '-o', timeFile, process.execPath, ...argv];
  }
  const started = Date.now();
  const child = spawn(cmd, argv, { env, cwd: opts.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 60_000);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  }).finally(() => clearTimeout(timer));
  let maxRssKiB: number | undefined;
  if (timeFile !== undefined) {
    const text = await fs.readFile(timeFile, 'utf8');
    await fs.rm(timeFile, { force: true });
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
    if (m) maxRssKiB = Number(m[1]);
    // GNU time reports a non-zero exit of the child as "Command exited with non-zero status N".
  }
  return {
    code,
    signal,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
    ms: Date.now() - started,
    ...(maxRssKiB === undefined ? {} : { maxRssKiB }),
  };
}

/**
 * A temporary folder removed when the test of `ctx` finishes. Unlike makeTempDir it works in
 * concurrent tests (describe.concurrent), which must use their own context's hooks.
 */
export async function tempDir(ctx: Pick<TestContext, 'onTestFinished'>, prefix = 'azbk-e2e-'): Promise<string> {
  const dir = await createTempDir(prefix);
  ctx.onTestFinished(dir.cleanup);
  return dir.path;
}

/** A readable description of a result, for assertion messages. */
export function show(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Asserts the exit code, showing the output when it differs. */
export function expectExit(r: CliResult, code: number): void {
  expect(r.code, show(r)).toBe(code);
}

/** Asserts that nothing looks like a JavaScript stack trace or an internal error. */
export function expectNoStack(r: CliResult): void {
  const both = r.stdout + r.stderr;
  expect(both, show(r)).not.toMatch(/^\s+at .+(:\d+:\d+\)?|\(native\)|<anonymous>)$/m);
  expect(both, show(r)).not.toMatch(/AZBK_INTERNAL|TypeError|ReferenceError|node:internal/);
}

/** Parses the --json document a command printed on stdout. */
export function parseJson<T = any>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON document:\n${show(r)}`);
  }
}

/** A passphrase of 16+ characters used by most tests. */
export const PASSPHRASE = 'correct horse battery staple 42';

export interface Vault {
  readonly dir: string;
  readonly credentials: string;
}

/** Creates an embedded vault in `root/vault` with credentials in `root/<name>.VaultCredentials`. */
export async function createVault(root: string, name = 'TestVault', extra: readonly string[] = []): Promise<Vault> {
  const dir = path.join(root, 'vault');
  const credentials = path.join(root, `${name}.VaultCredentials`);
  await fs.mkdir(root, { recursive: true });
  const r = await runCli(['vault', 'create', '--path', dir, '--name', name, '--credentials-out', credentials, ...extra]);
  expectExit(r, 0);
  return { dir, credentials };
}

export interface Machine {
  readonly name: string;
  readonly home: string;
  readonly passphraseFile: string;
  readonly vault: Vault;
  /** runs azbk as this machine (AZBK_HOME set) */
  run(args: readonly string[], opts?: Omit<RunOptions, 'home'>): Promise<CliResult>;
}

let passphraseFiles = 0;

/** Writes `passphrase` to a new file under `root` and returns its path. */
export async function writePassphrase(root: string, passphrase: string): Promise<string> {
  const file = path.join(root, `passphrase-${++passphraseFiles}.txt`);
  await fs.writeFile(file, passphrase + '\n', { mode: 0o600 });
  return file;
}

/**
 * Registers a simulated machine `name` (AZBK_HOME = root/home-<name>) with `vault`, or with a new
 * vault created under `root` when none is given.
 */
export async function setupMachine(
  root: string,
  opts: { name?: string; vault?: Vault; passphrase?: string } = {},
): Promise<Machine> {
  const name = opts.name ?? 'A';
  const vault = opts.vault ?? (await createVault(root));
  const home = path.join(root, `home-${name}`);
  const passphraseFile = await writePassphrase(root, opts.passphrase ?? PASSPHRASE);
  const run = (args: readonly string[], o: Omit<RunOptions, 'home'> = {}) => runCli(args, { ...o, home });
  const r = await run(['register', '--vault-credentials', vault.credentials, '--passphrase-file', passphraseFile, '--machine-name', name]);
  expectExit(r, 0);
  return { name, home, passphraseFile, vault, run };
}

/** Runs `backup --now --include ... --json` and returns the parsed result (exit code checked). */
export async function backup(m: Machine, include: readonly string[], expectCode = 0): Promise<any> {
  const r = await m.run(['backup', '--now', '--include', ...include, '--json']);
  expectExit(r, expectCode);
  return parseJson(r);
}

/** One machine with one point, shared by every test of a file (see pointFixture). */
export interface PointFixture {
  /** the test folder */
  readonly root: string;
  /** the backed-up tree, `root/data` */
  readonly src: string;
  readonly machine: Machine;
  /** a new folder name under the test folder */
  fresh(name: string): string;
}

/**
 * Registers, before the tests of a file, one machine with one point of the tree `make` writes
 * into `root/data`; removes the test folder after them.
 */
export function pointFixture(make: (src: string) => Promise<void>): PointFixture {
  let root = '';
  let machine: Machine | undefined;
  let n = 0;
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const tmp = await createTempDir();
    cleanup = tmp.cleanup;
    root = tmp.path;
    await make(path.join(root, 'data'));
    machine = await setupMachine(root);
    await backup(machine, [path.join(root, 'data')]);
  });
  afterAll(() => cleanup?.());
  return {
    get root() {
      return root;
    },
    get src() {
      return path.join(root, 'data');
    },
    get machine() {
      return machine!;
    },
    fresh: (name) => path.join(root, `${name}-${++n}`),
  };
}
