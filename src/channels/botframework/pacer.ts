/**
 * The send pacer: one send at a time, send starts at least `intervalMs` apart, and coalescing for
 * free. Work is *requested*, not queued: any number of requests made while a send waits or is in
 * flight collapse into one, and the job is built only when its slot comes, from the state of that
 * moment. Memory is O(1) whatever the producer does; nothing is dropped, because the job reads
 * everything accumulated so far.
 * @module
 */

import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';

/** One send, built at send time. It should not throw; a throw is passed to `onError`. */
export type PacedJob = () => Promise<void>;

/** Options of a {@link Pacer}. */
export interface PacerOptions {
  /** Least time between two send starts, in ms. Default 1000 (Teams allows about 1 request/s per stream). */
  intervalMs?: number;
  clock?: Clock;
  /** Receives what a job threw (the loop goes on). */
  onError?: (error: unknown) => void;
}

/** Process-wide: pacers with a send waiting for its slot or in flight (read by metrics). */
export const pacerLoad = { queued: 0 };

/** Default least time between two sends to a Bot Framework stream. */
export const DEFAULT_INTERVAL_MS = 1000;

/**
 * Spaces sends. `produce` is called when a slot is free and returns the job to run then, or
 * `undefined` when there is nothing to send. The first request on an idle pacer whose slot is
 * free runs `produce` and starts the job synchronously, inside `request()`.
 */
export class Pacer {
  readonly intervalMs: number;
  readonly clock: Clock;
  #produce: () => PacedJob | undefined;
  #onError: (error: unknown) => void;
  #dirty = false;
  #running = false;
  #closed = false;
  #nextAt = Number.NEGATIVE_INFINITY;
  #abort = new AbortController();
  #idleWaiters: (() => void)[] = [];

  constructor(produce: () => PacedJob | undefined, options: PacerOptions = {}) {
    const interval = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    if (!Number.isFinite(interval) || interval < 0) throw new RangeError(`intervalMs must be a finite number ≥ 0 (got ${interval})`);
    this.intervalMs = interval;
    this.clock = options.clock ?? systemClock;
    this.#produce = produce;
    this.#onError = options.onError ?? (() => {});
  }

  /** True while a send waits for its slot or is in flight. */
  get running(): boolean {
    return this.#running;
  }

  /** Clock time at which the next send may start. */
  get nextSlot(): number {
    return this.#nextAt;
  }

  /** Asks for a send; coalesces with any request not yet served. */
  request(): void {
    this.#dirty = true;
    if (this.#running || this.#closed) return;
    this.#running = true;
    pacerLoad.queued++;
    void this.#loop();
  }

  /** Holds the next send until at least `time` (clock time), e.g. for a 429's `Retry-After`. */
  deferUntil(time: number): void {
    if (time > this.#nextAt) this.#nextAt = time;
  }

  /** Resolves once no send is waiting or in flight. */
  idle(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops for good: a waiting send is abandoned, an in-flight one completes, no further job runs. */
  close(): void {
    this.#closed = true;
    this.#abort.abort();
  }

  async #loop(): Promise<void> {
    try {
      while (this.#dirty && !this.#closed) {
        const wait = this.#nextAt - this.clock.now();
        if (wait > 0) {
          await this.clock.sleep(wait, this.#abort.signal);
          continue; // the slot may have moved (deferUntil) while sleeping
        }
        this.#dirty = false;
        const job = this.#produce();
        if (job === undefined) continue;
        this.#nextAt = this.clock.now() + this.intervalMs;
        try {
          await job();
        } catch (error) {
          this.#onError(error);
        }
      }
    } finally {
      this.#running = false;
      pacerLoad.queued--;
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}

/** Exponential back-off: `baseMs · 2^(attempt-1)`, capped at `maxMs` (attempt counts from 1). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}
