/**
 * RedisStepLocks against the real Redis (a random key prefix per suite): one holder per app, the
 * holder's run named to the others, the lease renewed while held and freed when its holder stops,
 * the last commit recorded on release (and forgotten by a holder that had lost its lease).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
import { silentLogger } from '../../src/runtime/logger.ts';
import { connectRedisRuns, type RedisRuns } from '../../src/stores/redis-runs.ts';
import { RedisStepLocks } from '../../src/stores/redis-step-locks.ts';
import { REDIS_URL, dropPrefix, keysOf, redisSkip, testPrefix } from './redis-helpers.ts';

const skip = await redisSkip();
const committed = (sequenceId: number, runId = `run-${sequenceId}`) => ({ sequenceId, action: 'tick', status: 'completed' as const, runId });

describe('RedisStepLocks', { skip }, () => {
  const prefix = testPrefix();
  let runs: RedisRuns;
  let locks: RedisStepLocks;

  before(async () => {
    runs = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger });
    locks = new RedisStepLocks(runs, { leaseMs: 300 });
  });
  after(async () => {
    await runs?.close();
    await dropPrefix(prefix);
  });

  test('one holder per app; the others see its run once named; a release frees it and records the commit', async () => {
    const first = await locks.acquire('app-1');
    assert.ok(first.lease !== null);
    assert.deepEqual(first.view, { holder: null, committed: undefined });
    const second = await locks.acquire('app-1');
    assert.equal(second.lease, null);
    assert.deepEqual(second.view.holder, { runId: null, action: null });
    assert.ok((await locks.acquire('app-2')).lease !== null, 'another app is not blocked');

    await first.lease.setRun('r1', 'tick');
    assert.deepEqual((await locks.inspect('app-1')).holder, { runId: 'r1', action: 'tick' });
    await first.lease.release(committed(0, 'r1'));
    assert.deepEqual(await locks.inspect('app-1'), { holder: null, committed: committed(0, 'r1') });
    const third = await locks.acquire('app-1');
    assert.ok(third.lease !== null);
    assert.deepEqual(third.view.committed, committed(0, 'r1'));
    await third.lease.release(null);
    assert.deepEqual((await locks.inspect('app-1')).committed, committed(0, 'r1'), 'a step-less release keeps the record');
  });

  test('the lease is renewed while held, and frees itself once its holder stops renewing', async () => {
    const held = await locks.acquire('lease');
    await sleep(900);
    assert.equal((await locks.acquire('lease')).lease, null, 'still held after three lease periods');

    const other = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger });
    const dying = await new RedisStepLocks(other, { leaseMs: 300 }).acquire('dies');
    assert.ok(dying.lease !== null);
    await other.close(); // its renewals fail from now on, as when its process is killed
    const started = Date.now();
    let next = await locks.acquire('dies');
    while (next.lease === null && Date.now() - started < 2_000) {
      await sleep(25);
      next = await locks.acquire('dies');
    }
    assert.ok(next.lease !== null, 'free again after the lease');
    assert.ok(Date.now() - started <= 300 + 200, `freed within the lease (${Date.now() - started} ms)`);
    await next.lease.release(null);
    await held.lease!.release(null);
  });

  test('a holder that lost its lease does not release the new holder’s lock, and forgets the commit record', async () => {
    const lost = await locks.acquire('lost');
    const admin = createClient({ url: REDIS_URL });
    await admin.connect();
    await admin.del(`${prefix}:app:{lost}:lock`); // as if its lease had expired
    await admin.close();
    const now = await locks.acquire('lost');
    assert.ok(now.lease !== null);
    await lost.lease!.release(committed(4));
    assert.equal((await locks.acquire('lost')).lease, null, 'the new holder keeps the lock');
    await now.lease.release(committed(4, 'mine'));
    assert.deepEqual((await locks.inspect('lost')).committed, committed(4, 'mine'));
  });

  test('app keys with braces, colons and spaces stay under one hash tag and the prefix', async () => {
    const key = 'alice:{odd} id';
    const taken = await locks.acquire(key);
    assert.ok(taken.lease !== null);
    await taken.lease.release(committed(1));
    const keys = await keysOf(prefix);
    assert.ok(keys.includes(`${prefix}:app:{${encodeURIComponent(key)}}:committed`), keys.join(', '));
  });

  test('Redis unreachable: acquire and inspect reject with unavailable', async () => {
    const closed = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger });
    await closed.close();
    const gone = new RedisStepLocks(closed);
    await assert.rejects(gone.acquire('x'), (error: any) => error.code === 'unavailable' && /app step lock/.test(error.message));
    await assert.rejects(gone.inspect('x'), (error: any) => error.code === 'unavailable');
  });

  test('bad options are refused, naming the option', async () => {
    assert.throws(() => new RedisStepLocks(runs, { leaseMs: 50 }), /'leaseMs' must be an integer ≥ 100 \(got 50\)/);
    assert.throws(() => new RedisStepLocks(runs, { committedTtlMs: 0 }), /'committedTtlMs' must be a positive integer \(got 0\)/);
    await assert.rejects(connectRedisRuns({ url: REDIS_URL, prefix, maxReplicas: 0 }), (error: any) => error.code === 'invalid_argument' && /'maxReplicas' must be a number ≥ 1/.test(error.message));
  });
});

