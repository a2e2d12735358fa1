/**
 * Burr's streaming-action tests (reference §1.10, `tests/core/test_action.py` and the internal
 * runner tests of `tests/core/test_application.py`), translated to this API. Burr's `_async`
 * variants are the `async` mode here: every test runs with a sync and an async generator.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { action, ApplicationBuilder, type Action, State, StreamingAction, streamingAction } from '../../src/app/index.ts';
import { collect, CounterClass, counterFn, HookRecorder, MODES, type Mode } from './helpers.ts';

async function appWith(actionUnderTest: Action | StreamingAction, state: Record<string, unknown>, hooks: HookRecorder[] = [], graceMs?: number) {
  return new ApplicationBuilder()
    .withActions({ act: actionUnderTest })
    .withTransitions(['act', 'act'])
    .withState(state)
    .withEntrypoint('act')
    .withHooks(...hooks)
    .withOptions(graceMs === undefined ? {} : { graceMs })
    .build();
}

function echoWithPrefix(mode: Mode): Action {
  const spec = { reads: ['input'], writes: ['output'], tags: ['echo'] } as const;
  if (mode === 'async') {
    return streamingAction(spec, async function* (state, inputs) {
      const text = `${String(inputs.prefix)}${String(state.get('input'))}`;
      for (const c of text) yield [c, null];
      yield [{ text }, state.update({ output: text })];
    });
  }
  return streamingAction(spec, function* (state, inputs) {
    const text = `${String(inputs.prefix)}${String(state.get('input'))}`;
    for (const c of text) yield [c, null];
    yield [{ text }, state.update({ output: text })];
  });
}

for (const mode of MODES) {
  describe(`Burr test_action.py (${mode} generator)`, () => {
    test('test_create_action_streaming_fn_api_with_bind: bind fixes inputs; one item per character, then the joined result', async () => {
      const base = echoWithPrefix(mode);
      const bound = base.bind({ prefix: 'hi ' });
      assert.equal(bound.streaming, true);
      assert.deepEqual(bound.reads, ['input']);
      assert.deepEqual(bound.writes, ['output']);
      assert.deepEqual(bound.tags, ['echo']);
      const app = await appWith(bound, { input: 'there' });
      const [name, container] = await app.streamResult({ haltAfter: ['act'], inputs: { prefix: 'ignored: bound wins ' } });
      assert.equal(name, 'act');
      assert.deepEqual(await collect(container), [...'hi there']);
      const [result, state] = await container.get();
      assert.deepEqual(result, { text: 'hi there' });
      assert.equal(state.get('output'), 'hi there');
    });

    test('test_streaming_action_stream_run: a class-based action is drained by a normal step and update writes the joined response', async () => {
      class Joiner extends StreamingAction<string, string> {
        readonly reads = ['prompt'];
        readonly writes = ['response'];
        streamRun(state: State) {
          const words = String(state.get('prompt')).split(' ');
          if (mode === 'sync') {
            return (function* () {
              for (const w of words) yield w;
              return words.join('+');
            })();
          }
          return (async function* () {
            for (const w of words) yield w;
            return words.join('+');
          })();
        }
        update(result: string, state: State) {
          return state.update({ response: result });
        }
      }
      const app = await appWith(new Joiner(), { prompt: 'a b c' });
      const out = await app.step();
      assert.ok(out !== null);
      const [name, result, state] = out;
      assert.equal(name, 'act');
      assert.equal(result, 'a+b+c');
      assert.equal(state.get('response'), 'a+b+c');
    });

    test('test_streaming_result_container_iterate: iteration gives exactly the intermediate items; get() then the final result', async () => {
      const app = await appWith(counterFn(mode), { count: 0, tracker: [] });
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      const items = await collect(container);
      assert.deepEqual(
        items,
        Array.from({ length: 10 }, (_, i) => ({ count: (i + 1) / 10 })),
      );
      const [result, state] = await container.get();
      assert.deepEqual(result, { count: 1 });
      assert.equal(state.get('count'), 1);
    });

    test('test_streaming_result_get_runs_through: get() without iterating drains the stream and returns the final result', async () => {
      const app = await appWith(counterFn(mode), { count: 0, tracker: [] });
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      const [result, state] = await container.get();
      assert.deepEqual(result, { count: 1 });
      assert.deepEqual(state.get('tracker'), [1]);
      assert.deepEqual(await container.get(), [result, state], 'repeated get() returns the cached outcome');
      assert.deepEqual(await collect(container), [], 'a second iteration yields nothing');
    });

    test('test_streaming_result_callback_called: after get() the post hooks fired exactly once, with the final result and state and no error', async () => {
      const hooks = new HookRecorder();
      const app = await appWith(counterFn(mode), { count: 0, tracker: [] }, [hooks]);
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      await container.get();
      assert.equal(hooks.count('postRunStep'), 1);
      assert.equal(hooks.count('postEndStream'), 1);
      assert.equal(hooks.count('postExecuteCall'), 1);
      const post = hooks.events('postRunStep')[0] as { result: unknown; state: State; error?: unknown; status: string };
      assert.deepEqual(post.result, { count: 1 });
      assert.equal(post.state.get('count'), 1);
      assert.equal(post.error, undefined);
      assert.equal(post.status, 'completed');
    });

    test('test_streaming_result_callback_error: a consumer that throws on the first item → hooks once, initial state kept', async () => {
      const hooks = new HookRecorder();
      // Grace 0: the action gets no time to produce a final item, as in Burr.
      const app = await appWith(counterFn(mode), { count: 0, tracker: [], foo: 'bar' }, [hooks], 0);
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      await assert.rejects(async () => {
        for await (const _ of container) throw new Error('consumer failed');
      }, /consumer failed/);
      assert.equal(hooks.count('postRunStep'), 1);
      assert.equal(hooks.count('postEndStream'), 1);
      const post = hooks.events('postRunStep')[0] as { state: State; status: string; error: unknown };
      assert.equal(post.state.get('foo'), 'bar');
      assert.equal(post.state.get('count'), 0);
      assert.equal(post.status, 'interrupted');
      assert.equal(app.state.get('foo'), 'bar');
    });
  });

  describe(`Burr internal runner tests (${mode} generator)`, () => {
    test('test_run_(single|multi)_step_streaming_action_errors_missing_write: the error names the missing key', async () => {
      const fnForm =
        mode === 'async'
          ? streamingAction({ reads: [], writes: ['a', 'b'] }, async function* (state) {
              yield ['x', null];
              yield [{}, state.update({ a: 1 })];
            })
          : streamingAction({ reads: [], writes: ['a', 'b'] }, function* (state) {
              yield ['x', null];
              yield [{}, state.update({ a: 1 })];
            });
      class ClassForm extends StreamingAction<string, string> {
        readonly reads = [];
        readonly writes = ['a', 'b'];
        *streamRun() {
          yield 'x';
          return 'done';
        }
        update(_result: string, state: State) {
          return state.update({ a: 1 });
        }
      }
      const plain = action({ reads: [], writes: ['a', 'b'] }, (state) => [{}, state.update({ a: 1 })]);
      for (const candidate of [fnForm, new ClassForm(), plain]) {
        const app = await appWith(candidate, {});
        await assert.rejects(app.step(), (error: Error & { code?: string; details?: { key?: string } }) => {
          assert.match(error.message, /did not write 'b'/);
          assert.equal(error.details?.key, 'b');
          return true;
        });
        assert.equal(app.lastStep?.status, 'failed');
      }
    });

    for (const form of ['class (multi-step)', 'function (single-step)'] as const) {
      test(`test__run_${form === 'class (multi-step)' ? 'multistep' : 'single_step'}_streaming_action: counts rise strictly; result {count: 1}; state count=1, tracker=[1]`, async () => {
        const app = await appWith(form.startsWith('class') ? new CounterClass(mode) : counterFn(mode), { count: 0, tracker: [] });
        const [, container] = await app.streamResult({ haltAfter: ['act'] });
        const counts = (await collect(container)).map((item) => (item as { count: number }).count);
        assert.equal(counts.length, 10);
        for (let i = 1; i < counts.length; i++) assert.ok((counts[i] as number) > (counts[i - 1] as number));
        const [result, state] = await container.get();
        assert.deepEqual(result, { count: 1 });
        assert.equal(state.get('count'), 1);
        assert.deepEqual(state.get('tracker'), [1]);
      });

      for (const hookMode of ['sync hook', 'async hook'] as const) {
        test(`test__run_${form}_streaming_action_callbacks (${hookMode}): postStreamItem gets exactly 10 items, none for the final`, async () => {
          const hooks = new HookRecorder({ async: hookMode === 'async hook' });
          const app = await appWith(form.startsWith('class') ? new CounterClass(mode) : counterFn(mode), { count: 0, tracker: [] }, [hooks]);
          const [, container] = await app.streamResult({ haltAfter: ['act'] });
          await collect(container);
          const items = hooks.events('postStreamItem').map((e) => e.item);
          assert.equal(items.length, 10);
          assert.deepEqual(items, Array.from({ length: 10 }, (_, i) => ({ count: (i + 1) / 10 })), 'the final item is not reported');
          assert.deepEqual(hooks.events('postStreamItem').map((e) => e.index), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        });
      }
    }

    test('test__run_streaming_action_incorrect_result_type: a malformed final item is an error', async () => {
      const badState =
        mode === 'async'
          ? streamingAction({ reads: [], writes: ['a'] }, async function* () {
              yield ['x', null];
              yield [{ a: 1 }, { a: 1 }];
            })
          : streamingAction({ reads: [], writes: ['a'] }, function* () {
              yield ['x', null];
              yield [{ a: 1 }, { a: 1 }];
            });
      const app = await appWith(badState, {});
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      await assert.rejects(collect(container), /whose state is not a State/);
      assert.equal(container.status, 'failed');

      const noFinal =
        mode === 'async'
          ? streamingAction({ reads: [], writes: ['a'] }, async function* () {
              yield ['x', null];
            })
          : streamingAction({ reads: [], writes: ['a'] }, function* () {
              yield ['x', null];
            });
      const app2 = await appWith(noFinal, {});
      await assert.rejects(app2.step(), /ended without yielding its final \[result, newState\] item/);

      const plain = action({ reads: [], writes: ['a'] }, () => ({ a: 1 }) as never);
      const app3 = await appWith(plain, {});
      await assert.rejects(app3.step(), /must return \[result, newState\]/);
    });
  });
}
