/**
 * Reconnection delays: exponential back-off with full jitter, so clients that lost the same server
 * at the same moment do not come back in lockstep.
 * @module
 */

/** How a client retries a dropped connection. */
export interface RetryOptions {
  /** Attempts to resume in a row without receiving an event before giving up (default 6; 0 disables resuming). */
  retries?: number;
  /** Upper bound of the first delay, in ms (default 200). */
  initialDelayMs?: number;
  /** Upper bound of any delay, in ms (default 5000). */
  maxDelayMs?: number;
}

/** {@link RetryOptions} with every default filled in. */
export type RetryPolicy = Required<RetryOptions>;

/** Fills in the defaults and checks the values. */
export function retryPolicy(options: RetryOptions = {}): RetryPolicy {
  const policy = { retries: 6, initialDelayMs: 200, maxDelayMs: 5000, ...options };
  for (const [name, value] of Object.entries(policy)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new TypeError(`retry.${name} must be a non-negative number (got ${String(value)})`);
    }
  }
  return policy;
}

/** The delay before attempt `attempt` (1, 2, …): uniform in [0, min(max, initial · 2^(attempt-1))]. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(Math.random() * ceiling);
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
