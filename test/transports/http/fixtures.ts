/**
 * Shared fixtures of the HTTP transport tests: inline test actions, a real server on 127.0.0.1
 * port 0, and raw HTTP / SSE / WebSocket clients.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { FastifyInstance } from 'fastify';
import { actionRejected, defineAction, type ActionDefinition } from '../../../src/runtime/action.ts';
import { ActionExecutor, type ExecutorOptions } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { createHttpServer, type HttpServerOptions } from '../../../src/transports/http/index.ts';

/** What the test actions report about themselves, per sender id. */
export class Probe {
  /** Senders whose action saw its signal abort. */
  readonly aborted = new Set<string>();
  /** Senders whose action returned normally. */
  readonly finished = new Set<string>();
  /** Chunks emitted so far, per sender (`action_many`). */
  readonly emitted = new Map<string, number>();
}

function slot<T>(tracker: { getSlot(name: string): unknown }, name: string, fallback: T): T {
  const value = tracker.getSlot(name);
  return value === null ? fallback : (value as T);
}

/** The test actions, reporting to `probe`. */
export function createActions(probe: Probe): ActionDefinition[] {
  return [
    defineAction({
      name: 'action_hello',
      run(dispatcher) {
        dispatcher.utterMessage({ text: 'Hello' });
        return [slotSet('greeted', true)];
      },
    }),
    defineAction({
      name: 'action_stream',
      async *stream() {
        yield 'one ';
        yield 'two ';
        yield 'three';
        return [slotSet('streamed', true)];
      },
    }),
    defineAction({
      name: 'action_reject',
      run() {
        throw actionRejected('action_reject');
      },
    }),
    defineAction({
      name: 'action_boom',
      run() {
        throw new Error('test exception');
      },
    }),
    defineAction({
      name: 'action_boom_stream',
      async *stream() {
        yield 'before boom';
        throw new Error('action exploded');
      },
    }),
    // `count` chunks (default 1000), one every `interval_ms` (default 10); records an abort.
    defineAction({
      name: 'action_ticker',
      async *stream({ tracker, signal }) {
        const count = slot(tracker, 'count', 1000);
        const interval = slot(tracker, 'interval_ms', 10);
        try {
          for (let i = 0; i < count; i++) {
            await sleep(interval, undefined, { signal });
            yield `tick ${i} `;
          }
        } catch (error) {
          if (signal.aborted) probe.aborted.add(tracker.senderId);
          throw error;
        }
        probe.finished.add(tracker.senderId);
        return [slotSet('ticks', count)];
      },
    }),
    // One chunk, then waits for a barge-in (or 5 s); later chunks are dropped; returns its events.
    defineAction({
      name: 'action_wait',
      async run(dispatcher, tracker, _domain, { signal }) {
        await dispatcher.streamStart();
        await dispatcher.streamChunk({ text: 'first' });
        await sleep(5000, undefined, { signal }).catch(() => {
          probe.aborted.add(tracker.senderId);
        });
        await dispatcher.streamChunk({ text: 'late' });
        await dispatcher.streamEnd();
        probe.finished.add(tracker.senderId);
        return [slotSet('interrupted', signal.aborted)];
      },
    }),
    // `count` chunks of `size` characters (defaults 2000 × 100) as fast as backpressure allows.
    defineAction({
      name: 'action_many',
      async *stream({ tracker }) {
        const count = slot(tracker, 'count', 2000);
        const text = 'x'.repeat(slot(tracker, 'size', 100));
        for (let i = 0; i < count; i++) {
          probe.emitted.set(tracker.senderId, i + 1);
          yield text;
        }
        probe.finished.add(tracker.senderId);
      },
    }),
    // Ignores barge-in: one chunk, then 1.5 s of work it does not interrupt.
    defineAction({
      name: 'action_stubborn',
      async run(dispatcher) {
        await dispatcher.streamChunk({ text: 'stubborn' });
        await sleep(1500);
        return [slotSet('stubborn', true)];
      },
    }),
    defineAction({
      name: 'action_bigint',
      async *stream() {
        yield { text: 'big', json: { n: 1n } };
      },
    }),
  ];
}

/** A Rasa action call. */
export function call(
  name: string | null,
  options: { sender?: string; slots?: Record<string, unknown>; [key: string]: unknown } = {},
): Record<string, unknown> {
  const { sender = 'user-1', slots = {}, ...extra } = options;
  return {
    next_action: name,
    sender_id: sender,
    tracker: { sender_id: sender, slots, latest_message: { text: 'hi' }, events: [], paused: false },
    domain: { version: '3.1', slots: {} },
    version: '3.17.0',
    ...extra,
  };
}

/** A running test server. */
export interface TestServer {
  app: FastifyInstance;
  executor: ActionExecutor;
  probe: Probe;
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Asserts that no run is left, then closes the server (and the executor). */
  close(): Promise<void>;
}

/** Starts a real server on 127.0.0.1, port 0. */
export async function startServer(
  options: { server?: Omit<Partial<HttpServerOptions>, 'executor'>; executor?: ExecutorOptions } = {},
): Promise<TestServer> {
  const probe = new Probe();
  const executor = new ActionExecutor({
    logger: silentLogger,
    bargeInTimeoutSeconds: 0.5,
    // Rasa's bodies carry the action's error text (and the request): these tests check that, so
    // exposure is on; limits.test.ts checks the redacted default.
    exposeActionErrors: true,
    actions: createActions(probe),
    ...options.executor,
  });
  const app = createHttpServer({ executor, logger: false, ...options.server });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const port = Number(new URL(url).port);
  return {
    app,
    executor,
    probe,
    url,
    port,
    async close() {
      try {
        await assertSettled(executor);
      } finally {
        // Even after a failed test: nothing may keep the process alive.
        await executor.close();
        await app.close();
      }
    },
  };
}

/** Polls until `condition` holds (fails the test after `timeoutMs`). */
export async function waitFor(condition: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Asserts that no run and no stream is left (waiting a little for cancelled runs to close). */
export async function assertSettled(executor: ActionExecutor): Promise<void> {
  await waitFor(() => executor.activeRuns === 0, 3000, `activeRuns === 0 (is ${executor.activeRuns})`);
  assert.equal(executor.activeStreams, 0, 'activeStreams');
}

/** `fetch` with a JSON body. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? (body as RequestInit['body']) : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

/** A parsed SSE frame. */
export interface SseFrame {
  id: string | undefined;
  event: string | undefined;
  data: any;
}

/** A raw SSE response read with `node:http`: every byte is kept in `text`. */
export class SseStream {
  readonly req: http.ClientRequest;
  readonly res: http.IncomingMessage;
  text = '';
  /** Resolves when the response ended or closed. */
  readonly ended: Promise<void>;
  #listeners = new Set<() => void>();

  constructor(req: http.ClientRequest, res: http.IncomingMessage) {
    this.req = req;
    this.res = res;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.text += chunk;
      for (const listener of this.#listeners) listener();
    });
    this.ended = new Promise((resolve) => {
      res.on('end', resolve);
      res.on('close', resolve);
      res.on('error', () => resolve());
    });
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  /** Complete frames received so far (comments skipped). */
  frames(): SseFrame[] {
    const out: SseFrame[] = [];
    const blocks = this.text.split('\n\n');
    blocks.pop();
    for (const block of blocks) {
      const frame: SseFrame = { id: undefined, event: undefined, data: undefined };
      let isEvent = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        isEvent = true;
        const colon = line.indexOf(':');
        const field = line.slice(0, colon);
        const value = line.slice(colon + 2);
        if (field === 'id') frame.id = value;
        else if (field === 'event') frame.event = value;
        else if (field === 'data') frame.data = JSON.parse(value);
      }
      if (isEvent) out.push(frame);
    }
    return out;
  }

  /** Event types received so far. */
  types(): string[] {
    return this.frames().map((f) => f.event ?? '');
  }

  /** Waits until `condition` holds on what was received. */
  async until(condition: (stream: SseStream) => boolean, timeoutMs = 3000): Promise<void> {
    if (condition(this)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(new Error(`SSE: timed out; received so far:\n${this.text}`));
      }, timeoutMs);
      const check = (): void => {
        if (!condition(this)) return;
        clearTimeout(timer);
        this.#listeners.delete(check);
        resolve();
      };
      this.#listeners.add(check);
      void this.ended.then(() => {
        if (this.#listeners.has(check)) {
          clearTimeout(timer);
          this.#listeners.delete(check);
          if (condition(this)) resolve();
          else reject(new Error(`SSE: stream ended; received:\n${this.text}`));
        }
      });
    });
  }

  /** Waits for the whole response. */
  async done(): Promise<SseFrame[]> {
    await this.ended;
    return this.frames();
  }

  /** Hangs up (a disconnect). */
  destroy(): void {
    this.req.destroy();
  }
}

/** Opens an HTTP request with `node:http` and resolves once the response headers arrived. */
export function openSse(
  url: string,
  options: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = http.request(url, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      agent: false,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }),
        ...options.headers,
      },
    });
    req.on('response', (res) => resolve(new SseStream(req, res)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A WebSocket test client that collects every message. */
export class WsClient {
  readonly socket: WebSocket;
  readonly messages: any[] = [];
  readonly closed: Promise<number>;
  #listeners = new Set<() => void>();

  constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)));
      for (const listener of this.#listeners) listener();
    });
    this.closed = new Promise((resolve) => socket.on('close', (code) => resolve(code)));
  }

  static async connect(url: string): Promise<WsClient> {
    const socket = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { perMessageDeflate: false });
    const client = new WsClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return client;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Messages of a run (events carry its runId; `started` too). */
  ofRun(runId: string): any[] {
    return this.messages.filter((m) => m.runId === runId && typeof m.seq === 'number');
  }

  /** Waits for a message matching `predicate` and returns it. */
  async next(predicate: (message: any) => boolean, timeoutMs = 3000): Promise<any> {
    const found = this.messages.find(predicate);
    if (found !== undefined) return found;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(new Error(`WS: timed out; received:\n${this.messages.map((m) => JSON.stringify(m)).join('\n')}`));
      }, timeoutMs);
      const check = (): void => {
        const match = this.messages.find(predicate);
        if (match === undefined) return;
        clearTimeout(timer);
        this.#listeners.delete(check);
        resolve(match);
      };
      this.#listeners.add(check);
    });
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.closed;
  }
}
