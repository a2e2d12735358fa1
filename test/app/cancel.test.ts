/** Cancellation of every action form, and of multi-step calls. */

import assert from 'node:assert/strict';
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { action, ApplicationBuilder, type PartialOutput, State, StreamingAction, streamingAction } from '../../src/app/index.ts';
import { HookRecorder } from './helpers.ts';

class Words extends StreamingAction<string, string> {
  readonly reads = ['history'];
  readonly writes = ['history'];
  async *streamRun() {
    for (const w of ['never', 'gonna', 'give', 'you', 'up']) {
      await tick();
      yield `${w} `;
    }
    return 'never gonna give you up';
  }
  override interrupted(partial: PartialOutput<string>): string {
    return `${partial.text.trim()}…`;
  }
  update(result: string, state: State) {
    return state.append('history', result);
  }
}

describe('cancellation', () => {
  test('class form: interrupted() builds the result from the partial output, then update() commits it', async () => {
    const app = await new ApplicationBuilder()
      .withActions({ words: new Words() })
      .withTransitions(['words', 'words'])
      .withState({ history: [] as string[] })
      .withEntrypoint('words')
      .withOptions({ graceMs: 0 })
      .build();
    const [, container] = await app.streamResult({ haltAfter: ['words'] });
    for await (const w of container) if (w === 'gonna ') break;
    const [result, state] = await container.get();
    assert.equal(result, 'never gonna…');
    assert.deepEqual(state.get('history'), ['never gonna…']);
    assert.equal(container.status, 'interrupted');
  });

  test('a plain action is cancelled through its signal: its own answer within the grace period, else the state is kept', async () => {
    const polite = action({ reads: [], writes: ['answer'] }, async (state, _inputs, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      return ['stopped early', state.update({ answer: 'partial' })];
    });
    const stubborn = action({ reads: [], writes: ['answer'] }, async () => {
      await new Promise(() => {});
      return [null, new State()];
    });
    for (const [act, expected] of [
      [polite, 'partial'],
      [stubborn, undefined],
    ] as const) {
      const hooks = new HookRecorder();
      const app = await new ApplicationBuilder()
        .withActions({ act })
        .withTransitions(['act', 'act'])
        .withState({})
        .withEntrypoint('act')
        .withHooks(hooks)
        .withOptions({ graceMs: 20 })
        .build();
      const pending = app.step();
      await sleep(5);
      assert.equal(app.cancel('stop'), true);
      const out = await pending;
      assert.equal(app.lastStep?.status, 'interrupted');
      assert.equal((out?.[2] as State | undefined)?.get('answer'), expected);
      assert.equal(hooks.count('postRunStep'), 1);
      assert.equal(app.cancel(), false, 'nothing left to cancel');
    }
  });

  test('a failing onInterrupt fails the step with its own error (committed once)', async () => {
    const bad = new Error('could not summarise');
    const act = streamingAction(
      {
        reads: [],
        writes: ['x'],
        onInterrupt: () => {
          throw bad;
        },
      },
      async function* (state) {
        yield ['a', null];
        yield ['b', null];
        yield [null, state.update({ x: 1 })];
      },
    );
    const hooks = new HookRecorder();
    const app = await new ApplicationBuilder()
      .withActions({ act })
      .withTransitions(['act', 'act'])
      .withEntrypoint('act')
      .withHooks(hooks)
      .withOptions({ graceMs: 0 })
      .build();
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    for await (const _ of container) break;
    assert.equal(container.status, 'failed');
    await assert.rejects(container.get(), (e) => e === bad);
    assert.equal(hooks.count('postRunStep'), 1);
  });

  test('the call’s signal stops a multi-step run() after the step it interrupted', async () => {
    let steps = 0;
    const slow = streamingAction({ reads: ['n'], writes: ['n'] }, async function* (state, _inputs, ctx) {
      steps++;
      for (let i = 0; i < 5 && !ctx.signal.aborted; i++) {
        await sleep(2);
        yield [i, null];
      }
      yield [null, state.update({ n: (state.get('n') as number) + 1 })];
    });
    const app = await new ApplicationBuilder()
      .withActions({ slow })
      .withTransitions(['slow', 'slow'])
      .withState({ n: 0 })
      .withEntrypoint('slow')
      .build();
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 25);
    const [name, , state] = await app.run({ signal: abort.signal });
    assert.equal(name, 'slow');
    assert.equal(app.lastStep?.status, 'interrupted');
    assert.equal(state.get('n'), steps, 'every step, the interrupted one too, committed its own final item');
    assert.ok(steps >= 1 && steps < 50);
  });
});
