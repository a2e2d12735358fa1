/**
 * The sentence view: sentences, then the run's result or error, then run-end, in order; resume by
 * index; the wire segmenter options and their errors.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { Run } from '../../../src/runtime/run.ts';
import { defineAction } from '../../../src/runtime/action.ts';
import { parseSegmenterOptions, sentenceGate, sentenceViewOf } from '../../../src/channels/voice/sentence-view.ts';
import { call, collect, executorWith, pacedAction } from './helpers.ts';

const STORY = 'Hello there. It is late. Good night.';

describe('sentenceViewOf', () => {
  it('yields the sentences, then result and run-end, and no other event', async () => {
    const executor = executorWith([pacedAction('action_story', STORY, 1)]);
    const run = executor.start(call('action_story'));
    const items = await collect(sentenceViewOf(run));
    assert.deepEqual(items.map((i) => i.type), ['sentence', 'sentence', 'sentence', 'result', 'run-end']);
    assert.deepEqual(items.slice(0, 3).map((i) => (i.type === 'sentence' ? i.text : '')), ['Hello there. ', 'It is late. ', 'Good night.']);
    await executor.close();
  });

  it('the sentences a run-end releases come before it; resume skips sentences, never the end', async () => {
    // A run that ends with a stream still open: its last sentence is cut by run-end itself.
    const run = new Run();
    run.emit({ type: 'run-start', action: 'x', at: 0 });
    run.emit({ type: 'chunk', responseId: 'a'.repeat(32), text: 'One. Two' });
    run.emit({ type: 'result', events: [], responses: [] });
    run.emit({ type: 'run-end', reason: 'completed' });
    const all = await collect(sentenceViewOf(run));
    assert.deepEqual(all.map((i) => (i.type === 'sentence' ? i.text : i.type)), ['One. ', 'Two', 'result', 'run-end']);
    const resumed = await collect(sentenceViewOf(run, { afterIndex: 1 }));
    assert.deepEqual(resumed.map((i) => i.type), ['result', 'run-end']);
  });

  it('passes an error through', async () => {
    const executor = executorWith([
      defineAction({
        name: 'action_fail',
        async *stream() {
          yield 'Said. Half';
          throw new Error('boom');
        },
      }),
    ]);
    const items = await collect(sentenceViewOf(executor.start(call('action_fail'))));
    assert.deepEqual(items.map((i) => i.type), ['sentence', 'sentence', 'error', 'run-end']);
    const error = items[2]!;
    assert.ok(error.type === 'error');
    // The action's own text stays in the log unless exposeActionErrors is on.
    assert.equal(error.message, "Action 'action_fail' failed");
    await executor.close();
  });
});

describe('parseSegmenterOptions', () => {
  it('accepts what a wire carries and returns only the given options', () => {
    assert.deepEqual(parseSegmenterOptions('w', undefined), {});
    assert.deepEqual(parseSegmenterOptions('w', { mode: 'ace', maxLength: 80, stallFlushMs: 300 }), { mode: 'ace', maxLength: 80, stallFlushMs: 300 });
    assert.deepEqual(parseSegmenterOptions('w', { locale: 'de', minFirstLength: 20, maxLength: undefined }), { locale: 'de', minFirstLength: 20 });
  });

  it('names the bad option', () => {
    const cases: [unknown, string][] = [
      [[], "w: options must be an object (got [])"],
      [{ now: 1 }, "w: unknown option 'now' (known: mode, locale, minFirstLength, maxLength, stallFlushMs)"],
      [{ mode: /\./ }, "w: option 'mode' must be one of 'default', 'ace' (got {})"],
      [{ locale: 5 }, "w: option 'locale' must be a string (got 5)"],
      [{ minFirstLength: 1.5 }, "w: option 'minFirstLength' must be an integer ≥ 0 (got 1.5)"],
      [{ maxLength: null }, "w: option 'maxLength' must be a number (got null)"],
      [{ minFirstLength: 9, maxLength: 3 }, "w: option 'maxLength' must be ≥ minFirstLength (got 3 < 9)"],
      [{ stallFlushMs: 0 }, "w: option 'stallFlushMs' must be > 0 (got 0)"],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => parseSegmenterOptions('w', options),
        (error: unknown) => SluiceError.isInstance(error) && error.code === 'invalid_argument' && error.message === message,
        message,
      );
    }
  });
});

describe('sentenceGate', () => {
  it('closes once the run is cancelled after the reader began, stays open for a reader that began after', () => {
    const run = new Run();
    const early = sentenceGate(run);
    assert.equal(early(), true);
    run.cancel(new SluiceError('cancelled', 'barge-in'));
    assert.equal(early(), false, 'no sentence after the barge-in');
    const late = sentenceGate(run);
    assert.equal(late(), true, 'a follower still gets what was said before it');
  });
});
