/**
 * The conformance suite in the Redis mode: every scenario × wire of conformance.test.ts with the
 * executor appending every run to a shared Redis log (connectRedisRuns, a random key prefix), so
 * the shared mode changes nothing a client of one instance sees. When CI=true a missing Redis
 * fails; elsewhere the suite is skipped with a message.
 */

import { after, before, describe } from 'node:test';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import type { FastifyInstance } from 'fastify';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { connectRedisRuns, type RedisRuns } from '../../src/stores/redis-runs.ts';
import { createGrpcServer, type GrpcServer } from '../../src/transports/grpc/index.ts';
import { ActionService } from '../../src/transports/grpc/gen/action_webhook_pb.ts';
import { createHttpServer } from '../../src/transports/http/index.ts';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from '../stores/redis-helpers.ts';
import { BARGE_IN_TIMEOUT_SECONDS, Probe, createActions } from './scenarios.ts';
import { scenarioMatrix } from './matrix.ts';
import type { WireContext } from './wires.ts';

const skip = await redisSkip();

describe('conformance in the Redis mode: scenarios × wires', { skip }, () => {
  const probe = new Probe();
  const prefix = testPrefix();
  let shared: RedisRuns;
  let executor: ActionExecutor;
  let http: FastifyInstance;
  let grpc: GrpcServer;
  let ctx: WireContext;

  before(async () => {
    shared = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger });
    // Rasa's own behaviour (the scenarios expect it): action error text reaches the client.
    executor = new ActionExecutor({ logger: silentLogger, actions: createActions(probe), bargeInTimeoutSeconds: BARGE_IN_TIMEOUT_SECONDS, exposeActionErrors: true, shared });
    http = createHttpServer({ executor, logger: false });
    const httpUrl = await http.listen({ port: 0, host: '127.0.0.1' });
    grpc = createGrpcServer({ executor, logger: silentLogger });
    const { port } = await grpc.listen(0, '127.0.0.1');
    const client = createClient(ActionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    ctx = { executor, probe, httpUrl, grpc: client };
  });

  after(async () => {
    await executor?.close();
    await Promise.all([grpc?.close(), http?.close()]);
    await shared?.close();
    await dropPrefix(prefix);
  });

  scenarioMatrix(() => ({ ctx, executor }));
});
