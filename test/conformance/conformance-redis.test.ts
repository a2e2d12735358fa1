/**
 * The conformance suite in the Redis mode: every scenario × wire of conformance.test.ts with the
 * executor appending every run to a shared Redis log (connectRedisRuns, a random key prefix), so
 * the shared mode changes nothing a client of one instance sees. When CI=true a missing Redis
 * fails; elsewhere the suite is skipped with a message.
 */

import { after, before, describe } from 'node:test';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from '../stores/redis-helpers.ts';
import { Probe } from './scenarios.ts';
import { scenarioMatrix } from './matrix.ts';
import { serveInstance, type ServedInstance } from './wires.ts';

const skip = await redisSkip();

describe('conformance in the Redis mode: scenarios × wires', { skip }, () => {
  const probe = new Probe();
  const prefix = testPrefix();
  let instance: ServedInstance;

  before(async () => {
    instance = await serveInstance(probe, { redis: { url: REDIS_URL, prefix } });
  });

  after(async () => {
    await instance?.close();
    await dropPrefix(prefix);
  });

  scenarioMatrix(() => ({ ctx: { ...instance, probe }, executor: instance.executor }));
});
