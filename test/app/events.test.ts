/**
 * Each step is a Sluice `Run`: the mapping from yielded items to events, the closing events per
 * outcome, backpressure, and how a server finds a step's run.
 */

import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { action, ApplicationBuilder, endStream, message, status, streamingAction } from '../../src/app/index.ts';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import type { Run } from '../../src/runtime/run.ts';
import { collect, spell } from './helpers.ts';

function strip(events: SluiceEvent[]): Record<string, unknown>[] {
  return events.map((e) => {
    const { runId: _r, seq: _s, ...rest } = e as SluiceEvent & Record<string, unknown>;
    if ('responseId' in rest) rest.responseId = rest.responseId === undefined ? undefined : 'R';
    if ('at' in rest) rest.at = 'T';
    return rest;
  });
}

async function readAll(run: Run): Promise<SluiceEvent[]> {
  return collect(run.subscribe());
}

async function one(act: ReturnType<typeof streamingAction> | ReturnType<typeof action>, state: Record<string, unknown> = {}, graceMs = 0) {
  return new ApplicationBuilder().withActions({ act }).withTransitions(['act', 'act']).withState(state).withEntrypoint('act').withOptions({ graceMs }).build();
}

describe('items → events', () => {
  test('strings and { text } are chunks of one message; status / custom / endStream map as documented', async () => {
    const act = streamingAction({ reads: [], writes: ['done'] }, async function* (state) {
      yield ['Hel', null];
      yield [{ text: 'lo', buttons: [{ title: 'Yes', payload: '/yes' }] }, null];
      yield [status('Thinking…'), null];
      yield [{ type: 'progress', pct: 50 }, null];
      yield [42, null];
      yield [null, null];
      yield [endStream(), null];
      yield ['Second message', null];
      yield [{ ok: true }, state.update({ done: true })];
    });
    const app = await one(act, { done: false });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const run = container.run as Run;
    const reading = readAll(run);
    const items = await collect(container);
    assert.equal(items.length, 8, 'the consumer gets every intermediate item as yielded');
    const events = await reading;
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'seq is gap-free');
    assert.deepEqual(strip(events), [
      { type: 'run-start', action: 'act', at: 'T' },
      { type: 'stream-start', responseId: 'R' },
      { type: 'chunk', responseId: 'R', text: 'Hel' },
      { type: 'chunk', responseId: 'R', text: 'lo', buttons: [{ title: 'Yes', payload: '/yes' }] },
      { type: 'status', text: 'Thinking…' },
      { type: 'chunk', responseId: 'R', custom: { type: 'progress', pct: 50 } },
      { type: 'chunk', responseId: 'R', custom: { value: 42 } },
      { type: 'stream-end', responseId: 'R', reason: 'completed' },
      { type: 'stream-start', responseId: 'R' },
      { type: 'chunk', responseId: 'R', text: 'Second message' },
      { type: 'stream-end', responseId: 'R', reason: 'completed' },
      { type: 'result', events: [], responses: [], state: { done: true } },
      { type: 'run-end', reason: 'completed' },
    ]);
    const [first, second] = events.filter((e) => e.type === 'stream-start') as { responseId: string }[];
    assert.notEqual(first?.responseId, second?.responseId);
    assert.match(first?.responseId ?? '', /^[0-9a-f]{32}$/);
  });

  test('the result event carries the state update: only the written keys that changed', async () => {
    const act = streamingAction({ reads: ['a', 'b'], writes: ['a', 'b'] }, function* (state) {
      yield [null, state.update({ a: 2 })];
    });
    const app = await one(act, { a: 1, b: 1, c: 1 });
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    await container.get();
    const result = (container.run as Run).events().find((e) => e.type === 'result');
    assert.deepEqual((result as { state: unknown }).state, { a: 2 });
  });

  test('ctx.dispatcher: status updates and whole messages from inside a step (messages become the result’s responses)', async () => {
    const act = streamingAction({ reads: [], writes: ['x'] }, async function* (state, _inputs, ctx) {
      await ctx.dispatcher.status('Searching…');
      yield ['Found it.', null];
      ctx.dispatcher.utterMessage({ text: 'Here is a card', buttons: [{ title: 'Open', payload: '/open' }] });
      yield [null, state.update({ x: 1 })];
    });
    const app = await one(act);
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    await container.get();
    const types = (container.run as Run).events().map((e) => e.type);
    assert.deepEqual(types, ['run-start', 'status', 'stream-start', 'chunk', 'message', 'stream-end', 'result', 'run-end']);
    const result = (container.run as Run).events().find((e) => e.type === 'result') as unknown as { responses: { text: string }[] };
    assert.equal(result.responses[0]?.text, 'Here is a card');
  });

  test('a plain action is a run too; failures end in error, cancels in a cancelled stream and run', async () => {
    const plain = action({ reads: [], writes: ['x'] }, async (state, _inputs, ctx) => {
      await ctx.dispatcher.status('working');
      return [1, state.update({ x: 1 })];
    });
    const app = await one(plain);
    await app.step();
    assert.deepEqual((app.runs[0] as Run).events().map((e) => e.type), ['run-start', 'status', 'result', 'run-end']);

    const failing = streamingAction({ reads: [], writes: ['x'] }, function* () {
      yield ['a', null];
      throw new Error('kaput');
    });
    const app2 = await one(failing);
    await assert.rejects(app2.step(), /kaput/);
    const errorEvents = strip((app2.runs[0] as Run).events()).slice(-3);
    assert.deepEqual(errorEvents, [
      { type: 'stream-end', responseId: 'R', reason: 'error' },
      { type: 'error', code: 'internal', message: 'kaput', reason: 'action_failed', actionName: 'act' },
      { type: 'run-end', reason: 'error' },
    ]);

    const app3 = await one(spell('async'), { prompt: 'hello' });
    const [, container] = await app3.streamResult({ haltAfter: ['act'] });
    const reading = readAll(container.run as Run);
    for await (const _ of container) break;
    assert.deepEqual(strip(await reading).slice(-3), [
      { type: 'stream-end', responseId: 'R', reason: 'cancelled' },
      { type: 'result', events: [], responses: [], state: {} },
      { type: 'run-end', reason: 'cancelled' },
    ]);
  });
});

describe('backpressure', () => {
  const kinds: [string, (i: number) => unknown][] = [
    ['text chunks', (i) => `t${i}`],
    ['rich chunks', (i) => ({ text: `t${i}`, buttons: [{ title: 'b', payload: '/b' }] })],
    ['custom items', (i) => ({ progress: i })],
    ['status updates', (i) => status(`step ${i}`)],
    ['whole messages', (i) => message({ text: `m${i}` })],
  ];
  for (const [kind, itemAt] of kinds) {
    test(`a streaming step never runs more than the high-water mark ahead of a run subscriber, nor ahead of its container reader (${kind})`, async () => {
      const HWM = 4;
      let produced = 0;
      let maxBuffered = 0;
      let maxAheadOfReader = 0;
      let delivered = 0;
      const act = streamingAction({ reads: [], writes: ['n'] }, async function* (state, _inputs, ctx) {
        for (let i = 0; i < 50; i++) {
          maxBuffered = Math.max(maxBuffered, ctx.run.buffered);
          maxAheadOfReader = Math.max(maxAheadOfReader, produced - delivered);
          produced++;
          yield [itemAt(i), null];
        }
        yield [null, state.update({ n: produced })];
      });
      const app = await new ApplicationBuilder()
        .withActions({ act })
        .withTransitions(['act', 'act'])
        .withEntrypoint('act')
        .withOptions({ run: { highWaterMark: HWM } })
        .build();
      const [, container] = await app.streamResult({ haltAfter: ['act'] });
      const run = container.run as Run;
      const slow = (async () => {
        let n = 0;
        for await (const _ of run.subscribe()) {
          n++;
          for (let k = 0; k < 5; k++) await tick();
        }
        return n;
      })();
      for await (const _ of container) delivered++;
      const events = await slow;
      assert.equal(delivered, 50);
      assert.ok(maxBuffered <= HWM, `run buffer stayed within the high-water mark (max ${maxBuffered})`);
      assert.equal(maxAheadOfReader, 0, 'the generator is pulled: it never runs ahead of the container reader');
      assert.ok(events >= 50 + 3, 'the subscriber saw every event');
    });
  }
});

describe('finding a step’s run', () => {
  test('currentRun while a step is pending, runs / getRun afterwards (bounded by retainRuns)', async () => {
    const app = await new ApplicationBuilder()
      .withActions({ act: spell('sync') })
      .withTransitions(['act', 'act'])
      .withState({ prompt: 'hey' })
      .withEntrypoint('act')
      .withOptions({ retainRuns: 2 })
      .build();
    assert.equal(app.currentRun, null);
    const seen: string[] = [];
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    // Read through a cast: the assertion above narrowed the getter to null for TypeScript.
    const run = app.currentRun as Run | null;
    assert.ok(run !== null && run === container.run);
    seen.push(run.id);
    await container.get();
    assert.equal(app.currentRun, null);
    for (let i = 0; i < 2; i++) {
      await app.step();
      seen.push(app.lastStep?.runId as string);
    }
    assert.deepEqual(app.runs.map((r) => r.id), seen.slice(1));
    assert.equal(app.getRun(seen[0] as string), undefined);
    assert.equal(app.getRun(seen[2] as string)?.state, 'ended');
  });

  test('server pattern: subscribe to the step’s run and drive it with get(); a transport’s cancel commits it with no container reader', async () => {
    const app = await one(spell('async', { respectSignal: true }), { prompt: 'streaming', response: '' }, 1_000);
    const [, container] = await app.streamResult({ haltAfter: ['act'] });
    const run = container.run as Run;
    const wire: string[] = [];
    const transport = (async () => {
      for await (const e of run.subscribe()) {
        wire.push(e.type === 'chunk' ? String(e.text) : e.type);
        if (e.type === 'chunk' && e.text === 'r') run.cancel('client disconnected and asked to stop');
      }
    })();
    const [result, state] = await container.get();
    await transport;
    assert.equal(container.status, 'interrupted');
    assert.deepEqual(result, { text: 'str' }, 'the action’s own final item after the cancel');
    assert.equal(state.get('response'), 'str');
    assert.deepEqual(wire.slice(0, 5), ['run-start', 'stream-start', 's', 't', 'r']);
    assert.deepEqual(wire.slice(-3), ['stream-end', 'result', 'run-end']);

    // Nobody reads the container at all: the transport's cancel alone ends and commits the step.
    const [, unread] = await app.streamResult({ haltAfter: ['act'] });
    (unread.run as Run).cancel();
    const record = await (unread.run as Run).done;
    assert.equal(record.reason, 'cancelled');
    await tick();
    assert.equal(unread.status, 'interrupted');
    assert.equal(app.lastStep?.sequenceId, 1);
  });

  test('preRunStep hands the run to a server before the action starts (subscribe and miss nothing)', async () => {
    const streamed: string[] = [];
    const readers: Promise<void>[] = [];
    const app = await new ApplicationBuilder()
      .withActions({ a: spell('async'), b: spell('sync') })
      .withTransitions(['a', 'b'])
      .withState({ prompt: 'ab' })
      .withEntrypoint('a')
      .withHooks({
        preRunStep: ({ run }) => {
          readers.push(
            (async () => {
              for await (const e of run.subscribe()) if (e.type === 'chunk') streamed.push(`${run.action}:${String(e.text)}`);
            })(),
          );
        },
      })
      .build();
    await app.run();
    await Promise.all(readers);
    assert.deepEqual(streamed, ['a:a', 'a:b', 'b:a', 'b:b'], 'intermediate streaming steps still stream to their run');
  });
});
