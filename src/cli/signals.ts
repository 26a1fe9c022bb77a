/** Stopping a long command at a safe point on Ctrl-C or SIGTERM. */
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
} as const;

/**
 * Ctrl-C or SIGTERM once: `warn(stopping)`, with how a second one stops at once, and abort the
 * signal, for the command to stop at its next safe point. Twice: `atOnce()` (synchronous work
 * only: what the command must still record), unless `settled()` said it was recorded already,
 * then exit at once (130). With `before`, the first signal does that too until `begun()` is called.
 */
export function stopOnSignals(warn: (s: string) => void, stoppingFirst: string, atOnce: () => void = () => undefined, opts: StopOptions = {}): Stopping {
  const controller = new AbortController();
  let stopping = stoppingFirst;
  let done = false;
  let begun = opts.before === undefined;
  const onSignal = (received: 'SIGINT' | 'SIGTERM') => {
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
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
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
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}
