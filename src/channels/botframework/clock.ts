/**
 * Time as the Bot Framework channel sees it: `now()` and an abortable `sleep()`. The pacer, the
 * 429 back-off and the stream time limit all go through a {@link Clock}, so tests and benchmarks
 * can run minutes of channel time in milliseconds with a {@link ManualClock}.
 * @module
 */

/** A source of time for pacing. */
export interface Clock {
  /** Milliseconds on a monotonic scale (only differences matter). */
  now(): number;
  /** Resolves after `ms` milliseconds, or as soon as `signal` aborts. Never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Real time: `performance.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => performance.now(),
  sleep(ms, signal) {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
    });
  },
};

interface Sleeper {
  due: number;
  resolve: () => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A clock that only moves when told to. `advance(ms)` wakes the sleepers that fall due, in time
 * order, letting the event loop run between them so that woken code can schedule new sleeps
 * (which fire in the same `advance` when they are due before its end).
 */
export class ManualClock implements Clock {
  #now: number;
  #sleepers: Sleeper[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Sleepers not yet woken. */
  get pending(): number {
    return this.#sleepers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper: Sleeper = { due: this.#now + Math.max(0, ms), resolve, signal, onAbort: undefined };
      if (signal !== undefined) {
        sleeper.onAbort = () => this.#wake(sleeper);
        signal.addEventListener('abort', sleeper.onAbort, { once: true });
      }
      // Sorted insert: there are only ever a handful of sleepers.
      let i = this.#sleepers.length;
      while (i > 0 && this.#sleepers[i - 1]!.due > sleeper.due) i--;
      this.#sleepers.splice(i, 0, sleeper);
    });
  }

  /** Moves time forward by `ms`, waking every sleeper due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + Math.max(0, ms);
    await turn();
    for (;;) {
      const next = this.#sleepers[0];
      if (next === undefined || next.due > target) break;
      if (next.due > this.#now) this.#now = next.due;
      this.#wake(next);
      await turn();
    }
    this.#now = target;
    await turn();
  }

  /** Advances in `stepMs` steps until `promise` settles (at most `limitMs` of clock time), then returns it. */
  async run<T>(promise: Promise<T>, stepMs = 100, limitMs = 3_600_000): Promise<T> {
    let settled = false;
    const watched = promise.then(
      (value) => {
        settled = true;
        return value;
      },
      (error: unknown) => {
        settled = true;
        throw error;
      },
    );
    watched.catch(() => {});
    for (let spent = 0; !settled && spent < limitMs; spent += stepMs) await this.advance(stepMs);
    return watched;
  }

  #wake(sleeper: Sleeper): void {
    const index = this.#sleepers.indexOf(sleeper);
    if (index === -1) return;
    this.#sleepers.splice(index, 1);
    if (sleeper.onAbort !== undefined) sleeper.signal?.removeEventListener('abort', sleeper.onAbort);
    sleeper.resolve();
  }
}
