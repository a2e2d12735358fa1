/**
 * The action author's output API, compatible with Rasa SDK 3.17's `CollectingDispatcher`
 * streaming rules (`reference/rasa-sdk.md` §1c), with TypeScript names.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { Button, Citation, EventInput, RasaResponse, StreamEndReason } from '../protocol/events.ts';
import { newResponseId } from '../protocol/ids.ts';
import type { Logger } from './logger.ts';
import { silentLogger } from './logger.ts';
import type { Run } from './run.ts';

/** A chunk of a streamed message. `json` becomes the chunk's `custom`; other keys pass through. */
export interface ChunkInput {
  text?: string | null;
  image?: string | null;
  json?: Record<string, unknown> | null;
  attachment?: string | null;
  buttons?: Button[] | null;
  elements?: Record<string, unknown>[] | null;
  citations?: Citation[] | null;
  [key: string]: unknown;
}

/** A whole message, as Rasa's `utter_message` takes it. Other keys pass through. */
export interface MessageInput {
  text?: string | null;
  image?: string | null;
  json?: Record<string, unknown> | null;
  template?: string | null;
  response?: string | null;
  attachment?: string | null;
  buttons?: Button[] | null;
  elements?: Record<string, unknown>[] | null;
  [key: string]: unknown;
}

/** Where a dispatcher reports stream lifecycles (the executor's stream registry uses it). */
export interface StreamObserver {
  streamStarted(responseId: string, dispatcher: Dispatcher): void;
  streamEnded(responseId: string, seq: number): void;
}

/** Options of a {@link Dispatcher}. */
export interface DispatcherOptions {
  /**
   * The run that streamed output goes to. Without one the dispatcher collects (Rasa's
   * non-streaming path): each chunk is replayed as one message when its stream ends.
   */
  run?: Run;
  /** Action name, used in warnings and errors. */
  actionName?: string;
  /** Aborts when the run is cancelled; defaults to the run's signal. */
  signal?: AbortSignal;
  logger?: Logger;
  observer?: StreamObserver;
}

const FORBIDDEN_CHUNK_KEYS = ['template', 'response'];
const RESERVED_KEYS = new Set(['type', 'runId', 'seq', 'responseId']);
const NEVER = new AbortController().signal;

function invalid(message: string): SluiceError {
  return new SluiceError('invalid_argument', message, { details: { reason: 'invalid_output' } });
}

function checkString(method: string, key: string, value: unknown): void {
  if (typeof value !== 'string') throw invalid(`${method}: '${key}' must be a string (got ${typeof value})`);
}

function checkArray(method: string, key: string, value: unknown): void {
  if (!Array.isArray(value)) throw invalid(`${method}: '${key}' must be an array (got ${typeof value})`);
}

/**
 * Builds a chunk the way Rasa does: `text`/`image`/`attachment` when not null (an empty string is
 * kept), `json` → `custom` when it has keys, `buttons`/`elements`/`citations` when non-empty,
 * other keys as they are. Throws for `template`/`response` (use `utterMessage`).
 */
function buildChunk(input: ChunkInput, target: Record<string, unknown>): void {
  let forbidden: string[] | null = null;
  for (const key in input) {
    const value = input[key];
    switch (key) {
      case 'text':
      case 'image':
      case 'attachment':
        if (value !== undefined && value !== null) {
          checkString('streamChunk', key, value);
          target[key] = value;
        }
        break;
      case 'json':
        if (value !== undefined && value !== null) {
          if (typeof value !== 'object' || Array.isArray(value)) {
            throw invalid(`streamChunk: 'json' must be an object (got ${Array.isArray(value) ? 'array' : typeof value})`);
          }
          for (const _ in value) {
            target.custom = value;
            break;
          }
        }
        break;
      case 'buttons':
      case 'elements':
      case 'citations':
        if (value !== undefined && value !== null) {
          checkArray('streamChunk', key, value);
          if ((value as unknown[]).length > 0) target[key] = value;
        }
        break;
      case 'template':
      case 'response':
        (forbidden ??= []).push(key);
        break;
      default:
        if (RESERVED_KEYS.has(key)) throw invalid(`streamChunk: '${key}' is reserved and cannot be a chunk field`);
        target[key] = value;
    }
  }
  if (forbidden !== null) {
    throw invalid(
      `streamChunk() does not accept ${forbidden.map((k) => `'${k}'`).join(' or ')}: chunks are raw content; use utterMessage() for templated responses`,
    );
  }
}

/** Builds the dict Rasa's `utter_message` produces. */
export function buildMessage(input: MessageInput = {}): RasaResponse {
  const { text, image, json, template, response, attachment, buttons, elements, ...extra } = input;
  for (const [key, value] of [
    ['text', text],
    ['image', image],
    ['template', template],
    ['response', response],
    ['attachment', attachment],
  ] as const) {
    if (value !== undefined && value !== null) checkString('utterMessage', key, value);
  }
  if (buttons !== undefined && buttons !== null) checkArray('utterMessage', 'buttons', buttons);
  if (elements !== undefined && elements !== null) checkArray('utterMessage', 'elements', elements);
  return {
    text: text ?? null,
    buttons: buttons ?? [],
    elements: elements ?? [],
    custom: json ?? {},
    template: template ?? null,
    response: response ?? null,
    image: image ?? null,
    attachment: attachment ?? null,
    ...extra,
  };
}

/** A streamed message as it went out: where its start and end landed in the run. */
interface StreamRecord {
  responseId: string;
  startSeq: number;
  /** Seq of its `stream-end`; 0 while open. */
  endSeq: number;
}

/**
 * What an action uses to talk: whole messages (`utterMessage`), streamed messages
 * (`streamStart` / `streamChunk` / `streamEnd`), informative updates (`status`) and tool events.
 *
 * Rules (Rasa 3.17): a chunk without a start opens the stream; `template`/`response` in a chunk is
 * an error; after `cancelStream()` chunks are dropped silently and the action keeps running;
 * without a run, each chunk becomes one message when its stream ends. Beyond Rasa: a barge-in
 * (the run is cancelled) holds even if the action starts a new stream, `streamEnd()` with no open
 * stream does nothing, and {@link Dispatcher.signal} aborts so the action can stop its work.
 *
 * Backpressure: the asynchronous methods return a promise when the slowest reader lags; await it.
 * The synchronous ones (`utterMessage`, `cancelStream`, as in Rasa) never wait, but the next
 * asynchronous call waits for them.
 */
export class Dispatcher {
  /** Whole messages, in Rasa's response shape; they form the result's `responses`. */
  readonly messages: RasaResponse[] = [];
  /** Name of the action this dispatcher serves. */
  readonly actionName: string;

  #run: Run | undefined;
  #signal: AbortSignal;
  #logger: Logger;
  #observer: StreamObserver | undefined;
  #accumulated: Record<string, unknown>[] = [];
  #active = false;
  #cancelled = false;
  #bargedIn = false;
  #closed = false;
  #responseId: string | null = null;
  /** The current stream's end is on its way (or the stream never reached the wire). */
  #endSent = false;
  /** Streams whose end may still be unread, oldest first (bounded by the unread backlog). */
  #streams: StreamRecord[] = [];
  /** Backpressure left over from a synchronous emit, honoured by the next asynchronous one. */
  #pending: Promise<void> | undefined;
  /** Counts barge-ins, so a stream-end deferred before one is not sent after it. */
  #epoch = 0;

  constructor(options: DispatcherOptions = {}) {
    this.#run = options.run;
    this.actionName = options.actionName ?? options.run?.action ?? '';
    this.#signal = options.signal ?? options.run?.signal ?? NEVER;
    this.#logger = options.logger ?? silentLogger;
    this.#observer = options.observer;
    if (!this.#signal.aborted) this.#signal.addEventListener('abort', () => this.bargeIn(), { once: true });
    else this.bargeIn();
  }

  /** Aborts when the run is cancelled (barge-in, stop, timeout): pass it to models and tools. */
  get signal(): AbortSignal {
    return this.#signal;
  }

  /** True between a stream's start and its end (Rasa's `is_streaming_active`). */
  get isStreamingActive(): boolean {
    return this.#active;
  }

  /** True after `cancelStream()` or a barge-in (Rasa's `is_streaming_cancelled`). */
  get isStreamingCancelled(): boolean {
    return this.#cancelled;
  }

  /** Id of the open streamed message (32 hex), or null. */
  get responseId(): string | null {
    return this.#active ? this.#responseId : null;
  }

  /** True when output goes to a run as it is produced (false: collected and replayed). */
  get isStreaming(): boolean {
    return this.#run !== undefined;
  }

  /**
   * Sends a whole message. It is part of the result's `responses` and, when streaming, a live
   * `message` event. Synchronous like Rasa's; the returned promise (when the reader lags) may be awaited.
   */
  utterMessage(message: MessageInput = {}): Promise<void> | undefined {
    this.#checkOpen('utterMessage');
    const built = buildMessage(message);
    this.messages.push(built);
    return this.#run === undefined ? undefined : this.#sendNow({ type: 'message', message: built });
  }

  /**
   * Opens a streamed message (a new `responseId`). Starting again while one is open supersedes
   * it. After a barge-in this does nothing: the cancel holds.
   */
  streamStart(): Promise<void> | undefined {
    this.#checkOpen('streamStart');
    if (this.#bargedIn) return undefined;
    if (this.#run === undefined) {
      this.#accumulated = [];
      this.#cancelled = false;
      this.#active = true;
      return undefined;
    }
    if (this.#active) {
      const wait = this.#endStream('superseded');
      if (wait !== undefined) this.#pending = wait;
    }
    this.#cancelled = false;
    this.#active = true;
    this.#endSent = true; // until the start is on the wire
    const responseId = newResponseId();
    this.#responseId = responseId;
    const event: EventInput = { type: 'stream-start', responseId };
    return this.#send(event, () => {
      const run = this.#run as Run;
      if (run.log[run.log.length - 1] !== event) return; // dropped by a cancel meanwhile
      this.#prune(run);
      this.#streams.push({ responseId, startSeq: run.lastSeq, endSeq: 0 });
      if (this.#responseId === responseId) this.#endSent = false;
      this.#observer?.streamStarted(responseId, this);
    });
  }

  /** Sends one fragment of the open streamed message, opening one if needed. */
  streamChunk(chunk: ChunkInput): Promise<void> | undefined {
    this.#checkOpen('streamChunk');
    if (typeof chunk !== 'object' || chunk === null) throw invalid('streamChunk: expected an object like { text }');
    if (this.#run === undefined) {
      const payload: Record<string, unknown> = {};
      buildChunk(chunk, payload);
      if (this.#cancelled) return undefined;
      if (!this.#active) this.streamStart();
      this.#accumulated.push(payload);
      return undefined;
    }
    const event: Record<string, unknown> = { type: 'chunk', responseId: '' };
    buildChunk(chunk, event);
    if (this.#cancelled) return undefined;
    if (!this.#active) {
      const wait = this.streamStart();
      if (this.#cancelled) return wait;
      if (wait !== undefined) this.#pending = wait;
    }
    event.responseId = this.#responseId;
    return this.#send(event as unknown as EventInput);
  }

  /**
   * Ends the open streamed message. Without a run, each collected chunk becomes one message.
   * With no open stream this does nothing.
   */
  streamEnd(): Promise<void> | undefined {
    this.#checkOpen('streamEnd');
    return this.#close('completed');
  }

  /** Stops the open stream: later chunks are dropped silently until a new `streamStart()`. */
  cancelStream(): void {
    this.#checkOpen('cancelStream');
    this.#cancelled = true;
    if (this.#active && this.#run !== undefined) {
      const wait = this.#endStream('cancelled');
      if (wait !== undefined) this.#pending = wait;
    }
  }

  /** Sends an informative update such as "Searching documents…" (transient, streaming only). */
  status(text: string): Promise<void> | undefined {
    this.#checkOpen('status');
    checkString('status', 'text', text);
    return this.#run === undefined ? undefined : this.#send({ type: 'status', text });
  }

  /** Opens a tool call. */
  toolStart(toolCallId: string, name: string): Promise<void> | undefined {
    this.#checkOpen('toolStart');
    return this.#run === undefined ? undefined : this.#send({ type: 'tool-start', toolCallId, name });
  }

  /** Sends a fragment of a tool call's JSON arguments. */
  toolDelta(toolCallId: string, argsDelta: string): Promise<void> | undefined {
    this.#checkOpen('toolDelta');
    return this.#run === undefined ? undefined : this.#send({ type: 'tool-delta', toolCallId, argsDelta });
  }

  /** Announces a tool call with complete arguments. */
  toolCall(toolCallId: string, name: string, args: unknown): Promise<void> | undefined {
    this.#checkOpen('toolCall');
    return this.#run === undefined ? undefined : this.#send({ type: 'tool-call', toolCallId, name, args });
  }

  /** Reports a tool call's output, or its error as a public message. */
  toolResult(toolCallId: string, name: string, outcome: { output?: unknown; error?: string }): Promise<void> | undefined {
    this.#checkOpen('toolResult');
    if (this.#run === undefined) return undefined;
    const event: EventInput = { type: 'tool-result', toolCallId, name };
    if ('output' in outcome) event.output = outcome.output;
    if (outcome.error !== undefined) event.error = outcome.error;
    return this.#send(event);
  }

  /**
   * Barge-in, called when the run is cancelled (after it dropped its unread backlog): the cancel
   * holds for good (a restart does not undo it), and the one stream a reader may have seen open
   * gets its `stream-end` (reason `cancelled`) — never an end without a start.
   */
  bargeIn(): void {
    if (this.#bargedIn) return;
    this.#bargedIn = true;
    this.#epoch++;
    this.#cancelled = true;
    this.#endSent = true;
    const run = this.#run;
    // After the result, the run itself ends the streams a reader saw open (Run.cancelDelivery).
    if (run === undefined || run.hasTerminal) return;
    const kept = run.keptThrough;
    let open: StreamRecord | undefined;
    for (let i = this.#streams.length - 1; i >= 0; i--) {
      const record = this.#streams[i] as StreamRecord;
      if (record.startSeq <= kept) {
        if (record.endSeq === 0 || record.endSeq > kept) open = record;
        break;
      }
      this.#observer?.streamEnded(record.responseId, 0); // dropped whole: no reader saw it
    }
    this.#streams = open === undefined ? [] : [open];
    if (open !== undefined) {
      const record = open;
      record.endSeq = 0;
      this.#sendNow({ type: 'stream-end', responseId: record.responseId, reason: 'cancelled' }, () => this.#ended(record));
    }
  }

  /** @internal After the action returned: close a forgotten stream (with a warning). */
  autoClose(): Promise<void> | undefined {
    if (!this.#active) return undefined;
    if (this.#endSent && this.#run !== undefined) {
      // A cancel already closed it on the wire: nothing was forgotten.
      this.#active = false;
      return undefined;
    }
    this.#logger.warn(
      { action: this.actionName },
      `Action '${this.actionName}' called streamStart() / streamChunk() but never called streamEnd(). Closing the stream automatically.`,
    );
    return this.#close('auto-closed');
  }

  /** @internal Closes an open stream as the natural end of a generator action. */
  finishStream(): Promise<void> | undefined {
    return this.#close('completed');
  }

  /**
   * Ends the open streamed message with reason `error`, for an action that caught a failure
   * (e.g. its model broke off) and goes on: readers see the partial message end.
   */
  closeStreamOnError(): Promise<void> | undefined {
    if (!this.#active || this.#run === undefined) return undefined;
    this.#active = false;
    return this.#endStream('error');
  }

  /** @internal The run has ended: any later call is an error. */
  close(): void {
    this.#closed = true;
  }

  /** @internal Backpressure a synchronous call left behind, for the executor to honour. */
  get pending(): Promise<void> | undefined {
    return this.#pending;
  }

  #close(reason: StreamEndReason): Promise<void> | undefined {
    if (!this.#active) return undefined;
    let wait: Promise<void> | undefined;
    if (this.#run === undefined) {
      for (const chunk of this.#accumulated) {
        const { custom, ...rest } = chunk;
        this.messages.push(buildMessage(custom === undefined ? rest : { ...rest, json: custom as Record<string, unknown> }));
      }
    } else wait = this.#endStream(reason);
    this.#accumulated = [];
    this.#active = false;
    return wait;
  }

  #endStream(reason: StreamEndReason): Promise<void> | undefined {
    if (this.#endSent) return undefined;
    this.#endSent = true;
    const record = this.#streams[this.#streams.length - 1];
    if (record === undefined || record.responseId !== this.#responseId || record.endSeq !== 0) return undefined;
    return this.#send({ type: 'stream-end', responseId: record.responseId, reason }, () => this.#ended(record));
  }

  #ended(record: StreamRecord): void {
    const run = this.#run as Run;
    record.endSeq = run.lastSeq;
    this.#observer?.streamEnded(record.responseId, run.lastSeq);
  }

  /** Forgets streams whose end every reader already has. */
  #prune(run: Run): void {
    let drop = 0;
    while (drop < this.#streams.length) {
      const record = this.#streams[drop] as StreamRecord;
      if (record.endSeq === 0 || record.endSeq > run.deliveredHigh) break;
      drop++;
    }
    if (drop > 0) this.#streams.splice(0, drop);
  }

  /** Emits after any backpressure a synchronous call left behind. */
  #send(event: EventInput, onSent?: () => void): Promise<void> | undefined {
    const run = this.#run as Run;
    const pending = this.#pending;
    if (pending === undefined) {
      const wait = run.emit(event);
      onSent?.();
      return wait;
    }
    this.#pending = undefined;
    const epoch = this.#epoch;
    return pending.then(() => {
      // The barge-in already ended the stream a reader saw (or it was dropped whole).
      if (event.type === 'stream-end' && epoch !== this.#epoch) return undefined;
      const wait = run.emit(event);
      onSent?.();
      return wait;
    });
  }

  /** Emits at once (synchronous callers); the backpressure is left for the next asynchronous call. */
  #sendNow(event: EventInput, onSent?: () => void): Promise<void> | undefined {
    const wait = (this.#run as Run).emit(event);
    onSent?.();
    if (wait !== undefined) this.#pending = wait;
    return wait;
  }

  #checkOpen(method: string): void {
    if (this.#closed) {
      throw new SluiceError(
        'failed_precondition',
        `Action '${this.actionName}' called ${method}() after its run ended; output after the result is not delivered`,
        { details: { reason: 'emit_after_end', actionName: this.actionName } },
      );
    }
  }
}
