/**
 * One adapter per wire: each runs a scenario's call the way a real client of that wire would,
 * performs the barge-in when the scenario asks for it, checks the wire's own invariants (gap-free
 * seq, 32-hex response ids that chunks actually carry, the run id header…), and returns a
 * normalized {@link Transcript}.
 */

import assert from 'node:assert/strict';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { WebSocket } from 'ws';
import { readSseEvents } from '../../src/client/sse.ts';
import { SluiceError } from '../../src/protocol/errors.ts';
import { parseEvent } from '../../src/protocol/schemas.ts';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { isResponseId } from '../../src/protocol/ids.ts';
import { ActionExecutor, type ExecutorOptions } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { connectRedisRuns, type RedisRuns } from '../../src/stores/redis-runs.ts';
import { createGrpcServer } from '../../src/transports/grpc/index.ts';
import { ActionService, type WebhookRequestSchema, type WebhookStreamEvent } from '../../src/transports/grpc/gen/action_webhook_pb.ts';
import { createHttpServer } from '../../src/transports/http/index.ts';
import { compress, grpcChunk, type Transcript, type WireName } from './expectations.ts';
import { BARGE_IN_TIMEOUT_SECONDS, createActions, type ChunkPayload, type Probe, type ResultShape, type Scenario } from './scenarios.ts';

/** One instance: an executor behind one HTTP and one gRPC server. */
export interface Instance {
  executor: ActionExecutor;
  /** `http://127.0.0.1:<port>` */
  httpUrl: string;
  grpc: Client<typeof ActionService>;
}

/** A running {@link Instance}; `close` stops it (its executor, servers and Redis connection). */
export interface ServedInstance extends Instance {
  /** The instance's own Redis connection (the Redis mode). */
  shared?: RedisRuns;
  close(): Promise<void>;
}

/**
 * Starts an instance serving the scenario actions, reporting to `probe`: an executor with Rasa's
 * behaviour (the scenarios expect it: action error text reaches the client) behind an HTTP and a
 * gRPC server on loopback. With `redis`, the executor runs in the Redis mode on its own connection
 * (`connectRedisRuns`), so instances given the same url and prefix share their runs. `run`: the
 * buffer settings of its runs, and of its copies of runs produced elsewhere.
 */
export async function serveInstance(
  probe: Probe,
  options: { redis?: { url: string; prefix: string }; run?: ExecutorOptions['run'] } = {},
): Promise<ServedInstance> {
  const { redis, run } = options;
  const shared = redis === undefined ? undefined : await connectRedisRuns({ ...redis, run, logger: silentLogger });
  const executor = new ActionExecutor({
    logger: silentLogger,
    actions: createActions(probe),
    bargeInTimeoutSeconds: BARGE_IN_TIMEOUT_SECONDS,
    exposeActionErrors: true,
    shared,
    run,
  });
  const http = createHttpServer({ executor, logger: false });
  const grpc = createGrpcServer({ executor, logger: silentLogger });
  const close = async (): Promise<void> => {
    await executor.close();
    await Promise.all([grpc.close(), http.close()]);
    await shared?.close();
  };
  try {
    const httpUrl = await http.listen({ port: 0, host: '127.0.0.1' });
    const { port } = await grpc.listen(0, '127.0.0.1');
    const client = createClient(ActionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    return { executor, httpUrl, grpc: client, shared, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/** What every adapter may use: the instance the call starts on, and the scenarios' probe. */
export interface WireContext extends Instance {
  probe: Probe;
  /**
   * Cross-instance pairs: a second instance sharing the first one's Redis, where the client's other
   * half goes (it reads the run and sends the barge-in ack there); the call still starts on the
   * first one. Only wires with `pairs` read it.
   */
  peer?: Instance;
}

/** One run of a scenario on a wire. */
interface Call {
  scenario: Scenario;
  sender: string;
  call: Record<string, unknown>;
  ctx: WireContext;
}

export interface Wire {
  name: WireName;
  /** The wire has a half a client may send to another instance: given `ctx.peer`, it goes there. */
  pairs?: boolean;
  run(call: Call): Promise<Transcript>;
}

/** Waits (briefly) until the executor has no live run and no ackable stream; the caller asserts. */
export async function settle(executor: ActionExecutor, withinMs = 2_000): Promise<void> {
  const until = Date.now() + withinMs;
  while ((executor.activeRuns !== 0 || executor.activeStreams !== 0) && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs `scenario` on `wire`; for a barge-in, adds what the action saw once its run has ended. */
export async function runScenario(wire: Wire, scenario: Scenario, ctx: WireContext, sender: string, call: Record<string, unknown>): Promise<Transcript> {
  const transcript = await wire.run({ scenario, sender, call, ctx });
  if (scenario.bargeIn !== undefined) {
    // A client that hung up returns before the server has finished with the run.
    await settle(ctx.executor);
    const saw = ctx.probe.actionSawCancel(sender);
    if (saw !== undefined) transcript.actionSawCancel = saw;
  }
  return transcript;
}

/** After the interruption: wait until the action's signal aborted, then let a gated action go on. */
async function afterBargeIn({ ctx, sender }: Call): Promise<void> {
  await ctx.probe.whenAborted(sender);
  ctx.probe.open(sender);
}

// ---------------------------------------------------------------------------------------------
// Sluice events (in process, SSE, WebSocket).

const STRIP = new Set(['type', 'runId', 'seq', 'responseId']);

/** Normalizes a run's events as one reader received them, checking the event model's invariants. */
function sluiceTranscript(events: SluiceEvent[], prefix: string[] = []): Transcript {
  assert.ok(events.length > 0, 'no event received');
  const runId = events[0]!.runId;
  const tokens = [...prefix];
  const chunks: ChunkPayload[] = [];
  const ids = new Set<string>();
  let open: string | null = null;
  const transcript: Transcript = { outcome: 'stream' };
  events.forEach((event, i) => {
    assert.equal(event.seq, i + 1, `seq is gap-free (event ${i} is ${event.type})`);
    assert.equal(event.runId, runId, 'one run id');
    switch (event.type) {
      case 'stream-start':
        assert.ok(isResponseId(event.responseId), `responseId is 32 lowercase hex: ${event.responseId}`);
        assert.ok(!ids.has(event.responseId), 'each stream has a new responseId');
        ids.add(event.responseId);
        open = event.responseId;
        tokens.push(event.type);
        break;
      case 'chunk': {
        assert.equal(event.responseId, open, 'a chunk carries the responseId of the open stream');
        const payload: ChunkPayload = {};
        for (const key of Object.keys(event)) if (!STRIP.has(key)) payload[key] = (event as Record<string, unknown>)[key];
        chunks.push(payload);
        tokens.push(event.type);
        break;
      }
      case 'stream-end':
        assert.equal(event.responseId, open, 'stream-end closes the open stream');
        open = null;
        tokens.push(`${event.type}:${event.reason}`);
        break;
      case 'result': {
        const result: ResultShape = { events: event.events, responses: event.responses };
        if (event.skipped === true) result.skipped = true;
        transcript.result = result;
        tokens.push(event.type);
        break;
      }
      case 'error':
        transcript.error = { code: event.code, reason: event.reason, message: event.message, actionName: event.actionName };
        tokens.push(event.type);
        break;
      case 'run-end':
        assert.equal(i, events.length - 1, 'run-end is the last event');
        tokens.push(`${event.type}:${event.reason}`);
        break;
      default:
        tokens.push(event.type);
    }
  });
  assert.equal(events[0]!.type, 'run-start', 'run-start comes first');
  assert.equal(events.at(-1)!.type, 'run-end', 'run-end comes last');
  assert.equal(open, null, 'no stream is left open');
  return { ...transcript, sequence: compress(tokens), chunks, streams: ids.size };
}

/**
 * Reads a run's events to the end; for a barge-in, acks the first chunk's stream with `ack` (which
 * must find it) and waits until the action saw the cancel.
 */
async function readBargingIn(
  c: Call,
  events: AsyncIterable<SluiceEvent>,
  ack: (responseId: string) => boolean | Promise<boolean>,
): Promise<{ events: SluiceEvent[]; acked: boolean }> {
  const out: SluiceEvent[] = [];
  let acked = false;
  for await (const event of events) {
    out.push(event);
    if (c.scenario.bargeIn !== undefined && !acked && event.type === 'chunk') {
      acked = true;
      assert.equal(await ack(event.responseId), true, 'the ack found the stream');
      await afterBargeIn(c);
    }
  }
  return { events: out, acked };
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Started on the call's instance; with a peer, read (`findRun`) and acked (`acknowledge`) on the peer. */
const inProcessStart: Wire = {
  name: 'in-process start',
  pairs: true,
  async run(c) {
    const { executor, peer } = c.ctx;
    const run = executor.start(c.call);
    if (peer === undefined) return sluiceTranscript((await readBargingIn(c, run.subscribe(), (id) => executor.ack(id))).events);
    // The starter's own reader, subscribed before the action starts: it sees every event.
    const own = collect(run.subscribe());
    own.catch(() => {}); // awaited below
    const copy = await peer.executor.findRun(run.id);
    assert.ok(copy !== undefined, 'the peer finds the run as soon as it was started');
    const { events, acked } = await readBargingIn(c, copy.subscribe(), (id) => peer.executor.acknowledge(id));
    assert.deepStrictEqual(await own, events, "the starter's own reader got the same events");
    return { ...sluiceTranscript(events), peer: { read: true, acked } };
  },
};

const inProcessRun: Wire = {
  name: 'in-process run',
  async run(c) {
    const controller = new AbortController();
    let barge: Promise<void> | undefined;
    if (c.scenario.bargeIn !== undefined) {
      barge = c.ctx.probe.whenReached(c.sender).then(() => {
        controller.abort();
        return afterBargeIn(c);
      });
    }
    try {
      const result = await c.ctx.executor.run(c.call, { signal: controller.signal });
      await barge;
      return { outcome: 'reply', result };
    } catch (thrown) {
      assert.ok(SluiceError.isInstance(thrown), `executor.run rejects with a SluiceError (got ${String(thrown)})`);
      return { outcome: 'reply', error: { code: thrown.code, reason: thrown.details.reason, message: thrown.message } };
    }
  },
};

// ---------------------------------------------------------------------------------------------
// HTTP: /webhook, SSE, WebSocket.

function postJson(url: string, body: unknown, signal?: AbortSignal, accept = 'application/json'): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify(body),
    signal,
  });
}

const webhook: Wire = {
  name: 'webhook',
  async run(c) {
    const controller = new AbortController();
    let barge: Promise<void> | undefined;
    if (c.scenario.bargeIn !== undefined) {
      barge = c.ctx.probe.whenReached(c.sender).then(() => controller.abort());
    }
    let response: Response;
    let text: string;
    try {
      response = await postJson(`${c.ctx.httpUrl}/webhook`, c.call, controller.signal);
      text = await response.text();
    } catch (error) {
      if (!controller.signal.aborted) throw error;
      await barge;
      await afterBargeIn(c);
      return { outcome: 'aborted' };
    }
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/, 'the webhook answers JSON');
    const body = JSON.parse(text) as unknown;
    if (response.status === 200) return { outcome: 'reply', status: 200, result: body as ResultShape | null };
    return { outcome: 'reply', status: response.status, error: body as Record<string, unknown> };
  },
};

/** `POST /streams/:responseId/ack` on `httpUrl`: true when the ack found the stream. */
async function ackOverHttp(httpUrl: string, responseId: string): Promise<boolean> {
  const ack = await postJson(`${httpUrl}/streams/${responseId}/ack`, {});
  assert.deepEqual(await ack.json(), { acknowledged: true, responseId }, 'the ack found the stream');
  return true;
}

/**
 * `POST /webhook/stream`, read to the end. With a peer, the run is followed on the peer
 * (`GET /runs/:id/events` from the start, by the run id header) and acked there, while the
 * starting stream is read too: it must carry the same events.
 */
const sse: Wire = {
  name: 'sse',
  pairs: true,
  async run(c) {
    const { httpUrl, peer } = c.ctx;
    const response = await postJson(`${httpUrl}/webhook/stream`, c.call, undefined, 'text/event-stream');
    const type = response.headers.get('content-type') ?? '';
    if (!type.startsWith('text/event-stream')) {
      assert.match(type, /^application\/json/, 'a refused call is answered with JSON');
      const refused: Transcript = { outcome: 'reply', status: response.status, error: (await response.json()) as Record<string, unknown> };
      return peer === undefined ? refused : { ...refused, peer: { read: false, acked: false } };
    }
    assert.ok(response.body !== null);
    const runId = response.headers.get('x-sluice-run-id');
    const stream = readSseEvents(response.body, { parse: parseEvent });
    let events: SluiceEvent[];
    let acked = false;
    if (peer === undefined) {
      ({ events } = await readBargingIn(c, stream, (id) => ackOverHttp(httpUrl, id)));
    } else {
      assert.ok(runId !== null, 'the run id header is there to follow the run elsewhere');
      const own = collect(stream);
      own.catch(() => {}); // awaited below; not an unhandled rejection if the peer's half fails first
      const followed = await fetch(`${peer.httpUrl}/runs/${runId}/events`, { headers: { accept: 'text/event-stream' } });
      assert.equal(followed.status, 200, `the peer follows the run (got ${followed.status})`);
      assert.ok(followed.body !== null);
      assert.match(followed.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.equal(followed.headers.get('x-sluice-run-id'), runId, "the peer's run id header names the run");
      ({ events, acked } = await readBargingIn(c, readSseEvents(followed.body, { parse: parseEvent }), (id) => ackOverHttp(peer.httpUrl, id)));
      assert.deepStrictEqual(await own, events, 'the starting stream carried the same events');
    }
    assert.equal(runId, events[0]?.runId, 'the run id header names the run');
    const transcript: Transcript = { ...sluiceTranscript(events), status: response.status };
    return peer === undefined ? transcript : { ...transcript, peer: { read: true, acked } };
  },
};

/** Messages of a socket, read in order with a timeout. */
class Inbox {
  readonly #queue: Record<string, unknown>[] = [];
  #waiter: (() => void) | null = null;
  #closed = false;

  constructor(socket: WebSocket) {
    socket.on('message', (data) => {
      this.#queue.push(JSON.parse(String(data)) as Record<string, unknown>);
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  async next(timeoutMs = 5_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.#queue.shift();
      if (message !== undefined) return message;
      assert.ok(!this.#closed, 'the socket closed before the run ended');
      const left = deadline - Date.now();
      assert.ok(left > 0, `WebSocket: no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

async function openSocket(httpUrl: string): Promise<{ socket: WebSocket; inbox: Inbox }> {
  const socket = new WebSocket(`${httpUrl.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false });
  const inbox = new Inbox(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return { socket, inbox };
}

/**
 * Reads the events of run `runId` from a socket until `run-end`. With `bargeIn` (and a barge-in
 * scenario), acks the first chunk's stream on the same socket and waits for its `acked` reply.
 */
async function readSocketRun(c: Call, socket: WebSocket, inbox: Inbox, runId: unknown, bargeIn: boolean): Promise<{ events: SluiceEvent[]; acked: boolean }> {
  const events: SluiceEvent[] = [];
  let barged = false;
  let acked = false;
  for (;;) {
    const message = await inbox.next();
    if (message.type === 'acked') {
      assert.ok(barged, 'an acked reply answers an ack sent on this socket');
      assert.equal(message.acknowledged, true, 'the ack found the stream');
      acked = true;
      await afterBargeIn(c);
      continue;
    }
    assert.equal(typeof message.seq, 'number', `only run events and acks arrive here (got ${JSON.stringify(message)})`);
    assert.equal(message.runId, runId, "events carry the run id 'started' announced");
    const event = message as unknown as SluiceEvent;
    events.push(event);
    if (bargeIn && c.scenario.bargeIn !== undefined && !barged && event.type === 'chunk') {
      barged = true;
      socket.send(JSON.stringify({ type: 'ack', responseId: event.responseId }));
    }
    if (event.type === 'run-end') break;
  }
  // The ack's reply may trail the run's end: the run must not outlive it either way.
  if (barged && !acked) {
    const message = await inbox.next();
    assert.equal(message.type, 'acked');
    assert.equal(message.acknowledged, true, 'the ack found the stream');
    acked = true;
    await afterBargeIn(c);
  }
  return { events, acked };
}

/**
 * `/ws` `start`, read to the end. With a peer, a socket on the peer resumes the run from its first
 * event (`{type:'resume', runId, after: 0}`) and sends the ack, while the starting socket (which
 * owns the run: closing it would cancel the run) stays open and must read the same events. The
 * transcript's `started` is the starting socket's reply: the pair's client got it there.
 */
const websocket: Wire = {
  name: 'websocket',
  pairs: true,
  async run(c) {
    const { peer } = c.ctx;
    const { socket, inbox } = await openSocket(c.ctx.httpUrl);
    const sockets = [socket];
    try {
      socket.send(JSON.stringify({ type: 'start', id: 'conformance', call: c.call }));
      const first = await inbox.next();
      if (first.type === 'error') {
        const refused: Transcript = { outcome: 'reply', error: first };
        return peer === undefined ? refused : { ...refused, peer: { read: false, acked: false } };
      }
      assert.equal(first.type, 'started', `the first reply to a start is 'started' (got ${JSON.stringify(first)})`);
      assert.equal(first.id, 'conformance', "'started' echoes the start's id");
      const runId = first.runId;
      if (peer === undefined) return sluiceTranscript((await readSocketRun(c, socket, inbox, runId, true)).events, ['started']);
      assert.equal(typeof runId, 'string', "'started' names the run");
      const own = readSocketRun(c, socket, inbox, runId, false);
      own.catch(() => {}); // awaited below
      const other = await openSocket(peer.httpUrl);
      sockets.push(other.socket);
      other.socket.send(JSON.stringify({ type: 'resume', runId, after: 0 }));
      const { events, acked } = await readSocketRun(c, other.socket, other.inbox, runId, true);
      assert.deepStrictEqual((await own).events, events, 'the starting socket read the same events');
      return { ...sluiceTranscript(events, ['started']), peer: { read: true, acked } };
    } finally {
      for (const open of sockets) open.close();
    }
  },
};

// ---------------------------------------------------------------------------------------------
// gRPC: Webhook, WebhookStream + AckStreamChunks.

type Dict = Record<string, any>;

/** The `WebhookRequest` carrying the same call (what Rasa's gRPC client sends). */
export function webhookRequest(call: Dict): MessageInitShape<typeof WebhookRequestSchema> {
  const tracker = call.tracker as Dict | undefined;
  const request: MessageInitShape<typeof WebhookRequestSchema> = {
    nextAction: call.next_action ?? '',
    senderId: call.sender_id ?? '',
    version: call.version ?? '',
  };
  if (tracker !== undefined) {
    request.tracker = {
      senderId: tracker.sender_id,
      slots: tracker.slots,
      latestMessage: tracker.latest_message,
      events: tracker.events ?? [],
      paused: tracker.paused ?? false,
    };
  }
  if (call.domain !== undefined) request.domain = { config: call.domain.config };
  if (call.domain_digest !== undefined) request.domainDigest = call.domain_digest;
  return request;
}

/** gRPC's name for a status code (`NOT_FOUND`). */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

const grpcUnary: Wire = {
  name: 'grpc unary',
  async run(c) {
    const controller = new AbortController();
    let barge: Promise<void> | undefined;
    if (c.scenario.bargeIn !== undefined) {
      barge = c.ctx.probe.whenReached(c.sender).then(() => controller.abort());
    }
    try {
      const response = await c.ctx.grpc.webhook(webhookRequest(c.call), { signal: controller.signal });
      return { outcome: 'reply', status: 'OK', result: { events: response.events, responses: response.responses } };
    } catch (thrown) {
      const error = ConnectError.from(thrown);
      if (controller.signal.aborted) {
        await barge;
        await afterBargeIn(c);
        return { outcome: 'aborted', status: codeName(error.code) };
      }
      return { outcome: 'reply', status: codeName(error.code), error: { details: error.rawMessage } };
    }
  },
};

const GRPC_CASE: Record<string, string> = {
  chunkStart: 'chunk_start',
  chunk: 'chunk',
  chunkEnd: 'chunk_end',
  finalResult: 'final_result',
  error: 'error',
};

/**
 * `WebhookStream`, read to the end; a barge-in is `AckStreamChunks`. With a peer, the ack goes to
 * the peer (Rasa's flow behind a load balancer): the stream has no run id, so that is the only half
 * that can go elsewhere.
 */
const grpcStream: Wire = {
  name: 'grpc stream',
  pairs: true,
  async run(c) {
    const { grpc, peer } = c.ctx;
    const tokens: string[] = [];
    const chunks: ChunkPayload[] = [];
    const ids = new Set<string>();
    const transcript: Transcript = { outcome: 'stream', status: 'OK' };
    let open: string | null = null;
    let barged = false;
    const onEvent = async (message: WebhookStreamEvent): Promise<void> => {
      const event = message.event;
      assert.ok(event.case !== undefined, 'every WebhookStreamEvent sets its oneof');
      assert.ok(transcript.result === undefined && transcript.error === undefined, `nothing follows final_result or error (got ${event.case})`);
      tokens.push(GRPC_CASE[event.case] ?? event.case);
      switch (event.case) {
        case 'chunkStart':
          assert.ok(isResponseId(event.value.responseId), `response_id is 32 lowercase hex: ${event.value.responseId}`);
          assert.ok(!ids.has(event.value.responseId), 'each chunk_start has a new response_id');
          ids.add(event.value.responseId);
          open = event.value.responseId;
          break;
        case 'chunk': {
          const { text, image, custom, attachment, buttons, elements, responseId } = event.value;
          assert.equal(responseId, open, 'a chunk carries the response_id of its chunk_start');
          chunks.push(grpcChunk({ text, image, custom, attachment, buttons, elements }));
          if (c.scenario.bargeIn !== undefined && !barged) {
            barged = true;
            await (peer ?? c.ctx).grpc.ackStreamChunks({ responseId });
            await afterBargeIn(c);
          }
          break;
        }
        case 'chunkEnd':
          assert.equal(event.value.responseId, open, 'chunk_end closes the open stream');
          open = null;
          break;
        case 'finalResult':
          transcript.result = { events: event.value.events, responses: event.value.responses };
          break;
        case 'error':
          transcript.error = { action_name: event.value.actionName, message: event.value.message };
          break;
      }
    };
    try {
      for await (const message of grpc.webhookStream(webhookRequest(c.call))) await onEvent(message);
    } catch (thrown) {
      const error = ConnectError.from(thrown);
      transcript.status = codeName(error.code);
      transcript.error = { ...transcript.error, details: error.rawMessage };
    }
    if (peer !== undefined) transcript.peer = { read: false, acked: barged };
    return { ...transcript, sequence: compress(tokens), chunks, streams: ids.size };
  },
};

/** Every wire, in the order the tests run them. */
export const WIRES: Wire[] = [inProcessStart, inProcessRun, webhook, sse, websocket, grpcUnary, grpcStream];
