/**
 * Writes in flight, and the first of them that failed. Whoever ends a series of writes (a pack
 * stream, an object being written) waits for all of them and must not go on if one failed: every
 * layer a write passes through keeps this account itself.
 */
export class InFlight {
  /** a promise per write that settles with it and never rejects */
  readonly #pending = new Set<Promise<void>>();
  #failure: unknown = undefined;

  /** Counts `write` until it settles, and keeps its error if it is the first; returns `write`. */
  track<T>(write: Promise<T>): Promise<T> {
    const settled: Promise<void> = write.then(
      () => void this.#pending.delete(settled),
      (err: unknown) => {
        this.#failure ??= err ?? new Error('write failed');
        this.#pending.delete(settled);
      },
    );
    this.#pending.add(settled);
    return write;
  }

  /** Keeps `err` as the failure if none came first (one found before a write was started). */
  fail(err: unknown): void {
    this.#failure ??= err;
  }

  /** The first error, or undefined. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Writes not settled yet. */
  get size(): number {
    return this.#pending.size;
  }

  /** Resolves once every write tracked so far has settled. */
  async settled(): Promise<void> {
    await Promise.all(this.#pending);
  }

  /** Resolves once one of the writes in flight settles (at once when there is none). */
  async one(): Promise<void> {
    if (this.#pending.size > 0) await Promise.race(this.#pending);
  }
}
