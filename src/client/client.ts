/**
 * `SluiceClient`: starts runs on a Sluice server and reads their events, in browsers and Node.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import { retryPolicy, type RetryOptions } from './backoff.ts';
import { connectError, responseError } from './errors.ts';
import { ClientRun, type ReconnectInfo, type Transport } from './run.ts';
import type { WebSocketConstructor } from './websocket.ts';

/** Options of {@link SluiceClient}. */
export interface ClientOptions {
  /** The server, e.g. `http://127.0.0.1:5055` (default in a browser: the page's origin). */
  baseUrl?: string;
  /** Sent with every HTTP request (and, in Node only, the WebSocket upgrade: browsers cannot). */
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Default transport of {@link SluiceClient.start} (default `'sse'`). */
  transport?: Transport;
  /**
   * Start runs detached (default true): the run survives a dropped connection, so the client can
   * resume it, and goes on until it ends or is cancelled. With false, the server cancels a run
   * whose stream connection closes (a stopped reader stops the run).
   */
  resumable?: boolean;
  /** Resuming a dropped connection (default: 6 attempts, 200 ms doubling up to 5 s, with jitter). */
  retry?: RetryOptions;
  /** An SSE connection silent for this long is taken as dead and resumed (default 45 000 ms; the server pings every 15 s). */
  idleTimeoutMs?: number;
  /** How long opening a WebSocket, or a control request (ack, cancel), may take (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** WebSocket messages waiting to be read before the connection is dropped and later resumed (default 10 000). */
  maxBufferedEvents?: number;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** The `WebSocket` constructor to use (default: the global one). */
  WebSocket?: WebSocketConstructor;
}

/** Options of one run. */
export interface RunOptions {
  /** Overrides the client's transport. */
  transport?: Transport;
  /** Overrides the client's `resumable`. */
  resumable?: boolean;
  /** Stops reading (see {@link ClientRun} for what that does to the run). */
  signal?: AbortSignal;
  /** Called before each attempt to resume a dropped connection. */
  onReconnect?: (info: ReconnectInfo) => void;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`${name} must be a positive number (got ${String(value)})`);
  return value;
}

/**
 * A client of one Sluice server.
 *
 * @example
 * ```ts
 * const client = new SluiceClient({ baseUrl: 'http://127.0.0.1:5055' });
 * const run = client.start({ next_action: 'action_weather', tracker: { sender_id: 'me' } });
 * for await (const event of run) if (event.type === 'chunk') process.stdout.write(event.text ?? '');
 * ```
 */
export class SluiceClient {
  /** The server's base URL, without a trailing slash. */
  readonly baseUrl: string;
  readonly #options: ClientOptions;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #connectTimeoutMs: number;

  constructor(options: ClientOptions = {}) {
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    const base = options.baseUrl ?? origin;
    if (base === undefined) throw new TypeError('SluiceClient needs a baseUrl (there is no page origin to default to)');
    let url: URL;
    try {
      url = new URL(base, origin);
    } catch {
      throw new TypeError(`SluiceClient: baseUrl ${JSON.stringify(base)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`SluiceClient: baseUrl must be http(s) (got ${url.protocol})`);
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.#options = options;
    this.#headers = { ...options.headers };
    if (options.apiKey !== undefined) this.#headers.authorization = `Bearer ${options.apiKey}`;
    const f = options.fetch ?? globalThis.fetch;
    // Called unbound, a browser's fetch throws "Illegal invocation".
    this.#fetch = options.fetch === undefined ? (input, init) => f(input, init) : f;
    this.#connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? 10_000);
    retryPolicy(options.retry);
    positive('idleTimeoutMs', options.idleTimeoutMs ?? 45_000);
    positive('maxBufferedEvents', options.maxBufferedEvents ?? 10_000);
  }

  /**
   * Starts a run of a Rasa action call (`{ next_action, tracker, domain, … }`) and returns it at
   * once; iterate it for its events. A call the server refuses makes the iteration (and
   * `run.started`) throw the server's error, e.g. `not_found` for an unknown action.
   */
  start(call: unknown, options: RunOptions = {}): ClientRun {
    return this.#run({ call }, options);
  }

  /** Reads an existing run from after `after` (default 0: from its first event), e.g. after a page reload. */
  follow(runId: string, options: RunOptions & { after?: number } = {}): ClientRun {
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0) throw new TypeError(`after must be a seq, a non-negative integer (got ${String(after)})`);
    return this.#run({ runId, after }, options);
  }

  /** Stops a run: true when it was cancelled, false when it had already ended; `not_found` for an unknown run. */
  async cancel(runId: string, signal?: AbortSignal): Promise<boolean> {
    const response = await this.#control(`/runs/${encodeURIComponent(runId)}/cancel`, signal);
    if (response.status === 409) {
      await response.body?.cancel();
      return false;
    }
    if (!response.ok) throw await responseError(response, `Cannot cancel run ${runId}`);
    await response.body?.cancel();
    return true;
  }

  /** Barge-in on a streamed message (Rasa's AckStreamChunks): true when a live stream was found, and its run cancelled. */
  async ack(responseId: string, signal?: AbortSignal): Promise<boolean> {
    const response = await this.#control(`/streams/${encodeURIComponent(responseId)}/ack`, signal);
    if (!response.ok) throw await responseError(response, `Cannot acknowledge stream ${responseId}`);
    const body = (await response.json()) as { acknowledged?: unknown };
    return body.acknowledged === true;
  }

  async #control(path: string, signal: AbortSignal | undefined): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#connectTimeoutMs);
    try {
      return await this.#fetch(`${this.baseUrl}${path}`, {
        method: 'POST',
        headers: this.#headers,
        // A page that is closing can still stop its run (see the playground's pagehide).
        keepalive: true,
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      });
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason;
      if (timeout.aborted) throw new SluiceError('timeout', `${this.baseUrl}${path}: no answer within ${this.#connectTimeoutMs} ms`, { cause: error });
      throw connectError(this.baseUrl, error);
    }
  }

  #run(source: { call: unknown } | { runId: string; after: number }, options: RunOptions): ClientRun {
    const o = this.#options;
    const transport = options.transport ?? o.transport ?? 'sse';
    if (transport !== 'sse' && transport !== 'websocket') throw new TypeError(`transport must be 'sse' or 'websocket' (got ${JSON.stringify(transport)})`);
    return new ClientRun({
      baseUrl: this.baseUrl,
      headers: this.#headers,
      fetch: this.#fetch,
      WebSocket: o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket,
      transport,
      detach: options.resumable ?? o.resumable ?? true,
      retry: retryPolicy(o.retry),
      idleTimeoutMs: o.idleTimeoutMs ?? 45_000,
      connectTimeoutMs: this.#connectTimeoutMs,
      maxBufferedEvents: o.maxBufferedEvents ?? 10_000,
      control: { ack: (id) => this.ack(id), cancel: (id) => this.cancel(id) },
      signal: options.signal,
      onReconnect: options.onReconnect,
      source,
    });
  }
}
