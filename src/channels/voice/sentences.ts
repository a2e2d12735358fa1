/**
 * Sentence-level consumers of a run: `sentencesOf(run)` turns a run's token stream into sentence
 * events with the streaming segmenter (`src/text`), beside any number of token-level consumers of
 * the same run. Whole (`message`) events are delivered as one sentence stream each: the message
 * text goes through the segmenter as a single chunk, so a static response is spoken like any other.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { SluiceEvent } from '../../protocol/events.ts';
import { SentenceStream } from '../../text/sentence-stream.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import { isSentenceAligned } from './aligned.ts';
import { isTextPause } from './text-pause.ts';
import { booleanOption, checkOptionsObject, enumOption, numberOption } from './validate.ts';

/** One sentence of a run's output, ready for text-to-speech. */
export interface SentenceEvent {
  type: 'sentence';
  runId: string;
  /**
   * The streamed message it belongs to; for a whole `message` event, `msg-<seq>` (the message
   * event's seq), which never collides with a 32-hex stream id.
   */
  responseId: string;
  /** Position in the run, from 0, across all its messages. */
  index: number;
  /** The sentence exactly as produced (the whitespace after it included). */
  text: string;
  /** Whether it came from a streamed message or a whole one. */
  source: 'stream' | 'message';
  /** Seq of the run event that completed it. */
  seq: number;
}

/** What `sentencesOf` reads: a run (or anything with `subscribe()`), or an iterable of events. */
export type EventSourceLike =
  | { subscribe(options?: { after?: number; signal?: AbortSignal }): AsyncIterable<SluiceEvent> }
  | AsyncIterable<SluiceEvent>;

/** Options of {@link sentencesOf}: the segmenter's options plus these. */
export interface SentencesOptions extends SentenceStreamOptions {
  /** Stops reading (the run is not cancelled). */
  signal?: AbortSignal;
  /** Include whole `message` events (default true). */
  messages?: boolean;
  /**
   * What to do with the unfinished sentence of a stream that ends `cancelled` (barge-in, stop):
   * `'drop'` (default: nothing more should be spoken after an interruption) or `'flush'`.
   */
  onCancel?: 'drop' | 'flush';
  /** Resume: skip sentences with an index ≤ this (segmentation is deterministic without a stall flush). Default -1. */
  afterIndex?: number;
}

const OWN_KEYS = ['signal', 'messages', 'onCancel', 'afterIndex'] as const;
const SEGMENTER_KEYS = ['mode', 'locale', 'minFirstLength', 'maxLength', 'stallFlushMs', 'now'] as const;

/** Validated options of {@link sentencesOf}. */
export interface ResolvedSentencesOptions {
  segmenter: SentenceStreamOptions;
  signal: AbortSignal | undefined;
  messages: boolean;
  onCancel: 'drop' | 'flush';
  afterIndex: number;
}

/** Validates the options of {@link sentencesOf}; throws `invalid_argument` naming the bad option. */
export function resolveSentencesOptions(who: string, options: unknown): ResolvedSentencesOptions {
  const o = checkOptionsObject(who, options, [...OWN_KEYS, ...SEGMENTER_KEYS]);
  const segmenter: Record<string, unknown> = {};
  for (const key of SEGMENTER_KEYS) if (o[key] !== undefined) segmenter[key] = o[key];
  // The segmenter validates its own options and names the offending one.
  new SentenceStream(segmenter as SentenceStreamOptions);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new SluiceError('invalid_argument', `${who}: option 'signal' must be an AbortSignal`);
  }
  return {
    segmenter: segmenter as SentenceStreamOptions,
    signal,
    messages: booleanOption(who, 'messages', o.messages, true),
    onCancel: enumOption(who, 'onCancel', o.onCancel, ['drop', 'flush'] as const, 'drop'),
    afterIndex: numberOption(who, 'afterIndex', o.afterIndex, -1, { min: -1 }),
  };
}

/**
 * @internal The events of `source`: a run is subscribed to from its first event, with `signal`,
 * so that it ends by itself on abort (`endsOnAbort`); another iterable may not.
 */
export function iterableOf(source: EventSourceLike, signal: AbortSignal | undefined): { events: AsyncIterable<SluiceEvent>; endsOnAbort: boolean } {
  if (typeof source === 'object' && source !== null) {
    if (Symbol.asyncIterator in source) return { events: source as AsyncIterable<SluiceEvent>, endsOnAbort: false };
    if (typeof (source as { subscribe?: unknown }).subscribe === 'function') {
      const s = source as { subscribe(options?: { after?: number; signal?: AbortSignal }): AsyncIterable<SluiceEvent> };
      return { events: s.subscribe(signal === undefined ? {} : { signal }), endsOnAbort: true };
    }
  }
  throw new SluiceError('invalid_argument', 'sentencesOf: expected a run, a subscription or an async iterable of events');
}

const STALL = Symbol('stall');

/**
 * Sentences of a run, in order, as an async iterable (iterate once). Reads the run from its first
 * event (a run keeps its log, so a late consumer misses nothing); ends at `run-end`, when the
 * source ends, or when `signal` aborts. Leaving the loop early detaches from the run without
 * cancelling it.
 *
 * Each streamed message has its own segmenter: a sentence is released once its end is certain
 * (see `SentenceStream`), the rest when the stream ends or at a pause the events show (a tool
 * call, a status, a whole message: see `text-pause.ts`), so a sentence said before a tool call is
 * spoken while the tool runs. With `stallFlushMs` a stalled model's pending text is also released
 * after that much silence.
 *
 * @throws {SluiceError} `invalid_argument` naming the option, at once (not at the first `next()`).
 */
export function sentencesOf(source: EventSourceLike, options: SentencesOptions = {}): AsyncIterableIterator<SentenceEvent, undefined> {
  const resolved = resolveSentencesOptions('sentencesOf', options);
  return new SentenceReader(iterableOf(source, resolved.signal), resolved);
}

/**
 * @internal The iterator behind {@link sentencesOf} and `sentenceViewOf`. With `passThrough` the
 * run's `result` or `error` and its `run-end` are handed out too, after the last sentence (the
 * sentences `run-end` releases included).
 */
export class SentenceReader<T = SentenceEvent> implements AsyncIterableIterator<T, undefined> {
  readonly #source: AsyncIterator<SluiceEvent>;
  readonly #options: ResolvedSentencesOptions;
  readonly #passThrough: boolean;
  /** With `passThrough`: the run's `result` or `error`, held until `run-end`. */
  #terminal: SluiceEvent | null = null;
  readonly #streams = new Map<string, SentenceStream>();
  readonly #out: (SentenceEvent | SluiceEvent)[] = [];
  #index = 0;
  #runId = '';
  #done = false;
  #pendingNext: Promise<IteratorResult<SluiceEvent>> | null = null;
  #onAbort: (() => void) | null = null;
  #wakeAbort: (() => void) | null = null;
  /** The source ends by itself when the signal aborts: reads need no race against it. */
  readonly #endsOnAbort: boolean;

  constructor(source: { events: AsyncIterable<SluiceEvent>; endsOnAbort: boolean }, options: ResolvedSentencesOptions, passThrough = false) {
    this.#source = source.events[Symbol.asyncIterator]();
    this.#endsOnAbort = source.endsOnAbort;
    this.#options = options;
    this.#passThrough = passThrough;
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.#done = true;
      else {
        this.#onAbort = () => {
          this.#finish();
          this.#wakeAbort?.();
        };
        signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      const ready = this.#out.shift();
      if (ready !== undefined) return { value: ready as T, done: false };
      if (this.#done) return { value: undefined, done: true };
      const step = await this.#read();
      if (step === STALL) {
        this.#pollStalls();
        continue;
      }
      if (step === null || step.done === true) {
        // The source ended without closing its streams: what is pending was delivered, so speak it.
        if (this.#options.signal?.aborted !== true) {
          for (const id of [...this.#streams.keys()]) this.#closeStream(id, true, 0);
          this.#releaseTerminal();
        }
        this.#finish();
        continue;
      }
      this.#onEvent(step.value);
    }
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    this.#finish();
    return { value: undefined, done: true };
  }

  /** Next source event, or STALL when a stall flush is due first, or null once aborted. */
  #read(): Promise<IteratorResult<SluiceEvent> | typeof STALL | null> {
    const pending = this.#pendingNext ?? this.#source.next();
    let wait: number | undefined;
    for (const stream of this.#streams.values()) {
      const ms = stream.msUntilStallFlush();
      if (ms !== undefined && (wait === undefined || ms < wait)) wait = ms;
    }
    // Nothing to race (no stall flush due, no signal the source ignores): the common case.
    if (wait === undefined && (this.#options.signal === undefined || this.#endsOnAbort)) {
      this.#pendingNext = null;
      return pending;
    }
    this.#pendingNext = pending;
    const next = pending.then((r) => {
      this.#pendingNext = null;
      return r;
    });
    const racers: Promise<IteratorResult<SluiceEvent> | typeof STALL | null>[] = [next];
    let timer: NodeJS.Timeout | undefined;
    if (wait !== undefined) racers.push(new Promise((resolve) => (timer = setTimeout(resolve, wait, STALL))));
    if (this.#options.signal !== undefined && !this.#endsOnAbort) racers.push(new Promise((resolve) => (this.#wakeAbort = () => resolve(null))));
    return Promise.race(racers).finally(() => {
      clearTimeout(timer);
      this.#wakeAbort = null;
    });
  }

  #pollStalls(): void {
    for (const [responseId, stream] of this.#streams) {
      for (const text of stream.poll()) this.#emit(responseId, text, 'stream', 0);
    }
  }

  #onEvent(event: SluiceEvent): void {
    this.#runId = event.runId;
    if (this.#streams.size > 0 && isTextPause(event)) this.#cutStreams(event.seq);
    switch (event.type) {
      case 'stream-start':
        this.#streamFor(event.responseId);
        break;
      case 'chunk': {
        const text = event.text;
        const stream = this.#streamFor(event.responseId);
        if (typeof text === 'string' && text !== '') {
          for (const s of stream.push(text)) this.#emit(event.responseId, s, 'stream', event.seq);
        }
        if (isSentenceAligned(event)) {
          // The boundary is already decided upstream: release now, then go on with a fresh segmenter.
          for (const s of stream.flush()) this.#emit(event.responseId, s, 'stream', event.seq);
          this.#streams.set(event.responseId, new SentenceStream(this.#options.segmenter));
        }
        break;
      }
      case 'stream-end':
        this.#closeStream(event.responseId, event.reason !== 'cancelled' || this.#options.onCancel === 'flush', event.seq);
        break;
      case 'message': {
        if (!this.#options.messages) break;
        const text = event.message.text;
        if (typeof text !== 'string' || text === '') break;
        const stream = new SentenceStream(this.#options.segmenter);
        const id = `msg-${event.seq}`;
        for (const s of stream.push(text)) this.#emit(id, s, 'message', event.seq);
        for (const s of stream.flush()) this.#emit(id, s, 'message', event.seq);
        break;
      }
      case 'run-end':
        for (const id of [...this.#streams.keys()]) this.#closeStream(id, event.reason !== 'cancelled' || this.#options.onCancel === 'flush', event.seq);
        this.#finish();
        break;
      default:
        break;
    }
    if (this.#passThrough) {
      // The terminal waits for run-end, which may still release the sentences of an open stream.
      if (event.type === 'result' || event.type === 'error') this.#terminal = event;
      else if (event.type === 'run-end') {
        this.#releaseTerminal();
        this.#out.push(event);
      }
    }
  }

  #releaseTerminal(): void {
    if (this.#terminal === null) return;
    this.#out.push(this.#terminal);
    this.#terminal = null;
  }

  #streamFor(responseId: string): SentenceStream {
    let stream = this.#streams.get(responseId);
    if (stream === undefined) {
      stream = new SentenceStream(this.#options.segmenter);
      this.#streams.set(responseId, stream);
    }
    return stream;
  }

  /** A pause the events show (see `text-pause.ts`): what each open stream holds is a sentence now. */
  #cutStreams(seq: number): void {
    for (const [responseId, stream] of this.#streams) {
      for (const s of stream.cut()) this.#emit(responseId, s, 'stream', seq);
    }
  }

  #closeStream(responseId: string, flush: boolean, seq: number): void {
    const stream = this.#streams.get(responseId);
    if (stream === undefined) return;
    this.#streams.delete(responseId);
    if (flush) for (const s of stream.flush()) this.#emit(responseId, s, 'stream', seq);
  }

  #emit(responseId: string, text: string, source: 'stream' | 'message', seq: number): void {
    const index = this.#index++;
    if (index <= this.#options.afterIndex) return;
    this.#out.push({ type: 'sentence', runId: this.#runId, responseId, index, text, source, seq });
  }

  #finish(): void {
    if (this.#done && this.#onAbort === null) return;
    this.#done = true;
    if (this.#onAbort !== null) {
      this.#options.signal?.removeEventListener('abort', this.#onAbort);
      this.#onAbort = null;
    }
    // Detach from the run (never a cancel).
    void Promise.resolve(this.#source.return?.()).catch(() => {});
  }
}

/** One sentence as an SSE frame: `id:` is its index (resume with `afterIndex`), `event: sentence`. */
export function encodeSentenceSse(sentence: SentenceEvent): string {
  return `id: ${sentence.index}\nevent: sentence\ndata: ${JSON.stringify(sentence)}\n\n`;
}

/** One sentence as a JSON text frame (WebSocket): the event itself. */
export function encodeSentenceJson(sentence: SentenceEvent): string {
  return JSON.stringify(sentence);
}
