/**
 * A pause that a cancel cuts short: the example actions wait with it between words, and stop
 * waiting (without throwing) as soon as their run's signal aborts.
 * @module
 */

/** Resolves after `ms`, or at once when `signal` aborts. */
export const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
