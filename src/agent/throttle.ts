/**
 * Throttled transfers: a token bucket per direction in front of the vault session, whose rate
 * comes from --limit-upload/--limit-download or, failing those, from the policy's work-hours and
 * off-hours bandwidth at the moment of each transfer.
 */
import { limitAt, type BandwidthPolicy } from '../core/bandwidth.js';
import { InFlight } from '../shared/in-flight.js';
import type { PackId } from '../core/ids.js';
import type { VaultSession } from '../vault/api.js';

/** A rate in bytes per second that may change over time; null = unlimited. */
export type RateSource = () => number | null;

class Bucket {
  private available = 0;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly rate: RateSource) {}

  /** Waits until `bytes` may be sent. Transfers take their turn, in order. */
  take(bytes: number): Promise<void> {
    const turn = this.queue.then(async () => {
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
        await new Promise((r) => setTimeout(r, Math.max(5, Math.min(1000, Math.ceil(((bytes - this.available) / rate) * 1000)))));
        this.refill(bytes);
      }
    });
    this.queue = turn;
    return turn;
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

/** Wraps a session so uploads and downloads keep to their rates. */
export function throttleSession(s: VaultSession, rates: { upload: RateSource; download: RateSource }): VaultSession {
  const up = new Bucket(rates.upload);
  const down = new Bucket(rates.download);
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
