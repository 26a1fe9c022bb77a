/**
 * Stopping a long command at a safe point on Ctrl-C, SIGTERM or SIGHUP (the terminal it was
 * started from closed: left to Node's default, that would end it as a kill does, with no
 * checkpoint saved and its job lock left behind).
 */
import { AzbkError, ExitCode } from '../shared/errors.js';
import { printJsonError } from './output.js';

export interface StopOptions {
  /**
   * Until `begun()`, a signal ends the command at once, as a second one would (after saying
   * `before`): while it connects to the vault there is no safe point to wait for, and nothing to
   * save.
   */
  readonly before?: string;
  /** --json: a stop at once also says so as the JSON error on stdout (AZBK_CANCELLED) */
  readonly json?: boolean;
}

export interface Stopping {
  readonly signal: AbortSignal;
  /** the job has begun: from now on the first signal stops it at its next safe point */
  readonly begun: () => void;
  /** the command has recorded how it ended: a signal now only exits */
  readonly settled: () => void;
  /** what a first signal from now on says it does (the job is past where it could stop) */
  readonly saying: (stopping: string) => void;
  readonly dispose: () => void;
}

/** How a second signal of the kind received stops the command at once, for the stopping message. */
const AGAIN = {
  SIGINT: 'press Ctrl-C again to stop at once',
  SIGTERM: 'a second SIGTERM stops it at once',
  SIGHUP: 'a second SIGHUP stops it at once',
} as const;

/** The signals that ask a command to stop. */
export type StopSignal = keyof typeof AGAIN;
export const STOP_SIGNALS = Object.keys(AGAIN) as StopSignal[];

/** Calls `handler` on each of the signals that ask to stop; returns what takes it off again. */
export function onStopSignals(handler: (signal: StopSignal) => void): () => void {
  const listeners = STOP_SIGNALS.map((sig) => [sig, () => handler(sig)] as const);
  for (const [sig, listener] of listeners) process.on(sig, listener);
  return () => {
    for (const [sig, listener] of listeners) process.off(sig, listener);
  };
}

/**
 * Ctrl-C, SIGTERM or SIGHUP once: `warn(stopping)`, with how a second one stops at once, and abort the
 * signal, for the command to stop at its next safe point. Twice: `atOnce()` (synchronous work
 * only: what the command must still record), unless `settled()` said it was recorded already,
 * then exit at once (130). With `before`, the first signal does that too until `begun()` is called.
 */
export function stopOnSignals(warn: (s: string) => void, stoppingFirst: string, atOnce: () => void = () => undefined, opts: StopOptions = {}): Stopping {
  const controller = new AbortController();
  let stopping = stoppingFirst;
  let done = false;
  let begun = opts.before === undefined;
  const onSignal = (received: StopSignal) => {
    if (controller.signal.aborted || !begun) {
      try {
        if (!begun) warn(opts.before!);
        if (!done) atOnce();
      } finally {
        if (opts.json === true) printJsonError(new AzbkError('AZBK_CANCELLED', begun ? 'Stopped at once.' : 'Stopped before the job began.'), true);
        process.exit(ExitCode.cancelled);
      }
    }
    warn(`${stopping} (${AGAIN[received]})`);
    controller.abort();
  };
  const dispose = onStopSignals(onSignal);
  return {
    signal: controller.signal,
    begun: () => {
      begun = true;
    },
    settled: () => {
      done = true;
    },
    saying: (s) => {
      stopping = s;
    },
    dispose,
  };
}
