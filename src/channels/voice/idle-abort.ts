/**
 * One abort signal for an HTTP call that streams its answer: it follows the caller's signal and
 * an idle timeout, so that either one closes the connection.
 * @module
 */

import type { SluiceError } from '../../protocol/errors.ts';

/** What {@link idleAbort} returns. */
export interface IdleAbort {
  /** Aborts with the caller's reason, with the timeout's error, or on {@link IdleAbort.close}. */
  readonly signal: AbortSignal;
  /** Starts the idle timer (again). Unbound, so it can be handed on as a callback. */
  readonly arm: () => void;
  /** Stops the timer, lets go of the caller's signal and aborts {@link IdleAbort.signal}. */
  readonly close: () => void;
}

/**
 * An abort signal that follows `signal` and aborts with `timeoutError()` once `timeoutMs` pass
 * after the last `arm()`. The timer counts silence, not the whole call: arm it before each wait
 * for the other side. Always `close()` it when done (a `finally`), which also closes a connection
 * still open.
 */
export function idleAbort(signal: AbortSignal, timeoutMs: number, timeoutError: () => SluiceError): IdleAbort {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  return {
    signal: controller.signal,
    arm: () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(timeoutError()), timeoutMs);
    },
    close: () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      controller.abort();
    },
  };
}
