/**
 * The action executor: looks actions up, runs them as {@link Run}s, and owns barge-in.
 * Semantics follow Rasa SDK 3.17's `ActionExecutor` and `WebhookStream` (`reference/rasa-sdk.md`
 * §1c–1d), minus their gaps: the barge-in timeout starts at the ack and holds even when the action
 * never emits again, the backlog is dropped in O(1), and the action's signal aborts.
 * @module
 */

import { SluiceError, clipped } from '../protocol/errors.ts';
import type { ActionResult, EventInput, RasaEvent, ResultEvent, RunEndReason, SluiceEvent } from '../protocol/events.ts';
import type { DomainJson } from '../protocol/schemas.ts';
import { parseActionCall } from '../protocol/schemas.ts';
import type { ActionContext, ActionDefinition, ActionOutput, StreamItem, TypedStreamItem } from './action.ts';
import { isActionDefinition } from './action.ts';
import { resolveBargeInTimeout } from './barge-in.ts';
import { deliverTyped } from './deliver.ts';
import { Dispatcher } from './dispatcher.ts';
import type { Logger } from './logger.ts';
import { createLogger } from './logger.ts';
import { type RunObserver, WireMeters, watchOf } from './observer.ts';
import { Lifecycle } from './lifecycle.ts';
import { Run, type RunOptions } from './run.ts';
import { LOCAL_RUNS, type SharedRuns } from './shared-runs.ts';
import { RunTracer } from './tracing.ts';
import { StreamRegistry } from './stream-registry.ts';
import { Tracker } from './tracker.ts';

/** Options of an {@link ActionExecutor}. */
export interface ExecutorOptions {
  /** The actions to serve (more can be added with `register`). */
  actions?: ActionDefinition[];
  logger?: Logger;
  /**
   * Seconds a cancelled (barged-in) action may take to return its events before an empty result
   * is sent and the action is abandoned. Default: `ACTION_SERVER_STREAM_BARGE_IN_TIMEOUT_SECONDS`, or 30.
   */
  bargeInTimeoutSeconds?: number;
  /** Environment to read settings from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Buffer settings of every run. */
  run?: Pick<RunOptions, 'highWaterMark' | 'lowWaterMark' | 'logLimit' | 'hardLimit'>;
  /**
   * How long an ended run stays reachable through `getRun` (for late readers resuming from the
   * log), in milliseconds. Default 60,000. At most `retainEndedRuns` ended runs are kept.
   */
  retainEndedRunsMs?: number;
  /** Most ended runs kept for late readers. Default 1,000. */
  retainEndedRuns?: number;
  /**
   * Most bytes of events (estimated from their text, see `estimateRunBytes`) held by the ended
   * runs kept for late readers; the oldest go first. Default 64 MiB.
   */
  retainEndedRunsBytes?: number;
  /**
   * Put an action's own error message in the public `error` event (what Rasa SDK does, so its
   * clients see `str(exc)`). When false (the default: messages may carry paths or secrets) the
   * public message is only "Action 'x' failed" and the action's message goes to the log.
   */
  exposeActionErrors?: boolean;
  /**
   * Where runs are shared with other instances: the event log every run is appended to and the
   * control bus that carries cancel and barge-in to a run's owner. Default: none (every run lives
   * in this process only). For several instances pass `await connectRedisRuns({ url })` from
   * `sluice/stores`; the caller closes it after `executor.close()`.
   */
  shared?: SharedRuns;
  /** Told about every run (e.g. `SluiceMetrics`); see `RunObserver`. */
  observers?: RunObserver[];
  /**
   * OpenTelemetry spans for every run (`RunTracer`, through `@opentelemetry/api`: no-ops until an
   * SDK is registered). Default true.
   */
  tracing?: boolean;
  /** The shutdown state (see {@link ActionExecutor.drain}); default a new one. */
  lifecycle?: Lifecycle;
  /**
   * Log one `info` line per ended run (`action`, `runId`, `reason`, `durationMs`, `chunks`,
   * `transport`). Default false; `sluice serve` turns it on.
   */
  logRunEnds?: boolean;
  /** Most runs live at once; `start` beyond it throws `resource_exhausted`. Default 1,000. */
  maxConcurrentRuns?: number;
  /** Most runs live at once per `StartOptions.owner` (runs without an owner count only globally). Default 100. */
  maxConcurrentRunsPerOwner?: number;
  /**
   * Longest a run may last, in milliseconds: then it is cancelled and ends with reason `timeout`
   * (after the barge-in grace for the action to return). Default 600,000 (10 minutes).
   */
  maxRunDurationMs?: number;
}

/** Options of {@link ActionExecutor.start}. */
export interface StartOptions {
  /** Cancels the run when aborted. */
  signal?: AbortSignal;
  /**
   * Stream output as it is produced (default). When false, chunks are collected and replayed as
   * whole messages in the result, as Rasa's non-streaming transports expect.
   */
  streaming?: boolean;
  /** Run id to use (default: a UUID). */
  runId?: string;
  /** The principal starting the run: `Run.owner`, checked by the transports (authentication). */
  owner?: string;
  /** The transport starting the run: `http-sse`, `http-webhook`, `ws`, `grpc`, `ui-message`, `voice-ws`, `app`, `in-process`. */
  transport?: string;
  /** W3C trace-context headers of the request (`traceparent`, `tracestate`), so the run's span joins the caller's trace. */
  traceHeaders?: Readonly<Record<string, string>>;
}

/** Receives every event of a run, in order; the run waits for it (backpressure). */
export type EventSink = (event: SluiceEvent) => void | Promise<void>;

/** Options of {@link ActionExecutor.run}. */
export interface ExecuteOptions {
  /** Stream every event here; without a sink the run collects and replays (Rasa's HTTP path). */
  sink?: EventSink;
  signal?: AbortSignal;
  /** See {@link StartOptions.transport}. */
  transport?: string;
  /** See {@link StartOptions.traceHeaders}. */
  traceHeaders?: Readonly<Record<string, string>>;
}

const TIMED_OUT = Symbol('timed out');
const anyOwner = (): boolean => true;
const MISSING_DOMAIN =
  'Missing domain context, assistant will retry the request and include the domain in the request payload. For more information please see https://rasa.com/docs/action-server/';

type Settled = { ok: true; value: ActionOutput } | { ok: false; error: unknown } | typeof TIMED_OUT;

/**
 * Runs actions. `start` returns a live {@link Run}; `run` is the Rasa-style call that resolves to
 * the result (or `null` when the call names no action) and rejects with a {@link SluiceError}.
 */
export class ActionExecutor {
  /** Barge-in timeout in milliseconds. */
  readonly bargeInTimeoutMs: number;
  readonly logger: Logger;
  /** Output of each transport, counted by its writers (read by metrics). */
  readonly wire = new WireMeters();
  /** Accepting or draining: `start` refuses new runs once the drain began. */
  readonly lifecycle: Lifecycle;

  #actions = new Map<string, ActionDefinition>();
  /** Runs started elsewhere (application steps) that a drain waits for and a control message may cancel; see `adopt`. */
  #adopted = new Map<string, Run>();
  #runs = new Map<string, Run>();
  #registry = new StreamRegistry();
  #runOptions: ExecutorOptions['run'];
  #exposeErrors: boolean;
  #domain: DomainJson | null = null;
  #domainDigest: string | null = null;
  #outcomes = new WeakMap<Run, Promise<SluiceEvent>>();
  #ended = new Map<string, { run: Run; until: number; bytes: number }>();
  #endedBytes = 0;
  #retainMs: number;
  #retainCount: number;
  #shared: SharedRuns;
  #observers: RunObserver[];
  #logRunEnds: boolean;
  #retainBytes: number;
  #maxRuns: number;
  #maxRunsPerOwner: number;
  #maxRunMs: number;
  /** Runs started and not yet ended, in all and per owner. */
  #live = 0;
  #owners = new Map<string, number>();

  constructor(options: ExecutorOptions = {}) {
    this.logger = options.logger ?? createLogger();
    this.bargeInTimeoutMs =
      resolveBargeInTimeout(options.bargeInTimeoutSeconds, options.env ?? process.env, this.logger) * 1000;
    this.#runOptions = options.run;
    this.#exposeErrors = options.exposeActionErrors ?? false;
    this.#retainMs = options.retainEndedRunsMs ?? 60_000;
    this.#retainCount = options.retainEndedRuns ?? 1_000;
    this.#observers = [...(options.tracing === false ? [] : [new RunTracer()]), ...(options.observers ?? [])];
    this.lifecycle = options.lifecycle ?? new Lifecycle();
    this.#logRunEnds = options.logRunEnds ?? false;
    this.#retainBytes = limitOption('retainEndedRunsBytes', options.retainEndedRunsBytes, 64 * 1024 * 1024);
    this.#maxRuns = limitOption('maxConcurrentRuns', options.maxConcurrentRuns, 1_000);
    this.#maxRunsPerOwner = limitOption('maxConcurrentRunsPerOwner', options.maxConcurrentRunsPerOwner, 100);
    this.#maxRunMs = limitOption('maxRunDurationMs', options.maxRunDurationMs, 600_000);
    if (this.#runOptions) new Run(this.#runOptions); // validates the options now, not at the first call
    for (const action of options.actions ?? []) this.register(action);
    this.#shared = options.shared ?? LOCAL_RUNS;
    if (this.#shared !== LOCAL_RUNS) {
      this.#shared.control.listen({
        cancel: (runId, message) => void this.cancel(runId, message),
        ack: (responseId) => void this.ack(responseId),
      });
    }
  }

  /** Adds an observer of the runs started from now on (see `RunObserver`). */
  observe(observer: RunObserver): this {
    this.#observers.push(observer);
    return this;
  }

  /** Adds actions. Throws `already_exists` for a name already registered. */
  register(...actions: ActionDefinition[]): this {
    for (const action of actions) {
      if (!isActionDefinition(action)) {
        throw new SluiceError('invalid_argument', 'register: expected an action made by defineAction()');
      }
      if (this.#actions.has(action.name)) {
        throw new SluiceError('already_exists', `An action named '${action.name}' is already registered`);
      }
      this.#actions.set(action.name, action);
    }
    return this;
  }

  /**
   * Replaces the whole action table at once (the server's `--auto-reload`). Runs already started
   * keep the action objects they looked up; runs started afterwards use the new ones. Throws
   * (keeping the old table) when an entry is not an action or two share a name.
   */
  replaceActions(actions: readonly ActionDefinition[]): void {
    const table = new Map<string, ActionDefinition>();
    for (const action of actions) {
      if (!isActionDefinition(action)) {
        throw new SluiceError('invalid_argument', 'replaceActions: expected actions made by defineAction()');
      }
      if (table.has(action.name)) throw new SluiceError('already_exists', `Two actions are named '${action.name}'`);
      table.set(action.name, action);
    }
    this.#actions = table;
  }

  /** The registered actions as Rasa lists them (`[{ name }]`, in registration order). */
  get actions(): { name: string }[] {
    return [...this.#actions.keys()].map((name) => ({ name }));
  }

  /** The action registered under `name`. */
  getAction(name: string): ActionDefinition | undefined {
    return this.#actions.get(name);
  }

  /** Runs that have not ended yet. */
  get activeRuns(): number {
    return this.#runs.size;
  }

  /** Whether action error text reaches clients (see `exposeActionErrors`). */
  get exposeActionErrors(): boolean {
    return this.#exposeErrors;
  }

  /** Streams an ack could still find (0 when idle). */
  get activeStreams(): number {
    return this.#registry.size;
  }

  /** A live run, or a recently ended one (see `retainEndedRunsMs`), by id. */
  getRun(runId: string): Run | undefined {
    const live = this.#runs.get(runId);
    if (live !== undefined) return live;
    const ended = this.#ended.get(runId);
    if (ended === undefined) return this.#shared.log.peek(runId);
    if (ended.until < Date.now()) {
      this.#ended.delete(runId);
      this.#endedBytes -= ended.bytes;
      return this.#shared.log.peek(runId);
    }
    return ended.run;
  }

  /**
   * A run by id wherever it runs: {@link ActionExecutor.getRun}, else (with `shared`) a copy read
   * from the shared event log, which replays and follows the run another instance produces.
   * Rejects with `unavailable` when the shared log cannot be reached.
   */
  findRun(runId: string): Promise<Run | undefined> {
    const run = this.getRun(runId);
    return run !== undefined ? Promise.resolve(run) : this.#shared.log.open(runId);
  }

  /**
   * Barge-in wherever the stream runs: {@link ActionExecutor.ack} here, else (with `shared`) sent
   * to the instance producing it. True when a live stream was found and acknowledged: at once for a
   * stream of this instance (and in the embedded mode), else a promise. `allowed` sees the run's
   * owner first: a stream whose owner it refuses is answered like an unknown one (false).
   */
  acknowledge(responseId: string, allowed: (owner: string | undefined) => boolean = anyOwner): boolean | Promise<boolean> {
    const run = this.#registry.lookup(responseId);
    if (run !== undefined) return allowed(run.owner) && this.ack(responseId);
    // ack() logs the miss (at debug: normal when the stream already ended).
    return this.#shared === LOCAL_RUNS ? this.ack(responseId) : this.#shared.control.ack(responseId, allowed);
  }

  /**
   * Starts executing an action call (Rasa's JSON) and returns its run at once. The action starts
   * on the next microtask, so subscribers attached synchronously see every event. A call that
   * fails (unknown action, malformed call, action error) still yields a run, ending in `error`.
   * Throws `unavailable` (reason `shutdown`) once a drain began (see {@link ActionExecutor.drain}), and
   * `resource_exhausted` (with `details.retryAfterSeconds`) when `maxConcurrentRuns`, or
   * `maxConcurrentRunsPerOwner` for `options.owner`, runs are live.
   */
  start(call: unknown, options: StartOptions = {}): Run {
    if (!this.lifecycle.accepting) throw this.lifecycle.refusal();
    this.#checkCapacity(options.owner);
    const raw = typeof call === 'object' && call !== null ? (call as Record<string, unknown>) : null;
    const actionName = typeof raw?.next_action === 'string' ? raw.next_action : '';
    const run = new Run({ ...this.#runOptions, id: options.runId, action: actionName, signal: options.signal, owner: options.owner, transport: options.transport });
    if (this.#runs.has(run.id)) throw new SluiceError('already_exists', `A run with id '${run.id}' is live`);
    this.#runs.set(run.id, run);
    this.#count(run);
    if (this.#observers.length > 0) run.watch = watchOf(run, { transport: options.transport, traceHeaders: options.traceHeaders }, this.#observers);
    if (this.#shared !== LOCAL_RUNS) this.#shared.log.append(run);
    const streaming = options.streaming ?? true;
    let resolve!: (event: SluiceEvent) => void;
    this.#outcomes.set(run, new Promise((r) => (resolve = r)));
    queueMicrotask(() => {
      this.#execute(run, call, streaming).then(resolve, (error: unknown) => {
        this.logger.error({ err: error, runId: run.id }, 'Executor failed to finish a run');
      });
    });
    return run;
  }

  /**
   * Executes a call and resolves to its result, or `null` when it names no action. With a sink,
   * every event goes to the sink as it happens; without one chunks are replayed as messages.
   * Rejects with the run's {@link SluiceError}.
   */
  async run(call: unknown, options: ExecuteOptions = {}): Promise<ActionResult | null> {
    const sink = options.sink;
    const run = this.start(call, { signal: options.signal, streaming: sink !== undefined, transport: options.transport, traceHeaders: options.traceHeaders });
    if (sink !== undefined) {
      const sub = run.subscribe();
      try {
        for await (const event of sub) await sink(event);
      } catch (error) {
        run.cancel(SluiceError.from(error, 'cancelled', 'The event sink failed'));
        throw error;
      } finally {
        sub.unsubscribe();
      }
    }
    const terminal = await this.outcome(run);
    if (terminal.type === 'error') throw this.#errorOf(run, terminal);
    const result = terminal as ResultEvent;
    return result.skipped ? null : { events: result.events, responses: result.responses };
  }

  /** Rasa's `run_streaming`: `run(call, { sink })`. */
  runStreaming(call: unknown, sink: EventSink): Promise<ActionResult | null> {
    return this.run(call, { sink });
  }

  /** The run's terminal event (`result` or `error`), once the run has ended. */
  outcome(run: Run): Promise<SluiceEvent> {
    const outcome = this.#outcomes.get(run);
    if (outcome === undefined) throw new SluiceError('not_found', `Run ${run.id} was not started by this executor`);
    return outcome;
  }

  /**
   * Barge-in (Rasa's `AckStreamChunks`): cancels the run streaming `responseId`, even when the
   * action already returned but a reader has not been handed the stream's end yet (the unread rest
   * is dropped; the result still arrives: {@link Run.cancelDelivery}). Returns false, doing
   * nothing, when no stream has that id or its end was already delivered.
   */
  ack(responseId: string): boolean {
    const run = this.#registry.lookup(responseId);
    if (run === undefined) {
      this.logger.debug({ responseId }, `ack: no active stream found for response_id='${responseId}'; this is normal when the stream already ended`);
      return false;
    }
    return run.cancelDelivery(new SluiceError('cancelled', 'Barge-in: the user interrupted the response', { details: { reason: 'barge_in' } }));
  }

  /** The run streaming `responseId` on this instance (what an ack would cancel), if any. */
  runOfStream(responseId: string): Run | undefined {
    return this.#registry.lookup(responseId);
  }

  /**
   * Stops a run (stop button). `reason` is a message (the cancel is recorded with reason `stop`)
   * or the error to record as is (e.g. a `barge_in` or `disconnect` one). Returns false when the
   * run is unknown or already ending. A run another instance owns (a copy opened by
   * {@link ActionExecutor.findRun}) is stopped by its owner, through the control bus.
   */
  cancel(runId: string, reason: string | SluiceError = 'Cancelled by the client'): boolean {
    const run = this.#runs.get(runId) ?? this.#adopted.get(runId) ?? this.#shared.log.peek(runId);
    if (run === undefined) return false;
    return run.cancel(typeof reason === 'string' ? new SluiceError('cancelled', reason, { details: { reason: 'stop' } }) : reason);
  }

  /** Throws `resource_exhausted` when one more run would pass a concurrency limit. */
  #checkCapacity(owner: string | undefined): void {
    if (this.#live >= this.#maxRuns) {
      throw new SluiceError('resource_exhausted', `Too many runs: the server runs at most ${this.#maxRuns} at once; retry later`, {
        details: { reason: 'too_many_runs', limit: this.#maxRuns, retryAfterSeconds: 1 },
      });
    }
    if (owner !== undefined && (this.#owners.get(owner) ?? 0) >= this.#maxRunsPerOwner) {
      throw new SluiceError('resource_exhausted', `Too many runs: at most ${this.#maxRunsPerOwner} at once per client; retry later`, {
        details: { reason: 'too_many_runs_per_owner', limit: this.#maxRunsPerOwner, retryAfterSeconds: 1 },
      });
    }
  }

  /**
   * Counts a live run against the limits until its `run-end` (the reaction registered here runs
   * before any reader's `await run.done`, so a caller that saw a run end may start another), and
   * cancels it once it has lasted `maxRunDurationMs`: it then ends with reason `timeout`.
   */
  #count(run: Run): void {
    const owner = run.owner;
    this.#live++;
    if (owner !== undefined) this.#owners.set(owner, (this.#owners.get(owner) ?? 0) + 1);
    const timer = setTimeout(() => {
      run.cancel(new SluiceError('timeout', `The run exceeded its maximum duration of ${this.#maxRunMs} ms`, { details: { reason: 'deadline' } }));
    }, this.#maxRunMs);
    timer.unref();
    void run.done.then(() => {
      clearTimeout(timer);
      this.#live--;
      if (owner === undefined) return;
      const live = (this.#owners.get(owner) ?? 1) - 1;
      if (live <= 0) this.#owners.delete(owner);
      else this.#owners.set(owner, live);
    });
  }

  /** Cancels every live run and waits until they have ended. */
  async close(): Promise<void> {
    const runs = [...this.#runs.values()];
    for (const run of runs) run.cancel(this.lifecycle.refusal());
    await Promise.all(runs.map((run) => run.done));
  }

  /**
   * Takes in a run this executor did not start (an application step's). With `shared`, its events
   * are appended to the shared log (recorded as owned by `options.owner`, e.g. its app), so other
   * instances can read it and cancel it through the control bus; a run still live is also counted
   * in {@link ActionExecutor.drain}, which waits for it, then cancels it, like this executor's own.
   */
  adopt(run: Run, options: { owner?: string } = {}): void {
    this.#shared.log.append(run, options.owner);
    if (run.state === 'ended') return;
    this.#adopted.set(run.id, run);
    void run.done.then(() => this.#adopted.delete(run.id));
  }

  /**
   * Graceful shutdown: stops taking runs (`start` throws `unavailable`), lets the live ones finish
   * for up to `timeoutMs`, then cancels the rest — each ends with an `error` event (`unavailable`)
   * and `run-end` (`cancelled`) — and waits up to `graceMs` more for them to end (an action that
   * ignores its signal is abandoned then). Resolves with how many runs finished and were cancelled.
   */
  async drain(timeoutMs: number, graceMs = 2_000): Promise<{ finished: number; cancelled: number }> {
    this.lifecycle.beginDrain();
    const live = [...this.#runs.values(), ...this.#adopted.values()];
    const allDone = (runs: Run[]): Promise<unknown> => Promise.all(runs.map((run) => run.done));
    await within(allDone(live), timeoutMs);
    const left = [...this.#runs.values(), ...this.#adopted.values()];
    for (const run of left) run.cancel(this.lifecycle.refusal());
    await within(allDone(left), graceMs);
    return { finished: live.length - left.length, cancelled: left.length };
  }

  async #execute(run: Run, call: unknown, streaming: boolean): Promise<SluiceEvent> {
    let dispatcher: Dispatcher | undefined;
    let terminal: SluiceEvent;
    try {
      await emitAll(run, { type: 'run-start', action: run.action, at: Date.now() });
      const prepared = this.#prepare(run, call);
      if (prepared === null) {
        terminal = await this.#finish(run, { type: 'result', events: [], responses: [], skipped: true }, 'completed');
        return terminal;
      }
      const { action, tracker, domain } = prepared;
      dispatcher = new Dispatcher({
        run: streaming ? run : undefined,
        actionName: action.name,
        signal: run.signal,
        logger: this.logger,
        observer: this.#registry.observe(run),
      });
      const context: ActionContext = { dispatcher, tracker, domain, signal: run.signal, runId: run.id };
      const watch = run.watch;
      const body = watch?.invoke === undefined ? this.#invoke(action, context) : watch.invoke(() => this.#invoke(action, context));
      const settled = await this.#settle(run, body);
      if (settled === TIMED_OUT) {
        dispatcher.close();
        this.logger.warn(
          { action: action.name, runId: run.id },
          `Action '${action.name}' did not finish within the barge-in timeout (${this.bargeInTimeoutMs / 1000}s); abandoning it`,
        );
        terminal = await this.#finish(run, { type: 'result', events: [], responses: [] }, 'timeout');
        return terminal;
      }
      if (!settled.ok) throw settled.error;
      const { events, state } = normalizeOutput(action.name, settled.value);
      await dispatcher.autoClose();
      await sendsDone(dispatcher);
      dispatcher.close();
      const result: EventInput = { type: 'result', events, responses: dispatcher.messages };
      if (state !== undefined) result.state = state;
      terminal = await this.#finish(run, result, run.isCancelled ? cancelEnd(run) : 'completed');
      return terminal;
    } catch (thrown) {
      dispatcher?.close();
      if (run.isCancelled && isAbort(thrown, run)) {
        terminal = await this.#finish(run, { type: 'result', events: [], responses: [] }, cancelEnd(run));
        return terminal;
      }
      const error = this.#publicError(run.action, thrown);
      if (error.code === 'internal') this.logger.error({ err: thrown, action: run.action, runId: run.id }, `Action '${run.action}' failed`);
      else this.logger.warn({ code: error.code, action: run.action, runId: run.id }, error.message);
      if (dispatcher !== undefined) await sendsDone(dispatcher).catch(() => {});
      await dispatcher?.closeStreamOnError();
      terminal = await this.#finish(
        run,
        {
          type: 'error',
          code: error.code,
          message: error.message,
          reason: error.details.reason,
          actionName: run.action,
        },
        'error',
      );
      return terminal;
    }
  }

  /** Resolves the action, the call and the domain; null when the call names no action. */
  #prepare(run: Run, call: unknown): { action: ActionDefinition; tracker: Tracker; domain: DomainJson | null } | null {
    if (typeof call !== 'object' || call === null || Array.isArray(call)) {
      throw new SluiceError('invalid_argument', 'Invalid action call: the body must be a JSON object', {
        details: { reason: 'invalid_body' },
      });
    }
    const next = (call as Record<string, unknown>).next_action;
    if (next === undefined || next === null || next === '') {
      this.logger.warn({ runId: run.id }, 'Received an action call without an action to run (next_action is empty)');
      return null;
    }
    if (typeof next !== 'string') {
      throw new SluiceError('invalid_argument', 'Invalid action call: next_action: expected a string', {
        details: { reason: 'invalid_body' },
      });
    }
    const action = this.#actions.get(next);
    if (action === undefined) {
      throw new SluiceError('not_found', `No registered action found for name '${clipped(next)}'.`, {
        details: { reason: 'action_not_found', actionName: next, resourceType: 'ACTION' },
      });
    }
    const parsed = parseActionCall(call);
    return { action, tracker: Tracker.fromJson(parsed.tracker), domain: this.#domainFor(next, parsed.domain, parsed.domain_digest) };
  }

  /**
   * Rasa's single-slot domain cache: a non-empty domain is kept with its digest for later calls; a
   * digest that does not match the cached one is a missing domain (Rasa retries with the domain).
   */
  #domainFor(actionName: string, domain: DomainJson | null | undefined, digest: string | null | undefined): DomainJson | null {
    if (domain !== undefined && domain !== null && Object.keys(domain).length > 0) {
      this.#domain = domain;
      this.#domainDigest = digest ?? null;
      return domain;
    }
    // A call with neither a domain nor a digest is not from Rasa (which always sends one): it gets
    // the cached domain rather than a retry request it would not understand.
    if (digest !== undefined && digest !== null && digest !== this.#domainDigest) {
      throw new SluiceError('failed_precondition', MISSING_DOMAIN, {
        details: { reason: 'domain_missing', actionName, resourceType: 'DOMAIN' },
      });
    }
    return this.#domain;
  }

  async #invoke(action: ActionDefinition, context: ActionContext): Promise<ActionOutput> {
    if (action.kind === 'run') return action.run(context.dispatcher, context.tracker, context.domain, context);
    const dispatcher = context.dispatcher;
    const iterator = action.stream(context);
    if (iterator === null || typeof iterator !== 'object' || typeof iterator.next !== 'function') {
      throw new SluiceError('internal', `Action '${action.name}': stream() must be a generator function`, {
        details: { reason: 'invalid_action', actionName: action.name },
      });
    }
    let finished = false;
    try {
      for (;;) {
        const step = await iterator.next();
        if (step.done === true) {
          finished = true;
          await dispatcher.finishStream();
          return step.value;
        }
        const wait = deliver(dispatcher, step.value);
        if (wait !== undefined) await wait;
      }
    } finally {
      // The run is over without the generator finishing (timeout, error): let it clean up.
      if (!finished) void Promise.resolve(iterator.return?.(undefined)).catch(() => {});
    }
  }

  /**
   * Waits for the action; once the run is cancelled, waits at most the barge-in timeout. One
   * promise and one abort listener per run: the timer exists only after a cancel (thousands of idle
   * runs hold nothing more).
   */
  #settle(run: Run, outcome: Promise<ActionOutput>): Promise<Settled> {
    return new Promise<Settled>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        timer = setTimeout(() => resolve(TIMED_OUT), this.bargeInTimeoutMs);
      };
      const done = (settled: Settled): void => {
        clearTimeout(timer);
        run.signal.removeEventListener('abort', onAbort);
        resolve(settled);
      };
      outcome.then(
        (value) => done({ ok: true, value }),
        (error: unknown) => done({ ok: false, error }),
      );
      if (run.signal.aborted) onAbort();
      else run.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Emits the terminal event and `run-end`, then forgets the run. */
  async #finish(run: Run, terminal: EventInput, reason: RunEndReason): Promise<SluiceEvent> {
    const shutdown = run.cancelReason;
    // Cut short by a shutdown: readers must learn the answer is incomplete, and why.
    if (terminal.type === 'result' && shutdown?.code === 'unavailable' && shutdown.details.reason === 'shutdown') {
      terminal = { type: 'error', code: 'unavailable', message: shutdown.message, reason: 'shutdown', actionName: run.action };
    }
    try {
      for (let ready = run.ready(); ready !== undefined; ready = run.ready()) await ready;
      // A cancel accepted while waiting for room still makes the end `cancelled`: Run.emit sees to it.
      run.emit(terminal);
      await emitAll(run, { type: 'run-end', reason });
    } finally {
      this.#runs.delete(run.id);
      this.#registry.release(run);
      this.#retain(run);
      if (this.#logRunEnds) {
        this.logger.info(
          {
            action: run.action,
            runId: run.id,
            reason: run.endReason ?? reason,
            durationMs: Math.round(performance.now() - run.startedAt),
            chunks: run.chunks,
            transport: run.transport,
          },
          'run end',
        );
      }
    }
    return terminal as SluiceEvent;
  }

  /** Keeps an ended run reachable for a while; the oldest go first (Map keeps insertion order). */
  #retain(run: Run): void {
    if (this.#retainCount <= 0 || this.#retainMs <= 0) return;
    const now = Date.now();
    const bytes = estimateRunBytes(run);
    const previous = this.#ended.get(run.id);
    if (previous !== undefined) {
      this.#endedBytes -= previous.bytes;
      this.#ended.delete(run.id);
    }
    this.#ended.set(run.id, { run, until: now + this.#retainMs, bytes });
    this.#endedBytes += bytes;
    for (const [id, entry] of this.#ended) {
      if (this.#ended.size <= this.#retainCount && this.#endedBytes <= this.#retainBytes && entry.until >= now) break;
      this.#ended.delete(id);
      this.#endedBytes -= entry.bytes;
    }
  }

  /** Ended runs kept for late readers, and the estimated bytes of their events. */
  get retained(): { runs: number; bytes: number } {
    return { runs: this.#ended.size, bytes: this.#endedBytes };
  }

  #publicError(actionName: string, thrown: unknown): SluiceError {
    if (SluiceError.isInstance(thrown)) return thrown;
    const own = thrown instanceof Error ? thrown.message : String(thrown);
    const message = this.#exposeErrors && own !== '' ? own : `Action '${actionName}' failed`;
    return new SluiceError('internal', message, { cause: thrown, details: { reason: 'action_failed', actionName } });
  }

  #errorOf(run: Run, event: SluiceEvent): SluiceError {
    const e = event as Extract<SluiceEvent, { type: 'error' }>;
    return new SluiceError(e.code, e.message, { details: { reason: e.reason, actionName: e.actionName ?? run.action } });
  }
}

/** Waits for `promise`, or `ms` at most. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** How a cancelled run ends: `timeout` when its deadline cancelled it. */
function cancelEnd(run: Run): RunEndReason {
  return run.cancelReason?.details.reason === 'deadline' ? 'timeout' : 'cancelled';
}

function limitOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new SluiceError('invalid_argument', `ActionExecutor: '${name}' must be a finite number > 0 (got ${String(value)})`);
  }
  return value;
}

/** Fixed cost counted per event besides its text (object, fields, seq, ids). */
const EVENT_OVERHEAD = 96;

/**
 * Estimated memory held by a run's log: each event's text (chunks and messages) plus a fixed
 * overhead, and the result's Rasa events walked shallowly. Once per ended run, never per chunk, and
 * without `JSON.stringify`.
 */
export function estimateRunBytes(run: Run): number {
  let bytes = 0;
  const log = run.log;
  for (let i = 0; i < log.length; i++) {
    const entry = log[i];
    if (typeof entry === 'string') bytes += EVENT_OVERHEAD + 2 * entry.length;
    else bytes += EVENT_OVERHEAD + valueBytes(entry, 3);
  }
  return bytes;
}

/** Bytes of the strings in a value, down to `depth` levels; deeper parts count a flat 64. */
function valueBytes(value: unknown, depth: number): number {
  if (typeof value === 'string') return 2 * value.length;
  if (typeof value !== 'object' || value === null) return 8;
  if (depth === 0) return 64;
  let bytes = 16;
  if (Array.isArray(value)) for (const item of value) bytes += valueBytes(item, depth - 1);
  else for (const key in value) bytes += key.length + valueBytes((value as Record<string, unknown>)[key], depth - 1);
  return bytes;
}

/** Waits for the sends a dispatcher deferred behind backpressure, so they precede the terminal. */
async function sendsDone(dispatcher: Dispatcher): Promise<void> {
  for (let owed = dispatcher.pending; owed !== undefined; owed = dispatcher.pending) {
    await owed;
    if (dispatcher.pending === owed) break;
  }
}

/** Emits once the slowest reader has room (re-checked: a cancel also releases the wait). */
async function emitAll(run: Run, event: EventInput): Promise<void> {
  for (let ready = run.ready(); ready !== undefined; ready = run.ready()) await ready;
  run.emit(event);
}

function isAbort(thrown: unknown, run: Run): boolean {
  if (thrown === run.signal.reason) return true;
  if (SluiceError.isInstance(thrown)) return thrown.code === 'cancelled';
  return typeof thrown === 'object' && thrown !== null && (thrown as { name?: unknown }).name === 'AbortError';
}

/** Hands one yielded item to the dispatcher. */
function deliver(dispatcher: Dispatcher, item: StreamItem): Promise<void> | undefined {
  if (typeof item === 'string') return dispatcher.streamChunk({ text: item });
  if (typeof item !== 'object' || item === null) {
    throw new SluiceError('invalid_argument', `Action '${dispatcher.actionName}' yielded ${item === null ? 'null' : typeof item}: yield a string, a chunk object or status(…)`, {
      details: { reason: 'invalid_output', actionName: dispatcher.actionName },
    });
  }
  if (!('type' in item)) return dispatcher.streamChunk(item);
  return deliverTyped(dispatcher, item as TypedStreamItem);
}

/** Checks what an action returned: a list of Rasa events, or `{ events, state }`, or nothing. */
function normalizeOutput(actionName: string, output: ActionOutput): { events: RasaEvent[]; state?: unknown } {
  if (output === undefined || output === null) return { events: [] };
  let events: unknown;
  let state: unknown;
  if (Array.isArray(output)) events = output;
  else if (typeof output === 'object') {
    events = (output as { events?: unknown }).events ?? [];
    state = (output as { state?: unknown }).state;
  } else {
    throw badOutput(actionName, `returned ${typeof output}; expected a list of events`);
  }
  if (!Array.isArray(events)) throw badOutput(actionName, `returned 'events' of type ${typeof events}; expected a list`);
  events.forEach((event: unknown, index) => {
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      throw badOutput(actionName, `returned a malformed event at index ${index}: expected an object like { event: 'slot', … }`);
    }
    if (typeof (event as { event?: unknown }).event !== 'string' || (event as { event: string }).event === '') {
      throw badOutput(actionName, `returned a malformed event at index ${index}: it has no 'event' name`);
    }
  });
  return { events: events as RasaEvent[], state };
}

function badOutput(actionName: string, problem: string): SluiceError {
  return new SluiceError('internal', `Action '${actionName}' ${problem}`, {
    details: { reason: 'invalid_events', actionName },
  });
}
