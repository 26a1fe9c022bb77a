/**
 * `azbk vault serve` as a child process for end-to-end tests: started on 127.0.0.1 and a free
 * port, ready once it printed its URL and certificate fingerprint, stopped with SIGTERM.
 */
import { spawn } from 'node:child_process';
import { BIN, REPO } from './cli.js';

/** A running `azbk vault serve`. */
export interface ServeProcess {
  readonly url: string;
  readonly fingerprint: string;
  readonly pid: number;
  /** everything printed so far */
  stdout(): string;
  stderr(): string;
  /** Sends SIGTERM and resolves with the exit code and the milliseconds it took. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** Starts `azbk vault serve ...args --listen 127.0.0.1:0` (or `listen`); kills it if it is not ready in time. */
export async function startServe(args: readonly string[], o: { env?: Record<string, string>; timeoutMs?: number; listen?: string } = {}): Promise<ServeProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env };
  delete env.AZBK_HOME;
  const child = spawn(process.execPath, [BIN, 'vault', 'serve', ...args, '--listen', o.listen ?? '127.0.0.1:0'], { env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = await new Promise<{ url: string; fingerprint: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vault serve did not start:\n${out}\n${err}`));
    }, o.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const url = /listening on (https:\/\/\S+)/.exec(out)?.[1];
      const fingerprint = /certificate sha256 ([0-9a-f]{64})/.exec(out)?.[1];
      if (url && fingerprint) {
        clearTimeout(timer);
        resolve({ url, fingerprint });
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`vault serve exited with ${code}:\n${out}\n${err}`));
    });
  });
  let stopped: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> | undefined;
  return {
    ...ready,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    stop: () => {
      stopped ??= (async () => {
        const started = Date.now();
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        const r = await exited;
        clearTimeout(killer);
        return { ...r, ms: Date.now() - started };
      })();
      return stopped;
    },
  };
}
