/**
 * Finds the run behind a `responseId`, so a barge-in ack (Rasa's `AckStreamChunks`) can cancel it.
 * @module
 */

import type { Dispatcher, StreamObserver } from './dispatcher.ts';
import type { Run } from './run.ts';

interface Entry {
  run: Run;
  /** Seq of the stream's `stream-end`; 0 while open. */
  endSeq: number;
}

/**
 * responseId → run, for the streams of live runs. As in Rasa, an ack only counts while its stream
 * is not fully delivered: once every reader has been handed the `stream-end`, the ack is a no-op.
 * Entries go when the stream is known delivered, or once their run has ended and been read.
 */
export class StreamRegistry {
  #entries = new Map<string, Entry>();
  #byRun = new Map<Run, string[]>();

  /** Number of streams tracked (0 when no run is live). */
  get size(): number {
    return this.#entries.size;
  }

  /** A dispatcher observer that records the streams of `run`. */
  observe(run: Run): StreamObserver {
    return {
      streamStarted: (responseId: string, _dispatcher: Dispatcher) => {
        this.#entries.set(responseId, { run, endSeq: 0 });
        const ids = this.#byRun.get(run);
        if (ids === undefined) this.#byRun.set(run, [responseId]);
        else ids.push(responseId);
      },
      streamEnded: (responseId: string, seq: number) => {
        const entry = this.#entries.get(responseId);
        if (entry === undefined) return;
        if (seq === 0) this.#entries.delete(responseId);
        else entry.endSeq = seq;
      },
    };
  }

  /** The live run whose stream `responseId` is still being delivered, if any. */
  lookup(responseId: string): Run | undefined {
    const entry = this.#entries.get(responseId);
    if (entry === undefined) return undefined;
    if (entry.endSeq !== 0 && entry.run.deliveredHigh >= entry.endSeq) {
      this.#entries.delete(responseId);
      return undefined;
    }
    return entry.run;
  }

  /**
   * Forgets every stream of a run that ended, once no reader is behind it: until then a barge-in
   * can still stop what the action produced faster than it was read.
   */
  release(run: Run): void {
    const ids = this.#byRun.get(run);
    if (ids === undefined) return;
    run.whenRead(() => {
      this.#byRun.delete(run);
      for (const id of ids) this.#entries.delete(id);
    });
  }
}
