/**
 * One test per sharp edge of Burr's streaming (reference §1.1–§1.8 and the users' complaints in
 * §2), each named after the edge and showing it is gone.
 */

import assert from 'node:assert/strict';
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import { describe, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  action,
  type Action,
  ApplicationBuilder,
  type LifecycleHooks,
  MemoryPersister,
  MemoryTracker,
  State,
  StreamingAction,
  streamingAction,
} from '../../src/app/index.ts';
import { StepRun } from '../../src/app/step.ts';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { collect, CounterClass, counterFn, HookRecorder, MODES, spell } from './helpers.ts';

const FINISH = ['postEndStream', 'postRunStep', 'postExecuteCall'];

async function single(act: Action | StreamingAction, options: { hooks?: LifecycleHooks[]; persister?: MemoryPersister; graceMs?: number; state?: Record<string, unknown>; appId?: string } = {}) {
  const builder = new ApplicationBuilder()
    .withActions({ act })
    .withTransitions(['act', 'act'])
    .withState(options.state ?? { prompt: 'hello', count: 0, tracker: [] })
    .withEntrypoint('act')
    .withHooks(...(options.hooks ?? []))
    .withOptions({ graceMs: options.graceMs ?? 1_000 });
  if (options.appId !== undefined) builder.withIdentifiers(options.appId);
  if (options.persister !== undefined) builder.withPersister(options.persister).initializeFromPersister(options.persister);
  return builder.build();
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function reasonOf(error: unknown): unknown {
  return (error as { details?: { reason?: unknown } } | undefined)?.details?.reason;
}

describe('Burr §1.3 StreamingResultContainer edges', () => {
  test('early break: the partial result is committed once as `interrupted` — no lost text, no burnt sequence id', async () => {
    const hooks = new HookRecorder();
    const persister = new MemoryPersister();
    const app = await single(spell('async'), { hooks: [hooks], persister, graceMs: 0, appId: 'early-break' });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const got: unknown[] = [];
    for await (const item of container) {
      got.push(item);
      if (got.length === 2) break;
    }
    assert.deepEqual(got, ['h', 'e']);
    assert.equal(container.status, 'interrupted');
    const [result, state] = await container.get();
    assert.deepEqual(result, { text: 'he', itemCount: 2 }, 'what the consumer saw is the committed result');
    assert.equal(state.get('prompt'), 'hello', 'an action without onInterrupt leaves the state as it was');
    assert.equal(hooks.count('postRunStep'), 1);
    assert.equal(reasonOf(hooks.events('postRunStep')[0]?.error), 'consumer_stopped');
    const [row] = persister.list('early-break');
    assert.equal(row?.status, 'interrupted');
    assert.equal(row?.sequenceId, 0);
    assert.deepEqual(row?.result, { text: 'he', itemCount: 2 });
    await app.step();
    assert.deepEqual(persister.list('early-break').map((r) => [r.sequenceId, r.status]), [[0, 'interrupted'], [1, 'completed']]);
  });

  test('early break with onInterrupt: the partial text goes into the state (chat history keeps what the user saw)', async () => {
    const reply = streamingAction(
      {
        reads: ['history'],
        writes: ['history'],
        onInterrupt: (partial, state) => [{ text: partial.text, interrupted: true }, state.append('history', `${partial.text}…`)],
      },
      async function* (state) {
        let text = '';
        for (const word of ['The', ' answer', ' is', ' 42']) {
          text += word;
          await tick();
          yield [word, null];
        }
        yield [{ text }, state.append('history', text)];
      },
    );
    const app = await single(reply, { state: { history: ['Q?'] }, graceMs: 0 });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    for await (const word of container) if (word === ' answer') break;
    assert.deepEqual(app.state.get('history'), ['Q?', 'The answer…']);
    assert.deepEqual((await container.get())[0], { text: 'The answer', interrupted: true });
  });

  for (const mode of MODES) {
    test(`early break after many items: the committed text is every piece the consumer saw, across blocks (${mode})`, async () => {
      const words = Array.from({ length: 700 }, (_, i) => `w${i} `);
      const body = function* () {
        for (const [i, word] of words.entries()) yield [i % 97 === 0 ? { text: word, kind: 'card' } : word, null];
      };
      const act =
        mode === 'sync'
          ? streamingAction({ reads: [], writes: [] }, function* (state) {
              yield* body();
              yield [{ done: true }, state];
            })
          : streamingAction({ reads: [], writes: [] }, async function* (state) {
              yield* body();
              yield [{ done: true }, state];
            });
      const app = await single(act, { state: {}, graceMs: 0 });
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      let seen = 0;
      for await (const _ of container) if (++seen === 600) break;
      const [result] = await container.get();
      assert.deepEqual(result, { text: words.slice(0, 600).join(''), itemCount: 600 });
    });
  }

  test('consumer raises inside the loop: its own error reaches it, the step is interrupted once (hooks never see a GeneratorExit)', async () => {
    const hooks = new HookRecorder();
    const app = await single(spell('sync'), { hooks: [hooks], graceMs: 0 });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const mine = new Error('render failed');
    await assert.rejects(async () => {
      for await (const _ of container) throw mine;
    }, (e) => e === mine);
    assert.equal(hooks.count('postRunStep'), 1);
    assert.equal(hooks.events('postRunStep')[0]?.status, 'interrupted');

    // To record the consumer's own reason, hand it to cancel().
    const [, second] = await app.streamResult({ haltAfter: ['act'] });
    await second.next();
    const why = new Error('user pressed stop');
    await second.cancel(why);
    const post = hooks.events('postRunStep')[1] as { error: Error & { cause?: unknown } };
    assert.equal(post.error.cause, why);
  });

  for (const mode of MODES) {
    test(`action raises mid-stream (${mode}): the consumer and every post hook get that very error; state as before; one failed row`, async () => {
      const boom = new Error('model died');
      const failing =
        mode === 'async'
          ? streamingAction({ reads: ['count'], writes: ['count'] }, async function* () {
              yield ['a', null];
              yield ['b', null];
              throw boom;
            })
          : streamingAction({ reads: ['count'], writes: ['count'] }, function* () {
              yield ['a', null];
              yield ['b', null];
              throw boom;
            });
      const hooks = new HookRecorder();
      const persister = new MemoryPersister();
      const app = await single(failing, { hooks: [hooks], persister, appId: `raise-${mode}`, state: { count: 7 } });
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      const events: SluiceEvent[] = [];
      const reading = (async () => {
        for await (const e of (container.run as NonNullable<typeof container.run>).subscribe()) events.push(e);
      })();
      const got: unknown[] = [];
      await assert.rejects(async () => {
        for await (const item of container) got.push(item);
      }, (e) => e === boom);
      assert.deepEqual(got, ['a', 'b']);
      await assert.rejects(container.get(), (e) => e === boom);
      for (const hook of ['postRunStep', 'postEndStream', 'postExecuteCall'] as const) {
        assert.equal(hooks.count(hook), 1);
        assert.equal(hooks.events(hook)[0]?.error, boom, `${hook} gets the real error`);
      }
      assert.equal(app.state.get('count'), 7);
      const rows = persister.list(`raise-${mode}`);
      assert.deepEqual(rows.map((r) => [r.status, r.error, r.state.count]), [['failed', 'model died', 7]]);
      await reading;
      assert.deepEqual(events.map((e) => e.type).slice(-3), ['stream-end', 'error', 'run-end']);
      assert.equal(app.nextAction, 'act', 'a failed step runs again next');
    });
  }

  test('async early break: the commit and every post hook are done when the loop exits (no GC or event-loop turn needed)', async () => {
    const hooks = new HookRecorder();
    const app = await single(spell('async'), { hooks: [hooks], graceMs: 0 });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    for await (const _ of container) break;
    // Checked synchronously right after the loop: nothing is deferred to a finaliser.
    assert.deepEqual(hooks.order().slice(-3), FINISH);
    assert.equal(app.lastStep?.status, 'interrupted');
    assert.equal(app.sequenceId, 0);
  });

  test('container dropped after one next(): the app’s next call finishes that step first, so the hooks stay paired', async () => {
    const hooks = new HookRecorder();
    const app = await single(counterFn('async'), { hooks: [hooks], state: { count: 0, tracker: [] } });
    const [, dropped] = await app.streamResult({ haltAfter: ['act'] });
    assert.deepEqual((await dropped.next()).value, { count: 0.1 });
    const out = await app.step();
    assert.deepEqual(out?.[1], { count: 2 });
    assert.equal(dropped.status, 'completed', 'the pending step ran to completion');
    assert.deepEqual((await dropped.get())[0], { count: 1 });
    assert.deepEqual(await collect(dropped), [], 'its remaining items were not delivered later');
    assert.deepEqual(
      hooks.order().filter((h) => h.endsWith('ExecuteCall')),
      ['preExecuteCall', 'postExecuteCall', 'preExecuteCall', 'postExecuteCall'],
    );
    assert.deepEqual(hooks.sequenceIds('postRunStep'), [0, 1]);
    assert.equal(hooks.count('postStreamItem'), 10, 'items drained by the rule still fire their hooks');
  });

  test('container garbage-collected unread: its step is finished without waiting for a next call', async () => {
    const hooks = new HookRecorder();
    const app = await single(counterFn('async'), { hooks: [hooks], state: { count: 0, tracker: [] } });
    // The container is never held anywhere: only the app's pending step outlives this call.
    await (async () => {
      await app.streamResult({ haltAfter: ['act'] });
    })();
    assert.notEqual(app.currentRun, null, 'the step is pending');
    for (let i = 0; i < 100 && app.currentRun !== null; i++) {
      gc();
      await sleep(5);
    }
    assert.equal(app.currentRun, null, 'the step was finished once its container was collected');
    assert.equal(app.lastStep?.status, 'completed');
    assert.equal(app.state.get('count'), 1);
    assert.equal(hooks.count('preExecuteCall'), hooks.count('postExecuteCall'));
    assert.equal(hooks.count('preRunStep'), hooks.count('postRunStep'));
    assert.equal(hooks.count('preStartStream'), hooks.count('postEndStream'));
  });

  test('steps read to the end are not retained, even by a caller that never lets the event loop turn', async () => {
    const app = await single(counterFn('async'), { state: { count: 0, tracker: [] } });
    const steps = 300;
    for (let i = 0; i < steps; i++) {
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      for await (const _ of container);
      await container.get();
    }
    // queryObjects collects garbage first; what is left is held: by the app's `retainRuns` window
    // (32 runs, not their steps) and nothing else. Before, each step waited for its container's
    // finalizer, which only runs when the event loop turns.
    assert.ok(v8.queryObjects(StepRun, { format: 'count' }) < 8, 'finished steps are garbage');
    assert.equal(app.state.get('count'), steps);
  });

  test('container never iterated: settle() (or any next call) ends its step; hooks stay paired', async () => {
    const hooks = new HookRecorder();
    const app = await single(new CounterClass('sync'), { hooks: [hooks], state: { count: 0, tracker: [] } });
    const [, untouched] = await app.streamResult({ haltAfter: ['act'] });
    assert.equal(untouched.status, 'pending');
    assert.equal(app.currentRun, untouched.run);
    await app.settle();
    assert.equal(untouched.status, 'completed');
    assert.equal(app.currentRun, null);
    assert.equal(app.state.get('count'), 1);
    assert.equal(hooks.count('preExecuteCall'), hooks.count('postExecuteCall'));
    assert.equal(hooks.count('preRunStep'), hooks.count('postRunStep'));
    assert.equal(hooks.count('preStartStream'), hooks.count('postEndStream'));
    // An unfinished iterate() generator is closed by the next call too.
    const steps = app.iterate();
    await steps.next();
    await app.settle();
    assert.equal(hooks.count('preExecuteCall'), hooks.count('postExecuteCall'));
    assert.deepEqual(await steps.next(), { done: true, value: app.lastStep && ['act', app.lastStep.result, app.state] });
  });

  test('postStreamItem fires after the consumer has the item (it no longer delays delivery)', async () => {
    const log: string[] = [];
    const app = await single(spell('async'), {
      hooks: [
        {
          postStreamItem: async ({ index }) => {
            log.push(`hook ${index}`);
            await sleep(5);
          },
        },
      ],
    });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    let i = 0;
    for await (const _ of container) log.push(`got ${i++}`);
    assert.deepEqual(log.slice(0, 4), ['got 0', 'hook 0', 'got 1', 'hook 1']);
  });

  test('item_index is 0-based in every form (it was 1-based for sync function actions only)', async () => {
    for (const act of [counterFn('sync'), counterFn('async'), new CounterClass('sync'), new CounterClass('async')]) {
      const hooks = new HookRecorder();
      const app = await single(act, { hooks: [hooks], state: { count: 0, tracker: [] } });
      await (await app.streamResult({ haltAfter: ['act'] }))[1].get();
      assert.deepEqual(hooks.events('postStreamItem').map((e) => e.index), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  });

  test('the finish hooks fire in one order on every path (sync and async paths used to differ)', async () => {
    const boom = streamingAction({ reads: [], writes: ['x'] }, async function* () {
      yield ['a', null];
      throw new Error('x');
    });
    for (const act of [counterFn('sync'), counterFn('async'), new CounterClass('sync'), new CounterClass('async'), boom]) {
      for (const stop of [false, true]) {
        const hooks = new HookRecorder();
        const app = await single(act, { hooks: [hooks], state: { count: 0, tracker: [] }, graceMs: 0 });
        const [, container] = await app.streamResult({ haltAfter: ['act'] });
        try {
          for await (const _ of container) if (stop) break;
        } catch {
          // the failing action
        }
        assert.deepEqual(hooks.order().filter((h) => h !== 'postStreamItem').slice(-3), FINISH);
      }
    }
  });

  test('async hooks are awaited on every path, sync generators included (a sync stream_result ignored them)', async () => {
    const hooks = new HookRecorder({ async: true });
    const app = await single(counterFn('sync'), { hooks: [hooks], state: { count: 0, tracker: [] } });
    await (await app.streamResult({ haltAfter: ['act'] }))[1].get();
    assert.equal(hooks.count('postStreamItem'), 10);
    assert.deepEqual(hooks.order().slice(-3), FINISH);
    await app.step();
    assert.equal(hooks.count('postRunStep'), 2);
  });

  test('the function and class forms commit through the same declared-writes merge (the function path used to commit its state as is)', async () => {
    const fnForm = streamingAction({ reads: ['a'], writes: ['b'] }, function* (state) {
      yield ['x', null];
      yield [null, state.update({ b: 1, sneaky: true })];
    });
    class ClassForm extends StreamingAction<string, null> {
      readonly reads = ['a'];
      readonly writes = ['b'];
      *streamRun() {
        yield 'x';
        return null;
      }
      update(_: null, state: State) {
        return state.update({ b: 1, sneaky: true });
      }
    }
    for (const act of [fnForm, new ClassForm()]) {
      const app = await single(act, { state: { a: 0, b: 0, other: 'kept' } });
      await assert.rejects(app.step(), /wrote 'sneaky', which is not in its writes \[b\]/);
    }
    const good = streamingAction({ reads: ['a'], writes: ['b'] }, function* (state) {
      yield [null, state.update({ b: (state.get('a') as number) + 1 })];
    });
    const app = await single(good, { state: { a: 1, b: 0, other: 'kept' } });
    const out = await app.step();
    assert.deepEqual(out?.[2].data, { a: 1, b: 2, other: 'kept' }, 'keys the action did not read are kept');
  });
});

describe('Burr §1.1 / §1.2 / §1.5 / §1.7 / §1.8 edges', () => {
  test('class form: no one-item look-ahead — item k reaches the consumer before item k+1 is produced', async () => {
    let produced = 0;
    class Ticker extends StreamingAction<number, number> {
      readonly reads = [];
      readonly writes = ['n'];
      async *streamRun() {
        for (let i = 0; i < 5; i++) {
          produced++;
          yield i;
        }
        return 5;
      }
      update(result: number, state: State) {
        return state.update({ n: result });
      }
    }
    const app = await single(new Ticker(), { state: {} });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    for await (const item of container) assert.equal(produced, (item as number) + 1);
    assert.deepEqual((await container.get())[0], 5);
  });

  test('sync and async actions mix in one app (no sync-to-async bridge is needed)', async () => {
    const app = await new ApplicationBuilder()
      .withActions({ s: spell('sync'), a: spell('async') })
      .withTransitions(['s', 'a'])
      .withState({ prompt: 'ok' })
      .withEntrypoint('s')
      .build();
    const streams: [string, unknown[]][] = [];
    for await (const [name, container] of app.streamIterate()) streams.push([name, await collect(container)]);
    assert.deepEqual(streams, [['s', ['o', 'k']], ['a', ['o', 'k']]]);
  });

  test('an item after the final [result, state] is an error, never delivered as an intermediate item', async () => {
    const late = streamingAction({ reads: [], writes: ['x'] }, async function* (state) {
      yield ['a', null];
      yield [1, state.update({ x: 1 })];
      yield ['late', null];
    });
    const app = await single(late, { state: {} });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const got: unknown[] = [];
    await assert.rejects(async () => {
      for await (const item of container) got.push(item);
    }, /yielded an item after its final/);
    assert.deepEqual(got, ['a']);
    assert.ok(!(container.run as NonNullable<typeof container.run>).events().some((e) => e.type === 'chunk' && e.text === 'late'));
  });

  test('a failing pre hook still gets its post hooks, and the app stays usable (setup errors left hooks out of step)', async () => {
    const hooks = new HookRecorder();
    let fail = true;
    const setupError = new Error('tracing backend down');
    const app = await single(spell('async'), {
      hooks: [
        hooks,
        {
          preStartStream: () => {
            if (fail) throw setupError;
          },
        },
      ],
    });
    await assert.rejects(app.streamResult({ haltAfter: ['act'] }), (e) => e === setupError);
    for (const hook of ['postEndStream', 'postRunStep', 'postExecuteCall'] as const) {
      assert.equal(hooks.count(hook), 1);
      assert.equal(hooks.events(hook)[0]?.error, setupError);
    }
    fail = false;
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    assert.equal((await collect(container)).join(''), 'hello');
    assert.deepEqual(hooks.sequenceIds('postRunStep'), [0, 1]);
  });

  test('starting another call while a stream is open is defined: it waits for that step, which runs to its end first', async () => {
    const hooks = new HookRecorder();
    const app = await single(spell('async'), { hooks: [hooks] });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const first = await container.next();
    const concurrent = app.step({ inputs: { text: 'second' } });
    const rest = await collect(container);
    const out = await concurrent;
    assert.equal(first.value, 'h');
    assert.equal(container.status, 'completed');
    assert.ok(rest.length <= 4);
    assert.deepEqual(out?.[1], { text: 'second' });
    assert.deepEqual(hooks.sequenceIds('preRunStep'), [0, 1]);
    assert.deepEqual(hooks.order().filter((h) => h === 'preRunStep' || h === 'postRunStep'), ['preRunStep', 'postRunStep', 'preRunStep', 'postRunStep']);
    const chunks = (container.run as NonNullable<typeof container.run>).events().filter((e) => e.type === 'chunk');
    assert.equal(chunks.map((e) => (e as { text: string }).text).join(''), 'hello', 'the run carries every item');
  });

  test('streamIterate after an early break does not re-run the step forever: the step is committed and the iteration stops', async () => {
    let runsOfA = 0;
    const a = streamingAction({ reads: [], writes: ['a'] }, async function* (state) {
      runsOfA++;
      for (const c of 'abc') yield [c, null];
      yield [null, state.update({ a: true })];
    });
    const app = await new ApplicationBuilder()
      .withActions({ a, b: spell('async') })
      .withTransitions(['a', 'b'], ['b', 'a'])
      .withState({ prompt: 'hi' })
      .withEntrypoint('a')
      .withOptions({ graceMs: 0 })
      .build();
    const names: string[] = [];
    for await (const [name, container] of app.streamIterate()) {
      names.push(name);
      for await (const _ of container) break;
      if (names.length > 5) assert.fail('streamIterate kept going');
    }
    assert.deepEqual(names, ['a']);
    assert.equal(runsOfA, 1);
    assert.equal(app.nextAction, 'b', 'the interrupted step counts as done');
  });

  test('on resume an abandoned stream is not re-run (it is committed as interrupted); only a failed step re-runs', async () => {
    const persister = new MemoryPersister();
    const fails = streamingAction({ reads: [], writes: ['x'] }, async function* () {
      yield ['x', null];
      throw new Error('down');
    });
    const build = () =>
      new ApplicationBuilder()
        .withActions({ a: spell('async'), b: fails })
        .withTransitions(['a', 'b'], ['b', 'a'])
        .withState({ prompt: 'hi' })
        .withEntrypoint('a')
        .withIdentifiers('resume-abandoned', 'user-1')
        .withPersister(persister)
        .initializeFromPersister(persister)
        .withOptions({ graceMs: 0 })
        .build();
    const first = await build();
    const [, container] = await first.streamResult({ haltAfter: ['a'] });
    for await (const _ of container) break;
    assert.equal((await build()).nextAction, 'b', 'resumes after the interrupted step');
    await assert.rejects((await build()).step(), /down/);
    const third = await build();
    assert.equal(third.nextAction, 'b', 'the failed step re-runs');
    assert.equal(third.sequenceId, 1);
  });

  for (const mode of MODES) {
    test(`a cancelled generator still yields its final item within the grace period (${mode}; a closing Python generator cannot)`, async () => {
      const app = await single(spell(mode, { respectSignal: true }), { state: { prompt: 'hello' } });
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      const got: unknown[] = [];
      for await (const c of container) {
        got.push(c);
        if (got.length === 2) break;
      }
      assert.equal(container.status, 'interrupted');
      const [result, state] = await container.get();
      assert.deepEqual(result, { text: 'he' }, 'the action’s own final item, built after the cancel');
      assert.equal(state.get('response'), 'he');
    });
  }

  test('grace period over: the step is committed from what it produced, and a consumer blocked in next() is released', async () => {
    const stuck = streamingAction({ reads: [], writes: ['x'] }, async function* () {
      yield ['a', null];
      yield ['b', null];
      await new Promise(() => {}); // a model call that ignores the signal
    });
    const app = await single(stuck, { state: {}, graceMs: 30 });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const got: unknown[] = [];
    const started = performance.now();
    for await (const item of container) {
      got.push(item);
      if (got.length === 2) setTimeout(() => app.cancel('stop button'), 5);
    }
    const waited = performance.now() - started;
    assert.deepEqual(got, ['a', 'b']);
    assert.equal(container.status, 'interrupted');
    assert.deepEqual((await container.get())[0], { text: 'ab', itemCount: 2 });
    assert.ok(waited >= 30 && waited < 1_000, `released after the grace period (${waited.toFixed(0)} ms)`);
  });

  test('tracking uses one clock for steps and streams (naive local vs UTC times skewed the UI)', async () => {
    const tracker = new MemoryTracker();
    const before = Date.now();
    const app = await new ApplicationBuilder()
      .withActions({ act: spell('async') })
      .withTransitions(['act', 'act'])
      .withState({ prompt: 'abc' })
      .withEntrypoint('act')
      .withTracker(tracker)
      .build();
    await (await app.streamResult({ haltAfter: ['act'] }))[1].get();
    const [rec] = tracker.listRuns(app.appId);
    assert.ok(rec !== undefined);
    assert.ok(rec.startedAt >= before - 1 && rec.endedAt <= Date.now() + 1);
    assert.ok(rec.timeToFirstItemMs !== null && rec.timeToFirstItemMs >= 0 && rec.timeToFirstItemMs <= rec.durationMs);
    assert.ok(rec.streamDurationMs !== null && rec.streamDurationMs <= rec.durationMs);
    assert.equal(rec.itemCount, 3);
  });
});

describe('Burr users’ complaints (§2)', () => {
  test('#277: intermediate items may be yielded bare, without the [item, null] tuple', async () => {
    const bare = streamingAction({ reads: [], writes: ['x'] }, function* (state) {
      yield 'a';
      yield { text: 'b' };
      yield ['c', null];
      yield [3, state.update({ x: 3 })];
    });
    const app = await single(bare, { state: {} });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    assert.deepEqual(await collect(container), ['a', { text: 'b' }, 'c']);
    assert.deepEqual((await container.get())[0], 3);
  });

  test('#607: a union of item types is inferred (the type is checked by tsc; runtime items are untouched)', async () => {
    const mixed = streamingAction({ reads: [], writes: ['x'] }, function* (state) {
      yield [{ kind: 'progress' as const, pct: 50 }, null];
      yield [{ kind: 'token' as const, text: 'hi' }, null];
      yield [{ done: true }, state.update({ x: 1 })];
    });
    type Item = NonNullable<(typeof mixed)['__types']>['item'];
    const check = (item: Item): string => (item.kind === 'progress' ? `${item.pct}%` : item.text);
    const app = await single(mixed, { state: {} });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    assert.deepEqual((await collect(container)).map((i) => check(i as Item)), ['50%', 'hi']);
  });

  test('#177: the sequence id advances once per step and every hook fires once per step, across fast-forward, break and failure', async () => {
    const hooks = new HookRecorder();
    const persister = new MemoryPersister();
    let failNext = true;
    const flaky = action({ reads: ['count'], writes: ['count'] }, (state) => {
      if (failNext) {
        failNext = false;
        throw new Error('flaky');
      }
      return [null, state.update({ count: (state.get('count') as number) + 1 })];
    });
    const app = await new ApplicationBuilder()
      .withActions({ flaky, stream: counterFn('async') })
      .withTransitions(['flaky', 'stream'], ['stream', 'flaky'])
      .withState({ count: 0, tracker: [] })
      .withEntrypoint('flaky')
      .withIdentifiers('seq-177')
      .withHooks(hooks)
      .withPersister(persister)
      .withOptions({ graceMs: 0 })
      .build();
    await assert.rejects(app.step(), /flaky/);
    const [, c1] = await app.streamResult({ haltAfter: ['stream'] });
    for await (const _ of c1) break;
    const [, c2] = await app.streamResult({ haltAfter: ['stream'] });
    await c2.get();
    const rows = persister.list('seq-177');
    assert.deepEqual(rows.map((r) => [r.sequenceId, r.action, r.status]), [
      [0, 'flaky', 'failed'],
      [1, 'flaky', 'completed'],
      [2, 'stream', 'interrupted'],
      [3, 'flaky', 'completed'],
      [4, 'stream', 'completed'],
    ]);
    assert.deepEqual(hooks.sequenceIds('preRunStep'), [0, 1, 2, 3, 4]);
    assert.deepEqual(hooks.sequenceIds('postRunStep'), [0, 1, 2, 3, 4]);
    assert.equal(hooks.count('preStartStream'), 2);
    assert.equal(hooks.count('postEndStream'), 2);
  });

  test('PR #895: a completed step’s row holds the post-step state, for sync and async actions', async () => {
    const persister = new MemoryPersister();
    const syncInc = action({ reads: ['n'], writes: ['n'] }, (s) => [null, s.update({ n: (s.get('n') as number) + 1 })]);
    const asyncInc = action({ reads: ['n'], writes: ['n'] }, async (s) => {
      await tick();
      return [null, s.update({ n: (s.get('n') as number) + 10 })];
    });
    const app = await new ApplicationBuilder()
      .withActions({ syncInc, asyncInc })
      .withTransitions(['syncInc', 'asyncInc'])
      .withState({ n: 0 })
      .withEntrypoint('syncInc')
      .withIdentifiers('pr-895')
      .withPersister(persister)
      .build();
    await app.run();
    assert.deepEqual(persister.list('pr-895').map((r) => [r.action, r.status, r.state.n]), [
      ['syncInc', 'completed', 1],
      ['asyncInc', 'completed', 11],
    ]);
  });

  test('#72: a double commit is impossible — a second app committing the same step gets already_exists and does not advance', async () => {
    const persister = new MemoryPersister();
    const make = () => single(spell('sync'), { persister, appId: 'double' });
    const one = await make();
    const two = await make();
    await one.step();
    await assert.rejects(two.step(), (e: Error & { code?: string }) => e.code === 'already_exists');
    assert.equal(two.sequenceId, null, 'the sequence id was not consumed');
    assert.equal(two.lastStep?.status, 'failed');
    assert.deepEqual(persister.list('double').map((r) => r.sequenceId), [0]);
  });

  test('explicit cancellation reaches the action through its signal: app.cancel(), the call’s signal, or the step’s run', async () => {
    const seen: boolean[] = [];
    const waits = streamingAction({ reads: [], writes: ['x'] }, async function* (state, _inputs, ctx) {
      yield ['a', null];
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      seen.push(ctx.signal.aborted);
      yield [{ stopped: true }, state.update({ x: 'stopped' })];
    });
    const ways: ((app: Awaited<ReturnType<typeof single>>, run: NonNullable<unknown>, abort: AbortController) => void)[] = [
      (app) => app.cancel(),
      (_app, _run, abort) => abort.abort(),
      (_app, run) => (run as { cancel(): boolean }).cancel(),
    ];
    for (const cancel of ways) {
      const app = await single(waits, { state: {} });
      const abort = new AbortController();
      const [, container] = await app.streamResult({ haltAfter: ['act'], signal: abort.signal });
      await container.next();
      const pending = container.next();
      cancel(app, container.run as NonNullable<typeof container.run>, abort);
      assert.equal((await pending).done, true);
      assert.equal(container.status, 'interrupted');
      assert.equal(app.state.get('x'), 'stopped');
    }
    assert.deepEqual(seen, [true, true, true]);
  });
});
