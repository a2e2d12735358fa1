/**
 * One WebSocket connection to `/ws` that reads one run: its messages, queued for an async reader.
 * @module
 */

import { SluiceError, isErrorCode } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import { toEvent } from './sse.ts';

/** What a connection hands its reader, in order. */
export type WsItem =
  | { kind: 'event'; event: SluiceEvent }
  | { kind: 'started'; runId: string }
  /** A server error about our command (a seq-less `error` message). */
  | { kind: 'refused'; error: SluiceError }
  /** The socket closed (or never opened); `error` says why when it was not a clean close. */
  | { kind: 'closed'; error: SluiceError };

/** The `WebSocket` constructor this module needs (the global one in browsers and Node ≥ 22). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

/** Options of {@link WsConnection}. */
export interface WsConnectionOptions {
  url: string;
  /** The server as errors name it (its base URL). */
  server: string;
  /** Sent once the socket is open. */
  command: Record<string, unknown>;
  WebSocket: WebSocketConstructor;
  /** Sent with the upgrade request; only Node's WebSocket can (browsers cannot set headers). */
  headers: Record<string, string>;
  /** Messages queued for the reader before the connection is dropped (to be resumed later). */
  maxBuffered: number;
  /** How long the socket may take to open. */
  connectTimeoutMs: number;
  /** Sees every item but events as it arrives, before the reader does (who may not be reading yet). */
  observe?: (item: WsItem) => void;
}

/**
 * A browser WebSocket cannot be paused, so the queue is bounded differently: once the reader is
 * `maxBuffered` messages behind, the connection is closed and the rest is dropped; the reader
 * resumes from the last seq it got, which the server replays from the run's log.
 */
export class WsConnection {
  readonly #socket: WebSocket;
  readonly #options: WsConnectionOptions;
  #queue: WsItem[] = [];
  #head = 0;
  #wake: (() => void) | null = null;
  #finished = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: WsConnectionOptions) {
    this.#options = options;
    let socket: WebSocket;
    try {
      socket =
        Object.keys(options.headers).length === 0
          ? new options.WebSocket(options.url)
          : // Node's (undici's) WebSocket takes headers in its second argument; browsers have none.
            new (options.WebSocket as unknown as new (url: string, init: { headers: Record<string, string> }) => WebSocket)(options.url, {
              headers: options.headers,
            });
    } catch (error) {
      throw new SluiceError('invalid_argument', `Cannot open a WebSocket to ${options.url}: ${(error as Error).message}`, { cause: error });
    }
    this.#socket = socket;
    this.#timer = setTimeout(() => {
      this.#finish(new SluiceError('unavailable', `cannot connect to ${options.server} (WebSocket: no answer within ${options.connectTimeoutMs} ms)`));
      socket.close();
    }, options.connectTimeoutMs);
    socket.addEventListener('open', () => {
      clearTimeout(this.#timer);
      socket.send(JSON.stringify(options.command));
    });
    socket.addEventListener('message', (message) => this.#onMessage(message.data));
    socket.addEventListener('error', () => {
      this.#finish(new SluiceError('unavailable', socket.readyState === 1 ? `The WebSocket to ${options.server} failed` : `cannot connect to ${options.server} (WebSocket)`));
    });
    socket.addEventListener('close', (event) => {
      this.#finish(new SluiceError('unavailable', `The WebSocket to ${options.server} closed (code ${event.code}${event.reason === '' ? '' : `: ${event.reason}`})`));
    });
  }

  #onMessage(data: unknown): void {
    if (this.#finished) return;
    let item: WsItem;
    try {
      const message = JSON.parse(String(data)) as Record<string, unknown>;
      if (typeof message.seq === 'number') item = { kind: 'event', event: toEvent(message) };
      else if (message.type === 'started' && typeof message.runId === 'string') item = { kind: 'started', runId: message.runId };
      else if (message.type === 'error') {
        const code = isErrorCode(message.code) ? message.code : 'internal';
        item = { kind: 'refused', error: new SluiceError(code, String(message.message ?? 'The server refused the command')) };
      } else return; // acked / cancelled replies to other clients' commands: not ours to read
    } catch (error) {
      item = { kind: 'refused', error: SluiceError.from(error, 'invalid_argument', `Malformed WebSocket message from ${this.#options.url}`) };
    }
    if (this.#queue.length - this.#head >= this.#options.maxBuffered) {
      this.#finish(new SluiceError('resource_exhausted', `more than ${this.#options.maxBuffered} messages waiting to be read`));
      return;
    }
    this.#push(item);
  }

  #push(item: WsItem): void {
    if (item.kind !== 'event') this.#options.observe?.(item);
    this.#queue.push(item);
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #finish(error: SluiceError): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    this.#push({ kind: 'closed', error });
    if (this.#socket.readyState <= 1) this.#socket.close(1000);
  }

  /** The next item; the last one is always `closed`. */
  async next(): Promise<WsItem> {
    while (this.#head === this.#queue.length) await new Promise<void>((resolve) => (this.#wake = resolve));
    const item = this.#queue[this.#head++] as WsItem;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Closes the socket; what is queued can still be read, then `closed`. */
  close(): void {
    this.#finish(new SluiceError('cancelled', 'closed by the client'));
  }
}
