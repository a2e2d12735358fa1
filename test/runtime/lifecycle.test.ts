/** The executor's drain: refusing new runs, the timeout, the cancel that ends runs with `unavailable`; and replaceActions. */

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { defineAction } from '../../src/index.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';

const ticker = (name: string, word: string, ticks: number) =>
  defineAction({
    name,
    async *stream({ signal }) {
      for (let i = 0; i < ticks; i++) {
        yield `${word} `;
        await sleep(10, undefined, { signal });
      }
      return [];
    },
  });

const callOf = (name: string) => ({ next_action: name, tracker: { sender_id: 'u' } });

describe('ActionExecutor lifecycle', () => {
  test('drain: refuses new runs, lets short runs finish, cancels the rest with an unavailable error', async () => {
    const executor = new ActionExecutor({ logger: silentLogger, actions: [ticker('action_short', 'a', 3), ticker('action_long', 'b', 100_000)] });
    const short = executor.start(callOf('action_short'));
    const long = executor.start(callOf('action_long'));
    const draining = executor.drain(200);
    assert.equal(executor.lifecycle.accepting, false);
    assert.ok(executor.lifecycle.signal.aborted);
    assert.throws(() => executor.start(callOf('action_short')), (error: Error & { code?: string }) => error.code === 'unavailable' && /shutting down/.test(error.message));
    assert.deepEqual(await draining, { finished: 1, cancelled: 1 });
    assert.equal(short.endReason, 'completed');
    const events = long.events();
    assert.deepEqual(events.slice(-2).map((e) => e.type), ['error', 'run-end']);
    const error = events.at(-2);
    assert.ok(error?.type === 'error');
    assert.equal(error.code, 'unavailable');
    assert.equal(error.reason, 'shutdown');
    assert.equal(long.endReason, 'cancelled');
    assert.equal(executor.activeRuns, 0);
  });

  test('replaceActions: new runs use the new table, a run already started keeps its action', async () => {
    const executor = new ActionExecutor({ logger: silentLogger, actions: [ticker('action_say', 'old', 20)] });
    const before = executor.start(callOf('action_say'));
    await sleep(15);
    executor.replaceActions([ticker('action_say', 'new', 1), ticker('action_added', 'x', 1)]);
    const after = executor.start(callOf('action_say'));
    await Promise.all([before.done, after.done]);
    const text = (run: typeof before) => run.events().filter((e) => e.type === 'chunk').map((e) => (e.type === 'chunk' ? e.text : '')).join('');
    assert.equal(text(before), 'old '.repeat(20));
    assert.equal(text(after), 'new ');
    assert.deepEqual(executor.actions, [{ name: 'action_say' }, { name: 'action_added' }]);
    assert.throws(() => executor.replaceActions([ticker('a', '', 1), ticker('a', '', 1)]), /Two actions are named 'a'/);
    assert.deepEqual(executor.actions, [{ name: 'action_say' }, { name: 'action_added' }], 'a bad table leaves the old one');
  });

  test('a run knows its transport and counts its chunks; logRunEnds logs one line per run', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = { ...silentLogger, info: (obj: object, msg?: string) => void lines.push({ ...obj, msg }) };
    const executor = new ActionExecutor({ logger, logRunEnds: true, actions: [ticker('action_t', 'w', 4)] });
    const run = executor.start(callOf('action_t'), { transport: 'ws' });
    assert.equal(run.transport, 'ws');
    await executor.outcome(run);
    assert.equal(run.chunks, 4);
    const end = lines.find((l) => l.msg === 'run end');
    assert.deepEqual({ ...end, durationMs: typeof end?.durationMs }, {
      action: 'action_t', runId: run.id, reason: 'completed', durationMs: 'number', chunks: 4, transport: 'ws', msg: 'run end',
    });
  });
});
