/**
 * A copy, on this instance, of a run another instance produces: it is fed from a shared event log
 * and read like any run (replay from its log, then live, with the usual backpressure). Cancelling it
 * asks the owner to cancel the run; the cancel shows when the owner's events arrive.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import { Run, type RunOptions } from './run.ts';
import type { Subscription } from './subscription.ts';

/** What a {@link ReplicaRun} needs from the log that feeds it. */
export interface ReplicaSource {
  /** Asks the owning instance to cancel the run. */
  requestCancel(run: ReplicaRun, reason: SluiceError): void;
  /** The copy has no reader left (it may be dropped after a while). */
  idle(run: ReplicaRun): void;
}

/** A run produced elsewhere, mirrored from a shared event log. */
export class ReplicaRun extends Run {
  readonly #source: ReplicaSource;
  #cancelRequested: SluiceError | null = null;

  /** `after`: the seq of the event before the first one the log still holds. */
  constructor(options: RunOptions, after: number, source: ReplicaSource) {
    super(options);
    this.#source = source;
    if (after > 0) this.startAfter(after);
  }

  /**
   * Appends the next event from the log. Events at or before the last one held are skipped (a log
   * read may overlap); a seq past the next one throws `out_of_range` (a gap: history is gone).
   * Returns a promise when the slowest reader is too far behind: feed no more until it settles.
   */
  feed(event: SluiceEvent): Promise<void> | undefined {
    if (event.seq <= this.lastSeq) return undefined;
    return this.replicate(event);
  }

  /**
   * Ends the copy with an `error` its owner did not write (the log lost events, or cannot be
   * read): every reader gets the error and `run-end`, never a silent gap.
   */
  fail(error: SluiceError): void {
    if (this.state === 'ended') return;
    if (!this.hasTerminal) this.emit({ type: 'error', code: error.code, message: error.message, reason: error.details.reason });
    this.emit({ type: 'run-end', reason: 'error' });
  }

  /**
   * A client may have read, from the producing instance, events this copy has not read from the
   * log yet (writes are coalesced for a few ms): while the run is live, its resume waits for them.
   */
  protected override get acceptsAhead(): boolean {
    return this.state !== 'ended';
  }

  /** Asks the owner to cancel; true unless the run has ended or a cancel was already asked for. */
  override cancel(reason?: unknown): boolean {
    if (this.state === 'ended' || this.#cancelRequested !== null) return false;
    const error = SluiceError.isInstance(reason)
      ? reason
      : new SluiceError('cancelled', typeof reason === 'string' ? reason : 'The run was cancelled', { details: { reason: 'stop' } });
    this.#cancelRequested = error;
    this.#source.requestCancel(this, error);
    return true;
  }

  /** A barge-in through a copy is a cancel sent to the owner (which applies the barge-in rules). */
  override cancelDelivery(reason?: unknown): boolean {
    return this.cancel(reason);
  }

  override get isCancelled(): boolean {
    return this.#cancelRequested !== null || this.endReason === 'cancelled';
  }

  override get cancelReason(): SluiceError | null {
    return this.#cancelRequested;
  }

  /** @internal */
  override removeSubscriber(sub: Subscription): void {
    super.removeSubscriber(sub);
    if (this.subscribers.size === 0) this.#source.idle(this);
  }
}
