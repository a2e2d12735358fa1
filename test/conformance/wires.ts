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
import { ActionExecutor } from '../../src/runtime/executor.ts';
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
 * (`connectRedisRuns`), so instances given the same url and prefix share their runs.
 */
export async function serveInstance(probe: Probe, options: { redis?: { url: string; prefix: string } } = {}): Promise<ServedInstance> {
  const { redis } = options;
  const shared = redis === undefined ? undefined : await connectRedisRuns({ ...redis, logger: silentLogger });
  const executor = new ActionExecutor({
    logger: silentLogger,
    actions: createActions(probe),
    bargeInTimeoutSeconds: BARGE_IN_TIMEOUT_SECONDS,
    exposeActionErrors: true,
    shared,
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

/** What every adapter may use: one instance, and the scenarios' probe. */
export interface WireContext extends Instance {
  probe: Probe;
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

const inProcessStart: Wire = {
  name: 'in-process start',
  async run(c) {
    const { executor } = c.ctx;
    const run = executor.start(c.call);
    const events: SluiceEvent[] = [];
    let barged = false;
    for await (const event of run.subscribe()) {
      events.push(event);
      if (c.scenario.bargeIn !== undefined && !barged && event.type === 'chunk') {
        barged = true;
        assert.equal(executor.ack(event.responseId), true, 'the ack found the stream');
        await afterBargeIn(c);
      }
    }
    return sluiceTranscript(events);
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

const sse: Wire = {
  name: 'sse',
  async run(c) {
    const { httpUrl } = c.ctx;
    const response = await postJson(`${httpUrl}/webhook/stream`, c.call, undefined, 'text/event-stream');
    const type = response.headers.get('content-type') ?? '';
    if (!type.startsWith('text/event-stream')) {
      assert.match(type, /^application\/json/, 'a refused call is answered with JSON');
      return { outcome: 'reply', status: response.status, error: (await response.json()) as Record<string, unknown> };
    }
    assert.ok(response.body !== null);
    const events: SluiceEvent[] = [];
    let barged = false;
    for await (const event of readSseEvents(response.body, { parse: parseEvent })) {
      events.push(event);
      if (c.scenario.bargeIn !== undefined && !barged && event.type === 'chunk') {
        barged = true;
        const ack = await postJson(`${httpUrl}/streams/${event.responseId}/ack`, {});
        assert.deepEqual(await ack.json(), { acknowledged: true, responseId: event.responseId }, 'the ack found the stream');
        await afterBargeIn(c);
      }
    }
    assert.equal(response.headers.get('x-sluice-run-id'), events[0]?.runId, 'the run id header names the run');
    return { ...sluiceTranscript(events), status: response.status };
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

const websocket: Wire = {
  name: 'websocket',
  async run(c) {
    const socket = new WebSocket(`${c.ctx.httpUrl.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false });
    const inbox = new Inbox(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    try {
      socket.send(JSON.stringify({ type: 'start', id: 'conformance', call: c.call }));
      const first = await inbox.next();
      if (first.type === 'error') return { outcome: 'reply', error: first };
      assert.equal(first.type, 'started', `the first reply to a start is 'started' (got ${JSON.stringify(first)})`);
      assert.equal(first.id, 'conformance', "'started' echoes the start's id");
      const runId = first.runId;
      const events: SluiceEvent[] = [];
      let barged = false;
      let acked = false;
      for (;;) {
        const message = await inbox.next();
        if (message.type === 'acked') {
          assert.equal(message.acknowledged, true, 'the ack found the stream');
          acked = true;
          await afterBargeIn(c);
          continue;
        }
        assert.equal(typeof message.seq, 'number', `only run events and acks arrive here (got ${JSON.stringify(message)})`);
        assert.equal(message.runId, runId, "events carry the run id 'started' announced");
        const event = message as unknown as SluiceEvent;
        events.push(event);
        if (c.scenario.bargeIn !== undefined && !barged && event.type === 'chunk') {
          barged = true;
          socket.send(JSON.stringify({ type: 'ack', responseId: event.responseId }));
        }
        if (event.type === 'run-end') break;
      }
      // The ack's reply may trail the run's end: the run must not outlive it either way.
      if (barged && !acked) {
        const message = await inbox.next();
        assert.equal(message.type, 'acked');
        await afterBargeIn(c);
      }
      return sluiceTranscript(events, ['started']);
    } finally {
      socket.close();
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

const grpcStream: Wire = {
  name: 'grpc stream',
  async run(c) {
    const { grpc } = c.ctx;
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
            await grpc.ackStreamChunks({ responseId });
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
    return { ...transcript, sequence: compress(tokens), chunks, streams: ids.size };
  },
};

/** Every wire, in the order the tests run them. */
export const WIRES: Wire[] = [inProcessStart, inProcessRun, webhook, sse, websocket, grpcUnary, grpcStream];
