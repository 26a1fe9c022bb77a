/**
 * Throttled transfers: a token bucket per direction in front of the vault session, whose rate
 * comes from --limit-upload/--limit-download or, failing those, from the policy's work-hours and
 * off-hours bandwidth at the moment of each transfer.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { limitAt, type BandwidthPolicy } from '../core/bandwidth.js';
import { AzbkError } from '../shared/errors.js';
import { InFlight } from '../shared/in-flight.js';
import type { PackId } from '../core/ids.js';
import type { VaultSession } from '../vault/api.js';

/** A rate in bytes per second that may change over time; null = unlimited. */
export type RateSource = () => number | null;

class Bucket {
  private available = 0;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  /** `stopping`: once aborted, transfers waiting for their turn (and later ones) are refused with AZBK_CANCELLED */
  constructor(
    private readonly rate: RateSource,
    private readonly stopping?: AbortSignal,
  ) {}

  /** Waits until `bytes` may be sent. Transfers take their turn, in order. */
  take(bytes: number): Promise<void> {
    const turn = this.queue.then(async () => {
      this.refuseIfStopping();
      // Idle time earns at most one second of credit, so a pause does not allow a burst.
      this.refill(0);
      for (;;) {
        const rate = this.rate();
        if (rate === null || rate <= 0) {
          this.available = 0;
          return;
        }
        if (this.available >= bytes) {
          this.available -= bytes;
          return;
        }
        const wait = Math.max(5, Math.min(1000, Math.ceil(((bytes - this.available) / rate) * 1000)));
        await delay(wait, undefined, this.stopping === undefined ? {} : { signal: this.stopping }).catch(() => this.refuseIfStopping());
        this.refuseIfStopping();
        this.refill(bytes);
      }
    });
    // A transfer refused does not hold up the ones queued behind it (they are refused in turn).
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private refuseIfStopping(): void {
    if (this.stopping?.aborted === true) throw new AzbkError('AZBK_CANCELLED', 'Stopped while waiting for its turn under the bandwidth limit.');
  }

  /** Adds the credit earned since the last refill, up to a second's worth or `need`. */
  private refill(need: number): void {
    const now = Date.now();
    const rate = this.rate();
    if (rate !== null && rate > 0) this.available = Math.min(Math.max(rate, need), this.available + ((now - this.last) / 1000) * rate);
    this.last = now;
  }
}

/** The rate of the policy at this moment, in local time. */
export function policyRate(p: BandwidthPolicy | undefined): RateSource {
  return () => {
    if (p === undefined) return null;
    const d = new Date();
    return limitAt(p, { day: d.getDay(), minutes: d.getHours() * 60 + d.getMinutes() });
  };
}

/**
 * Wraps a session so uploads and downloads keep to their rates. Once `stopping` is aborted, a
 * transfer still waiting for its turn is refused (AZBK_CANCELLED) instead of waiting on: for jobs
 * that have nothing left to send when asked to stop (a backup's last checkpoint still uploads).
 */
export function throttleSession(s: VaultSession, rates: { upload: RateSource; download: RateSource }, stopping?: AbortSignal): VaultSession {
  const up = new Bucket(rates.upload, stopping);
  const down = new Bucket(rates.download, stopping);
  const overrides: Partial<VaultSession> = {
    putPack: async (id, data) => {
      await up.take(data.length);
      return s.putPack(id, data);
    },
    startPack: () => {
      const stream = s.startPack();
      if (stream === null) return null;
      const writes = new InFlight();
      return {
        write: (data) => writes.track(up.take(data.length).then(() => stream.write(data))),
        // The writes waiting for their turn reach the stream before it ends; one that never did fails it.
        end: async () => {
          await writes.settled();
          if (writes.failure === undefined) return stream.end();
          await stream.abort();
          throw writes.failure;
        },
        abort: () => stream.abort(),
      };
    },
    ...(s.putPackFile === undefined
      ? {}
      : {
          putPackFile: async (id: PackId, file: string, length: number) => {
            await up.take(length);
            return s.putPackFile!(id, file, length);
          },
        }),
    putIndex: async (name, data) => {
      await up.take(data.length);
      return s.putIndex(name, data);
    },
    readPack: async (id, offset, length, into) => {
      await down.take(length);
      return s.readPack(id, offset, length, into);
    },
  };
  return new Proxy(s, {
    get(target, prop, receiver) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof VaultSession];
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
