/**
 * One run read by the client: its events as an async iterable, resumed after a dropped connection.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import { backoffDelay, sleep, type RetryPolicy } from './backoff.ts';
import { connectError, isRetryable, responseError } from './errors.ts';
import { SseEventDecoder } from './sse.ts';
import { WsConnection, type WebSocketConstructor } from './websocket.ts';

/** How a run is carried: Server-Sent Events over `fetch`, or a WebSocket on `/ws`. */
export type Transport = 'sse' | 'websocket';

/** Passed to `onReconnect` before each attempt to resume. */
export interface ReconnectInfo {
  runId: string;
  /** 1 for the first attempt after the connection dropped (or after events flowed again). */
  attempt: number;
  /** The back-off before this attempt. */
  delayMs: number;
  /** The seq the attempt resumes after. */
  lastSeq: number;
  /** Why the previous connection ended. */
  error: SluiceError;
}

/** The server calls a run needs besides its stream (shared with the client). */
export interface RunControl {
  ack(responseId: string): Promise<boolean>;
  cancel(runId: string): Promise<boolean>;
}

/** Everything a {@link ClientRun} needs; built by `SluiceClient`. */
export interface ClientRunInit {
  baseUrl: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
  WebSocket: WebSocketConstructor | undefined;
  transport: Transport;
  detach: boolean;
  retry: RetryPolicy;
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  maxBufferedEvents: number;
  control: RunControl;
  signal: AbortSignal | undefined;
  onReconnect: ((info: ReconnectInfo) => void) | undefined;
  /** A new run from this action call, or an existing run read after `after`. */
  source: { call: unknown } | { runId: string; after: number };
}

const RUN_ID_HEADER = 'x-sluice-run-id';

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/**
 * A run as the client reads it. Iterate it (once) with `for await` to get its typed events, from
 * `run-start` (or the resume point) to `run-end`; a dropped connection is resumed after the last
 * seq received, with exponential back-off and jitter, so the events have no gap and no duplicate.
 * When `retry.retries` attempts in a row fail, the iteration throws an `unavailable` SluiceError
 * (`details.reason: 'retries_exhausted'`).
 *
 * Stopping: leaving the loop or aborting the `signal` stops *reading* — a detached run (the
 * default, `resumable: true`) keeps going on the server and can be followed again; a run started
 * with `resumable: false` is cancelled by the server when its connection closes. {@link cancel}
 * stops the run itself (its final events still arrive on the stream); {@link ack} barges in on a
 * streamed message. The connection opens at once, before the first read: iterate the run or
 * cancel it rather than leave it.
 */
export class ClientRun implements AsyncIterable<SluiceEvent> {
  readonly #init: ClientRunInit;
  #runId: string | undefined;
  /** The seq of the last event handed to the reader. */
  #lastSeq = 0;
  /** The seq of the last event received (handed out, or waiting in the reader's batch): where a resume starts. */
  #receivedSeq = 0;
  #reconnects = 0;
  #iterated = false;
  readonly #openStreams = new Set<string>();
  /** The first connection, opened at once so that the run starts before anyone iterates. */
  readonly #first: Promise<Response> | WsConnection | SluiceError | null;
  #resolveStarted!: (runId: string) => void;
  #rejectStarted!: (error: unknown) => void;
  /** Resolves with the run id once the server has started the run (rejects if it did not). */
  readonly started: Promise<string>;

  constructor(init: ClientRunInit) {
    this.#init = init;
    this.started = new Promise<string>((resolve, reject) => {
      this.#resolveStarted = resolve;
      this.#rejectStarted = reject;
    });
    // Nobody has to await it: a failed start is also thrown by the iteration.
    this.started.catch(() => {});
    if ('runId' in init.source) {
      this.#runId = init.source.runId;
      this.#lastSeq = init.source.after;
      this.#receivedSeq = init.source.after;
      this.#resolveStarted(init.source.runId);
    }
    this.#first = this.#openFirst();
  }

  /** The run's id, once the server has said it (see {@link started}). */
  get runId(): string | undefined {
    return this.#runId;
  }

  /** The seq of the last event handed to the reader: `follow(runId, { after: lastSeq })` reads on from there. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** How many times the client tried to resume this run after a dropped connection. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Streamed messages started and not yet ended, oldest first (the last one is what {@link ack} targets). */
  get openStreams(): string[] {
    return [...this.#openStreams];
  }

  /** Stops the run on the server (`POST /runs/:id/cancel`); false when it had already ended or never started. */
  async cancel(): Promise<boolean> {
    let runId: string | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.#init.connectTimeoutMs);
    });
    try {
      runId = await Promise.race([this.started, timeout]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
    if (runId === undefined) {
      throw new SluiceError('timeout', `Cannot cancel: the server did not say which run it started within ${this.#init.connectTimeoutMs} ms`);
    }
    return this.#init.control.cancel(runId);
  }

  /**
   * Barge-in: acknowledges a streamed message (default: the newest open one), which cancels the
   * run. False when the server found no live stream to acknowledge, or there was none open.
   */
  ack(responseId?: string): Promise<boolean> {
    const target = responseId ?? this.openStreams.at(-1);
    return target === undefined ? Promise.resolve(false) : this.#init.control.ack(target);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<SluiceEvent> {
    if (this.#iterated) throw new TypeError('A ClientRun can be iterated once');
    this.#iterated = true;
    return new EventIterator(this.#init.transport === 'websocket' ? this.#readWs() : this.#readSse(), this.#init.signal, (event) => this.#handOut(event));
  }

  #openFirst(): Promise<Response> | WsConnection | SluiceError | null {
    const { source, transport } = this.#init;
    try {
      if (transport === 'websocket') {
        return this.#connectWs('runId' in source ? { type: 'resume', runId: source.runId, after: source.after } : { type: 'start', id: 'start', call: source.call, detach: this.#init.detach });
      }
      const first = 'runId' in source ? this.#getEvents(source.runId) : this.#post(source.call);
      first.catch(() => {});
      return first;
    } catch (error) {
      const failure = SluiceError.from(error);
      this.#rejectStarted(failure);
      return failure;
    }
  }

  #setRunId(runId: string): void {
    if (this.#runId !== undefined) return;
    this.#runId = runId;
    this.#resolveStarted(runId);
  }

  /**
   * The events of `received` that are new, in order (a resumed connection may repeat some); throws
   * `out_of_range` when one is missing. Returns `received` itself when all are new.
   */
  #admit(received: SluiceEvent[]): SluiceEvent[] {
    let start = 0;
    while (start < received.length && (received[start] as SluiceEvent).seq <= this.#receivedSeq) start++;
    const events = start === 0 ? received : received.slice(start);
    for (const event of events) {
      if (event.seq !== this.#receivedSeq + 1) {
        throw new SluiceError('out_of_range', `Event ${event.seq} of run ${event.runId} came after ${this.#receivedSeq}: events were lost or reordered`);
      }
      this.#receivedSeq = event.seq;
    }
    return events;
  }

  /** Bookkeeping for an event as the reader gets it. */
  #handOut(event: SluiceEvent): void {
    this.#lastSeq = event.seq;
    if (event.type === 'stream-start') this.#openStreams.add(event.responseId);
    else if (event.type === 'stream-end') this.#openStreams.delete(event.responseId);
  }

  /** Waits before the next attempt; throws when no attempt is left or nothing can be resumed. */
  async #backOff(attempt: number, failure: SluiceError): Promise<void> {
    const { retry, signal } = this.#init;
    if (signal?.aborted === true) throw signal.reason;
    const runId = this.#runId;
    // A start that never said which run it started cannot be resumed (and is not sent twice).
    if (runId === undefined || !isRetryable(failure)) throw failure;
    if (attempt > retry.retries) {
      throw new SluiceError(
        'unavailable',
        `Lost the connection to run ${runId} at ${this.#init.baseUrl}; ${retry.retries} attempts to resume after seq ${this.#receivedSeq} failed (last: ${failure.message})`,
        { cause: failure, details: { reason: 'retries_exhausted', runId, lastSeq: this.#receivedSeq } },
      );
    }
    const delayMs = backoffDelay(retry, attempt);
    this.#reconnects++;
    this.#init.onReconnect?.({ runId, attempt, delayMs, lastSeq: this.#receivedSeq, error: failure });
    await sleep(delayMs, signal);
  }

  // -------------------------------------------------------------------------------------------
  // Server-Sent Events

  /**
   * `fetch` that gives up when the response headers take longer than `connectTimeoutMs` (Sluice
   * sends them at once); the body then streams for as long as the run lasts.
   */
  async #fetch(url: string, init: RequestInit): Promise<Response> {
    const { signal, connectTimeoutMs } = this.#init;
    const connecting = new AbortController();
    const timer = setTimeout(
      () => connecting.abort(new SluiceError('timeout', `no answer from ${this.#init.baseUrl} within ${connectTimeoutMs} ms`, { details: { retryable: true } })),
      connectTimeoutMs,
    );
    try {
      return await this.#init.fetch(url, { ...init, signal: signal === undefined ? connecting.signal : AbortSignal.any([signal, connecting.signal]) });
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason;
      throw connecting.signal.aborted ? connecting.signal.reason : connectError(this.#init.baseUrl, error);
    } finally {
      clearTimeout(timer);
    }
  }

  async #post(call: unknown): Promise<Response> {
    const { baseUrl, headers, detach } = this.#init;
    let response: Response;
    try {
      response = await this.#fetch(`${baseUrl}/webhook/stream${detach ? '?detach=true' : ''}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify(call),
      });
    } catch (failure) {
      this.#rejectStarted(failure);
      throw failure;
    }
    const runId = response.headers.get(RUN_ID_HEADER);
    if (!response.ok || response.body === null || runId === null) {
      const failure = response.ok
        ? new SluiceError('unavailable', `${baseUrl}/webhook/stream answered without a stream (no ${RUN_ID_HEADER} header): is it a Sluice server?`)
        : await responseError(response, 'The server refused the call');
      // A refused call is final: sending it again would get the same answer.
      failure.details.retryable = false;
      this.#rejectStarted(failure);
      throw failure;
    }
    this.#setRunId(runId);
    return response;
  }

  async #getEvents(runId: string): Promise<Response> {
    const { baseUrl, headers } = this.#init;
    const response = await this.#fetch(`${baseUrl}/runs/${encodeURIComponent(runId)}/events`, {
      headers: { ...headers, accept: 'text/event-stream', 'last-event-id': String(this.#receivedSeq) },
    });
    if (!response.ok || response.body === null) throw await responseError(response, `Cannot resume run ${runId}`);
    return response;
  }

  async *#readSse(): AsyncGenerator<SluiceEvent[]> {
    const { signal, idleTimeoutMs } = this.#init;
    if (SluiceError.isInstance(this.#first)) throw this.#first;
    let response: Response | null = await (this.#first as Promise<Response>);
    let failure = new SluiceError('unavailable', 'not connected');
    let attempt = 0;
    for (;;) {
      if (response !== null) {
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        const decoder = new SseEventDecoder();
        /** When the pending read began; null while the reader is busy with events (not the network's fault). */
        let waitingSince: number | null = null;
        let idle = false;
        // Sluice sends `: ping` comments while a run is quiet; silence longer than this is a dead connection.
        const watchdog = setInterval(
          () => {
            if (waitingSince === null || Date.now() - waitingSince <= idleTimeoutMs) return;
            idle = true;
            void reader.cancel().catch(() => {});
          },
          Math.max(20, idleTimeoutMs / 4),
        );
        (watchdog as { unref?: () => void }).unref?.();
        try {
          for (;;) {
            let step: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;
            waitingSince = Date.now();
            try {
              step = await reader.read();
            } catch (error) {
              if (signal?.aborted === true) throw signal.reason;
              failure = new SluiceError('unavailable', `The stream of run ${this.#runId} broke off (${(error as Error).message})`, { cause: error });
              break;
            }
            if (step.done) {
              failure = new SluiceError(
                'unavailable',
                idle ? `No data from the server for ${idleTimeoutMs} ms` : `The stream of run ${this.#runId} ended before its run-end`,
              );
              break;
            }
            waitingSince = null;
            const events = this.#admit(decoder.feed(step.value));
            if (events.length === 0) continue;
            attempt = 0;
            yield events;
            if ((events[events.length - 1] as SluiceEvent).type === 'run-end') return;
          }
        } finally {
          clearInterval(watchdog);
          // Hangs up when the reader left early; harmless after the end.
          void reader.cancel().catch(() => {});
        }
      }
      await this.#backOff(++attempt, failure);
      try {
        response = await this.#getEvents(this.#runId as string);
      } catch (error) {
        if (signal?.aborted === true) throw signal.reason;
        failure = SluiceError.from(error);
        response = null;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // WebSocket

  #connectWs(command: Record<string, unknown>): WsConnection {
    const { WebSocket, baseUrl } = this.#init;
    if (WebSocket === undefined) throw new SluiceError('unimplemented', 'No WebSocket here: pass one in the client options (e.g. from the ws package)');
    return new WsConnection({
      url: `${baseUrl.replace(/^http/, 'ws')}/ws`,
      server: baseUrl,
      command,
      WebSocket,
      headers: this.#init.headers,
      maxBuffered: this.#init.maxBufferedEvents,
      connectTimeoutMs: this.#init.connectTimeoutMs,
      // `started` settles even when nobody reads the run (yet).
      observe: (item) => {
        if (item.kind === 'started') this.#setRunId(item.runId);
        else if (item.kind !== 'event' && this.#runId === undefined) this.#rejectStarted(item.error);
      },
    });
  }

  async *#readWs(): AsyncGenerator<SluiceEvent[]> {
    const { signal } = this.#init;
    if (SluiceError.isInstance(this.#first)) throw this.#first;
    let connection: WsConnection | null = this.#first as WsConnection;
    if (signal?.aborted === true) {
      connection.close();
      throw signal.reason;
    }
    const onAbort = (): void => connection?.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    let failure = new SluiceError('unavailable', 'not connected');
    let attempt = 0;
    try {
      for (;;) {
        if (connection !== null) {
          try {
            for (;;) {
              const item = await connection.next();
              if (item.kind === 'event') {
                if (this.#admit([item.event]).length === 0) continue;
                attempt = 0;
                yield [item.event];
                if (item.event.type === 'run-end') return;
              } else if (item.kind === 'started') this.#setRunId(item.runId);
              else if (item.kind === 'refused') {
                item.error.details.retryable = false;
                throw item.error;
              } else {
                // Narrowed by the check above, but the signal may have aborted since.
                if (isAborted(signal)) throw (signal as AbortSignal).reason;
                failure = item.error;
                break;
              }
            }
          } catch (error) {
            this.#rejectStarted(error);
            throw error;
          } finally {
            connection.close();
          }
        }
        if (this.#runId === undefined) {
          this.#rejectStarted(failure);
          throw failure;
        }
        await this.#backOff(++attempt, failure);
        try {
          connection = this.#connectWs({ type: 'resume', runId: this.#runId, after: this.#receivedSeq });
        } catch (error) {
          failure = SluiceError.from(error);
          connection = null;
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * Hands out the events of a batch generator one at a time. Each network read gives a batch; the
 * events of a batch go out without another trip through the generator, which is what keeps the
 * client's cost per event close to a bare parser's.
 */
class EventIterator implements AsyncIterableIterator<SluiceEvent> {
  readonly #batches: AsyncGenerator<SluiceEvent[]>;
  readonly #signal: AbortSignal | undefined;
  readonly #handOut: (event: SluiceEvent) => void;
  #batch: SluiceEvent[] = [];
  #index = 0;

  constructor(batches: AsyncGenerator<SluiceEvent[]>, signal: AbortSignal | undefined, handOut: (event: SluiceEvent) => void) {
    this.#batches = batches;
    this.#signal = signal;
    this.#handOut = handOut;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<SluiceEvent> {
    return this;
  }

  next(): Promise<IteratorResult<SluiceEvent>> {
    if (this.#index < this.#batch.length) {
      // Events already received are not handed out once the reader aborted.
      if (this.#signal?.aborted === true) return this.#stop(this.#signal.reason);
      const event = this.#batch[this.#index++] as SluiceEvent;
      this.#handOut(event);
      return Promise.resolve({ value: event, done: false });
    }
    return this.#pull();
  }

  async #pull(): Promise<IteratorResult<SluiceEvent>> {
    for (;;) {
      const step = await this.#batches.next();
      if (step.done === true) return { value: undefined, done: true };
      if (step.value.length === 0) continue;
      this.#batch = step.value;
      this.#index = 1;
      const event = step.value[0] as SluiceEvent;
      this.#handOut(event);
      return { value: event, done: false };
    }
  }

  async #stop(reason: unknown): Promise<never> {
    this.#batch = [];
    await this.#batches.return([]);
    throw reason;
  }

  async return(): Promise<IteratorResult<SluiceEvent>> {
    this.#batch = [];
    await this.#batches.return([]);
    return { value: undefined, done: true };
  }
}
