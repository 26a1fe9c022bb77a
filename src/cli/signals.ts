/** Stopping a long command at a safe point on Ctrl-C or SIGTERM. */
import { ExitCode } from '../shared/errors.js';

/**
 * Ctrl-C or SIGTERM once: `warn(stopping)` and abort the signal, for the command to stop at its
 * next safe point. Twice: `atOnce()` (synchronous work only: what the command must still record),
 * unless `settled()` said it was recorded already, then exit at once (130).
 */
export function stopOnSignals(warn: (s: string) => void, stopping: string, atOnce: () => void = () => undefined): { signal: AbortSignal; settled: () => void; dispose: () => void } {
  const controller = new AbortController();
  let done = false;
  const onSignal = () => {
    if (controller.signal.aborted) {
      try {
        if (!done) atOnce();
      } finally {
        process.exit(ExitCode.cancelled);
      }
    }
    warn(stopping);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    settled: () => {
      done = true;
    },
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
