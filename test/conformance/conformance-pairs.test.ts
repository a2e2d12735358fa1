/**
 * The conformance suite across two instances: instances A and B in one process, each with its own
 * Redis connection, executor, HTTP and gRPC server, sharing one Redis key prefix, both serving the
 * scenario actions (as a real deployment registers them everywhere; they only run on the instance
 * a call starts on). Every scenario runs over each wire whose client has a half that can go to
 * another instance (matrix.ts `pairMatrix`): the call starts on A, the run is read and the barge-in
 * ack sent on B, and the client must see what that wire shows on one instance. When CI=true a
 * missing Redis fails; elsewhere the suite is skipped with a message.
 */

import { after, before, describe } from 'node:test';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from '../stores/redis-helpers.ts';
import { MANY_CHUNKS, Probe } from './scenarios.ts';
import { pairMatrix } from './matrix.ts';
import { serveInstance, type ServedInstance } from './wires.ts';

const skip = await redisSkip();

/**
 * A follower on B reads the run from its first event, and joins after A has produced part of it:
 * the 10,000-chunk scenario is thousands of events ahead by then. A run (and a copy) keeps only its
 * newest 4,096–8,191 events by default, so reading it from the start would be refused (410 /
 * out_of_range) on either instance; both keep the whole scenario here.
 */
const RUN = { logLimit: 2 ** Math.ceil(Math.log2(MANY_CHUNKS + 16)) };

describe('conformance across instances: scenarios × wires, started on A, read and acked on B', { skip }, () => {
  const probe = new Probe();
  const prefix = testPrefix();
  let a: ServedInstance;
  let b: ServedInstance;

  before(async () => {
    const options = { redis: { url: REDIS_URL, prefix }, run: RUN };
    [a, b] = await Promise.all([serveInstance(probe, options), serveInstance(probe, options)]);
  });

  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await dropPrefix(prefix);
  });

  pairMatrix(() => ({ ctx: { ...a, probe, peer: b } }));
});
