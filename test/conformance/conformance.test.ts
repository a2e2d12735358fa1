/**
 * The conformance suite: every scenario of scenarios.ts over every wire of wires.ts, each checked
 * against the scenario's outcome as expectations.ts maps it to that wire. One executor behind one
 * HTTP and one gRPC server for the whole file; after each test nothing may be left running.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import type { FastifyInstance } from 'fastify';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { createGrpcServer, type GrpcServer } from '../../src/transports/grpc/index.ts';
import { ActionService } from '../../src/transports/grpc/gen/action_webhook_pb.ts';
import { createHttpServer } from '../../src/transports/http/index.ts';
import { BARGE_IN_TIMEOUT_SECONDS, Probe, createActions } from './scenarios.ts';
import { scenarioMatrix } from './matrix.ts';
import type { WireContext } from './wires.ts';

describe('conformance: scenarios × wires', () => {
  const probe = new Probe();
  const executor = new ActionExecutor({
    logger: silentLogger,
    actions: createActions(probe),
    bargeInTimeoutSeconds: BARGE_IN_TIMEOUT_SECONDS,
    // The scenarios check Rasa's wires, which carry the action's error text: exposure on.
    exposeActionErrors: true,
  });
  let http: FastifyInstance;
  let grpc: GrpcServer;
  let ctx: WireContext;

  before(async () => {
    http = createHttpServer({ executor, logger: false });
    const httpUrl = await http.listen({ port: 0, host: '127.0.0.1' });
    grpc = createGrpcServer({ executor, logger: silentLogger });
    const { port } = await grpc.listen(0, '127.0.0.1');
    const client = createClient(ActionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    ctx = { executor, probe, httpUrl, grpc: client };
  });

  after(async () => {
    await executor.close();
    await Promise.all([grpc?.close(), http?.close()]);
  });

  // Rasa discards the backlog on an ack that arrives after the action returned but before the
  // consumer forwarded stream_end (reference/rasa-sdk.md §1d, "The registry"); here the registry
  // finds the stream but Run.cancel refuses once the result is in, so the reader still gets every
  // unread chunk (at most a high-water mark's worth) and a `completed` end. Left for the runtime's
  // owners: dropping events after the terminal means re-stamping seqs the run already assigned.
  test('an ack after the action returned, before the reader got the stream end, stops the stream', async () => {
    const sender = 'late ack @ in-process start';
    const run = executor.start({ next_action: 'action_quick', tracker: { sender_id: sender } });
    const types: string[] = [];
    let acked: boolean | undefined;
    for await (const event of run.subscribe()) {
      types.push(event.type === 'stream-end' || event.type === 'run-end' ? `${event.type}:${event.reason}` : event.type);
      if (event.type === 'chunk' && acked === undefined) {
        await run.done;
        acked = executor.ack(event.responseId);
      }
    }
    assert.equal(acked, true, 'the ack found the stream (its end was not delivered)');
    assert.deepEqual(types, ['run-start', 'stream-start', 'chunk', 'stream-end:cancelled', 'result', 'run-end:cancelled']);
    assert.deepEqual((await executor.outcome(run)).type, 'result', 'the action result still arrives');
    assert.equal(executor.activeStreams, 0, 'the stream is forgotten once the run was read');
    assert.equal(executor.ack(run.events()[1]!.type === 'stream-start' ? (run.events()[1] as { responseId: string }).responseId : ''), false);
  });

  scenarioMatrix(() => ({ ctx, executor }));
});
