/**
 * Test fixtures: a local HTTP server that behaves like the Bot Connector service for streaming
 * (201 with an id first, 202 after, the Teams protocol checks, 403 / 429 / 500 / slow on demand),
 * and an in-memory sender for pacing tests.
 */

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Activity, ActivitySender, Clock, SendResult } from '../../../src/channels/botframework/index.ts';
import { classifyConnectorResponse, getStreamInfo } from '../../../src/channels/botframework/index.ts';

/** One request the fake service received. */
export interface Received {
  index: number;
  method: string;
  path: string;
  conversationId: string;
  /** The activity id in the path (reply-to on POST, target on PUT). */
  pathActivityId: string | undefined;
  authorization: string | undefined;
  activity: Activity;
  /** Clock time at arrival. */
  at: number;
  status: number;
}

/** A reply the test imposes on a request. */
export interface Scripted {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Answer after this many real milliseconds. */
  delayMs?: number;
  /** Never answer (the request hangs until the client gives up). */
  hang?: boolean;
}

interface StreamState {
  lastSequence: number;
  lastText: string;
  completed: boolean;
}

export const STOPPED_BY_USER: Scripted = {
  status: 403,
  body: { error: { code: 'ContentStreamNotAllowed', message: 'Content stream was cancelled by user.' } },
};
export const TIME_EXCEEDED: Scripted = {
  status: 403,
  body: { error: { code: 'ContentStreamNotAllowed', message: 'Content stream finished due to exceeded streaming time.' } },
};
export const NOT_ALLOWED: Scripted = {
  status: 403,
  body: { error: { code: 'ContentStreamNotAllowed', message: 'Content stream is not allowed' } },
};
export const THROTTLED = (retryAfterSeconds?: number): Scripted => ({
  status: 429,
  body: { error: { code: 'Throttled', message: 'API calls quota exceeded' } },
  headers: retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) },
});
export const SERVER_ERROR: Scripted = { status: 500, body: { error: { code: 'ServiceError', message: 'Internal failure at node 7f3a (secret detail)' } } };

/**
 * A fake Bot Connector. Every activity is recorded; protocol breaches are recorded in
 * `violations` and answered like the service does (400 BadSyntax / 403).
 */
export class FakeConnector {
  readonly received: Received[] = [];
  readonly violations: string[] = [];
  /** Conversations that are group chats: streaming typing activities get 405. */
  readonly groupChats = new Set<string>();
  /** Decides the reply of a request before the normal behaviour (return undefined for normal). */
  onRequest: ((request: Received) => Scripted | undefined) | undefined;
  url = '';
  #server: Server;
  #clock: Clock | undefined;
  #script: Scripted[] = [];
  #streams = new Map<string, StreamState>();
  #ids = 0;
  #hanging = new Set<ServerResponse>();

  private constructor(clock?: Clock) {
    this.#clock = clock;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(options: { clock?: Clock } = {}): Promise<FakeConnector> {
    const fake = new FakeConnector(options.clock);
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.#server.address() as AddressInfo).port}/`;
    return fake;
  }

  /** Answers the next requests with these replies, in order. */
  script(...replies: Scripted[]): void {
    this.#script.push(...replies);
  }

  /** The activities received, in order. */
  activities(): Activity[] {
    return this.received.map((r) => r.activity);
  }

  /** Asserts the client kept the streaming protocol. */
  assertClean(): void {
    assert.deepEqual(this.violations, [], 'protocol violations');
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const match = /^\/v3\/conversations\/([^/]+)\/activities(?:\/([^/]+))?$/.exec(url.pathname);
    if (match === null) return this.#reply(res, { status: 404, body: { error: { code: 'NotFound', message: 'no route' } } });
    const activity = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Activity;
    const request: Received = {
      index: this.received.length,
      method: req.method ?? '',
      path: url.pathname,
      conversationId: decodeURIComponent(match[1]!),
      pathActivityId: match[2] === undefined ? undefined : decodeURIComponent(match[2]),
      authorization: req.headers.authorization,
      activity,
      at: this.#clock?.now() ?? performance.now(),
      status: 0,
    };
    this.received.push(request);
    const scripted = this.onRequest?.(request) ?? this.#script.shift() ?? this.#behave(request);
    request.status = scripted.status;
    if (scripted.hang) {
      this.#hanging.add(res);
      return;
    }
    if (scripted.delayMs !== undefined) await new Promise((r) => setTimeout(r, scripted.delayMs));
    this.#reply(res, scripted);
  }

  #reply(res: ServerResponse, reply: Scripted): void {
    if (res.destroyed) return;
    const body = reply.body === undefined ? '' : JSON.stringify(reply.body);
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    res.end(body);
  }

  #violation(text: string): void {
    this.violations.push(text);
  }

  /** The service's normal behaviour, with its protocol checks. */
  #behave(request: Received): Scripted {
    const { activity } = request;
    if (request.method === 'PUT') return { status: 200, body: { id: request.pathActivityId } };
    const messageEntities = (activity.entities ?? []).filter((e) => e.type === 'https://schema.org/Message');
    if (messageEntities.length > 1) {
      this.#violation(`#${request.index}: more than one root message entity`);
      return { status: 400, body: { error: { code: 'BadArgument', message: 'Activity contains multiple root message entities' } } };
    }
    const citations = (messageEntities[0]?.citation as unknown[] | undefined) ?? [];
    if (citations.length > 20) this.#violation(`#${request.index}: ${citations.length} citations (max 20)`);
    const info = getStreamInfo(activity);
    if (info === undefined) {
      if (activity.type === 'typing' && typeof activity.text === 'string' && activity.text !== '') {
        this.#violation(`#${request.index}: typing activity with text but no streaminfo`);
        return { status: 400, body: { error: { code: 'BadSyntax', message: 'Only start streaming and continue streaming types are allowed as a typing activity' } } };
      }
      if (activity.type === 'message' && !activity.text && !(activity.attachments?.length)) {
        this.#violation(`#${request.index}: message without text or attachments`);
      }
      return { status: 201, body: { id: `msg-${++this.#ids}` } };
    }
    if (this.groupChats.has(request.conversationId)) return { status: 405, body: { error: { code: 'MethodNotAllowed', message: 'Method Not Allowed' } } };
    const data = activity.channelData ?? {};
    for (const key of ['streamType', 'streamSequence', 'streamId'] as const) {
      if (data[key] !== info[key]) this.#violation(`#${request.index}: channelData.${key} (${String(data[key])}) ≠ entity (${String(info[key])})`);
    }
    if (!['informative', 'streaming', 'final'].includes(info.streamType)) {
      this.#violation(`#${request.index}: bad streamType ${String(info.streamType)}`);
    }
    const expectedType = info.streamType === 'final' ? 'message' : 'typing';
    if (activity.type !== expectedType) this.#violation(`#${request.index}: ${info.streamType} sent as ${activity.type}`);
    if (info.streamType === 'final' && info.streamSequence !== undefined) this.#violation(`#${request.index}: final carries streamSequence`);
    if (info.streamType !== 'final' && (typeof activity.text !== 'string' || activity.text === '')) {
      this.#violation(`#${request.index}: ${info.streamType} update without text`);
      return { status: 400, body: { error: { code: 'BadRequest', message: 'Start streaming activities should include text' } } };
    }
    if (info.streamId === undefined) {
      if (info.streamType === 'final') return { status: 201, body: { id: `msg-${++this.#ids}` } };
      if (info.streamSequence !== 1) this.#violation(`#${request.index}: first streamSequence is ${String(info.streamSequence)}`);
      const id = `stream-${++this.#ids}`;
      this.#streams.set(id, { lastSequence: info.streamSequence ?? 0, lastText: info.streamType === 'streaming' ? activity.text ?? '' : '', completed: false });
      return { status: 201, body: { id } };
    }
    const state = this.#streams.get(info.streamId);
    if (state === undefined) {
      this.#violation(`#${request.index}: unknown streamId ${info.streamId}`);
      return { status: 404, body: { error: { code: 'NotFound', message: 'stream not found' } } };
    }
    if (activity.id !== info.streamId) this.#violation(`#${request.index}: activity.id ≠ streamId`);
    if (state.completed) {
      return { status: 403, body: { error: { code: 'ContentStreamNotAllowed', message: 'Content stream is not allowed on an already completed streamed message' } } };
    }
    if (info.streamType === 'final') {
      state.completed = true;
      return { status: 202, body: {} };
    }
    if (info.streamSequence === undefined || info.streamSequence <= state.lastSequence) {
      this.#violation(`#${request.index}: streamSequence ${String(info.streamSequence)} after ${state.lastSequence}`);
    } else state.lastSequence = info.streamSequence;
    if (info.streamType === 'informative' && state.lastText !== '') this.#violation(`#${request.index}: informative update after text`);
    if (info.streamType === 'streaming') {
      const text = activity.text ?? '';
      if (!text.startsWith(state.lastText)) {
        this.#violation(`#${request.index}: streamed text does not contain the previous text`);
        return { status: 403, body: { error: { code: 'ContentStreamNotAllowed', message: 'Request streamed content should contain the previously streamed content' } } };
      }
      state.lastText = text;
    }
    return { status: 202, body: {} };
  }
}

/** One activity a {@link MemorySender} got. */
export interface Sent {
  activity: Activity;
  at: number;
  update: boolean;
}

/**
 * An in-memory sender: records activities with the clock time of the call, answers `{ id }` to
 * the first one, and fails or delays on demand (replies as a real sender would throw them).
 */
export class MemorySender implements ActivitySender {
  readonly sent: Sent[] = [];
  conversationType: string | undefined;
  streamingAllowed: boolean | undefined;
  /** Clock-time latency of each send (slept on the clock). */
  latencyMs = 0;
  #clock: Clock;
  #script: Scripted[] = [];
  #ids = 0;

  constructor(clock: Clock, options: { conversationType?: string } = {}) {
    this.#clock = clock;
    this.conversationType = options.conversationType;
  }

  script(...replies: Scripted[]): void {
    this.#script.push(...replies);
  }

  activities(): Activity[] {
    return this.sent.map((s) => s.activity);
  }

  async send(activity: Activity): Promise<SendResult> {
    return this.#record(activity, false);
  }

  async update(activity: Activity & { id: string }): Promise<void> {
    await this.#record(activity, true);
  }

  async #record(activity: Activity, update: boolean): Promise<SendResult> {
    this.sent.push({ activity: structuredClone(activity), at: this.#clock.now(), update });
    if (this.latencyMs > 0) await this.#clock.sleep(this.latencyMs);
    const scripted = this.#script.shift();
    if (scripted !== undefined && scripted.status >= 300) {
      throw classifyConnectorResponse(scripted.status, scripted.body, scripted.headers?.['retry-after']);
    }
    return this.#ids === 0 ? { id: `stream-${++this.#ids}` } : {};
  }
}

/** Asserts no two send starts are closer than `intervalMs`. */
export function assertPaced(times: number[], intervalMs: number): void {
  for (let i = 1; i < times.length; i++) {
    assert.ok(times[i]! - times[i - 1]! >= intervalMs - 1e-9, `sends ${i - 1} and ${i} are ${times[i]! - times[i - 1]!} ms apart (< ${intervalMs})`);
  }
}

/** Asserts at most `max` sends start in any window of `windowMs`. */
export function assertRate(times: number[], max: number, windowMs = 1000): void {
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    assert.ok(i - j + 1 <= max, `${i - j + 1} sends within ${windowMs} ms ending at ${times[i]}`);
  }
}
