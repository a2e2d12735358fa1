/**
 * The server's shutdown state, in one place: every transport asks {@link Lifecycle.accepting}
 * before it starts a run and listens to {@link Lifecycle.signal} to learn that a drain began.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';

/** The message new work is refused with while the server drains. */
export const SHUTTING_DOWN = 'The server is shutting down';

/**
 * Accepting → draining, once. An {@link ActionExecutor} owns one (`executor.lifecycle`); the HTTP
 * and gRPC transports read it for health checks and to refuse new runs with 503 / UNAVAILABLE.
 */
export class Lifecycle {
  #controller = new AbortController();

  /** True until the drain begins: health is SERVING and new runs may start. */
  get accepting(): boolean {
    return !this.#controller.signal.aborted;
  }

  /** Aborts (with an `unavailable` {@link SluiceError}) when the drain begins. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Starts draining. Returns false when it had already begun. */
  beginDrain(): boolean {
    if (!this.accepting) return false;
    this.#controller.abort(this.refusal());
    return true;
  }

  /** The error new work is refused with (`unavailable`, reason `shutdown`). */
  refusal(): SluiceError {
    return new SluiceError('unavailable', SHUTTING_DOWN, { details: { reason: 'shutdown' } });
  }
}
