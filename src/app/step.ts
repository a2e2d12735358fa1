/**
 * One step of an application: runs an action as a {@link Run}, pulls its items on demand, and
 * commits its outcome exactly once — completed, interrupted (cancelled, with what it produced) or
 * failed — then fires the post hooks once.
 *
 * Pull-based: the generator runs only when someone asks for the next item (the container's
 * reader, `get()`, or the app finishing a pending step), so a step is never more than one item
 * ahead of its container reader, and never more than the run's high-water mark ahead of the
 * run's slowest subscriber (`run.emit` is awaited).
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { EventInput } from '../protocol/events.ts';
import { Dispatcher } from '../runtime/dispatcher.ts';
import type { Logger } from '../runtime/logger.ts';
import { Run, type RunOptions } from '../runtime/run.ts';
import type { ActionContext, Inputs, NormalizedAction, PartialOutput } from './action.ts';
import { callHooks, type ExecuteMethod, type HookSet, type StepStatus, type StreamStats } from './hooks.ts';
import { emitItem, textOf } from './items.ts';
import type { Persister } from './persistence.ts';
import { errorMessage } from './tracking.ts';
import { State } from './state.ts';

/** Epoch milliseconds with sub-millisecond precision, from one monotonic clock. */
export const now = (): number => performance.timeOrigin + performance.now();

/** Buffer settings of each step's run. */
export type RunBufferOptions = Pick<RunOptions, 'highWaterMark' | 'lowWaterMark' | 'logLimit' | 'hardLimit'>;

/** The outcome of a step. */
export interface StepRecord {
  action: string;
  sequenceId: number;
  status: StepStatus;
  result: unknown;
  /** The app's full state after the step (before it, when it failed). */
  state: State;
  /** Failed: the real error. Interrupted: the cancel reason. */
  error?: unknown;
  runId: string;
  startedAt: number;
  endedAt: number;
  stream?: StreamStats;
}

/** @internal What a step needs from its application. */
export interface StepCore {
  readonly appId: string;
  readonly partitionKey: string;
  readonly hooks: HookSet;
  readonly persister: Persister | null;
  readonly logger: Logger;
  readonly graceMs: number;
  readonly runOptions: RunBufferOptions;
  /** Applies the step's outcome to the app; `consumed`: the sequence id now has a record. */
  applyStep(step: StepRun, record: StepRecord, consumed: boolean): void;
  /** A new step run was created (for `application.runs`). */
  retainRun(run: Run): void;
}

/** @internal Options of one step. */
export interface StepOptions {
  name: string;
  spec: NormalizedAction;
  sequenceId: number;
  inputs: Inputs;
  prior: State;
  /** Fire the stream hooks (the step is the target of `streamResult` / `streamIterate`). */
  streamHooks: boolean;
  /** Cancels the step when aborted. */
  signal?: AbortSignal;
  /** The public call whose `postExecuteCall` fires when this step ends. */
  executeCall?: ExecuteMethod;
}

const READY = 0;
const STREAMING = 1;
const FINISHING = 2;
const ENDED = 3;

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });
const TIMEOUT = Symbol('grace period over');
/** Text pieces folded into one string at a time (see Step#keep). */
const PIECES_PER_BLOCK = 256;
const NONE = Symbol('none');
/** Longest run of synchronous pulls of a cancelled sync generator before yielding to the event loop. */
const SYNC_SLICE_MS = 2;

/** Resolves after the event loop has run its timers and I/O once. */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function isAbortLike(error: unknown, signal: AbortSignal): boolean {
  if (error === signal.reason) return true;
  if (SluiceError.isInstance(error)) return error.code === 'cancelled';
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError';
}

function invalidOutput(action: string, problem: string, reason: string, extra: Record<string, unknown> = {}): SluiceError {
  return new SluiceError('invalid_argument', `Action '${action}' ${problem}`, { details: { reason, actionName: action, ...extra } });
}

/** @internal */
export class StepRun {
  readonly name: string;
  readonly sequenceId: number;
  readonly run: Run;
  readonly inputs: Inputs;
  readonly streamHooks: boolean;

  #core: StepCore;
  #spec: NormalizedAction;
  #prior: State;
  #view: State;
  #dispatcher: Dispatcher;
  #ctx: ActionContext;
  #executeCall: ExecuteMethod | undefined;

  #phase = READY;
  #begun = false;
  #pumping: Promise<void> | null = null;
  #iter: Iterator<unknown, unknown> | AsyncIterator<unknown, unknown> | null = null;
  #async = false;
  #inflight: Promise<unknown> | null = null;
  #pulling = false;
  #wake: ((value: typeof TIMEOUT) => void) | null = null;
  #resolvePull: ((r: IteratorResult<unknown, undefined>) => void) | null = null;
  #rejectPull: ((e: unknown) => void) | null = null;
  #hookItems: boolean;
  #graceTimer: NodeJS.Timeout | undefined;
  #abortedAt = 0;
  #detach: (() => void) | null = null;

  #startedAt: number;
  #streamStartedAt = 0;
  #firstItemAt: number | null = null;
  #itemCount = 0;
  /** The text so far: `#text` holds folded blocks, `#pieces[0…#pieceCount)` the newest pieces (see #keep). */
  #text = '';
  #pieces: string[] = new Array<string>(PIECES_PER_BLOCK).fill('');
  #pieceCount = 0;
  #items: unknown[] | null;
  #deferred: unknown = NONE;
  #preStepCalled = false;
  #preStreamCalled = false;

  #record: StepRecord | null = null;
  #done: Promise<StepRecord>;
  #resolveDone!: (record: StepRecord) => void;

  constructor(core: StepCore, options: StepOptions) {
    this.#core = core;
    this.#spec = options.spec;
    this.name = options.name;
    this.sequenceId = options.sequenceId;
    this.inputs = Object.keys(options.spec.bound).length === 0 ? options.inputs : { ...options.inputs, ...options.spec.bound };
    this.streamHooks = options.streamHooks;
    this.#hookItems = options.streamHooks && core.hooks.postStreamItem.length > 0;
    this.#executeCall = options.executeCall;
    this.#prior = options.prior;
    this.#view = options.prior.subset(...options.spec.reads);
    this.#items = options.spec.onInterrupt !== undefined || options.spec.interrupted !== undefined ? [] : null;
    this.#startedAt = now();
    this.run = new Run({ ...core.runOptions, action: options.name, signal: options.signal });
    core.retainRun(this.run);
    this.#dispatcher = new Dispatcher({ run: this.run, actionName: options.name, signal: this.run.signal, logger: core.logger });
    this.#ctx = Object.freeze({
      signal: this.run.signal,
      dispatcher: this.#dispatcher,
      run: this.run,
      appId: core.appId,
      partitionKey: core.partitionKey,
      sequenceId: options.sequenceId,
      actionName: options.name,
    });
    this.#done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    const onAbort = (): void => this.#onAbort();
    this.run.signal.addEventListener('abort', onAbort, { once: true });
    this.#detach = () => this.run.signal.removeEventListener('abort', onAbort);
  }

  /** True for generator forms. */
  get streaming(): boolean {
    return this.#spec.kind !== 'plain';
  }

  /** The outcome once the step has ended. */
  get record(): StepRecord | null {
    return this.#record;
  }

  get ended(): boolean {
    return this.#phase === ENDED;
  }

  /** Settles with the outcome once the step is committed (never rejects). */
  get done(): Promise<StepRecord> {
    return this.#done;
  }

  /**
   * Starts the step: `run-start`, `preRunStep`, `preStartStream`, and (generator forms) creates
   * the generator without running it. A failure here ends the step as failed (post hooks fire).
   */
  async begin(): Promise<void> {
    const core = this.#core;
    try {
      this.run.emit({ type: 'run-start', action: this.name, at: Date.now() });
      this.#preStepCalled = true;
      if (core.hooks.preRunStep.length > 0) {
        await callHooks(core.hooks.preRunStep, {
          appId: core.appId,
          partitionKey: core.partitionKey,
          action: this.name,
          sequenceId: this.sequenceId,
          run: this.run,
          state: this.#prior,
          inputs: this.inputs,
        });
      }
      if (this.streaming) {
        this.#streamStartedAt = now();
        if (this.streamHooks) {
          this.#preStreamCalled = true;
          if (core.hooks.preStartStream.length > 0) {
            await callHooks(core.hooks.preStartStream, {
              appId: core.appId,
              partitionKey: core.partitionKey,
              action: this.name,
              sequenceId: this.sequenceId,
              run: this.run,
            });
          }
        }
        const iter = (this.#spec.stream as NonNullable<NormalizedAction['stream']>)(this.#view, this.inputs, this.#ctx);
        if (iter === null || typeof iter !== 'object' || typeof iter.next !== 'function') {
          throw invalidOutput(this.name, 'must be a generator function (it returned no iterator)', 'invalid_action');
        }
        this.#iter = iter;
        this.#async = Symbol.asyncIterator in iter;
      }
      this.#begun = true;
      // Cancelled while starting: finish now, as a cancel of a step nobody reads does.
      if (this.run.signal.aborted) {
        if (this.#abortedAt === 0) this.#abortedAt = now();
        void this.drain();
      }
    } catch (error) {
      await this.#fail(error);
    }
  }

  /** The container's `next()`: the next intermediate item, or done once the step has ended. */
  next(): Promise<IteratorResult<unknown, undefined>> {
    if (this.#phase === ENDED) return Promise.resolve(DONE);
    if (this.#pulling) {
      // Take turns. (`inflight` is only unset while a pull is still in its synchronous part, e.g. a
      // hook calling next() re-entrantly: then retry on the next microtask.)
      const turn = this.#inflight ?? Promise.resolve();
      return turn.then(
        () => this.next(),
        () => this.next(),
      );
    }
    if (this.#spec.kind === 'plain' || !this.#begun) return this.drain().then(() => DONE);
    if (this.#deferred !== NONE || this.#abortedAt !== 0) {
      const slow = this.#slowNext();
      if (this.#pulling && this.#inflight === null) this.#inflight = slow;
      return slow;
    }
    return this.#pull();
  }

  /** Runs the step to its end (draining items) and settles with its outcome. */
  drain(): Promise<StepRecord> {
    if (this.#phase !== ENDED && this.#pumping === null && this.#begun) {
      this.#pumping = this.#spec.kind === 'plain' ? this.#runPlain() : this.#pump();
    }
    return this.#done;
  }

  /** Cancels the step (its signal aborts); settles once it is committed as interrupted. */
  cancel(reason?: unknown): Promise<StepRecord> {
    if (this.#phase !== ENDED) {
      this.run.cancel(reason ?? new SluiceError('cancelled', 'The step was cancelled', { details: { reason: 'stop' } }));
    }
    return this.#done;
  }

  /** Pulls until the step ends; goes through `next()` so it takes turns with a reader. */
  async #pump(): Promise<void> {
    while (this.#phase !== ENDED) {
      try {
        await this.next();
      } catch {
        // the outcome carries the error
      }
    }
  }

  /** A pull that first fires the previous item's hook, or finishes a cancelled step. */
  async #slowNext(): Promise<IteratorResult<unknown, undefined>> {
    this.#pulling = true;
    try {
      if (this.#deferred !== NONE) await this.#flushItemHook();
      if (this.#abortedAt !== 0) return await this.#finishInterrupted();
    } finally {
      this.#pulling = false;
      this.#inflight = null;
    }
    return this.#phase === ENDED ? DONE : this.#pull();
  }

  /**
   * The hot path. Sync generators are processed in the call; async ones resolve a deferred from
   * pre-bound handlers (two promises per item), which the grace timer can also resolve when a
   * cancelled generator ignores its signal.
   */
  #pull(): Promise<IteratorResult<unknown, undefined>> {
    this.#pulling = true;
    if (this.#phase === READY) this.#phase = STREAMING;
    const iter = this.#iter as Iterator<unknown, unknown>;
    if (this.#async) {
      const promise = new Promise<IteratorResult<unknown, undefined>>(this.#capture);
      this.#inflight = promise;
      try {
        (iter.next() as unknown as Promise<IteratorResult<unknown, unknown>>).then(this.#onAsyncResult, this.#onAsyncError);
      } catch (error) {
        this.#onAsyncError(error);
      }
      return promise;
    }
    let out: IteratorResult<unknown, undefined> | Promise<IteratorResult<unknown, undefined>>;
    try {
      out = this.#process(iter.next());
    } catch (error) {
      out = this.#onError(error);
    }
    if (!(out instanceof Promise)) {
      this.#pulling = false;
      return Promise.resolve(out);
    }
    const settled = out.then(
      (value) => {
        this.#endPull();
        return value;
      },
      (error: unknown) => {
        this.#endPull();
        throw error;
      },
    );
    if (this.#pulling) this.#inflight = settled;
    return settled;
  }

  #capture = (resolve: (r: IteratorResult<unknown, undefined>) => void, reject: (e: unknown) => void): void => {
    this.#resolvePull = resolve;
    this.#rejectPull = reject;
  };

  #onAsyncResult = (r: IteratorResult<unknown, unknown>): void => {
    const resolve = this.#resolvePull;
    if (resolve === null) return; // the grace timer already ended this pull
    // The common item, `[text, null]` or text, with no hook, item list or first-item time to keep:
    // what #process does, minus its checks.
    if (r.done !== true && this.#abortedAt === 0 && this.#itemCount !== 0 && !this.#hookItems && this.#items === null) {
      let item = r.value;
      if (Array.isArray(item) && item.length === 2 && item[1] === null && this.#spec.kind === 'stream') item = item[0];
      if (typeof item === 'string') {
        let wait: Promise<void> | undefined;
        try {
          wait = this.#emitText(item);
        } catch (error) {
          this.#settlePull(this.#onError(error));
          return;
        }
        this.#itemCount++;
        const result: IteratorResult<unknown, undefined> = { value: item, done: false };
        if (wait === undefined) {
          this.#endPull();
          resolve(result);
        } else {
          this.#settlePull(this.#guard(wait.then(() => result)));
        }
        return;
      }
    }
    let out: IteratorResult<unknown, undefined> | Promise<IteratorResult<unknown, undefined>>;
    try {
      out = this.#process(r);
    } catch (error) {
      out = this.#onError(error);
    }
    this.#settlePull(out);
  };

  #onAsyncError = (error: unknown): void => {
    if (this.#resolvePull === null) return;
    this.#settlePull(this.#onError(error));
  };

  #settlePull(out: IteratorResult<unknown, undefined> | Promise<IteratorResult<unknown, undefined>>): void {
    const resolve = this.#resolvePull as (r: IteratorResult<unknown, undefined>) => void;
    const reject = this.#rejectPull as (e: unknown) => void;
    if (!(out instanceof Promise)) {
      this.#endPull();
      resolve(out);
      return;
    }
    out.then(
      (value) => {
        this.#endPull();
        resolve(value);
      },
      (error: unknown) => {
        this.#endPull();
        reject(error);
      },
    );
  }

  #endPull(): void {
    this.#pulling = false;
    this.#inflight = null;
    this.#resolvePull = null;
    this.#rejectPull = null;
  }

  /** Turns one generator result into the item for the reader (sync unless something must be awaited). */
  #process(r: IteratorResult<unknown, unknown>): IteratorResult<unknown, undefined> | Promise<IteratorResult<unknown, undefined>> {
    if (this.#abortedAt !== 0) return this.#finishInterrupted(r);
    if (r.done === true) return this.#guard(this.#onReturn(r.value, false).then(() => DONE));
    let item = r.value;
    if (this.#spec.kind === 'stream' && Array.isArray(item) && item.length === 2) {
      const second: unknown = item[1];
      if (second === null) item = item[0];
      else if (second instanceof State) return this.#guard(this.#onFinal(item[0], second).then(() => DONE));
      else if (typeof second === 'object') {
        throw invalidOutput(this.name, 'yielded [result, state] whose state is not a State: build it with state.update(…)', 'invalid_final');
      }
    }
    let wait: Promise<void> | undefined;
    if (typeof item === 'string') {
      wait = this.#emitText(item);
    } else {
      wait = emitItem(this.#dispatcher, item);
      const text = textOf(item);
      if (text !== '') this.#keep(text);
    }
    if (this.#firstItemAt === null) this.#firstItemAt = now();
    this.#itemCount++;
    if (this.#items !== null) this.#items.push(item);
    if (this.#hookItems) this.#deferred = item;
    const result: IteratorResult<unknown, undefined> = { value: item, done: false };
    return wait === undefined ? result : this.#guard(wait.then(() => result));
  }

  /** Emits a text item and keeps it for the partial output. */
  #emitText(text: string): Promise<void> | undefined {
    // The step's message is open: this is exactly the chunk the dispatcher would emit, minus its
    // per-call input object and key loop (the dispatcher's state does not change for a chunk).
    const responseId = this.#dispatcher.responseId;
    const wait =
      responseId !== null && !this.#dispatcher.isStreamingCancelled
        ? this.run.emitChunk(responseId, text)
        : this.#dispatcher.streamChunk({ text });
    this.#keep(text);
    return wait;
  }

  /**
   * Keeps a piece of the partial output. Pieces are folded into one flat string per block, so a
   * long stream holds its characters, not a growing array of (soon old-generation) token strings.
   */
  #keep(text: string): void {
    this.#pieces[this.#pieceCount] = text;
    if (++this.#pieceCount === PIECES_PER_BLOCK) {
      this.#text += this.#pieces.join('');
      this.#pieceCount = 0;
    }
  }

  #guard(promise: Promise<IteratorResult<unknown, undefined>>): Promise<IteratorResult<unknown, undefined>> {
    return promise.catch((error: unknown) => this.#onError(error));
  }

  /** A pull failed: an abort after a cancel is an interruption; anything else fails the step. */
  async #onError(error: unknown): Promise<IteratorResult<unknown, undefined>> {
    if (this.#phase !== ENDED) {
      if (this.#abortedAt !== 0 && isAbortLike(error, this.run.signal)) {
        await this.#interruptWith(false);
        return DONE;
      }
      await this.#fail(error);
    }
    throw error;
  }

  /** A generator ended (`return`): function form may return its final tuple; class form returns the result. */
  async #onReturn(value: unknown, interrupted: boolean): Promise<void> {
    if (this.#spec.kind === 'class') {
      const state = await (this.#spec.update as NonNullable<NormalizedAction['update']>)(value, this.#view);
      await this.#commitFinal(value, state, interrupted);
      return;
    }
    if (Array.isArray(value) && value.length === 2 && value[1] instanceof State) {
      await this.#commitFinal(value[0], value[1], interrupted);
      return;
    }
    if (interrupted) {
      await this.#interruptWith(false);
      return;
    }
    throw invalidOutput(this.name, 'ended without yielding its final [result, newState] item', 'missing_final');
  }

  /** Function form: the final item; the generator must then end. */
  async #onFinal(result: unknown, state: State): Promise<void> {
    const iter = this.#iter as Iterator<unknown, unknown>;
    // Let code after the final yield run (finally blocks, logging); anything else it yields is a bug.
    let after: IteratorResult<unknown, unknown>;
    after = iter.next();
    if (this.#async) after = await (after as unknown as Promise<IteratorResult<unknown, unknown>>);
    if (after.done !== true) {
      void this.#closeIterator();
      throw invalidOutput(this.name, 'yielded an item after its final [result, newState] item', 'item_after_final');
    }
    await this.#commitFinal(result, state, this.#abortedAt !== 0);
  }

  async #commitFinal(result: unknown, returned: State, interrupted: boolean): Promise<void> {
    const state = this.#merge(returned, !interrupted);
    await this.#end(interrupted ? 'interrupted' : 'completed', result, state, interrupted ? this.run.cancelReason : undefined);
  }

  /**
   * After a cancel: keep pulling (items are no longer delivered) until the generator yields or
   * returns its final item, throws, or the grace period — counted from the cancel — is over.
   *
   * A sync generator that ignores its signal would otherwise be pulled in one synchronous loop for
   * the whole grace period, freezing the event loop (timers, sockets, other runs). It is pulled in
   * slices of at most {@link SYNC_SLICE_MS}, yielding to the event loop between slices, so it
   * still gets the grace period to produce its final item while everything else keeps running.
   */
  async #finishInterrupted(first?: IteratorResult<unknown, unknown>): Promise<IteratorResult<unknown, undefined>> {
    this.#phase = FINISHING;
    const iter = this.#iter as Iterator<unknown, unknown>;
    const deadline = this.#abortedAt + this.#core.graceMs;
    let timer: NodeJS.Timeout | undefined;
    let expired: Promise<typeof TIMEOUT> | null = null;
    let sliceEnd = now() + SYNC_SLICE_MS;
    try {
      let r: IteratorResult<unknown, unknown> | typeof TIMEOUT | undefined = first;
      for (;;) {
        if (r === undefined) {
          const t = now();
          if (t >= deadline) break;
          if (!this.#async && t >= sliceEnd) {
            await yieldToEventLoop();
            // Something else may have ended the step meanwhile (it is committed once).
            if (this.#phase === ENDED) return DONE;
            sliceEnd = now() + SYNC_SLICE_MS;
            continue;
          }
          const pending = iter.next() as IteratorResult<unknown, unknown> | Promise<IteratorResult<unknown, unknown>>;
          if (this.#async) {
            expired ??= new Promise((resolve) => {
              timer = setTimeout(resolve, Math.max(0, deadline - now()), TIMEOUT);
            });
            const p = pending as Promise<IteratorResult<unknown, unknown>>;
            p.catch(() => {});
            r = await Promise.race([p, expired]);
          } else r = pending as IteratorResult<unknown, unknown>;
        }
        if (r === TIMEOUT) break;
        if (r.done === true) {
          await this.#onReturn(r.value, true);
          return DONE;
        }
        const v = r.value;
        if (this.#spec.kind === 'stream' && Array.isArray(v) && v.length === 2 && v[1] instanceof State) {
          void this.#closeIterator();
          await this.#commitFinal(v[0], v[1], true);
          return DONE;
        }
        r = undefined; // an item produced after the cancel: not delivered, not part of the partial output
      }
    } catch (error) {
      if (this.#phase === ENDED) throw error;
      if (!isAbortLike(error, this.run.signal)) {
        await this.#fail(error);
        throw error;
      }
    } finally {
      clearTimeout(timer);
    }
    await this.#interruptWith(true);
    return DONE;
  }

  /** Commits the interrupted outcome from the partial output (the action gave no final item). */
  async #interruptWith(close: boolean): Promise<IteratorResult<unknown, undefined>> {
    if (this.#phase === ENDED) return DONE;
    this.#phase = FINISHING;
    if (close) void this.#closeIterator();
    const partial: PartialOutput = { text: this.#text + this.#pieces.slice(0, this.#pieceCount).join(''), itemCount: this.#itemCount };
    if (this.#items !== null) partial.items = this.#items;
    try {
      const spec = this.#spec;
      if (spec.onInterrupt !== undefined) {
        const final = await spec.onInterrupt(partial, this.#view, this.inputs);
        if (!Array.isArray(final) || final.length !== 2 || !(final[1] instanceof State)) {
          throw invalidOutput(this.name, 'onInterrupt must return [result, newState]', 'invalid_final');
        }
        await this.#commitFinal(final[0], final[1], true);
      } else if (spec.interrupted !== undefined) {
        const result = spec.interrupted(partial, this.#view);
        const state = await (spec.update as NonNullable<NormalizedAction['update']>)(result, this.#view);
        await this.#commitFinal(result, state, true);
      } else {
        await this.#end('interrupted', partial, this.#prior, this.run.cancelReason);
      }
    } catch (error) {
      await this.#fail(error);
    }
    return DONE;
  }

  async #runPlain(): Promise<void> {
    if (this.#phase === ENDED) return;
    this.#phase = STREAMING;
    let settled: { ok: true; value: unknown } | { ok: false; error: unknown } | typeof TIMEOUT;
    try {
      const out = (this.#spec.plain as NonNullable<NormalizedAction['plain']>)(this.#view, this.inputs, this.#ctx);
      settled = await this.#settle(Promise.resolve(out));
    } catch (error) {
      settled = { ok: false, error };
    }
    if (settled === TIMEOUT) {
      await this.#interruptWith(false);
      return;
    }
    if (!settled.ok) {
      if (this.#abortedAt !== 0 && isAbortLike(settled.error, this.run.signal)) await this.#interruptWith(false);
      else await this.#fail(settled.error);
      return;
    }
    const value = settled.value;
    if (!Array.isArray(value) || value.length !== 2 || !(value[1] instanceof State)) {
      await this.#fail(invalidOutput(this.name, 'must return [result, newState] (a State, built with state.update(…))', 'invalid_final'));
      return;
    }
    try {
      await this.#commitFinal(value[0], value[1], this.#abortedAt !== 0);
    } catch (error) {
      await this.#fail(error);
    }
  }

  /** Waits for the plain action; once the step is cancelled, at most the grace period. */
  #settle(outcome: Promise<unknown>): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown } | typeof TIMEOUT> {
    const settled = outcome.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    return new Promise((resolve) => {
      this.#wake = resolve;
      if (this.#abortedAt !== 0) this.#armGrace();
      void settled.then(resolve);
    }).finally(() => {
      this.#wake = null;
    }) as Promise<{ ok: true; value: unknown } | { ok: false; error: unknown } | typeof TIMEOUT>;
  }

  #onAbort(): void {
    if (this.#abortedAt === 0) this.#abortedAt = now();
    if (this.#phase === ENDED || !this.#begun) return;
    if (!this.#pulling && this.#pumping === null) {
      // Nobody is pulling: finish now, so a transport's cancel commits without waiting for a reader.
      void this.drain();
    } else this.#armGrace();
  }

  #armGrace(): void {
    if (this.#graceTimer !== undefined) return;
    const delay = Math.max(0, this.#abortedAt + this.#core.graceMs - now());
    this.#graceTimer = setTimeout(() => {
      if (this.#phase === ENDED) return;
      const wake = this.#wake;
      if (wake !== null) {
        wake(TIMEOUT);
        return;
      }
      // An async generator ignoring its signal: end the pull in flight now; its late answer is ignored.
      const resolve = this.#resolvePull;
      if (resolve === null) return;
      this.#resolvePull = null;
      this.#rejectPull = null;
      void this.#interruptWith(true).then(() => {
        this.#pulling = false;
        this.#inflight = null;
        resolve(DONE);
      });
    }, delay);
  }

  #closeIterator(): Promise<unknown> {
    const iter = this.#iter;
    if (iter === null || typeof iter.return !== 'function') return Promise.resolve();
    try {
      return Promise.resolve(iter.return(undefined)).catch(() => {});
    } catch {
      return Promise.resolve();
    }
  }

  /** Checks the action's new state against its declaration and overlays its writes on the full state. */
  #merge(returned: State, strict: boolean): State {
    if (!(returned instanceof State)) {
      throw invalidOutput(this.name, 'produced a new state that is not a State', 'invalid_final');
    }
    const writes = this.#spec.writes;
    const view = this.#view;
    for (const key of returned.keys()) {
      if (!writes.includes(key) && (!view.has(key) || view.get(key) !== returned.get(key))) {
        throw invalidOutput(this.name, `wrote '${key}', which is not in its writes [${writes.join(', ')}]`, 'undeclared_write', { key });
      }
    }
    const update: Record<string, unknown> = {};
    for (const key of writes) {
      if (returned.has(key)) update[key] = returned.get(key);
      else if (strict) throw invalidOutput(this.name, `did not write '${key}' (declared in writes)`, 'missing_write', { key });
    }
    return this.#prior.update(update);
  }

  async #fail(error: unknown): Promise<void> {
    if (this.#phase === ENDED) return;
    void this.#closeIterator();
    await this.#end('failed', undefined, this.#prior, error);
  }

  #streamStats(endedAt: number): StreamStats | undefined {
    if (!this.streaming) return undefined;
    return {
      startedAt: this.#streamStartedAt || this.#startedAt,
      firstItemAt: this.#firstItemAt,
      itemCount: this.#itemCount,
      endedAt,
    };
  }

  /** The one commit: persist, apply to the app, close the run, fire the post hooks, settle. */
  async #end(status: StepStatus, result: unknown, state: State, error: unknown): Promise<void> {
    if (this.#phase === ENDED) return;
    this.#phase = ENDED;
    this.#detach?.();
    this.#detach = null;
    clearTimeout(this.#graceTimer);
    const core = this.#core;
    const endedAt = now();

    let consumed = core.persister === null;
    if (core.persister !== null) {
      try {
        await core.persister.save({
          appId: core.appId,
          partitionKey: core.partitionKey,
          sequenceId: this.sequenceId,
          action: this.name,
          status,
          state: state.toJSON(),
          result: result === undefined ? null : result,
          error: errorMessage(error),
          startedAt: this.#startedAt,
          endedAt,
        });
        consumed = true;
      } catch (saveError) {
        core.logger.error({ err: saveError, appId: core.appId, sequenceId: this.sequenceId }, `Could not save step ${this.sequenceId} ('${this.name}')`);
        if (status !== 'failed') {
          status = 'failed';
          error = saveError;
          result = undefined;
          state = this.#prior;
        }
      }
    }

    const record: StepRecord = {
      action: this.name,
      sequenceId: this.sequenceId,
      status,
      result,
      state,
      runId: this.run.id,
      startedAt: this.#startedAt,
      endedAt,
    };
    if (error !== undefined) record.error = error;
    const stream = this.#streamStats(endedAt);
    if (stream !== undefined) record.stream = stream;
    this.#record = record;
    core.applyStep(this, record, consumed);

    this.#closeRun(status, state, error);

    if (this.#deferred !== NONE) await this.#flushItemHook();
    const base = { appId: core.appId, partitionKey: core.partitionKey, action: this.name, sequenceId: this.sequenceId, run: this.run };
    if (this.#preStreamCalled && stream !== undefined && core.hooks.postEndStream.length > 0) {
      await this.#post('postEndStream', () => callHooks(core.hooks.postEndStream, { ...base, status, error, stream }));
    }
    if (this.#preStepCalled && core.hooks.postRunStep.length > 0) {
      await this.#post('postRunStep', () =>
        callHooks(core.hooks.postRunStep, {
          ...base,
          status,
          state,
          result,
          error,
          inputs: this.inputs,
          startedAt: this.#startedAt,
          endedAt,
          stream,
        }),
      );
    }
    if (this.#executeCall !== undefined && core.hooks.postExecuteCall.length > 0) {
      const failure = status === 'failed' ? error : undefined;
      await this.#post('postExecuteCall', () =>
        callHooks(core.hooks.postExecuteCall, {
          appId: core.appId,
          partitionKey: core.partitionKey,
          method: this.#executeCall as ExecuteMethod,
          state,
          error: failure,
        }),
      );
    }
    this.#resolveDone(record);
  }

  #closeRun(status: StepStatus, state: State, error: unknown): void {
    const run = this.run;
    const dispatcher = this.#dispatcher;
    try {
      if (status === 'failed') {
        void dispatcher.closeStreamOnError();
        const e = SluiceError.isInstance(error) ? error : null;
        const message = e?.message ?? (error instanceof Error && error.message !== '' ? error.message : `Action '${this.name}' failed`);
        run.emit({
          type: 'error',
          code: e?.code ?? 'internal',
          message,
          reason: (e?.details.reason as string | undefined) ?? 'action_failed',
          actionName: this.name,
        });
        run.emit({ type: 'run-end', reason: 'error' });
      } else {
        // Interrupted: the dispatcher already ended its stream as `cancelled` when the signal aborted.
        if (status === 'completed') void dispatcher.finishStream();
        const update: Record<string, unknown> = {};
        for (const key of this.#spec.writes) {
          if (state.get(key) !== this.#prior.get(key) || (state.has(key) && !this.#prior.has(key))) update[key] = state.get(key);
        }
        const result: EventInput = { type: 'result', events: [], responses: dispatcher.messages, state: update };
        // Closing events never wait for slow readers: the commit must not hang on a reader.
        run.emit(result);
        run.emit({ type: 'run-end', reason: status === 'interrupted' ? 'cancelled' : 'completed' });
      }
    } catch (closeError) {
      this.#core.logger.error({ err: closeError, runId: run.id }, 'Could not close the step run');
    } finally {
      dispatcher.close();
    }
  }

  async #flushItemHook(): Promise<void> {
    const item = this.#deferred;
    this.#deferred = NONE;
    const core = this.#core;
    await this.#post('postStreamItem', () =>
      callHooks(core.hooks.postStreamItem, {
        appId: core.appId,
        partitionKey: core.partitionKey,
        action: this.name,
        sequenceId: this.sequenceId,
        run: this.run,
        item,
        index: this.#itemCount - 1,
        streamStartedAt: this.#streamStartedAt,
        firstItemAt: this.#firstItemAt as number,
      }),
    );
  }

  /** Post hooks cannot undo a commit, so their errors are logged, not thrown. */
  async #post(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (error) {
      this.#core.logger.error({ err: error, action: this.name, sequenceId: this.sequenceId }, `The ${name} hook failed`);
    }
  }
}
