/**
 * The main thread's side of the scan worker (scan-worker.ts), which helps a full-scan backup:
 * while the walk goes through the included folders from the start, the worker goes through them
 * from the far end and reports the folders that did not change since a backup stored them. When
 * the walk reaches such a folder, it takes the stored tree without listing the folder. The two
 * meet about halfway, so on two or more cores an unchanged tree is examined in about half the
 * time. The scan is only a help: a folder it has not reported (yet) is examined by the walk.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { BlobId } from '../../core/ids.js';
import type { KnownDir } from '../file-cache.js';
import { childPath } from '../fspath.js';
import { workerUrl } from '../../shared/worker-url.js';

export interface ScanInit {
  /** the included paths, in the walk's order */
  readonly roots: readonly string[];
  /** what the walk leaves out (see core/exclude.ts): the worker lists folders as the walk does */
  readonly exclude: readonly string[];
  /** folders (`dev:ino`) the walk leaves out: azbk's own (see own-folders.ts) */
  readonly own: readonly string[];
  /** the cache database, read through a connection of the worker's own */
  readonly cacheFile: string;
  readonly port: MessagePort;
}

/**
 * Unchanged folders, each after every folder beneath it: per folder its path, tree, totals (4
 * numbers), when its listing was made (ms since the epoch), and the names of its subfolders.
 */
export interface ScanBatch {
  readonly paths: readonly string[];
  readonly trees: readonly string[];
  readonly counts: readonly number[];
  readonly listed: readonly number[];
  readonly subfolders: readonly (readonly string[])[];
}

export interface ScanOptions {
  /**
   * A report older than this is not taken (default 10 s): a folder taken from the scan is backed
   * up as it was when the worker listed it, and a file moved into it since then would be missed.
   */
  readonly maxAgeMs?: number;
  /** what the walk leaves out (see core/exclude.ts) */
  readonly exclude?: readonly string[];
  /** folders (`dev:ino`) it leaves out too */
  readonly own?: readonly string[];
}

const WORKER_URL = workerUrl(import.meta.url, 'scan-worker.js');

/** A worker prestartScan() started, until a FolderScan takes it or dropPrestartedScan() ends it. */
let prestarted: Worker | null = null;

/**
 * A scan worker, given what to scan now or (null) in a message later. Only a help: a failed
 * worker leaves every folder to the walk, and it never keeps the process alive.
 */
function scanWorker(init: ScanInit | null): Worker {
  const worker = init === null ? new Worker(WORKER_URL, { workerData: null }) : new Worker(WORKER_URL, { workerData: init, transferList: [init.port] });
  worker.on('error', () => undefined);
  worker.unref();
  return worker;
}

/**
 * Starts a scan worker ahead of its FolderScan, which sends it the folders to scan. A worker takes
 * about 100 ms to start (Node's own start in the thread, then its modules), and half again that
 * while the backup loads the blob index beside it: started while the command's modules load, on
 * the other core, it is ready when the walk begins (an unchanged kernel-tree re-run took about
 * 40 ms less). A process that needs none ends it with dropPrestartedScan(); it never keeps a
 * process alive. Returns the worker's thread id, or null when no thread could be started.
 */
export function prestartScan(): number | null {
  if (prestarted === null) {
    let worker: Worker;
    try {
      worker = scanWorker(null);
    } catch {
      return null; // no thread to be had (a process limit): the FolderScan tries again, or the walk goes alone
    }
    // One that ends before it is taken (it failed to load) is not handed to a FolderScan.
    worker.once('exit', () => {
      if (prestarted === worker) prestarted = null;
    });
    prestarted = worker;
  }
  return prestarted.threadId;
}

/** The thread id of the worker prestartScan() started that no FolderScan has taken yet, or null. */
export function prestartedScan(): number | null {
  return prestarted?.threadId ?? null;
}

/** Ends a worker prestartScan() started that no FolderScan took (a backup that needs no scan). */
export function dropPrestartedScan(): void {
  void prestarted?.terminate();
  prestarted = null;
}

const DEFAULT_MAX_AGE_MS = 10_000;
/** Reports held at most (about 0.5 KiB each); further ones are dropped. */
const MAX_HELD = 65_536;

export class FolderScan {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  /** reported folders not yet taken, none beneath another (a folder's report replaces its subfolders') */
  private readonly found = new Map<string, KnownDir & { readonly listed: number }>();
  /** reported folders whose tree, or a tree beneath them, the vault lacks (only until their parent is reported) */
  private readonly lacking = new Set<string>();
  private readonly maxAgeMs: number;
  private closed = false;
  private readonly exited: Promise<void>;

  /** `stored(tree)`: whether the vault has that tree blob; a folder is taken only when it has it and every tree beneath it. */
  constructor(
    roots: readonly string[],
    cacheFile: string,
    private readonly stored: (tree: BlobId) => boolean,
    opts: ScanOptions = {},
  ) {
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const init: ScanInit = { roots, exclude: opts.exclude ?? [], own: opts.own ?? [], cacheFile, port: port2 };
    if (prestarted !== null) {
      this.worker = prestarted;
      prestarted = null;
      this.worker.postMessage(init, [port2]);
    } else this.worker = scanWorker(init);
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  /**
   * Resolves when the worker has gone through everything (or stopped). The worker keeps the
   * process alive while it is waited for: unwaited, it never does (see the constructor).
   */
  done(): Promise<void> {
    this.worker.ref();
    return this.exited;
  }

  /** The stored folder at `abs`, when the scan found it unchanged; the walk examines it otherwise. */
  take(abs: string): KnownDir | undefined {
    if (this.closed) return undefined;
    // The walk seldom leaves the event loop a turn, so it takes what the worker sent itself.
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      this.add(m.message as ScanBatch);
    }
    const d = this.found.get(abs);
    if (d === undefined) return undefined;
    this.found.delete(abs);
    return Date.now() - d.listed > this.maxAgeMs ? undefined : d;
  }

  private add(b: ScanBatch): void {
    for (let i = 0; i < b.paths.length; i++) {
      const dir = b.paths[i]!;
      const tree = b.trees[i] as BlobId;
      // The reports of its subfolders came first: this one stands for them now.
      let whole = this.stored(tree);
      for (const name of b.subfolders[i]!) {
        const sub = childPath(dir, name);
        this.found.delete(sub);
        if (this.lacking.delete(sub)) whole = false;
      }
      if (!whole) this.lacking.add(dir); // the walk stores what the vault lacks
      else if (this.found.size < MAX_HELD) {
        this.found.set(dir, { tree, files: b.counts[4 * i]!, dirs: b.counts[4 * i + 1]!, symlinks: b.counts[4 * i + 2]!, bytes: b.counts[4 * i + 3]!, listed: b.listed[i]! });
      }
    }
  }

  /** Stops the worker (the walk is done, or failed), without waiting for a system call it may be stuck in. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.found.clear();
    this.lacking.clear();
    this.port.close();
    void this.worker.terminate();
  }
}
