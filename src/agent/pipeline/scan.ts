/**
 * The main thread's side of the scan worker (scan-worker.ts), which helps a full-scan backup:
 * while the walk goes through the included folders from the start, the worker goes through them
 * from the far end and reports the folders that did not change since a backup stored them. When
 * the walk reaches such a folder, it takes the stored tree without listing the folder. The two
 * meet about halfway, so on two or more cores an unchanged tree is examined in about half the
 * time. The scan is only a help: a folder it has not reported yet is examined by the walk, and a
 * failed scan leaves every folder to it.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { BlobId } from '../../core/ids.js';
import type { KnownDir } from '../file-cache.js';
import { workerUrl } from './worker-url.js';

export interface ScanInit {
  /** the included paths, in the walk's order */
  readonly roots: readonly string[];
  /** the cache database, read through a connection of the worker's own */
  readonly cacheFile: string;
  readonly port: MessagePort;
}

/** Unchanged folders, each after every folder beneath it: per folder its path, tree and totals (4 numbers). */
export interface ScanBatch {
  readonly paths: readonly string[];
  readonly trees: readonly string[];
  readonly counts: readonly number[];
}

const WORKER_URL = workerUrl('scan-worker.js');

export class FolderScan {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly found = new Map<string, KnownDir>();
  private off = false;
  private closed = false;
  private readonly exited: Promise<void>;

  /** `stored(tree)`: whether the vault has that tree blob; a folder is taken only when it has. */
  constructor(
    roots: readonly string[],
    cacheFile: string,
    private readonly stored: (tree: BlobId) => boolean,
  ) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_URL, { workerData: { roots, cacheFile, port: port2 } satisfies ScanInit, transferList: [port2] });
    this.worker.on('error', () => this.stopUsing());
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  /** Resolves when the worker has gone through everything (or stopped). */
  done(): Promise<void> {
    return this.exited;
  }

  /** The stored folder at `abs`, when the scan found it unchanged; the walk examines it otherwise. */
  take(abs: string): KnownDir | undefined {
    if (this.off) return undefined;
    // The walk seldom leaves the event loop a turn, so it takes what the worker sent itself.
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      this.add(m.message as ScanBatch);
    }
    const d = this.found.get(abs);
    if (d !== undefined) this.found.delete(abs);
    return d;
  }

  private add(b: ScanBatch): void {
    for (let i = 0; i < b.paths.length && !this.off; i++) {
      const tree = b.trees[i] as BlobId;
      // Every folder beneath this one was reported and checked first. A tree the vault lacks
      // (the cache is older than the vault's state) ends the help: whatever holds it must be
      // stored again, which only the walk does.
      if (!this.stored(tree)) this.stopUsing();
      else this.found.set(b.paths[i]!, { tree, files: b.counts[4 * i]!, dirs: b.counts[4 * i + 1]!, symlinks: b.counts[4 * i + 2]!, bytes: b.counts[4 * i + 3]! });
    }
  }

  private stopUsing(): void {
    this.off = true;
    this.found.clear();
  }

  /** Stops the worker (the walk is done, or failed). */
  async close(): Promise<void> {
    this.stopUsing();
    if (this.closed) return;
    this.closed = true;
    this.port.close();
    await this.worker.terminate();
  }
}
