/**
 * A cancelled sync-generator step that ignores its signal keeps being pulled for the grace period
 * (it may still yield its final item), but never by freezing the event loop.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationBuilder, State, streamingAction } from '../../src/app/index.ts';

const GRACE_MS = 1_500;

async function appWith(act: ReturnType<typeof streamingAction>) {
  return new ApplicationBuilder()
    .withActions({ act })
    .withTransitions(['act', 'act'])
    .withState({ n: 0 })
    .withEntrypoint('act')
    .withOptions({ graceMs: GRACE_MS })
    .build();
}

describe('a cancelled sync generator that ignores its signal', () => {
  test('timers and I/O keep running during the grace period; the step is committed as interrupted after it', async () => {
    let pulledAfterCancel = 0;
    const stubborn = streamingAction({ reads: [], writes: ['n'] }, function* (_state, _inputs, ctx) {
      for (let i = 0; ; i++) {
        if (ctx.signal.aborted) pulledAfterCancel++;
        yield [`item ${i} `, null];
      }
    });
    const app = await appWith(stubborn);
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const started = performance.now();
    // Scheduled before the reader breaks off; due long before the grace period is over.
    const timerFiredAfter = new Promise<number>((resolve) => setTimeout(() => resolve(performance.now() - started), 20));
    for await (const item of container) {
      assert.equal(item, 'item 0 ');
      break; // cancels the step; the loop exits once it is committed
    }
    const endedAfter = performance.now() - started;
    assert.equal(container.status, 'interrupted');
    assert.equal(app.state.get('n'), 0, 'no final item: the state is kept');
    assert.ok(pulledAfterCancel > 0, 'the generator was still pulled after the cancel');
    const firedAfter = await timerFiredAfter;
    // Before the fix the timer could only fire once the whole grace period had been spent pulling.
    assert.ok(firedAfter < GRACE_MS / 2, `a 20 ms timer fired after ${Math.round(firedAfter)} ms (grace ${GRACE_MS} ms)`);
    assert.ok(endedAfter >= GRACE_MS * 0.9, `the step still got its grace period (ended after ${Math.round(endedAfter)} ms)`);
  });

  test('a final item yielded late in the grace period is still committed', async () => {
    const late = streamingAction({ reads: [], writes: ['n'] }, function* (state, _inputs, ctx) {
      let i = 0;
      for (; !ctx.signal.aborted; i++) yield [`item ${i} `, null];
      // Ignores the cancel for a while (many slices), then answers.
      for (let extra = 0; extra < 50_000; extra++) yield [`late ${extra} `, null];
      yield [{ stoppedAt: i }, state.update({ n: i })];
    });
    const app = await appWith(late);
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    let seen = 0;
    for await (const _ of container) if (++seen === 3) break;
    assert.equal(container.status, 'interrupted');
    const [result, state] = await container.get();
    assert.deepEqual(result, { stoppedAt: 3 });
    assert.equal(state.get('n'), 3);
    assert.ok(state instanceof State);
  });
});
