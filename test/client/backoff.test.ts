/** Reconnection delays of `sluice/client`: exponential, capped, jittered; sleep honours its signal. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay, retryPolicy, sleep } from '../../src/client/backoff.ts';

test('delays grow exponentially up to the cap, each drawn anywhere below its ceiling', () => {
  const policy = retryPolicy({ retries: 10, initialDelayMs: 100, maxDelayMs: 1000 });
  for (const [attempt, ceiling] of [[1, 100], [2, 200], [3, 400], [4, 800], [5, 1000], [9, 1000]] as const) {
    const draws = Array.from({ length: 300 }, () => backoffDelay(policy, attempt));
    assert.ok(draws.every((d) => d >= 0 && d <= ceiling), `attempt ${attempt}: all within [0, ${ceiling}]`);
    // Full jitter: the draws spread over the range rather than sitting at the ceiling.
    assert.ok(Math.min(...draws) < ceiling * 0.25 && Math.max(...draws) > ceiling * 0.75, `attempt ${attempt}: spread ${Math.min(...draws)}–${Math.max(...draws)}`);
  }
});

test('retry options are checked, with defaults filled in', () => {
  assert.deepEqual(retryPolicy(), { retries: 6, initialDelayMs: 200, maxDelayMs: 5000 });
  assert.throws(() => retryPolicy({ maxDelayMs: Number.NaN }), /retry\.maxDelayMs must be a non-negative number/);
});

test('sleep rejects with the reason as soon as its signal aborts', async () => {
  const controller = new AbortController();
  const waiting = sleep(60_000, controller.signal);
  controller.abort(new Error('stop'));
  await assert.rejects(waiting, /stop/);
  await assert.rejects(sleep(10, AbortSignal.abort(new Error('already'))), /already/);
});
