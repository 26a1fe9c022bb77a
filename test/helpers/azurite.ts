/**
 * Azurite's blob service for tests: `startAzurite()` runs it in its own process on 127.0.0.1 and
 * a free port, in memory, and resolves once it listens. Call it in beforeAll (or in a
 * test) and `stop()` in afterAll (or onTestFinished); stop is safe to call more than once.
 *
 * The process never outlives the test run: `stop()` kills it; so does the exit of the test
 * process, and, should that process be killed outright, Azurite exits by itself when its stdin
 * (a pipe from the test process) closes. Nothing is printed; Azurite's output is kept and shown
 * only in the error when it fails to start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createTempDir } from './tmp.js';

/** The well-known development account of Azurite and the Azure storage emulator. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** A running Azurite blob service. */
export interface Azurite {
  /** An account-key connection string for the service. */
  readonly connectionString: string;
  /** http://127.0.0.1:<port>/devstoreaccount1 */
  readonly blobEndpoint: string;
  readonly port: number;
  /** Kills the process and waits for it to exit; does nothing the second time. */
  stop(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections open but nothing answers. Not on Windows. */
  pause(): void;
  /** Thaws a paused process (SIGCONT). */
  resume(): void;
}

/** A connection string for the Azurite account at `blobEndpoint`, with `accountKey`. */
export function azuriteConnectionString(blobEndpoint: string, accountKey = AZURITE_ACCOUNT_KEY): string {
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${AZURITE_ACCOUNT}`,
    `AccountKey=${accountKey}`,
    `BlobEndpoint=${blobEndpoint}`,
  ].join(';');
}

const AZURITE_BLOB_MAIN = fileURLToPath(
  new URL('../../node_modules/azurite/dist/src/blob/main.js', import.meta.url),
);

/** Loaded into the Azurite process first: exit when the test process goes away. */
const PARENT_WATCH = `data:text/javascript,${encodeURIComponent(
  "process.stdin.on('end',()=>process.exit(0));process.stdin.on('error',()=>process.exit(0));process.stdin.resume();",
)}`;

const START_TIMEOUT_MS = 30_000;

/** Starts Azurite's blob service; retries on another port if the chosen one was taken meanwhile. */
export async function startAzurite(): Promise<Azurite> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(await freePort());
    } catch (err) {
      lastError = err;
      if (!String((err as Error).message).includes('EADDRINUSE')) throw err;
    }
  }
  throw lastError;
}

async function startOnce(port: number): Promise<Azurite> {
  const dir = await createTempDir('azbk-azurite-');
  const env = { ...process.env };
  delete env.AZURITE_ACCOUNTS; // use the default account, whatever the environment says
  const child = spawn(
    process.execPath,
    [
      '--import',
      PARENT_WATCH,
      AZURITE_BLOB_MAIN,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--inMemoryPersistence',
      '--extentMemoryLimit',
      '1024',
      '--silent',
      '--skipApiVersionCheck',
      '--loose',
      '--disableTelemetry',
    ],
    { cwd: dir.path, env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true },
  );
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.stdin?.on('error', () => undefined); // EPIPE once the process is gone
  const exited = once(child, 'exit').then(() => undefined);
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await dir.cleanup();
  };

  try {
    await waitForListening(port, child, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  return {
    connectionString: azuriteConnectionString(blobEndpoint),
    blobEndpoint,
    port,
    stop,
    pause: () => signal(child, 'SIGSTOP'),
    resume: () => signal(child, 'SIGCONT'),
  };
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (process.platform === 'win32') throw new Error(`${sig} is not available on Windows.`);
  if (!child.kill(sig)) throw new Error(`Could not send ${sig} to Azurite.`);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('No TCP port for Azurite.');
  return address.port;
}

/**
 * Resolves once Azurite says it listens on `port` (a connection test could reach another process
 * that took the port first); rejects if `child` exits first or on timeout.
 */
async function waitForListening(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const ready = `successfully listens on http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (output().includes(ready)) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`Azurite exited while starting (${child.exitCode ?? child.signalCode}):\n${output()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`Azurite did not listen on port ${port} within ${START_TIMEOUT_MS} ms:\n${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
