/**
 * The application: a state machine of actions whose steps stream, with one commit per step.
 * Build one with `ApplicationBuilder`.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { Logger } from '../runtime/logger.ts';
import type { Run } from '../runtime/run.ts';
import type { Inputs, NormalizedAction } from './action.ts';
import { StreamingResultContainer } from './container.ts';
import { callHooks, type ExecuteMethod, HookSet, type LifecycleHooks } from './hooks.ts';
import type { Persister } from './persistence.ts';
import type { State, StateData } from './state.ts';
import { type RunBufferOptions, type StepCore, type StepRecord, StepRun } from './step.ts';
import { type Edge, nextFrom } from './transitions.ts';

/** Options of every call. */
export interface CallOptions {
  /** Inputs handed to each action the call runs (an action's bound inputs win). */
  inputs?: Inputs;
  /** Cancels the running step when aborted (it is committed as `interrupted`) and ends the call. */
  signal?: AbortSignal;
}

/**
 * Where a multi-step call stops. Names may be `@tag:<tag>` (every action with that tag).
 * At least one step runs before the lists are checked, so a call can resume past a halt.
 */
export interface HaltOptions extends CallOptions {
  /** Stop before running any of these (checked from the second step on). */
  haltBefore?: readonly string[];
  /** Stop after running any of these. */
  haltAfter?: readonly string[];
}

/** Options of `streamResult`: `haltAfter` names the step to stream. */
export interface StreamResultOptions extends HaltOptions {
  haltAfter: readonly string[];
}

/** A step's action name, result and the state after it. */
export type StepResult<S extends StateData = StateData> = [action: string, result: unknown, state: State<S>];

/** @internal What the builder hands the application. */
export interface ApplicationInit {
  appId: string;
  partitionKey: string;
  actions: Map<string, NormalizedAction>;
  edges: Map<string, Edge[]>;
  entrypoint: string | null;
  state: State;
  position: string | null;
  nextOverride: string | null;
  sequenceId: number;
  hooks: LifecycleHooks[];
  persister: Persister | null;
  logger: Logger;
  graceMs: number;
  runOptions: RunBufferOptions;
  retainRuns: number;
}

interface OpenCall {
  method: ExecuteMethod;
  closed: boolean;
}

/**
 * A running state machine. Calls are serialised: one step at a time.
 *
 * **The pending-step rule.** `streamResult` / `streamIterate` return while their step is still
 * running. If its container is dropped — never read, or read only partly without `break` — the
 * application's next call (`step`, `iterate`, `run`, `streamResult`, `streamIterate`, `settle`)
 * first runs that step to completion exactly as `container.get()` would (its remaining items still
 * go to its run and hooks, not to the container), commits it, fires its post hooks, and only then
 * starts. Likewise an `iterate` / `streamIterate` generator left unfinished is closed (its
 * `postExecuteCall` fires) by the next call. So hooks stay paired and no step is leaked; call
 * `settle()` to apply the rule without starting anything. A `streamResult` container that is
 * garbage-collected unread has its step finished then, without waiting for a next call.
 *
 * **Serving a step.** Steps run only when pulled. A server that forwards the step's run (its
 * Sluice events) instead of reading the container subscribes to `container.run` and awaits
 * `container.get()`, which drives the step at the pace of the run's slowest reader; cancelling
 * the run (stop, barge-in) interrupts the step and commits it at once, even with no reader.
 *
 * @example
 * const app = await new ApplicationBuilder()
 *   .withActions({ prompt, respond })
 *   .withTransitions(['prompt', 'respond'], ['respond', 'prompt'])
 *   .withState({ chat: [] })
 *   .withEntrypoint('prompt')
 *   .build();
 * const [, container] = await app.streamResult({ haltAfter: ['respond'], inputs: { prompt: 'Hi' } });
 * for await (const token of container) process.stdout.write(String(token));
 */
export class Application<S extends StateData = StateData> {
  readonly appId: string;
  readonly partitionKey: string;

  #actions: Map<string, NormalizedAction>;
  #edges: Map<string, Edge[]>;
  #entrypoint: string | null;
  #state: State;
  #position: string | null;
  #nextOverride: string | null;
  #sequenceId: number;
  #hooks: HookSet;
  #core: StepCore;
  #retainRuns: number;
  #runs: Run[] = [];
  #lastStep: StepRecord | null = null;

  #lock: Promise<void> = Promise.resolve();
  #current: StepRun | null = null;
  #pending: StepRun | null = null;
  #openCall: OpenCall | null = null;
  /** A streamResult container dropped unread finishes its step once collected, as the next call would. */
  #dropped = new FinalizationRegistry<StepRun>((step) => {
    if (this.#pending !== step || step.ended) return;
    this.settle().catch((error: unknown) => this.#core.logger.error({ err: error, action: step.name }, 'Could not finish a dropped step'));
  });

  /** @internal Use `ApplicationBuilder`. */
  constructor(init: ApplicationInit) {
    this.appId = init.appId;
    this.partitionKey = init.partitionKey;
    this.#actions = init.actions;
    this.#edges = init.edges;
    this.#entrypoint = init.entrypoint;
    this.#state = init.state;
    this.#position = init.position;
    this.#nextOverride = init.nextOverride;
    this.#sequenceId = init.sequenceId;
    this.#hooks = new HookSet(init.hooks);
    this.#retainRuns = init.retainRuns;
    this.#core = {
      appId: init.appId,
      partitionKey: init.partitionKey,
      hooks: this.#hooks,
      persister: init.persister,
      logger: init.logger,
      graceMs: init.graceMs,
      runOptions: init.runOptions,
      applyStep: (step, record, consumed) => this.#applyStep(step, record, consumed),
      retainRun: (run) => {
        this.#runs.push(run);
        if (this.#runs.length > this.#retainRuns) this.#runs.shift();
      },
    };
  }

  /** The committed state (a pending step's changes appear once it is committed). */
  get state(): State<S> {
    return this.#state as State<S>;
  }

  /** Sequence id of the last step with a record (0 for the first step), or null before any. */
  get sequenceId(): number | null {
    return this.#sequenceId < 0 ? null : this.#sequenceId;
  }

  /** The action of the last committed step, or null. */
  get position(): string | null {
    return this.#position;
  }

  /** The action the next step runs, or null when the graph has ended. */
  get nextAction(): string | null {
    if (this.#nextOverride !== null) return this.#nextOverride;
    if (this.#position === null) return this.#entrypoint;
    return nextFrom(this.#edges, this.#position, this.#state);
  }

  /** The outcome of the last step that ended. */
  get lastStep(): StepRecord | null {
    return this.#lastStep;
  }

  /** The run of the step in progress (running or pending), or null. A server subscribes to it. */
  get currentRun(): Run | null {
    return (this.#current ?? this.#pending)?.run ?? null;
  }

  /** The runs of the most recent steps, oldest first (bounded by `retainRuns`). */
  get runs(): readonly Run[] {
    return this.#runs.slice();
  }

  /** A recent step's run by id. */
  getRun(runId: string): Run | undefined {
    return this.#runs.find((run) => run.id === runId);
  }

  /** The action names. */
  get actions(): string[] {
    return [...this.#actions.keys()];
  }

  /**
   * Cancels the step in progress: its signal aborts, it gets the grace period, and it is committed
   * as `interrupted`; a multi-step call then stops. Returns false when nothing is running.
   */
  cancel(reason = 'Cancelled'): boolean {
    const step = this.#current ?? this.#pending;
    if (step === null || step.ended) return false;
    void step.cancel(new SluiceError('cancelled', reason, { details: { reason: 'stop' } }));
    return true;
  }

  /** Applies the pending-step rule now: finishes a pending step and closes an unfinished generator call. */
  settle(): Promise<void> {
    return this.#exclusive(async () => {});
  }

  /**
   * Runs the next action as one step (a streaming action is run through). Resolves to
   * `[action, result, state]`, or null when there is no next action; rejects with the action's
   * own error if it failed (the failure is committed, and the next call re-runs the action).
   */
  step(options: CallOptions = {}): Promise<StepResult<S> | null> {
    return this.#exclusive(() =>
      this.#wrapCall('step', async () => {
        const next = this.nextAction;
        if (next === null) return null;
        const step = await this.#execStep(next, options, false);
        return this.#resultOf(step.record as StepRecord);
      }),
    );
  }

  /**
   * Runs steps, yielding `[action, result, state]` after each, until a halt condition, the end of
   * the graph, or a cancelled step. Returns the last step (or `[haltedBefore, null, state]`).
   */
  iterate(options: HaltOptions = {}): AsyncGenerator<StepResult<S>, StepResult<S> | [string, null, State<S>] | null> {
    return this.#iterate(options, 'iterate');
  }

  /** Runs steps like `iterate` and resolves to the last one. */
  async run(options: HaltOptions = {}): Promise<StepResult<S> | [string, null, State<S>]> {
    const steps = this.#iterate(options, 'run');
    for (;;) {
      const next = await steps.next();
      if (next.done === true) {
        if (next.value === null) throw noNextAction(this.appId);
        return next.value;
      }
    }
  }

  /**
   * Runs up to the first `haltAfter` action and streams it. Steps before it run through (streaming
   * ones are drained, without stream hooks). Resolves as soon as the streamed step has started:
   * `[action, container]`. A non-streaming target gives an empty container with its result; when
   * the run halts before a `haltBefore` action, the container holds `[null, state]` and the
   * action is the one it halted before.
   */
  async streamResult<I = unknown, R = unknown>(options: StreamResultOptions): Promise<[string, StreamingResultContainer<I, R, S>]> {
    const haltAfter = this.#expand(options.haltAfter, 'haltAfter');
    const haltBefore = this.#expand(options.haltBefore ?? [], 'haltBefore');
    return this.#exclusive(async () => {
      let handedOff = false;
      let error: unknown;
      try {
        await this.#pre('streamResult');
        let next = this.nextAction;
        if (next === null) throw noNextAction(this.appId);
        if (!haltAfter.has(next)) {
          let last: StepRun | null = null;
          for (let first = true; ; first = false) {
            if (!first && (haltAfter.has(next) || haltBefore.has(next))) break;
            last = await this.#execStep(next, options, false);
            if (last.record?.status === 'interrupted') return [last.name, new StreamingResultContainer<I, R, S>(last.name, last)];
            next = this.nextAction;
            if (next === null) break;
          }
          if (next === null) {
            const ended = last as StepRun;
            return [ended.name, new StreamingResultContainer<I, R, S>(ended.name, ended)];
          }
          if (!haltAfter.has(next)) return [next, new StreamingResultContainer<I, R, S>(next, null, { result: null, state: this.#state })];
        }
        const target = next;
        if (this.#spec(target).kind === 'plain') {
          const step = await this.#execStep(target, options, false);
          return [target, new StreamingResultContainer<I, R, S>(target, step)];
        }
        const step = await this.#startStep(target, options, true, 'streamResult');
        handedOff = true;
        if (step.ended) {
          const record = step.record as StepRecord;
          if (record.status === 'failed') throw record.error;
          return [target, new StreamingResultContainer<I, R, S>(target, step)];
        }
        this.#pending = step;
        const container = new StreamingResultContainer<I, R, S>(target, step);
        // The step is the unregister token: once it ended, nothing waits for the container's GC
        // (cleanup callbacks only run when the event loop turns, which a busy caller may not let it).
        this.#dropped.register(container, step, step);
        void step.done.then(() => this.#dropped.unregister(step));
        return [target, container];
      } catch (thrown) {
        error = thrown;
        throw thrown;
      } finally {
        if (!handedOff) await this.#post('streamResult', error);
      }
    });
  }

  /**
   * Streams every step in turn: yields `[action, container]` for each; after your loop body the
   * container is run to its end if you did not read it. Stops at a halt condition, at the end of
   * the graph, or after a step you cancelled (breaking out of a container commits it as
   * `interrupted`; the iteration does not re-run it).
   *
   * @example
   * for await (const [action, container] of app.streamIterate({ haltAfter: ['answer'] })) {
   *   for await (const item of container) render(action, item);
   * }
   */
  async *streamIterate<I = unknown, R = unknown>(options: HaltOptions = {}): AsyncGenerator<[string, StreamingResultContainer<I, R, S>], void> {
    const haltAfter = this.#expand(options.haltAfter ?? [], 'haltAfter');
    const haltBefore = this.#expand(options.haltBefore ?? [], 'haltBefore');
    const call: OpenCall = { method: 'streamIterate', closed: false };
    let error: unknown;
    try {
      await this.#exclusive(async () => {
        this.#openCall = call;
        await this.#pre('streamIterate');
      }, call);
      for (let first = true; ; first = false) {
        if (call.closed) return;
        const step = await this.#exclusive(async () => {
          const next = this.nextAction;
          if (next === null || (!first && haltBefore.has(next))) return null;
          const started = await this.#startStep(next, options, true);
          if (!started.ended) this.#pending = started;
          return started;
        }, call);
        if (step === null) return;
        yield [step.name, new StreamingResultContainer<I, R, S>(step.name, step)];
        const record = await step.drain();
        if (record.status === 'failed') throw record.error;
        if (record.status === 'interrupted' || haltAfter.has(record.action)) return;
      }
    } catch (thrown) {
      error = thrown;
      throw thrown;
    } finally {
      await this.#closeCall(call, error);
    }
  }

  async *#iterate(options: HaltOptions, method: ExecuteMethod): AsyncGenerator<StepResult<S>, StepResult<S> | [string, null, State<S>] | null> {
    const haltAfter = this.#expand(options.haltAfter ?? [], 'haltAfter');
    const haltBefore = this.#expand(options.haltBefore ?? [], 'haltBefore');
    const call: OpenCall = { method, closed: false };
    let error: unknown;
    let last: StepResult<S> | null = null;
    try {
      await this.#exclusive(async () => {
        this.#openCall = call;
        await this.#pre(method);
      }, call);
      for (let first = true; ; first = false) {
        if (call.closed) return last;
        const outcome = await this.#exclusive(async () => {
          const next = this.nextAction;
          if (next === null) return null;
          if (!first && haltBefore.has(next)) return next;
          return this.#execStep(next, options, false);
        }, call);
        if (outcome === null) return last;
        if (typeof outcome === 'string') return [outcome, null, this.#state as State<S>];
        const record = outcome.record as StepRecord;
        last = this.#resultOf(record);
        yield last;
        if (record.status === 'interrupted' || haltAfter.has(record.action)) return last;
      }
    } catch (thrown) {
      error = thrown;
      throw thrown;
    } finally {
      await this.#closeCall(call, error);
    }
  }

  #resultOf(record: StepRecord): StepResult<S> {
    if (record.status === 'failed') throw record.error;
    return [record.action, record.result, record.state as State<S>];
  }

  #spec(name: string): NormalizedAction {
    const spec = this.#actions.get(name);
    if (spec === undefined) throw new SluiceError('not_found', `No action named '${name}'`);
    return spec;
  }

  async #startStep(name: string, options: CallOptions, streamHooks: boolean, executeCall?: ExecuteMethod): Promise<StepRun> {
    const step = new StepRun(this.#core, {
      name,
      spec: this.#spec(name),
      sequenceId: this.#sequenceId + 1,
      inputs: options.inputs ?? {},
      prior: this.#state,
      streamHooks,
      signal: options.signal,
      executeCall,
    });
    this.#current = step;
    await step.begin();
    return step;
  }

  /** Runs one step through to its commit. Rejects with the action's error if it failed. */
  async #execStep(name: string, options: CallOptions, streamHooks: boolean): Promise<StepRun> {
    const step = await this.#startStep(name, options, streamHooks);
    const record = await step.drain();
    if (record.status === 'failed') throw record.error;
    return step;
  }

  #applyStep(step: StepRun, record: StepRecord, consumed: boolean): void {
    if (record.status === 'failed') this.#nextOverride = step.name;
    else {
      this.#state = record.state;
      this.#position = step.name;
      this.#nextOverride = null;
    }
    if (consumed) this.#sequenceId = step.sequenceId;
    this.#lastStep = record;
    if (this.#current === step) this.#current = null;
    if (this.#pending === step) this.#pending = null;
  }

  /** Serialises calls; first applies the pending-step rule (except to the call that owns `owner`). */
  async #exclusive<T>(fn: () => Promise<T>, owner?: OpenCall): Promise<T> {
    const previous = this.#lock;
    let release!: () => void;
    this.#lock = new Promise((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      const open = this.#openCall;
      if (open !== null && open !== owner) await this.#closeCall(open, undefined);
      const pending = this.#pending;
      if (pending !== null && !pending.ended) await pending.drain();
      return await fn();
    } finally {
      release();
    }
  }

  /** Runs a single-shot call between its execute-call hooks. */
  async #wrapCall<T>(method: ExecuteMethod, body: () => Promise<T>): Promise<T> {
    let error: unknown;
    try {
      await this.#pre(method);
      return await body();
    } catch (thrown) {
      error = thrown;
      throw thrown;
    } finally {
      await this.#post(method, error);
    }
  }

  async #pre(method: ExecuteMethod): Promise<void> {
    if (this.#hooks.preExecuteCall.length === 0) return;
    await callHooks(this.#hooks.preExecuteCall, { appId: this.appId, partitionKey: this.partitionKey, method, state: this.#state });
  }

  async #post(method: ExecuteMethod, error: unknown): Promise<void> {
    if (this.#hooks.postExecuteCall.length === 0) return;
    try {
      await callHooks(this.#hooks.postExecuteCall, { appId: this.appId, partitionKey: this.partitionKey, method, state: this.#state, error });
    } catch (hookError) {
      this.#core.logger.error({ err: hookError, method }, 'The postExecuteCall hook failed');
    }
  }

  async #closeCall(call: OpenCall, error: unknown): Promise<void> {
    if (call.closed) return;
    call.closed = true;
    if (this.#openCall === call) this.#openCall = null;
    await this.#post(call.method, error);
  }

  #expand(names: readonly string[], option: string): Set<string> {
    if (!Array.isArray(names)) throw new SluiceError('invalid_argument', `'${option}' must be an array of action names`);
    const out = new Set<string>();
    for (const name of names) {
      if (typeof name === 'string' && name.startsWith('@tag:')) {
        const tag = name.slice(5);
        for (const [action, spec] of this.#actions) if (spec.tags.includes(tag)) out.add(action);
      } else if (typeof name === 'string' && this.#actions.has(name)) out.add(name);
      else throw new SluiceError('invalid_argument', `'${option}' names an unknown action '${String(name)}'`);
    }
    return out;
  }
}

function noNextAction(appId: string): SluiceError {
  return new SluiceError('failed_precondition', `App '${appId}' has no next action: its graph has ended`, {
    details: { reason: 'no_next_action' },
  });
}
