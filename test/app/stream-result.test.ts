/**
 * Burr's application-level streaming tests (reference §1.10, `tests/core/test_application.py`),
 * translated: `stream_result` / `astream_result` → `streamResult` with sync / async generators,
 * `stream_iterate` → `streamIterate`. Each test registers a sync and an async hook recorder and
 * checks they count the same (Burr's async variants do).
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { action, type Action, ApplicationBuilder, DEFAULT, expr, not, StreamingAction, when } from '../../src/app/index.ts';
import { collect, CounterClass, counterFn, counterPlain, HookRecorder, MODES } from './helpers.ts';

function recorders(): [HookRecorder, HookRecorder] {
  return [new HookRecorder(), new HookRecorder({ async: true })];
}

function assertSame(a: HookRecorder, b: HookRecorder): void {
  assert.deepEqual(a.order(), b.order(), 'sync and async hooks are called the same way');
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

async function chained(first: Action | StreamingAction, second: Action | StreamingAction, hooks: HookRecorder[]) {
  return new ApplicationBuilder()
    .withActions({ counter_1: first, counter_2: second })
    .withTransitions(['counter_1', 'counter_2'])
    .withState({ count: 0, tracker: [] })
    .withEntrypoint('counter_1')
    .withHooks(...hooks)
    .build();
}

async function loopThen(final: Action, hooks: HookRecorder[]) {
  return new ApplicationBuilder()
    .withActions({ counter: counterPlain, counter_final: final })
    .withTransitions(['counter', 'counter', expr((s) => (s.get('count') as number) < 10)], ['counter', 'counter_final'])
    .withState({ count: 0, tracker: [] })
    .withEntrypoint('counter')
    .withHooks(...hooks)
    .build();
}

function assertStreamHooks(hooks: HookRecorder, starts: number, items: number, ends: number): void {
  assert.equal(hooks.count('preStartStream'), starts);
  assert.equal(hooks.count('postStreamItem'), items);
  assert.equal(hooks.count('postEndStream'), ends);
}

for (const mode of MODES) {
  describe(`Burr test_application.py streaming (${mode} generator)`, () => {
    test('test_stream_result_halt_after_unique_ordered_sequence_id: 10 items from the target only; sequence ids [0, 1]; each hook pair once', async () => {
      const [sync, async] = recorders();
      const app = await chained(new CounterClass(mode), new CounterClass(mode), [sync, async]);
      const [name, container] = await app.streamResult({ haltAfter: ['counter_2'] });
      assert.equal(name, 'counter_2');
      const items = await collect(container);
      assert.equal(items.length, 10);
      assert.ok(items.every((item) => (item as { count: number }).count > 1), 'items come from the second action');
      const [result, state] = await container.get();
      assert.deepEqual(result, { count: 2 });
      assert.equal(state.get('count'), 2);
      assert.deepEqual(state.get('tracker'), [1, 2]);
      for (const hooks of [sync, async]) {
        assert.deepEqual(hooks.sequenceIds('preRunStep'), [0, 1]);
        assert.deepEqual(hooks.sequenceIds('postRunStep'), [0, 1]);
        assert.equal(hooks.count('preExecuteCall'), 1);
        assert.equal(hooks.count('postExecuteCall'), 1);
        assertStreamHooks(hooks, 1, 10, 1);
      }
      assertSame(sync, async);
    });

    test('test_stream_result_halt_after_run_through_streaming: an intermediate streaming action is drained with no stream hooks', async () => {
      const [sync, async] = recorders();
      const app = await chained(counterFn(mode), counterFn(mode), [sync, async]);
      const [name, container] = await app.streamResult({ haltAfter: ['counter_2'] });
      assert.equal(name, 'counter_2');
      assert.equal((await collect(container)).length, 10);
      const [result, state] = await container.get();
      assert.deepEqual(result, { count: 2 });
      assert.deepEqual(state.get('tracker'), [1, 2]);
      for (const hooks of [sync, async]) {
        assert.deepEqual(hooks.sequenceIds('preRunStep'), [0, 1]);
        assert.deepEqual(hooks.sequenceIds('postRunStep'), [0, 1]);
        assert.equal(hooks.count('preExecuteCall'), 1);
        assert.equal(hooks.count('postExecuteCall'), 1);
        assertStreamHooks(hooks, 1, 10, 1);
        assert.ok(hooks.events('postStreamItem').every((e) => e.action === 'counter_2'));
      }
      assertSame(sync, async);
    });

    test('test_stream_result_halt_after_run_through_non_streaming: 10 plain steps, then the streamed target', async () => {
      const [sync, async] = recorders();
      const app = await loopThen(counterFn(mode), [sync, async]);
      const [name, container] = await app.streamResult({ haltAfter: ['counter_final'] });
      assert.equal(name, 'counter_final');
      assert.equal((await collect(container)).length, 10);
      const [, state] = await container.get();
      assert.equal(state.get('count'), 11);
      for (const hooks of [sync, async]) {
        assert.deepEqual(hooks.sequenceIds('preRunStep'), range(11));
        assert.deepEqual(hooks.sequenceIds('postRunStep'), range(11));
        assert.equal(hooks.count('preExecuteCall'), 1);
        assert.equal(hooks.count('postExecuteCall'), 1);
        assertStreamHooks(hooks, 1, 10, 1);
      }
      assertSame(sync, async);
    });

    test('test_stream_result_halt_after_run_through_final_non_streaming: a non-streaming target gives no items and its result', async () => {
      const [sync, async] = recorders();
      const app = await loopThen(counterPlain, [sync, async]);
      const [name, container] = await app.streamResult({ haltAfter: ['counter_final'] });
      assert.equal(name, 'counter_final');
      assert.deepEqual(await collect(container), []);
      const [result, state] = await container.get();
      assert.deepEqual(result, { count: 11 });
      assert.equal(state.get('count'), 11);
      assert.equal(container.status, 'completed');
      assert.ok(container.run !== null, 'the non-streaming target still ran as a Run');
      for (const hooks of [sync, async]) {
        assert.deepEqual(hooks.sequenceIds('postRunStep'), range(11));
        assert.equal(hooks.count('preExecuteCall'), 1);
        assert.equal(hooks.count('postExecuteCall'), 1);
        assertStreamHooks(hooks, 0, 0, 0);
      }
      assertSame(sync, async);
    });

    test('test_stream_result_halt_before: no items; get() gives [null, state]; the action returned is the one halted before', async () => {
      const [sync, async] = recorders();
      const app = await loopThen(counterFn(mode), [sync, async]);
      const [name, container] = await app.streamResult({ haltAfter: [], haltBefore: ['counter_final'] });
      assert.equal(name, 'counter_final');
      assert.deepEqual(await collect(container), []);
      const [result, state] = await container.get();
      assert.equal(result, null);
      assert.equal(state.get('count'), 10);
      assert.equal(container.run, null);
      for (const hooks of [sync, async]) {
        assert.deepEqual(hooks.sequenceIds('preRunStep'), range(10));
        assert.deepEqual(hooks.sequenceIds('postRunStep'), range(10));
        assert.equal(hooks.count('preExecuteCall'), 1);
        assert.equal(hooks.count('postExecuteCall'), 1);
      }
      assertSame(sync, async);
      assert.equal(app.nextAction, 'counter_final');
    });

    for (const drain of [true, false]) {
      test(`test_stream_iterate (consumer ${drain ? 'drains' : 'does not drain'} each container): both steps stream; sequence ids [0, 1]; 20 items`, async () => {
        const [sync, async] = recorders();
        const app = await chained(counterFn(mode), new CounterClass(mode), [sync, async]);
        const seen: [string, number][] = [];
        let last: [unknown, unknown] | null = null;
        for await (const [name, container] of app.streamIterate({ haltAfter: ['counter_2'] })) {
          if (drain) seen.push([name, (await collect(container)).length]);
          last = await container.get();
        }
        if (drain) assert.deepEqual(seen, [['counter_1', 10], ['counter_2', 10]]);
        assert.ok(last !== null);
        assert.deepEqual(last[0], { count: 2 });
        assert.equal(app.state.get('count'), 2);
        assert.deepEqual(app.state.get('tracker'), [1, 2]);
        for (const hooks of [sync, async]) {
          assert.deepEqual(hooks.sequenceIds('postRunStep'), [0, 1]);
          assertStreamHooks(hooks, 2, 20, 2);
          assert.equal(hooks.count('preExecuteCall'), 1);
          assert.equal(hooks.count('postExecuteCall'), 1);
        }
        assertSame(sync, async);
      });
    }
  });
}

describe('transitions and multi-step calls', () => {
  const countTo = (n: number) =>
    new ApplicationBuilder()
      .withActions({ counter: counterPlain, done: action({ reads: ['count'], writes: ['done'] }, (s) => [null, s.update({ done: true })]) })
      .withTransitions(['counter', 'counter', expr((s) => (s.get('count') as number) < n)], ['counter', 'done'])
      .withState({ count: 0, done: false })
      .withEntrypoint('counter')
      .build();

  test('run() goes to the end of the graph; conditions are tried before the default', async () => {
    const app = await countTo(3);
    const [name, , state] = await app.run();
    assert.equal(name, 'done');
    assert.equal(state.get('count'), 3);
    assert.equal(state.get('done'), true);
    assert.equal(app.nextAction, null);
    assert.equal(await app.step(), null);
    await assert.rejects(app.run(), /has no next action/);
  });

  test('iterate() yields each step and honours haltAfter / haltBefore; at least one step runs', async () => {
    const app = await countTo(5);
    const names: string[] = [];
    for await (const [name] of app.iterate({ haltBefore: ['done'] })) names.push(name);
    assert.deepEqual(names, ['counter', 'counter', 'counter', 'counter', 'counter']);
    assert.equal(app.nextAction, 'done');
    const [name, result] = await app.run({ haltBefore: ['done'] });
    assert.equal(name, 'done', 'at least one step runs, so a call resumes past its own haltBefore');
    assert.equal(result, null);
    assert.equal(app.state.get('done'), true);
  });

  test('when / not / DEFAULT / plain predicates; a default declared first is still tried last', async () => {
    const route = action({ reads: ['intent'], writes: ['routed'] }, (s) => [null, s.update({ routed: true })]);
    const reply = (name: string) => action({ reads: [], writes: ['reply'] }, (s) => [name, s.update({ reply: name })]);
    const build = (intent: string) =>
      new ApplicationBuilder()
        .withActions({ route, greet: reply('greet'), weather: reply('weather'), fallback: reply('fallback'), other: reply('other') })
        .withTransitions(
          ['route', 'fallback', DEFAULT],
          ['route', 'greet', when({ intent: 'hello' })],
          ['route', 'weather', (s) => String(s.get('intent')).startsWith('weather')],
          ['route', 'other', not(when({ intent: 'bye' }))],
        )
        .withState({ intent })
        .withEntrypoint('route')
        .build();
    const cases: [string, string][] = [
      ['hello', 'greet'],
      ['weather_today', 'weather'],
      ['what', 'other'],
      ['bye', 'fallback'],
    ];
    for (const [intent, expected] of cases) {
      const app = await build(intent);
      const [name, result] = await app.run();
      assert.equal(name, expected, intent);
      assert.equal(result, expected);
    }
  });

  test('@tag: entries in halt lists; unknown names are rejected', async () => {
    const tagged = action({ reads: ['count'], writes: ['count'], tags: ['checkpoint'] }, (s) => [null, s.update({ count: 100 })]);
    const app = await new ApplicationBuilder()
      .withActions({ counter: counterPlain, tagged })
      .withTransitions(['counter', 'tagged'], ['tagged', 'counter'])
      .withState({ count: 0 })
      .withEntrypoint('counter')
      .build();
    const [name] = await app.run({ haltAfter: ['@tag:checkpoint'] });
    assert.equal(name, 'tagged');
    await assert.rejects(app.streamResult({ haltAfter: ['nope'] }), /unknown action 'nope'/);
  });

  test('the builder rejects unknown transition targets and a missing entrypoint', async () => {
    await assert.rejects(new ApplicationBuilder().withActions({ a: counterPlain }).withTransitions(['a', 'b']).build(), /unknown action 'b'/);
    await assert.rejects(new ApplicationBuilder().withActions({ a: counterPlain }).build(), /entrypoint/);
  });
});

