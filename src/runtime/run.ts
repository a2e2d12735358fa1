/**
 * A run: the unit of streaming. It stamps `runId` and a gap-free `seq` on every event, keeps a
 * bounded log, and serves any number of subscribers, each from the seq it asks for.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { EventInput, RunEndEvent, RunEndReason, SluiceEvent } from '../protocol/events.ts';
import { isClosingEvent } from '../protocol/events.ts';
import { newRunId } from '../protocol/ids.ts';
import type { RunMark, RunWatch } from './observer.ts';
import { Subscription, type SubscribeOptions } from './subscription.ts';

/** Options of a {@link Run}. */
export interface RunOptions {
  /** The run id; a UUID by default. */
  id?: string;
  /** Name of the action the run executes. */
  action?: string;
  /** The principal that started the run (see `Run.owner`). */
  owner?: string | undefined;
  /** The transport that started the run (`http-sse`, `ws`, `grpc`, …), for metrics and traces. */
  transport?: string;
  /**
   * Most events a subscriber may lag behind the producer (at least 2). A producer waits once the
   * lag reaches `highWaterMark - 1`: the last slot is kept for the `stream-end` a cancel emits at
   * once, so even then the lag never exceeds the mark. Default 256.
   */
  highWaterMark?: number;
  /** Lag at which a waiting producer resumes, below `highWaterMark - 1`. Default half of that. */
  lowWaterMark?: number;
  /**
   * Events kept for late subscribers and resumes (at least the high-water mark); the log holds the
   * newest `logLimit` to `2 × logLimit − 1`. Default 4,096: a resume window of over a minute at 50 tokens/s,
   * and events that die young (a longer log makes every event old-generation garbage).
   */
  logLimit?: number;
  /**
   * A producer that ignores backpressure (emits without awaiting) is stopped with
   * `resource_exhausted` once the lag would pass this. Whole `message` events (Rasa's synchronous
   * `utter_message`) and closing events are exempt. Default four times the high-water mark.
   */
  hardLimit?: number;
  /** A parent signal: when it aborts, the run is cancelled. */
  signal?: AbortSignal;
}

/** Lifecycle of a run. */
export type RunState = 'running' | 'cancelled' | 'ended';

const DEFAULT_HWM = 256;
const DEFAULT_LOG_LIMIT = 4_096;

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new SluiceError('invalid_argument', `Run option '${name}' must be a positive integer (got ${String(value)})`);
  }
  return value;
}

/**
 * A run of one action. The producer calls {@link Run.emit}; consumers call {@link Run.subscribe}.
 *
 * Backpressure: when the slowest subscriber lags `highWaterMark` events behind, `emit` returns a
 * promise that settles once it has caught up to `lowWaterMark`; with no subscriber nothing waits
 * and the log keeps the newest `logLimit` events. Cancel is O(1): it drops the events no
 * subscriber has read yet (seq stays gap-free for every reader) and aborts {@link Run.signal}.
 * Unsubscribing a reader is never a cancel.
 */
export class Run {
  /** The run id. */
  readonly id: string;
  /** Name of the action the run executes. */
  readonly action: string;
  /**
   * The id of the principal that started the run; undefined when authentication is off or the run
   * was started in-process. Transports answer other principals as if the run did not exist.
   */
  readonly owner: string | undefined;
  /** The transport that started the run (`http-sse`, `ws`, `grpc`, …), when it said (`StartOptions.transport`). */
  readonly transport: string | undefined;
  /** `performance.now()` when the run was created. */
  readonly startedAt = performance.now();
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly logLimit: number;
  readonly hardLimit: number;
  /** Settles with the `run-end` event. */
  readonly done: Promise<RunEndEvent>;

  /**
   * @internal Retained events; the event of seq `base + i + 1` is `log[i]`, or, while nobody has
   * read it, the bare text of a chunk of stream {@link Run.#chunkResponseId} (see {@link Run.eventAt}).
   */
  log: (SluiceEvent | string)[] = [];
  /** @internal Seq of the event just before `log[0]`. */
  base = 0;
  /** @internal Highest seq handed to any reader so far. */
  deliveredHigh = 0;
  /** @internal */
  readonly subscribers = new Set<Subscription>();
  /** The trailing subscribers (see `SubscribeOptions.trailing`), woken when another reader advances. */
  readonly #trailers = new Set<Subscription>();
  /** @internal What observes the run (metrics, traces), set by the executor; null: nobody. */
  get watch(): RunWatch | null {
    return this.#watch;
  }

  set watch(watch: RunWatch | null) {
    this.#watch = watch;
    this.#onChunk = watch?.chunk === undefined ? null : (text) => watch.chunk!(text);
  }

  #watch: RunWatch | null = null;
  /** The watch's per-chunk hook, if it has one (resolved once, not per chunk). */
  #onChunk: ((text: string) => void) | null = null;

  #lastSeq = 0;
  #chunks = 0;
  #state: RunState = 'running';
  #terminal: 'result' | 'error' | null = null;
  #endReason: RunEndReason | null = null;
  #cancelReason: SluiceError | null = null;
  #keptThrough = Infinity;
  #controller = new AbortController();
  #drain: { promise: Promise<void>; resolve: () => void } | null = null;
  /** Emits made while the producer should have been waiting. */
  #ignored = 0;
  #resolveDone!: (event: RunEndEvent) => void;
  #detachParent: (() => void) | null = null;
  /** The stream every bare-text chunk in the log belongs to. */
  #chunkResponseId: string | null = null;
  /** Called once the ended run has no reader behind (see {@link Run.whenRead}). */
  #onRead: (() => void)[] | null = null;

  constructor(options: RunOptions = {}) {
    this.id = options.id ?? newRunId();
    this.action = options.action ?? '';
    this.owner = options.owner;
    this.transport = options.transport;
    this.highWaterMark = positiveInt('highWaterMark', options.highWaterMark, DEFAULT_HWM);
    if (this.highWaterMark < 2) {
      throw new SluiceError('invalid_argument', `Run option 'highWaterMark' must be at least 2 (got ${this.highWaterMark})`);
    }
    this.lowWaterMark = options.lowWaterMark ?? Math.floor((this.highWaterMark - 1) / 2);
    if (!Number.isInteger(this.lowWaterMark) || this.lowWaterMark < 0 || this.lowWaterMark >= this.highWaterMark - 1) {
      throw new SluiceError(
        'invalid_argument',
        `Run option 'lowWaterMark' must be an integer in [0, highWaterMark - 1) (got ${String(options.lowWaterMark)})`,
      );
    }
    this.logLimit = positiveInt('logLimit', options.logLimit, Math.max(DEFAULT_LOG_LIMIT, this.highWaterMark));
    if (this.logLimit < this.highWaterMark) {
      throw new SluiceError('invalid_argument', `Run option 'logLimit' must be ≥ highWaterMark (${this.highWaterMark})`);
    }
    this.hardLimit = positiveInt('hardLimit', options.hardLimit, this.highWaterMark * 4);
    if (this.hardLimit < this.highWaterMark) {
      throw new SluiceError('invalid_argument', `Run option 'hardLimit' must be ≥ highWaterMark (${this.highWaterMark})`);
    }
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    const parent = options.signal;
    if (parent) {
      if (parent.aborted) queueMicrotask(() => this.cancel(parent.reason));
      else {
        const onAbort = (): void => {
          this.cancel(parent.reason);
        };
        parent.addEventListener('abort', onAbort, { once: true });
        this.#detachParent = () => parent.removeEventListener('abort', onAbort);
      }
    }
  }

  /** Aborts when the run is cancelled (stop, barge-in, timeout). Hand it to models and tools. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Seq of the newest event (0 before the first). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** `running`, `cancelled` (still closing) or `ended`. */
  get state(): RunState {
    return this.#state;
  }

  #countChunk(text: string | undefined): void {
    if (this.#chunks++ === 0 && this.#watch !== null) this.#watch.firstChunk?.();
    if (this.#onChunk !== null) this.#onChunk(text ?? '');
  }

  /** Chunks emitted so far (the ones a cancel dropped unread included). */
  get chunks(): number {
    return this.#chunks;
  }

  /** True once `cancel` was called (also after the run ended). */
  get isCancelled(): boolean {
    return this.#cancelReason !== null;
  }

  /**
   * Seq of the last event that survived the cancel (events after it were dropped unread);
   * `Infinity` while the run is not cancelled.
   */
  get keptThrough(): number {
    return this.#keptThrough;
  }

  /** Why the run was cancelled, if it was. */
  get cancelReason(): SluiceError | null {
    return this.#cancelReason;
  }

  /** Why the run ended, once it has. */
  get endReason(): RunEndReason | null {
    return this.#endReason;
  }

  /** Whether the run already carries its `result` or `error`. */
  get hasTerminal(): boolean {
    return this.#terminal !== null;
  }

  /** Events the slowest subscriber has yet to read (0 without subscribers). */
  get buffered(): number {
    return this.#lastSeq - this.#minCursor();
  }

  /** The retained events, oldest first (a copy). */
  events(): SluiceEvent[] {
    const out: SluiceEvent[] = [];
    for (let i = 0; i < this.log.length; i++) out.push(this.eventAt(i));
    return out;
  }

  /**
   * @internal The event at `log[index]`. A chunk emitted while nobody read the run is kept as its
   * bare text (a step streaming in process makes no event object per item); it becomes its event
   * object here, once, when a reader or a resume first needs it.
   */
  eventAt(index: number): SluiceEvent {
    const entry = this.log[index];
    if (typeof entry !== 'string') return entry as SluiceEvent;
    const event = { type: 'chunk', responseId: this.#chunkResponseId, text: entry, runId: this.id, seq: this.base + index + 1 } as SluiceEvent;
    this.log[index] = event;
    return event;
  }

  /**
   * Appends an event: the object passed in becomes the event (its `runId` and `seq` are set).
   *
   * Returns `undefined` when the producer may go on, or a promise to await when the slowest
   * subscriber is `highWaterMark` events behind. After a cancel only closing events
   * (`stream-end`, `result`, `error`, `run-end`) are kept; others are dropped silently.
   * Throws `failed_precondition` after `run-end`, for a second `result`/`error`, or for a
   * `run-end` without one; `resource_exhausted` when a producer ignores backpressure.
   */
  emit(input: EventInput): Promise<void> | undefined {
    const type = input.type;
    if (this.#state === 'ended') {
      throw new SluiceError('failed_precondition', `Run ${this.id} has ended: '${type}' cannot be emitted`);
    }
    const closing = isClosingEvent(type);
    if (!closing) {
      // run-start survives a cancel that came before the action started.
      if (this.#cancelReason !== null && type !== 'run-start') return undefined;
      if (this.#drain !== null && type !== 'message' && ++this.#ignored > this.hardLimit - this.highWaterMark + 1) {
        throw new SluiceError(
          'resource_exhausted',
          `Run ${this.id}: the producer kept emitting ahead of its slowest reader without awaiting; await each emit (e.g. \`await dispatcher.streamChunk(…)\`)`,
        );
      }
    } else if (type === 'result' || type === 'error') {
      if (this.#terminal !== null) {
        throw new SluiceError('failed_precondition', `Run ${this.id} already has a ${this.#terminal}: '${type}' refused`);
      }
      this.#terminal = type;
    } else if (type === 'run-end' && this.#terminal === null) {
      throw new SluiceError('failed_precondition', `Run ${this.id}: 'run-end' needs a 'result' or an 'error' first`);
    }

    const event = input as SluiceEvent;
    if (type === 'chunk') this.#countChunk((event as { text?: string }).text);
    // A cancel that came after the result (a late barge-in) still makes the end a cancelled one.
    if (type === 'run-end' && this.#cancelReason !== null && (event as RunEndEvent).reason === 'completed') {
      (event as RunEndEvent).reason = 'cancelled';
    }
    event.runId = this.id;
    event.seq = ++this.#lastSeq;
    this.log.push(event);
    if (this.#watch !== null && type !== 'chunk') this.#watch.event?.(event);

    if (type === 'run-end') {
      this.#finish(event as RunEndEvent);
      for (const sub of this.subscribers) if (sub.waiting) sub.wake();
      return undefined;
    }
    return this.#afterAppend();
  }

  /**
   * `emit` of a `chunk` (what a streaming step does per text item): the same event, the checks
   * only a running run with no waiting producer can skip done once, and, while nobody reads the
   * run, kept as its bare text (see {@link Run.eventAt}).
   * @internal
   */
  emitChunk(responseId: string, text: string): Promise<void> | undefined {
    if (this.#state !== 'running' || this.#cancelReason !== null || this.#drain !== null) {
      return this.emit({ type: 'chunk', responseId, text, runId: '', seq: 0 } as EventInput);
    }
    const log = this.log;
    this.#countChunk(text);
    if (this.subscribers.size === 0) {
      if (responseId !== this.#chunkResponseId) {
        for (let i = 0; i < log.length; i++) if (typeof log[i] === 'string') this.eventAt(i);
        this.#chunkResponseId = responseId;
      }
      log.push(text);
      ++this.#lastSeq;
    } else {
      log.push({ type: 'chunk', responseId, text, runId: this.id, seq: ++this.#lastSeq } as SluiceEvent);
    }
    return this.#afterAppend();
  }

  /** After an event went into the log: trim it, wake the readers, tell the producer whether to wait. */
  #afterAppend(): Promise<void> | undefined {
    if (this.log.length >= this.logLimit * 2) this.#trim();
    // No reader (an in-process step, a run nobody follows yet): nothing to wake, nothing to wait for.
    if (this.subscribers.size === 0) return undefined;
    for (const sub of this.subscribers) if (sub.waiting) sub.wake();
    return this.ready();
  }

  /**
   * Undefined when the producer may emit, else a promise that settles once the slowest reader has
   * caught up to the low-water mark (or left, or the run was cancelled).
   */
  ready(): Promise<void> | undefined {
    if (this.subscribers.size === 0 || this.#state === 'ended') return undefined;
    if (this.#lastSeq - this.#minCursor() < this.highWaterMark - 1) return undefined;
    if (this.#drain === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#drain = { promise, resolve };
    }
    return this.#drain.promise;
  }

  /**
   * Reads the run's events: those after `options.after` (default 0, i.e. all) from the log, then
   * live ones, until `run-end`. Throws `out_of_range` when the log no longer holds them and
   * `invalid_argument` for a seq the run has not reached.
   */
  /** Whether a subscriber may resume after an event this run has not got yet (it then waits for it). */
  protected get acceptsAhead(): boolean {
    return false;
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    const after = options.after ?? 0;
    if (!Number.isInteger(after) || after < 0) {
      throw new SluiceError('invalid_argument', `subscribe: 'after' must be a non-negative integer (got ${String(after)})`);
    }
    if (after > this.#lastSeq && !this.acceptsAhead) {
      throw new SluiceError('invalid_argument', `subscribe: run ${this.id} has no event ${after} (last is ${this.#lastSeq})`);
    }
    if (after < this.base) {
      throw new SluiceError(
        'out_of_range',
        `subscribe: events after ${after} of run ${this.id} are no longer retained (oldest kept is ${this.base + 1})`,
      );
    }
    // The reader has what precedes `after`: a cancel must not drop it.
    if (after > this.deliveredHigh) this.deliveredHigh = after;
    const sub = new Subscription(this, after, options.signal, options.trailing === true);
    if (!sub.closed) {
      this.subscribers.add(sub);
      if (sub.trailing) this.#trailers.add(sub);
    }
    return sub;
  }

  /**
   * Cancels the run: aborts {@link Run.signal} and drops, in O(1), the events no reader has read.
   * Returns false when the run was already cancelled, has its result, or has ended. The producer
   * still has to emit its closing events (the executor does that).
   */
  cancel(reason?: unknown): boolean {
    // Once the result is in, the action is over: nothing is left to stop or to drop.
    if (this.#state !== 'running' || this.#terminal !== null) return false;
    const error = toCancelError(reason);
    this.#cancelReason = error;
    this.#state = 'cancelled';
    const keep = Math.max(this.deliveredHigh, this.base, Math.min(1, this.#lastSeq));
    this.watch?.cancelled?.(error, this.#lastSeq - keep);
    if (keep < this.#lastSeq) {
      this.log.length = keep - this.base;
      this.#lastSeq = keep;
    }
    this.#keptThrough = this.#lastSeq;
    this.#releaseProducer();
    this.#detachParent?.();
    this.#controller.abort(error);
    return true;
  }

  /**
   * Barge-in: like {@link Run.cancel}, and also effective after the action produced its result,
   * as long as a reader has not been handed everything yet (the action was faster than its
   * reader). Then the events no reader has read are dropped but for the result (or error) and
   * `run-end`; a stream whose start was delivered gets its `stream-end` (reason `cancelled`)
   * instead of its own end; the kept events are renumbered after the last delivered one, so every
   * reader still sees a gap-free seq; and `run-end`'s reason becomes `cancelled` (an `error` end
   * stays one). Returns false when there was nothing left to stop.
   */
  cancelDelivery(reason?: unknown): boolean {
    if (this.#terminal === null) return this.cancel(reason);
    if (this.#cancelReason !== null) return false;
    const keep = Math.max(this.deliveredHigh, this.base);
    const tail: SluiceEvent[] = [];
    for (let i = keep - this.base; i < this.log.length; i++) tail.push(this.eventAt(i));
    const startedInTail = new Set<string>();
    let stoppable = false;
    for (const event of tail) {
      if (event.type === 'stream-start') startedInTail.add(event.responseId);
      if (event.type !== 'result' && event.type !== 'error' && event.type !== 'run-end') stoppable = true;
    }
    if (!stoppable) return false;
    const error = toCancelError(reason);
    this.#cancelReason = error;
    this.watch?.cancelled?.(error, tail.length);
    if (this.#state === 'running') this.#state = 'cancelled';
    this.log.length = keep - this.base;
    this.#lastSeq = keep;
    this.#keptThrough = keep;
    for (const event of tail) {
      if (event.type === 'stream-end') {
        if (startedInTail.has(event.responseId)) continue;
        this.#append({ type: 'stream-end', responseId: event.responseId, reason: 'cancelled' } as SluiceEvent);
      } else if (event.type === 'result' || event.type === 'error') {
        this.#append(event);
      } else if (event.type === 'run-end') {
        if (event.reason === 'completed') event.reason = 'cancelled';
        this.#endReason = event.reason;
        this.#append(event);
      }
    }
    this.#detachParent?.();
    this.#controller.abort(error);
    for (const sub of this.subscribers) if (sub.waiting) sub.wake();
    return true;
  }

  /**
   * Reports what only a consumer of the run sees (its first sentence, its first audio) to the
   * run's observers; a no-op without any.
   */
  mark(mark: RunMark): void {
    if (this.watch !== null) this.watch.mark?.(mark);
  }

  /**
   * @internal Calls `callback` once the run has ended and no reader is behind: every event was
   * handed to a reader, or no reader is left. At once when that is already so.
   */
  whenRead(callback: () => void): void {
    if (this.#isRead()) {
      callback();
      return;
    }
    (this.#onRead ??= []).push(callback);
  }

  /**
   * @internal For a copy of a run another instance produces (`ReplicaRun`): the empty log starts
   * after `seq`, the events before it are not held here.
   */
  protected startAfter(seq: number): void {
    if (this.log.length !== 0 || this.#lastSeq !== 0) throw new SluiceError('failed_precondition', `Run ${this.id}: startAfter on a run that has events`);
    this.base = seq;
    this.deliveredHigh = seq;
    this.#lastSeq = seq;
  }

  /**
   * @internal Appends an event another instance produced, keeping its seq, which must be the next
   * one (`out_of_range` otherwise: the copy would have a gap). Returns like {@link Run.emit}.
   */
  protected replicate(event: SluiceEvent): Promise<void> | undefined {
    if (this.#state === 'ended') return undefined;
    if (event.seq !== this.#lastSeq + 1) {
      throw new SluiceError('out_of_range', `Run ${this.id}: event ${event.seq} follows event ${this.#lastSeq}: the events between are gone`);
    }
    this.log.push(event);
    this.#lastSeq = event.seq;
    if (event.type === 'result' || event.type === 'error') this.#terminal = event.type;
    if (event.type === 'run-end') {
      this.#finish(event);
      for (const sub of this.subscribers) if (sub.waiting) sub.wake();
      return undefined;
    }
    return this.#afterAppend();
  }

  /**
   * @internal How far a trailing subscriber may read: what some other reader has been handed, or
   * everything when only trailing readers are left.
   */
  trailLimit(): number {
    return this.subscribers.size > this.#trailers.size ? Math.min(this.deliveredHigh, this.#lastSeq) : this.#lastSeq;
  }

  /** @internal A subscriber advanced or left: release an awaiting producer once it caught up; let trailing readers follow. */
  onReaderProgress(): void {
    if (this.#trailers.size !== 0) for (const sub of this.#trailers) if (sub.waiting) sub.wake();
    if (this.#drain !== null && this.#lastSeq - this.#minCursor() <= this.lowWaterMark) this.#releaseProducer();
    if (this.#onRead !== null && this.#isRead()) {
      const callbacks = this.#onRead;
      this.#onRead = null;
      for (const callback of callbacks) callback();
    }
  }

  /** @internal */
  removeSubscriber(sub: Subscription): void {
    this.subscribers.delete(sub);
    this.#trailers.delete(sub);
    this.onReaderProgress();
  }

  #isRead(): boolean {
    return this.#state === 'ended' && (this.deliveredHigh >= this.#lastSeq || this.subscribers.size === 0);
  }

  /** Appends a closing event kept or made by a late cancel, with the next seq. */
  #append(event: SluiceEvent): void {
    event.runId = this.id;
    event.seq = ++this.#lastSeq;
    this.log.push(event);
  }

  #minCursor(): number {
    let min = this.#lastSeq;
    for (const sub of this.subscribers) if (sub.cursor < min) min = sub.cursor;
    return min;
  }

  #releaseProducer(): void {
    const drain = this.#drain;
    this.#ignored = 0;
    if (drain !== null) {
      this.#drain = null;
      drain.resolve();
    }
  }

  #trim(): void {
    const drop = Math.min(this.log.length - this.logLimit, this.#minCursor() - this.base);
    if (drop > 0) {
      this.log.splice(0, drop);
      this.base += drop;
    }
  }

  #finish(event: RunEndEvent): void {
    this.#state = 'ended';
    this.#endReason = event.reason;
    this.#releaseProducer();
    this.#detachParent?.();
    this.#resolveDone(event);
  }
}

function toCancelError(reason: unknown): SluiceError {
  if (SluiceError.isInstance(reason)) return reason;
  return new SluiceError('cancelled', typeof reason === 'string' ? reason : 'The run was cancelled', { cause: reason });
}
