/**
 * One reader of a run: an async iterator over its events from a given seq.
 * @module
 */

import type { SluiceEvent } from '../protocol/events.ts';
import type { Run } from './run.ts';

/** Options of {@link Run.subscribe}. */
export interface SubscribeOptions {
  /** Deliver events with a seq greater than this (default 0: from the first event). */
  after?: number;
  /** Unsubscribes when aborted (never cancels the run). */
  signal?: AbortSignal;
  /**
   * Trails the run's other readers: takes only events one of them has been handed, or every event
   * once it is the only reader left. For a copier (the shared log's writer), so that a cancel or a
   * late barge-in still cuts what no client has seen, as without it. Default false.
   */
  trailing?: boolean;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });
const DONE_PROMISE = Promise.resolve(DONE);

/**
 * An async iterator over a run's events. Leaving a `for await` loop, calling `return()` or
 * `unsubscribe()`, or aborting the subscription's signal detaches this reader only.
 */
export class Subscription implements AsyncIterableIterator<SluiceEvent, undefined> {
  /** Seq of the last event this reader was handed. */
  cursor: number;
  /** See {@link SubscribeOptions.trailing}. */
  readonly trailing: boolean;
  #run: Run;
  #closed = false;
  #waiter: ((result: IteratorResult<SluiceEvent, undefined>) => void) | null = null;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | null = null;

  constructor(run: Run, after: number, signal?: AbortSignal, trailing = false) {
    this.#run = run;
    this.cursor = after;
    this.trailing = trailing;
    if (signal) {
      if (signal.aborted) this.#closed = true;
      else {
        this.#signal = signal;
        this.#onAbort = () => this.unsubscribe();
        signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    }
  }

  /** True once this reader has left or has read `run-end`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal True while `next()` waits for an event. */
  get waiting(): boolean {
    return this.#waiter !== null;
  }

  next(): Promise<IteratorResult<SluiceEvent, undefined>> {
    if (this.#closed) return DONE_PROMISE;
    const event = this.#take();
    if (event !== undefined) return Promise.resolve({ value: event, done: false });
    if (this.#exhausted()) {
      this.unsubscribe();
      return DONE_PROMISE;
    }
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Reads every event that is already available without waiting (a batch). */
  drain(): SluiceEvent[] {
    const out: SluiceEvent[] = [];
    if (this.#closed) return out;
    for (let event = this.#take(); event !== undefined; event = this.#take()) out.push(event);
    return out;
  }

  return(): Promise<IteratorResult<SluiceEvent, undefined>> {
    this.unsubscribe();
    return DONE_PROMISE;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Detaches this reader. The run goes on; other readers are unaffected. */
  unsubscribe(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#onAbort !== null) this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#run.removeSubscriber(this);
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      waiter(DONE);
    }
  }

  /** @internal The run appended an event or ended while this reader waits. */
  wake(): void {
    const waiter = this.#waiter;
    if (waiter === null) return;
    this.#waiter = null;
    const event = this.#take();
    if (event !== undefined) waiter({ value: event, done: false });
    else if (this.#exhausted()) {
      this.unsubscribe();
      waiter(DONE);
    } else this.#waiter = waiter;
  }

  /** The run has ended and this reader has had its last event (a trailing reader may still wait). */
  #exhausted(): boolean {
    return this.#run.state === 'ended' && this.cursor >= this.#run.lastSeq;
  }

  #take(): SluiceEvent | undefined {
    const run = this.#run;
    if (this.cursor >= (this.trailing ? run.trailLimit() : run.lastSeq)) return undefined;
    const event = run.eventAt(this.cursor - run.base);
    this.cursor++;
    if (this.cursor > run.deliveredHigh) run.deliveredHigh = this.cursor;
    run.onReaderProgress();
    if (event !== undefined && event.type === 'run-end') this.unsubscribe();
    return event;
  }
}
