/**
 * The result of `streamResult`: an async iterable of a step's intermediate items, plus `get()`
 * for its final `[result, state]`.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { Run } from '../runtime/run.ts';
import type { StepStatus } from './hooks.ts';
import type { State, StateData } from './state.ts';
import type { StepRecord, StepRun } from './step.ts';

/** `pending` until the step has ended. */
export type ContainerStatus = 'pending' | StepStatus;

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/** Why a step ends when its reader leaves a `for await` loop (break, throw or `return()`). */
export function consumerStopped(): SluiceError {
  return new SluiceError('cancelled', 'The consumer stopped reading the stream', { details: { reason: 'consumer_stopped' } });
}

/**
 * A streamed step's items and outcome.
 *
 * - Iterate it (`for await`) to get the intermediate items as they are produced; the final item
 *   is not among them. Items are not cached: a second loop yields nothing more.
 * - `get()` runs what is left (items are dropped, hooks still fire) and returns `[result, state]`;
 *   it rejects with the action's own error if the step failed. Repeated calls return the same.
 * - Leaving the loop early (break, throw) cancels the step through its signal; the step gets the
 *   grace period to yield its final item and is committed once as `interrupted`. The loop exits
 *   after that commit, so the app state and hooks are up to date right after it.
 * - A container never read is finished by the application's next call (see `Application`).
 *
 * @example
 * const [action, container] = await app.streamResult({ haltAfter: ['respond'], inputs: { prompt } });
 * for await (const token of container) process.stdout.write(String(token));
 * const [result, state] = await container.get();
 */
export class StreamingResultContainer<I = unknown, R = unknown, S extends StateData = StateData>
  implements AsyncIterableIterator<I, undefined>
{
  /** The step's action (for a halt-before pass-through, the action it halted before). */
  readonly action: string | null;
  readonly #step: StepRun | null;
  readonly #fixed: StepRecord | { result: unknown; state: State } | null;

  /** @internal */
  constructor(action: string | null, step: StepRun | null, fixed: StepRecord | { result: unknown; state: State } | null = null) {
    this.action = action;
    this.#step = step;
    this.#fixed = fixed;
  }

  /** The step's run (its Sluice events), or null for a halt-before pass-through. */
  get run(): Run | null {
    return this.#step?.run ?? null;
  }

  /** `pending` while the step runs, then how it ended (`completed` for a pass-through). */
  get status(): ContainerStatus {
    if (this.#step === null) return (this.#fixed as StepRecord | null)?.status ?? 'completed';
    return this.#step.record?.status ?? 'pending';
  }

  /** The step's sequence id, or null for a halt-before pass-through. */
  get sequenceId(): number | null {
    return this.#step?.sequenceId ?? null;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<I, undefined>> {
    if (this.#step === null) return Promise.resolve(DONE);
    return this.#step.next() as Promise<IteratorResult<I, undefined>>;
  }

  /** Called by `for await` on break or throw: cancels the step and waits for its commit. */
  async return(): Promise<IteratorReturnResult<undefined>> {
    const step = this.#step;
    if (step !== null && !step.ended) await step.cancel(consumerStopped());
    return DONE;
  }

  /** Like `return()`, recording `error` as the cancel reason. */
  async throw(error?: unknown): Promise<IteratorReturnResult<undefined>> {
    const step = this.#step;
    if (step !== null && !step.ended) {
      await step.cancel(SluiceError.from(error, 'cancelled', 'The consumer stopped reading the stream'));
    }
    return DONE;
  }

  /** Runs the rest of the step and returns `[result, state]`; rejects if the step failed. */
  async get(): Promise<[R, State<S>]> {
    const record = await this.outcome();
    if (record.status === 'failed') throw (record as StepRecord).error;
    return [record.result as R, record.state as State<S>];
  }

  /**
   * Cancels the step (if it is still running) and returns what was committed. `reason` becomes
   * the cancel reason the hooks and the run see.
   */
  async cancel(reason?: unknown): Promise<[R, State<S>]> {
    const step = this.#step;
    if (step !== null && !step.ended) {
      await step.cancel(reason === undefined ? consumerStopped() : SluiceError.from(reason, 'cancelled', String(reason)));
    }
    return this.get();
  }

  /** The step's full outcome (status, error, timings); runs the rest of the step first. */
  async outcome(): Promise<StepRecord | (Pick<StepRecord, 'result' | 'state'> & { status: StepStatus })> {
    if (this.#step !== null) return this.#step.drain();
    const fixed = this.#fixed as StepRecord | { result: unknown; state: State };
    return 'status' in fixed ? fixed : { ...fixed, status: 'completed' };
  }
}
