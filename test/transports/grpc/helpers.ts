// Shared set-up for the gRPC transport tests: a real server on 127.0.0.1:0, a stock Connect gRPC
// client and a stock @grpc/grpc-js client, and helpers to read a WebhookStream to its end.
import assert from 'node:assert/strict';
import { createClient, ConnectError, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { ActionDefinition } from '../../../src/runtime/action.ts';
import { ActionExecutor, type ExecutorOptions } from '../../../src/runtime/executor.ts';
import type { Logger } from '../../../src/runtime/logger.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { createGrpcServer, type GrpcServer } from '../../../src/transports/grpc/index.ts';
import {
  ActionService,
  StreamChunkAckSchema,
  WebhookRequestSchema,
  WebhookStreamEventSchema,
  type WebhookStreamEvent,
} from '../../../src/transports/grpc/gen/action_webhook_pb.ts';
import { Health } from '../../../src/transports/grpc/gen/health_pb.ts';
import { EmptySchema } from '@bufbuild/protobuf/wkt';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

/** A logger that keeps what it is given. */
export function recordingLogger(): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at =
    (level: LogRecord['level']) =>
    (obj: object, msg?: string): void => {
      records.push({ level, obj, msg });
    };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export interface Harness {
  executor: ActionExecutor;
  server: GrpcServer;
  port: number;
  client: Client<typeof ActionService>;
  health: Client<typeof Health>;
  /** Stops the server, then checks nothing was left behind. */
  close(): Promise<void>;
}

/** Starts a server for `actions` on 127.0.0.1, port 0. */
export async function startHarness(actions: ActionDefinition[], options: Omit<ExecutorOptions, 'actions'> = {}): Promise<Harness> {
  // Rasa's wire carries the action's error text: these tests check that, so exposure is on.
  const executor = new ActionExecutor({ logger: silentLogger, exposeActionErrors: true, ...options, actions });
  const server = createGrpcServer({ executor, logger: options.logger ?? silentLogger });
  const { port } = await server.listen(0, '127.0.0.1');
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  return {
    executor,
    server,
    port,
    client: createClient(ActionService, transport),
    health: createClient(Health, transport),
    async close() {
      await server.close();
      await assertIdle(executor);
    },
  };
}

/** Waits (briefly) until the executor has no live run and no ackable stream, then asserts it. */
export async function assertIdle(executor: ActionExecutor, withinMs = 2_000): Promise<void> {
  const until = Date.now() + withinMs;
  while ((executor.activeRuns !== 0 || executor.activeStreams !== 0) && Date.now() < until) await sleep(5);
  assert.equal(executor.activeRuns, 0, 'no run left');
  assert.equal(executor.activeStreams, 0, 'no stream left in the registry');
}

/** A `WebhookRequest` init for `nextAction` with a minimal valid tracker. */
export function request(nextAction: string, extra: Record<string, unknown> = {}) {
  return { nextAction, senderId: 'user-1', tracker: { senderId: 'user-1' }, ...extra };
}

export interface StreamOutcome {
  events: WebhookStreamEvent[];
  error: ConnectError | null;
}

/** Reads a stream to its end; `onEvent` may act on each event (e.g. send an ack). */
export async function readStream(
  stream: AsyncIterable<WebhookStreamEvent>,
  onEvent?: (event: WebhookStreamEvent, index: number) => void | Promise<void>,
): Promise<StreamOutcome> {
  const events: WebhookStreamEvent[] = [];
  try {
    for await (const event of stream) {
      events.push(event);
      await onEvent?.(event, events.length - 1);
    }
    return { events, error: null };
  } catch (error) {
    return { events, error: ConnectError.from(error) };
  }
}

/** The oneof case of each event, in Rasa's snake_case names. */
export function kinds(events: WebhookStreamEvent[]): string[] {
  const names: Record<string, string> = {
    chunkStart: 'chunk_start',
    chunk: 'chunk',
    chunkEnd: 'chunk_end',
    finalResult: 'final_result',
    error: 'error',
  };
  return events.map((event) => names[event.event.case ?? ''] ?? String(event.event.case));
}

type EventUnion = WebhookStreamEvent['event'];
type EventCase = NonNullable<EventUnion['case']>;
type EventValues = { [K in EventCase]: Extract<EventUnion, { case: K }>['value'] };

/** Narrows an event to one case. */
export function pick<K extends EventCase>(event: WebhookStreamEvent | undefined, kind: K): EventValues[K] {
  assert.ok(event !== undefined, `expected a ${kind} event, got none`);
  assert.equal(event.event.case, kind);
  return event.event.value as EventValues[K];
}

// A stock @grpc/grpc-js client for the same service, with the generated schemas as codecs.
function codec<D extends DescMessage>(schema: D) {
  return {
    serialize: (message: MessageShape<D>) => Buffer.from(toBinary(schema, message)),
    deserialize: (bytes: Buffer) => fromBinary(schema, bytes),
  };
}
const requestCodec = codec(WebhookRequestSchema);
const eventCodec = codec(WebhookStreamEventSchema);
const ackCodec = codec(StreamChunkAckSchema);
const emptyCodec = codec(EmptySchema);

export const grpcJsDefinition = {
  WebhookStream: {
    path: '/action_server_webhook.ActionService/WebhookStream',
    requestStream: false,
    responseStream: true,
    requestSerialize: requestCodec.serialize,
    requestDeserialize: requestCodec.deserialize,
    responseSerialize: eventCodec.serialize,
    responseDeserialize: eventCodec.deserialize,
  },
  AckStreamChunks: {
    path: '/action_server_webhook.ActionService/AckStreamChunks',
    requestStream: false,
    responseStream: false,
    requestSerialize: ackCodec.serialize,
    requestDeserialize: ackCodec.deserialize,
    responseSerialize: emptyCodec.serialize,
    responseDeserialize: emptyCodec.deserialize,
  },
} satisfies grpc.ServiceDefinition;

export type GrpcJsClient = grpc.Client & {
  WebhookStream(request: MessageShape<typeof WebhookRequestSchema>): grpc.ClientReadableStream<WebhookStreamEvent>;
  AckStreamChunks(
    request: MessageShape<typeof StreamChunkAckSchema>,
    callback: (error: grpc.ServiceError | null) => void,
  ): grpc.ClientUnaryCall;
};

export function grpcJsClient(port: number): GrpcJsClient {
  const Client = grpc.makeGenericClientConstructor(grpcJsDefinition, 'ActionService');
  return new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as GrpcJsClient;
}
