/**
 * Output rails: checks on what the model says before users hear or see it, without turning
 * streaming off (NeMo Guardrails' streaming output rails, `reference/ace-and-voice.md` §2.2, with
 * windows aligned to sentences as §0.6 recommends for voice).
 *
 * `withOutputRails(run, { rail })` is a transform over a run's events, for text consumers and for
 * the voice channel alike (feed its output to `sentencesOf`). Text is cut into sentences by the
 * streaming segmenter and checked in windows of `windowSentences` sentences, each with the
 * `contextSentences` before it as context. A rail answers allow, block or rewrite.
 *
 * - `check-first` (default): each window is held until the rails pass it, then released as one
 *   chunk (rewritten if a rail said so). Nothing blocked is ever shown or spoken; the cost is
 *   one sentence of latency plus the rail's own time.
 * - `stream-first`: chunks pass at once and windows are checked behind them. A block still ends
 *   the stream, but text already sent stays sent (there is no retraction), and a rewrite cannot
 *   apply: it is recorded with `applied: false`.
 *
 * A block: the open stream ends (`stream-end`, reason `error`), then an `error` event (code
 * `permission_denied`, reason `output_rail_blocked`), then a `message` with the policy message
 * (spoken by the voice channel), the run is cancelled (its model call stops), and an incident is
 * recorded. The run's own `result` and `run-end` still follow, so its events are committed as
 * usual; everything else it emits after the block is dropped. The `error` of a block is therefore
 * not the terminal event of this view.
 *
 * Events produced here (released chunks, the block's events) carry the run's id and the seq of the
 * source event being processed when they were made: seq never decreases, but may repeat. Resume
 * from the run itself, not from a rail view.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { ChunkEvent, EventInput, MessageEvent, SluiceEvent } from '../../protocol/events.ts';
import { buildMessage } from '../../runtime/dispatcher.ts';
import type { Logger } from '../../runtime/logger.ts';
import { silentLogger } from '../../runtime/logger.ts';
import { SentenceStream } from '../../text/sentence-stream.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import { markSentenceAligned } from './aligned.ts';
import { isTextPause } from './text-pause.ts';
import { booleanOption, checkOptionsObject, enumOption, functionOption, numberOption, stringOption } from './validate.ts';

/** What a rail answers for a window. */
export type RailVerdict =
  | { action: 'allow' }
  | { action: 'block'; reason?: string }
  | { action: 'rewrite'; text: string };

/** What a rail is asked to check. */
export interface RailWindow {
  runId: string;
  /** The message: a stream's responseId, or `msg-<seq>` for a whole message. */
  responseId: string;
  /** Window number within the message, from 0. */
  index: number;
  /** The text to check (the window's sentences, joined). */
  text: string;
  sentences: string[];
  /** The sentences before this window (as released), for context. */
  context: string;
  /** True for the message's last window. */
  final: boolean;
  /** Aborts when the check is no longer needed (the view closed, the stream was cancelled). */
  signal: AbortSignal;
}

/** A rail: a moderation model, a classifier, a keyword list… `'allow'`/`'block'` are accepted as shorthands. */
export type OutputRail = (window: RailWindow) => RailVerdict | 'allow' | 'block' | Promise<RailVerdict | 'allow' | 'block'>;

/** A recorded intervention. */
export interface RailIncident {
  /** Epoch milliseconds. */
  at: number;
  runId: string;
  responseId: string;
  windowIndex: number;
  mode: 'check-first' | 'stream-first';
  /** `error`: a rail threw (then the window was blocked or allowed, per `failClosed`). */
  action: 'block' | 'rewrite' | 'error';
  /** The window's original text. */
  text: string;
  reason?: string;
  /** For a rewrite: the replacement. */
  rewrittenTo?: string;
  /** False when the intervention could not take effect (a rewrite in stream-first mode, an allowed failure). */
  applied: boolean;
  /** In stream-first mode: whether users had already received the window. */
  alreadySent: boolean;
}

/** Options of {@link withOutputRails}: segmenter options plus these. */
export interface OutputRailsOptions extends Omit<SentenceStreamOptions, 'mode'> {
  /** The segmenter's `mode` (its `mode` option; `mode` here is the rails' own). */
  segmenterMode?: SentenceStreamOptions['mode'];
  /** The rail, or several run in order (a rewrite feeds the next one; the first block wins). */
  rail: OutputRail | OutputRail[];
  /** Default `check-first`. */
  mode?: 'check-first' | 'stream-first';
  /** Sentences per checked window (≥ 1). Default 1: each sentence is checked before it is released. */
  windowSentences?: number;
  /** Sentences before the window passed as `context` (≥ 0). Default 2. */
  contextSentences?: number;
  /** Said (and shown) after a block. Default "Sorry, I can't continue with that." */
  policyMessage?: string;
  /** Check whole `message` events too (default true). */
  messages?: boolean;
  /** A rail that throws blocks the window (default true); false lets it through (recorded either way). */
  failClosed?: boolean;
  /** Stops the run on a block. Default: the source's own `cancel()` when it has one (a `Run`). */
  cancel?: (reason: SluiceError) => void;
  /** Told of every incident as it happens (incidents are also kept on the returned view). */
  onIncident?: (incident: RailIncident) => void;
  logger?: Logger;
}

/** The transformed events: iterate once. */
export interface RailedEvents extends AsyncIterable<SluiceEvent> {
  /** Incidents so far. */
  readonly incidents: readonly RailIncident[];
  /** True once a block ended the output. */
  readonly blocked: boolean;
}

const OWN_KEYS = ['rail', 'mode', 'segmenterMode', 'windowSentences', 'contextSentences', 'policyMessage', 'messages', 'failClosed', 'cancel', 'onIncident', 'logger'] as const;
const SEGMENTER_KEYS = ['locale', 'minFirstLength', 'maxLength', 'stallFlushMs', 'now'] as const;
const DEFAULT_POLICY = "Sorry, I can't continue with that.";

/** @internal Validated options. */
export interface ResolvedRailOptions {
  rails: OutputRail[];
  mode: 'check-first' | 'stream-first';
  windowSentences: number;
  contextSentences: number;
  policyMessage: string;
  messages: boolean;
  failClosed: boolean;
  cancel: ((reason: SluiceError) => void) | undefined;
  onIncident: ((incident: RailIncident) => void) | undefined;
  logger: Logger;
  segmenter: SentenceStreamOptions;
}

/** Validates rail options. `mode` is the rails' (`check-first`/`stream-first`); `segmenterMode` the segmenter's. */
export function resolveRailOptions(who: string, options: unknown): ResolvedRailOptions {
  const o = checkOptionsObject(who, options, [...OWN_KEYS, ...SEGMENTER_KEYS]);
  const rail = o.rail;
  const rails = Array.isArray(rail) ? rail : [rail];
  if (rails.length === 0 || rails.some((r) => typeof r !== 'function')) {
    throw new SluiceError('invalid_argument', `${who}: option 'rail' must be a function or a non-empty array of functions`);
  }
  const segmenter: Record<string, unknown> = {};
  for (const key of SEGMENTER_KEYS) if (o[key] !== undefined) segmenter[key] = o[key];
  if (o.segmenterMode !== undefined) segmenter.mode = o.segmenterMode;
  new SentenceStream(segmenter as SentenceStreamOptions);
  const logger = o.logger === undefined ? silentLogger : (o.logger as Logger);
  if (typeof logger !== 'object' || logger === null || typeof logger.warn !== 'function') {
    throw new SluiceError('invalid_argument', `${who}: option 'logger' must be a logger (debug/info/warn/error)`);
  }
  return {
    rails: rails as OutputRail[],
    mode: enumOption(who, 'mode', o.mode, ['check-first', 'stream-first'] as const, 'check-first'),
    windowSentences: numberOption(who, 'windowSentences', o.windowSentences, 1, { min: 1 }),
    contextSentences: numberOption(who, 'contextSentences', o.contextSentences, 2, { min: 0 }),
    policyMessage: stringOption(who, 'policyMessage', o.policyMessage, DEFAULT_POLICY),
    messages: booleanOption(who, 'messages', o.messages, true),
    failClosed: booleanOption(who, 'failClosed', o.failClosed, true),
    cancel: functionOption(who, 'cancel', o.cancel),
    onIncident: functionOption(who, 'onIncident', o.onIncident),
    logger,
    segmenter: segmenter as SentenceStreamOptions,
  };
}

type Source = AsyncIterable<SluiceEvent> | { subscribe(options?: { after?: number }): AsyncIterable<SluiceEvent>; cancel?(reason?: unknown): boolean };

/**
 * Puts output rails on a run's events (a `Run`, a subscription, or any async iterable of events).
 *
 * @throws {SluiceError} `invalid_argument` naming a bad option, at once.
 */
export function withOutputRails(source: Source, options: OutputRailsOptions): RailedEvents {
  const resolved = resolveRailOptions('withOutputRails', options);
  let iterable: AsyncIterable<SluiceEvent>;
  let cancel = resolved.cancel;
  if (typeof source === 'object' && source !== null && Symbol.asyncIterator in source) {
    iterable = source as AsyncIterable<SluiceEvent>;
    const maybe = source as { cancel?: (reason?: unknown) => boolean };
    if (cancel === undefined && typeof maybe.cancel === 'function') cancel = (r) => void maybe.cancel?.(r);
  } else if (typeof source === 'object' && source !== null && typeof (source as { subscribe?: unknown }).subscribe === 'function') {
    const run = source as { subscribe(): AsyncIterable<SluiceEvent>; cancel?(reason?: unknown): boolean };
    iterable = run.subscribe();
    if (cancel === undefined && typeof run.cancel === 'function') cancel = (r) => void run.cancel?.(r);
  } else {
    throw new SluiceError('invalid_argument', 'withOutputRails: expected a run, a subscription or an async iterable of events');
  }
  return new RailsView(iterable, { ...resolved, cancel });
}

/** Per-message state. */
interface MessageState {
  responseId: string;
  seg: SentenceStream;
  /** Sentences waiting for a full window. */
  window: string[];
  /** Released sentences (for context). */
  released: string[];
  windowIndex: number;
  /** Rich parts of held chunks (check-first), released with the stream's end or the window covering them. */
  rich: { until: number; event: ChunkEvent }[];
  /** Characters of text pushed / released (original lengths). */
  pushed: number;
  releasedChars: number;
  open: boolean;
}

const BLOCK = Symbol('block');

interface BlockInfo {
  responseId: string;
  reason: string | undefined;
}

class RailsView implements RailedEvents {
  readonly incidents: RailIncident[] = [];
  #source: AsyncIterable<SluiceEvent>;
  #o: ResolvedRailOptions;
  #blocked = false;
  #used = false;
  #streams = new Map<string, MessageState>();
  #runId = '';
  #seq = 0;
  /** stream-first: checks running behind the text, in order. */
  #checks: Promise<void> = Promise.resolve();
  #pendingBlock: BlockInfo | null = null;
  #wakeBlock: (() => void) | null = null;
  #closing = new AbortController();

  constructor(source: AsyncIterable<SluiceEvent>, options: ResolvedRailOptions) {
    this.#source = source;
    this.#o = options;
  }

  get blocked(): boolean {
    return this.#blocked;
  }

  [Symbol.asyncIterator](): AsyncIterator<SluiceEvent> {
    if (this.#used) throw new SluiceError('failed_precondition', 'withOutputRails: a rail view can be iterated once');
    this.#used = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<SluiceEvent> {
    const it = this.#source[Symbol.asyncIterator]();
    let next: Promise<IteratorResult<SluiceEvent>> | null = null;
    try {
      for (;;) {
        next ??= it.next();
        let step: IteratorResult<SluiceEvent> | typeof BLOCK;
        if (this.#o.mode === 'stream-first' && !this.#blocked) {
          const wake = new Promise<typeof BLOCK>((resolve) => {
            this.#wakeBlock = () => resolve(BLOCK);
            if (this.#pendingBlock !== null) resolve(BLOCK);
          });
          step = await Promise.race([next, wake]);
          this.#wakeBlock = null;
        } else step = await next;
        if (step === BLOCK) {
          yield* this.#emitBlock();
          continue;
        }
        next = null;
        if (step.done === true) break;
        yield* this.#handle(step.value);
      }
      if (!this.#blocked) {
        for (const state of [...this.#streams.values()]) yield* this.#finishMessage(state, true);
        yield* this.#settle();
      }
    } finally {
      this.#closing.abort();
      void Promise.resolve(it.return?.()).catch(() => {});
    }
  }

  async *#handle(event: SluiceEvent): AsyncGenerator<SluiceEvent> {
    this.#runId = event.runId;
    this.#seq = event.seq;
    if (this.#blocked) {
      // After a block only the run's own conclusion passes.
      if (event.type === 'result' || event.type === 'error' || event.type === 'run-end') yield event;
      return;
    }
    if (this.#streams.size > 0 && isTextPause(event)) {
      // The model paused (a tool call, a status, a whole message): held text is a window now.
      for (const state of [...this.#streams.values()]) {
        const sentences = state.seg.cut();
        if (this.#o.mode === 'stream-first') this.#queue(state, sentences, false, true);
        else yield* this.#addSentences(state, sentences, false, true);
        if (this.#blocked) return;
      }
    }
    switch (event.type) {
      case 'stream-start': {
        this.#state(event.responseId);
        yield event;
        return;
      }
      case 'chunk': {
        const state = this.#state(event.responseId);
        const text = typeof event.text === 'string' ? event.text : '';
        const sentences = text === '' ? [] : state.seg.push(text);
        state.pushed += text.length;
        if (this.#o.mode === 'stream-first') {
          yield event;
          this.#queue(state, sentences, false);
          return;
        }
        const rich = richPart(event);
        if (rich !== null) state.rich.push({ until: state.pushed, event: rich });
        yield* this.#addSentences(state, sentences, false);
        return;
      }
      case 'stream-end': {
        const state = this.#streams.get(event.responseId);
        if (state !== undefined) {
          if (event.reason === 'cancelled') {
            // Held text of an interrupted stream is never released; nothing is left to check.
            this.#streams.delete(event.responseId);
          } else {
            yield* this.#finishMessage(state, false);
            if (this.#blocked) return;
          }
        }
        yield* this.#settle();
        if (this.#blocked) return;
        yield event;
        return;
      }
      case 'message': {
        yield* this.#settle();
        if (this.#blocked) return;
        const text = event.message.text;
        if (!this.#o.messages || typeof text !== 'string' || text === '') {
          yield event;
          return;
        }
        yield* this.#checkMessage(event, text);
        return;
      }
      case 'result':
      case 'error':
      case 'run-end': {
        if (event.type === 'run-end') for (const state of [...this.#streams.values()]) yield* this.#finishMessage(state, true);
        yield* this.#settle();
        yield event;
        return;
      }
      default:
        yield event;
    }
  }

  #state(responseId: string): MessageState {
    let state = this.#streams.get(responseId);
    if (state === undefined) {
      state = {
        responseId,
        seg: new SentenceStream(this.#o.segmenter),
        window: [],
        released: [],
        windowIndex: 0,
        rich: [],
        pushed: 0,
        releasedChars: 0,
        open: true,
      };
      this.#streams.set(responseId, state);
    }
    return state;
  }

  /** check-first: collects sentences into windows; each full window is checked, then released. */
  async *#addSentences(state: MessageState, sentences: string[], final: boolean, pause = false): AsyncGenerator<SluiceEvent> {
    state.window.push(...sentences);
    while (state.window.length >= this.#o.windowSentences || ((final || pause) && state.window.length > 0)) {
      const take = state.window.splice(0, this.#o.windowSentences);
      const last = final && state.window.length === 0;
      const verdict = await this.#check(state, take, last, false);
      if (verdict.action === 'block') {
        this.#pendingBlock = { responseId: state.responseId, reason: verdict.reason };
        yield* this.#emitBlock();
        return;
      }
      const original = take.join('');
      const text = verdict.action === 'rewrite' ? verdict.text : original;
      state.released.push(...(verdict.action === 'rewrite' ? [text] : take));
      state.releasedChars += original.length;
      if (text !== '') {
        const chunk = this.#make({ type: 'chunk', responseId: state.responseId, text }) as ChunkEvent;
        markSentenceAligned(chunk);
        yield chunk;
      }
      while (state.rich.length > 0 && state.rich[0]!.until <= state.releasedChars) yield state.rich.shift()!.event;
    }
  }

  /** The message's text is complete: check the rest, release held rich parts. */
  async *#finishMessage(state: MessageState, _atRunEnd: boolean): AsyncGenerator<SluiceEvent> {
    this.#streams.delete(state.responseId);
    const rest = state.seg.flush();
    if (this.#o.mode === 'stream-first') {
      this.#queue(state, rest, true);
      return;
    }
    yield* this.#addSentences(state, rest, true);
    if (this.#blocked) return;
    for (const { event } of state.rich.splice(0)) yield event;
  }

  /** A whole message: in check-first every window is checked before the message goes out. */
  async *#checkMessage(event: MessageEvent, text: string): AsyncGenerator<SluiceEvent> {
    const responseId = `msg-${event.seq}`;
    const seg = new SentenceStream(this.#o.segmenter);
    const sentences = [...seg.push(text), ...seg.flush()];
    const state = this.#state(responseId);
    this.#streams.delete(responseId);
    if (this.#o.mode === 'stream-first') {
      yield event;
      this.#queue(state, sentences, true);
      yield* this.#settle();
      return;
    }
    const out: string[] = [];
    let rewritten = false;
    for (let i = 0; i < sentences.length; i += this.#o.windowSentences) {
      const take = sentences.slice(i, i + this.#o.windowSentences);
      const verdict = await this.#check(state, take, i + this.#o.windowSentences >= sentences.length, false);
      if (verdict.action === 'block') {
        this.#pendingBlock = { responseId, reason: verdict.reason };
        yield* this.#emitBlock();
        return;
      }
      const piece = verdict.action === 'rewrite' ? verdict.text : take.join('');
      if (verdict.action === 'rewrite') rewritten = true;
      out.push(piece);
      state.released.push(piece);
    }
    if (!rewritten) {
      yield event;
      return;
    }
    yield this.#make({ type: 'message', message: { ...event.message, text: out.join('') } });
  }

  /** stream-first: windows are checked behind the text, in order. */
  #queue(state: MessageState, sentences: string[], final: boolean, pause = false): void {
    state.window.push(...sentences);
    while (state.window.length >= this.#o.windowSentences || ((final || pause) && state.window.length > 0)) {
      const take = state.window.splice(0, this.#o.windowSentences);
      const last = final && state.window.length === 0;
      this.#checks = this.#checks.then(async () => {
        if (this.#pendingBlock !== null || this.#blocked) return;
        const verdict = await this.#check(state, take, last, true);
        state.released.push(...take);
        if (verdict.action === 'block' && this.#pendingBlock === null && !this.#blocked) {
          this.#pendingBlock = { responseId: state.responseId, reason: verdict.reason };
          this.#wakeBlock?.();
        }
      });
    }
  }

  /** stream-first: waits for the checks behind the text (before a closing event). */
  async *#settle(): AsyncGenerator<SluiceEvent> {
    if (this.#o.mode !== 'stream-first' || this.#blocked) return;
    await this.#checks;
    if (this.#pendingBlock !== null) yield* this.#emitBlock();
  }

  async #check(state: MessageState, sentences: string[], final: boolean, alreadySent: boolean): Promise<RailVerdict> {
    const original = sentences.join('');
    const index = state.windowIndex++;
    const context = state.released.slice(Math.max(0, state.released.length - this.#o.contextSentences)).join('');
    let text = original;
    let current = sentences;
    let rewrittenBy: string | undefined;
    for (const rail of this.#o.rails) {
      let verdict: RailVerdict;
      try {
        verdict = normalize(
          await rail({ runId: this.#runId, responseId: state.responseId, index, text, sentences: current, context, final, signal: this.#closing.signal }),
        );
      } catch (error) {
        this.#o.logger.warn({ err: error, runId: this.#runId }, 'An output rail failed');
        this.#record({ responseId: state.responseId, windowIndex: index, action: 'error', text: original, reason: 'rail_error', applied: this.#o.failClosed, alreadySent });
        if (this.#o.failClosed) return { action: 'block', reason: 'rail_error' };
        continue;
      }
      if (verdict.action === 'block') {
        this.#record({ responseId: state.responseId, windowIndex: index, action: 'block', text: original, reason: verdict.reason, applied: true, alreadySent });
        return verdict;
      }
      if (verdict.action === 'rewrite') {
        rewrittenBy = verdict.text;
        text = verdict.text;
        current = [verdict.text];
      }
    }
    if (rewrittenBy === undefined) return { action: 'allow' };
    const applied = !alreadySent;
    this.#record({ responseId: state.responseId, windowIndex: index, action: 'rewrite', text: original, rewrittenTo: text, applied, alreadySent });
    return applied ? { action: 'rewrite', text } : { action: 'allow' };
  }

  /** Ends the output: closes the open stream, says the policy message, cancels the run. */
  *#emitBlock(): Generator<SluiceEvent> {
    const info = this.#pendingBlock;
    if (info === null || this.#blocked) return;
    this.#pendingBlock = null;
    this.#blocked = true;
    this.#closing.abort();
    const reason = new SluiceError('cancelled', 'Blocked by output rails', { details: { reason: 'output_rail_blocked' } });
    try {
      this.#o.cancel?.(reason);
    } catch (error) {
      this.#o.logger.warn({ err: error, runId: this.#runId }, 'Cancelling a run blocked by output rails failed');
    }
    if (!info.responseId.startsWith('msg-')) {
      yield this.#make({ type: 'stream-end', responseId: info.responseId, reason: 'error' });
    }
    this.#streams.clear();
    yield this.#make({
      type: 'error',
      code: 'permission_denied',
      message: info.reason === undefined ? 'Blocked by output rails' : `Blocked by output rails: ${info.reason}`,
      reason: 'output_rail_blocked',
    });
    yield this.#make({ type: 'message', message: buildMessage({ text: this.#o.policyMessage, json: { outputRail: 'blocked' } }) });
  }

  #record(partial: Omit<RailIncident, 'at' | 'runId' | 'mode'>): void {
    const incident: RailIncident = { at: Date.now(), runId: this.#runId, mode: this.#o.mode, ...partial };
    if (incident.reason === undefined) delete incident.reason;
    this.incidents.push(incident);
    try {
      this.#o.onIncident?.(incident);
    } catch (error) {
      this.#o.logger.warn({ err: error }, 'onIncident failed');
    }
  }

  #make(input: EventInput): SluiceEvent {
    const event = input as SluiceEvent;
    event.runId = this.#runId;
    event.seq = this.#seq;
    return event;
  }
}

function normalize(value: unknown): RailVerdict {
  if (value === 'allow' || value === undefined) return { action: 'allow' };
  if (value === 'block') return { action: 'block' };
  if (typeof value === 'object' && value !== null) {
    const v = value as Record<string, unknown>;
    if (v.action === 'allow') return { action: 'allow' };
    if (v.action === 'block') return typeof v.reason === 'string' ? { action: 'block', reason: v.reason } : { action: 'block' };
    if (v.action === 'rewrite' && typeof v.text === 'string') return { action: 'rewrite', text: v.text };
  }
  throw new SluiceError('internal', `An output rail returned an invalid verdict: expected allow, block or { action: 'rewrite', text }`);
}

/** The non-text part of a chunk (citations, buttons, custom…), or null when it has only text. */
function richPart(event: ChunkEvent): ChunkEvent | null {
  let rich: Record<string, unknown> | null = null;
  for (const key in event) {
    if (key === 'type' || key === 'runId' || key === 'seq' || key === 'responseId' || key === 'text') continue;
    rich ??= { type: 'chunk', runId: event.runId, seq: event.seq, responseId: event.responseId };
    rich[key] = (event as Record<string, unknown>)[key];
  }
  return rich as ChunkEvent | null;
}

