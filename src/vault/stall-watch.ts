/**
 * Once a job is asked to stop, tells a vault service that has gone silent (a frozen process, a
 * lost link) from one that is only slow: the requests in flight, together, must in every
 * `graceMs` get a reply or move at least `minBytes` (sent or received), or every one of them is
 * ended. A stopping backup then ends in about a minute instead of the reply timeout's ten, while
 * its last uploads on a slow link, or a request queued behind them, are not cut.
 */
import { setMaxListeners } from 'node:events';

export class StallWatch {
  #controller = listenedTo(new AbortController());
  #timer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #moved = 0;
  #replies = 0;
  /** what had moved, and the replies had, when the window began */
  #mark = { moved: 0, replies: 0, at: 0 };

  constructor(
    private readonly graceMs: number,
    private readonly minBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Aborted when the requests in flight stalled (those after get a new one), or on close. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The job was asked to stop: watching begins. */
  start(): void {
    if (this.#timer !== undefined || this.#controller.signal.aborted) return;
    this.#begin();
    this.#timer = setInterval(() => this.#check(), Math.max(10, this.graceMs / 4));
    this.#timer.unref();
  }

  /** Ends every request in flight, and watching. */
  close(): void {
    clearInterval(this.#timer);
    this.#controller.abort();
  }

  /** A request is in flight until the function returned is called. */
  enter(): () => void {
    if (this.#inFlight++ === 0) this.#begin();
    let left = false;
    return () => {
      if (!left) this.#inFlight--;
      left = true;
    };
  }

  /** `bytes` were sent or received. */
  moved(bytes: number): void {
    this.#moved += bytes;
  }

  /** A reply's headers came. */
  replied(): void {
    this.#replies++;
  }

  #begin(): void {
    this.#mark = { moved: this.#moved, replies: this.#replies, at: this.now() };
  }

  #check(): void {
    if (this.#inFlight === 0 || this.now() - this.#mark.at < this.graceMs) return;
    if (this.#replies === this.#mark.replies && this.#moved - this.#mark.moved < this.minBytes) {
      const stalled = this.#controller;
      this.#controller = listenedTo(new AbortController());
      stalled.abort();
    }
    this.#begin();
  }
}

/** Every request in flight listens to its signal: more than Node's ten at a time is usual. */
function listenedTo(c: AbortController): AbortController {
  setMaxListeners(0, c.signal);
  return c;
}
