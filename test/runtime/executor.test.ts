// The executor rules of Rasa SDK 3.17 (reference/rasa-sdk.md §1c–1d, their tests §1e 21–28 and the
// WebhookStream barge-in cases), then Sluice's improvements and bad input.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SluiceError } from '../../src/protocol/errors.ts';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { actionRejected, defineAction, endStream, message, status } from '../../src/runtime/action.ts';
import { ActionExecutor, type ExecutorOptions } from '../../src/runtime/executor.ts';
import type { Logger } from '../../src/runtime/logger.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { followupAction, slotSet } from '../../src/runtime/rasa-events.ts';

const buttons = [
  { title: 'A', payload: '/a' },
  { title: 'B', payload: '/b' },
];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const streamingAction = defineAction({
  name: 'streaming_action',
  async run(d) {
    await d.streamStart();
    await d.streamChunk({ text: 'Hello ' });
    await d.streamChunk({ text: 'world' });
    await d.streamChunk({ text: 'Pick one', buttons });
    await d.streamEnd();
    return [slotSet('done', true)];
  },
});

const missingEnd = defineAction({
  name: 'missing_stream_end',
  async run(d) {
    await d.streamStart();
    await d.streamChunk({ text: 'Hello' });
    await d.streamChunk({ buttons });
    return [];
  },
});

const boom = defineAction({
  name: 'action_boom',
  async run(d) {
    await d.streamStart();
    await d.streamChunk({ text: 'before boom' });
    throw new Error('action exploded');
  },
});

/** Streams until its signal aborts (or `limit` chunks), then returns an event. */
const honours = defineAction({
  name: 'honours_signal',
  async run(d) {
    for (let i = 0; i < 1000 && !d.signal.aborted; i++) {
      await d.streamChunk({ text: `c${i} ` });
      await sleep(1);
    }
    return [slotSet('interrupted', d.signal.aborted)];
  },
});

/** Ignores the cancel: keeps streaming (its chunks are dropped) and returns late. */
const ignores = defineAction({
  name: 'ignores_cancel',
  async run(d) {
    for (let i = 0; i < 30; i++) {
      await d.streamChunk({ text: `c${i} ` });
      await sleep(1);
    }
    await d.streamEnd();
    return [slotSet('finished', true)];
  },
});

/** Hangs forever after its first chunk (never emits again, never returns). */
const hangs = defineAction({
  name: 'hangs_after_chunk',
  async run(d) {
    await d.streamChunk({ text: 'delivered' });
    await new Promise(() => {});
    return [];
  },
});

const generator = defineAction({
  name: 'generator_action',
  async *stream({ tracker }) {
    yield status('Looking…');
    yield `Hi ${tracker.senderId}`;
    yield { text: '!', buttons };
    yield endStream();
    yield message({ text: 'whole' });
    yield 'second';
    return { events: [followupAction('action_listen')], state: { turns: 1 } };
  },
});

const call = (name: string | null, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  next_action: name,
  sender_id: 'u1',
  tracker: { sender_id: 'u1', slots: { city: 'Paris' } },
  domain: { intents: ['greet'] },
  version: '3.17.0',
  ...extra,
});

function executor(options: ExecutorOptions = {}): ActionExecutor {
  return new ActionExecutor({
    actions: [streamingAction, missingEnd, boom, honours, ignores, hangs, generator],
    logger: silentLogger,
    bargeInTimeoutSeconds: 2,
    // These cases check Rasa's behaviour (clients see `str(exc)`), which exposure turns on.
    exposeActionErrors: true,
    ...options,
  });
}

async function eventsOf(ex: ActionExecutor, body: unknown): Promise<SluiceEvent[]> {
  const out: SluiceEvent[] = [];
  for await (const e of ex.start(body).subscribe()) out.push(e);
  return out;
}

function assertIdle(ex: ActionExecutor): void {
  assert.equal(ex.activeRuns, 0, 'a run is left in the registry');
  assert.equal(ex.activeStreams, 0, 'a stream is left in the registry');
}

function capturingLogger(): Logger & { records: Array<{ level: string; msg: string }> } {
  const records: Array<{ level: string; msg: string }> = [];
  const at =
    (level: string) =>
    (_obj: object, msg?: string): void => {
      records.push({ level, msg: msg ?? '' });
    };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('ActionExecutor (Rasa rules)', () => {
  test('21. run() without a sink replays chunks: 3 responses with the texts and the buttons', async () => {
    const ex = executor();
    const result = await ex.run(call('streaming_action'));
    assert.deepEqual(
      result?.responses.map((r) => r.text),
      ['Hello ', 'world', 'Pick one'],
    );
    assert.deepEqual(result?.responses[2]?.buttons, buttons);
    assert.deepEqual(result?.events, [slotSet('done', true)]);
    assertIdle(ex);
  });

  test('22/23. run() with a sink: start, 3 chunks, end, result, and the result is what run() returns', async () => {
    const ex = executor();
    const seen: SluiceEvent[] = [];
    const result = await ex.run(call('streaming_action'), { sink: (e) => void seen.push(e) });
    assert.deepEqual(
      seen.map((e) => e.type),
      ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end'],
    );
    const final = seen.find((e) => e.type === 'result');
    assert.ok(final?.type === 'result');
    assert.equal(result?.events, final.events);
    assert.equal(result?.responses, final.responses);
    assert.deepEqual(result?.responses, []);
  });

  test('24. runStreaming produces the same sequence as run with a sink', async () => {
    const ex = executor();
    const a: string[] = [];
    const b: string[] = [];
    await ex.runStreaming(call('streaming_action'), (e) => void a.push(e.type));
    await ex.run(call('streaming_action'), { sink: (e) => void b.push(e.type) });
    assert.deepEqual(a, b);
  });

  test('25. an action that throws: run rejects with it, the stream carries an error event', async () => {
    const ex = executor();
    const seen: SluiceEvent[] = [];
    await assert.rejects(
      ex.run(call('action_boom'), { sink: (e) => void seen.push(e) }),
      (e: unknown) => SluiceError.isInstance(e) && e.code === 'internal' && e.message === 'action exploded',
    );
    assert.deepEqual(
      seen.map((e) => e.type),
      ['run-start', 'stream-start', 'chunk', 'stream-end', 'error', 'run-end'],
    );
    const error = seen.find((e) => e.type === 'error');
    assert.ok(error?.type === 'error');
    assert.equal(error.actionName, 'action_boom');
    assert.equal(error.reason, 'action_failed');
    assert.equal(seen.at(-1)?.type === 'run-end' && seen.at(-1), seen.at(-1));
    assert.equal((seen.at(-1) as { reason: string }).reason, 'error');
    assertIdle(ex);
  });

  test('26. auto-close without a sink: 2 responses (text, then buttons)', async () => {
    const result = await executor().run(call('missing_stream_end'));
    assert.equal(result?.responses.length, 2);
    assert.equal(result?.responses[0]?.text, 'Hello');
    assert.deepEqual(result?.responses[1]?.buttons, buttons);
  });

  test('27/28. auto-close with a sink: stream-end (auto-closed) before the result, with a warning naming streamEnd', async () => {
    const logger = capturingLogger();
    const events = await eventsOf(executor({ logger }), call('missing_stream_end'));
    const types = events.map((e) => e.type);
    assert.ok(types.indexOf('stream-end') < types.indexOf('result'));
    const end = events.find((e) => e.type === 'stream-end');
    assert.equal(end?.type === 'stream-end' && end.reason, 'auto-closed');
    assert.ok(logger.records.some((r) => r.level === 'warn' && r.msg.includes('streamEnd()')));
  });

  test('a call without next_action resolves to null (HTTP 200 null), its run ends with a skipped result', async () => {
    const ex = executor();
    assert.equal(await ex.run(call(null)), null);
    assert.equal(await ex.run(call('')), null);
    const events = await eventsOf(ex, { tracker: { sender_id: 'x' } });
    assert.deepEqual(
      events.map((e) => e.type),
      ['run-start', 'result', 'run-end'],
    );
    assert.equal(events[1]?.type === 'result' && events[1].skipped, true);
  });

  test('an unknown action: not_found with Rasa’s message, before the call is validated', async () => {
    const ex = executor();
    await assert.rejects(
      ex.run({ next_action: 'nope' }),
      (e: unknown) =>
        SluiceError.isInstance(e) &&
        e.code === 'not_found' &&
        e.details.reason === 'action_not_found' &&
        e.message === "No registered action found for name 'nope'.",
    );
    assertIdle(ex);
  });

  test('an unknown action with a huge name: the message quotes its first 200 characters, the details keep it whole', async () => {
    const ex = executor();
    const name = 'x'.repeat(5_000);
    await assert.rejects(
      ex.run({ next_action: name }),
      (e: unknown) => SluiceError.isInstance(e) && e.message === `No registered action found for name '${'x'.repeat(200)}…'.` && e.details.actionName === name,
    );
    assertIdle(ex);
  });

  test('domain cache: a domain is kept with its digest; a matching digest reuses it; another one is missing-domain', async () => {
    const seen: unknown[] = [];
    const ex = new ActionExecutor({
      logger: silentLogger,
      actions: [defineAction({ name: 'd', run: (_d, _t, domain) => void seen.push(domain) })],
    });
    await ex.run(call('d', { domain: { intents: ['a'] }, domain_digest: 'abc' }));
    await ex.run(call('d', { domain: null, domain_digest: 'abc' }));
    assert.deepEqual(seen, [{ intents: ['a'] }, { intents: ['a'] }]);
    await assert.rejects(
      ex.run(call('d', { domain: undefined, domain_digest: 'other' })),
      (e: unknown) => SluiceError.isInstance(e) && e.details.reason === 'domain_missing' && /Missing domain context/.test(e.message),
    );
    // An empty domain is not cached (Rasa tests it with `if payload_domain:`).
    await ex.run(call('d', { domain: {}, domain_digest: 'abc' }));
    assert.deepEqual(seen.at(-1), { intents: ['a'] });
    // A call with neither domain nor digest (not from Rasa, e.g. a chat client) gets the cached one.
    await ex.run(call('d', { domain: undefined }));
    assert.deepEqual(seen.at(-1), { intents: ['a'] });
  });

  test('rejection: failed_precondition with Rasa’s default message', async () => {
    const ex = new ActionExecutor({
      logger: silentLogger,
      actions: [defineAction({ name: 'r', run: () => { throw actionRejected('r'); } })],
    });
    await assert.rejects(
      ex.run(call('r')),
      (e: unknown) => SluiceError.isInstance(e) && e.details.reason === 'action_rejected' && e.message === "Custom action 'r' rejected execution.",
    );
  });

  test('the generator form: status, chunks, two messages, a whole message, events and state', async () => {
    const events = await eventsOf(executor(), call('generator_action'));
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'run-start',
        'status',
        'stream-start',
        'chunk',
        'chunk',
        'stream-end',
        'message',
        'stream-start',
        'chunk',
        'stream-end',
        'result',
        'run-end',
      ],
    );
    const result = events.find((e) => e.type === 'result');
    assert.ok(result?.type === 'result');
    assert.deepEqual(result.events, [followupAction('action_listen')]);
    assert.deepEqual(result.state, { turns: 1 });
    assert.deepEqual(
      result.responses.map((r) => r.text),
      ['whole'],
    );
    // A generator that ends normally closes its stream as completed, without a warning.
    assert.equal(events[9]?.type === 'stream-end' && events[9].reason, 'completed');
  });

  test('the generator form without a run: chunks become messages, as on Rasa’s HTTP', async () => {
    const result = await executor().run(call('generator_action'));
    assert.deepEqual(
      result?.responses.map((r) => r.text),
      ['Hi u1', '!', 'whole', 'second'],
    );
  });

  test('the tracker reaches the action with Rasa’s fields', async () => {
    let slot: unknown;
    const ex = new ActionExecutor({
      logger: silentLogger,
      actions: [defineAction({ name: 't', run: (_d, tracker) => void (slot = tracker.getSlot('city')) })],
    });
    await ex.run(call('t'));
    assert.equal(slot, 'Paris');
  });

  test('start() attaches readers before the action runs, so nobody misses run-start', async () => {
    const ex = executor();
    const run = ex.start(call('streaming_action'));
    assert.equal(run.lastSeq, 0);
    const first = await run.subscribe().next();
    assert.equal(first.value?.type, 'run-start');
    await run.done;
  });
});

describe('barge-in', () => {
  async function bargeInAfter(ex: ActionExecutor, name: string, chunks: number): Promise<{ events: SluiceEvent[]; ackAt: number; endAt: number }> {
    const run = ex.start(call(name));
    const events: SluiceEvent[] = [];
    let ackAt = 0;
    let endAt = 0;
    for await (const e of run.subscribe()) {
      events.push(e);
      if (e.type === 'chunk' && events.filter((x) => x.type === 'chunk').length === chunks) {
        ackAt = performance.now();
        assert.equal(ex.ack(e.responseId), true);
      }
      if (e.type === 'run-end') endAt = performance.now();
    }
    return { events, ackAt, endAt };
  }

  test('an action that honours its signal: no chunk after the ack, stream-end cancelled, its events arrive fast', async () => {
    const ex = executor();
    const { events, ackAt, endAt } = await bargeInAfter(ex, 'honours_signal', 3);
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(-3), ['stream-end', 'result', 'run-end']);
    assert.equal(events.filter((e) => e.type === 'chunk').length, 3);
    const end = events.at(-3);
    assert.equal(end?.type === 'stream-end' && end.reason, 'cancelled');
    const result = events.at(-2);
    assert.ok(result?.type === 'result');
    assert.deepEqual(result.events, [slotSet('interrupted', true)]);
    assert.equal(events.at(-1)?.type === 'run-end' && (events.at(-1) as { reason: string }).reason, 'cancelled');
    assert.ok(endAt - ackAt < 100, `ack → run-end took ${endAt - ackAt} ms`);
    assertIdle(ex);
  });

  test('an action that ignores the cancel: later chunks are dropped, its result still arrives', async () => {
    const ex = executor();
    const { events } = await bargeInAfter(ex, 'ignores_cancel', 2);
    assert.equal(events.filter((e) => e.type === 'chunk').length, 2);
    const result = events.find((e) => e.type === 'result');
    assert.ok(result?.type === 'result');
    assert.deepEqual(result.events, [slotSet('finished', true)]);
    assertIdle(ex);
  });

  test('an action that hangs after the ack: empty result at the timeout, which starts at the ack', async () => {
    const ex = executor({ bargeInTimeoutSeconds: 0.1 });
    const { events, ackAt, endAt } = await bargeInAfter(ex, 'hangs_after_chunk', 1);
    assert.deepEqual(
      events.map((e) => e.type),
      ['run-start', 'stream-start', 'chunk', 'stream-end', 'result', 'run-end'],
    );
    const result = events[4];
    assert.ok(result?.type === 'result');
    assert.deepEqual([result.events, result.responses], [[], []]);
    assert.equal((events[5] as { reason: string }).reason, 'timeout');
    const waited = endAt - ackAt;
    assert.ok(waited >= 90 && waited < 1000, `timeout after ${waited} ms`);
    assertIdle(ex);
  });

  test('the backlog is dropped: an ack while chunks are queued ends the stream right after what was read', async () => {
    const fast = defineAction({
      name: 'fast',
      async run(d) {
        for (let i = 0; i < 10_000; i++) await d.streamChunk({ text: 'x' });
        return [];
      },
    });
    const ex = new ActionExecutor({ actions: [fast], logger: silentLogger, run: { highWaterMark: 5_000 } });
    const run = ex.start(call('fast'));
    const sub = run.subscribe();
    const read: SluiceEvent[] = [];
    for await (const e of sub) {
      read.push(e);
      if (e.type === 'chunk') {
        await sleep(5); // let the producer fill the buffer
        ex.ack(e.responseId);
        break;
      }
    }
    const rest: SluiceEvent[] = [];
    for await (const e of run.subscribe({ after: read.at(-1)?.seq ?? 0 })) rest.push(e);
    assert.deepEqual(
      rest.map((e) => e.type),
      ['stream-end', 'result', 'run-end'],
    );
  });

  test('an ack once the stream-end was delivered is a no-op (Rasa), an unknown id too', async () => {
    const ex = executor();
    const run = ex.start(call('streaming_action'));
    let responseId = '';
    for await (const e of run.subscribe()) {
      if (e.type === 'stream-start') responseId = e.responseId;
      if (e.type === 'stream-end') assert.equal(ex.ack(responseId), false);
    }
    assert.equal(ex.ack('0'.repeat(32)), false);
    assert.equal(run.endReason, 'completed');
  });

  test('cancel(runId) records a message as a stop, or the error it is given as is', async () => {
    const ex = executor();
    const stopped = ex.start(call('streaming_action'));
    assert.equal(ex.cancel(stopped.id, 'Stop pressed'), true);
    assert.equal(stopped.cancelReason?.message, 'Stop pressed');
    assert.equal(stopped.cancelReason?.details.reason, 'stop');
    const interrupted = ex.start(call('streaming_action'));
    const bargeIn = new SluiceError('cancelled', 'The user spoke', { details: { reason: 'barge_in' } });
    assert.equal(ex.cancel(interrupted.id, bargeIn), true);
    assert.equal(interrupted.cancelReason, bargeIn);
    assert.equal(ex.cancel(interrupted.id), false, 'a second cancel');
    assert.equal(ex.cancel('no-such-run'), false);
    await Promise.all([stopped.done, interrupted.done]);
  });

  test('a restart of the stream after the ack does not undo the barge-in (Rasa gap 3)', async () => {
    const restarts = defineAction({
      name: 'restarts',
      async run(d) {
        await d.streamChunk({ text: 'one' });
        await sleep(20);
        await d.streamEnd();
        await d.streamStart();
        await d.streamChunk({ text: 'two' });
        await d.streamEnd();
        return [slotSet('cancelled_seen', d.isStreamingCancelled)];
      },
    });
    const ex = new ActionExecutor({ actions: [restarts], logger: silentLogger });
    const events: SluiceEvent[] = [];
    for await (const e of ex.start(call('restarts')).subscribe()) {
      events.push(e);
      if (e.type === 'chunk') ex.ack(e.responseId);
    }
    assert.equal(events.filter((e) => e.type === 'stream-start').length, 1);
    assert.deepEqual(
      events.filter((e) => e.type === 'chunk').map((e) => (e as { text: string }).text),
      ['one'],
    );
    const result = events.find((e) => e.type === 'result');
    assert.deepEqual(result?.type === 'result' && result.events, [slotSet('cancelled_seen', true)]);
  });

  test('cancel(runId) stops a run the same way; an unknown run is false', async () => {
    const ex = executor();
    const run = ex.start(call('honours_signal'));
    const events: SluiceEvent[] = [];
    for await (const e of run.subscribe()) {
      events.push(e);
      if (e.type === 'chunk') assert.equal(ex.cancel(run.id), true);
    }
    assert.equal(run.endReason, 'cancelled');
    assert.equal(ex.cancel(run.id), false);
    assert.equal(ex.cancel('nope'), false);
  });

  test('an action that throws AbortError after the cancel ends cancelled with an empty result, not an error', async () => {
    const aborts = defineAction({
      name: 'aborts',
      async run(d) {
        await d.streamChunk({ text: 'x' });
        await new Promise((_, reject) => d.signal.addEventListener('abort', () => reject(d.signal.reason)));
        return [];
      },
    });
    const ex = new ActionExecutor({ actions: [aborts], logger: silentLogger });
    const events: SluiceEvent[] = [];
    for await (const e of ex.start(call('aborts')).subscribe()) {
      events.push(e);
      if (e.type === 'chunk') ex.ack(e.responseId);
    }
    assert.deepEqual(
      events.map((e) => e.type).slice(-3),
      ['stream-end', 'result', 'run-end'],
    );
    assert.equal((events.at(-1) as { reason: string }).reason, 'cancelled');
  });
});

describe('barge-in timeout setting', () => {
  const timeoutOf = (env: Record<string, string>, explicit?: number): number =>
    new ActionExecutor({ env, bargeInTimeoutSeconds: explicit, logger: silentLogger }).bargeInTimeoutMs;

  test('default 30 s; the variable sets it; an explicit option beats it', () => {
    assert.equal(timeoutOf({}), 30_000);
    assert.equal(timeoutOf({ ACTION_SERVER_STREAM_BARGE_IN_TIMEOUT_SECONDS: '12.5' }), 12_500);
    assert.equal(timeoutOf({ ACTION_SERVER_STREAM_BARGE_IN_TIMEOUT_SECONDS: '12.5' }, 3), 3_000);
    assert.equal(timeoutOf({ ACTION_SERVER_STREAM_BARGE_IN_TIMEOUT_SECONDS: '0.25' }), 250);
  });

  for (const bad of ['abc', '', '0', '-1']) {
    test(`'${bad}' falls back to 30 with a warning`, () => {
      const logger = capturingLogger();
      const ex = new ActionExecutor({ env: { ACTION_SERVER_STREAM_BARGE_IN_TIMEOUT_SECONDS: bad }, logger });
      assert.equal(ex.bargeInTimeoutMs, 30_000);
      assert.ok(logger.records.some((r) => r.level === 'warn' && r.msg.includes('ACTION_SERVER_STREAM_BARGE_IN_TIMEOUT_SECONDS')));
    });
  }
});

describe('bad input', () => {
  const bad = (run: (...a: never[]) => unknown): ReturnType<typeof defineAction> => defineAction({ name: 'bad', run: run as never });

  const cases: Array<[string, ReturnType<typeof defineAction>, RegExp]> = [
    ['returns a string', bad(() => 'oops'), /returned string; expected a list of events/],
    ['returns events that are not a list', bad(() => ({ events: 'x' })), /'events' of type string/],
    ['returns a non-object event', bad(() => [42]), /malformed event at index 0/],
    ['returns an event without a name', bad(() => [slotSet('a', 1), { name: 'x' }]), /malformed event at index 1: it has no 'event' name/],
    ['throws a non-Error', bad(() => { throw 'just a string'; }), /just a string/],
  ];
  for (const [what, action, pattern] of cases) {
    test(`an action that ${what}: error + run-end, registries empty, executor still serves`, async () => {
      const ex = new ActionExecutor({ actions: [action, streamingAction], logger: silentLogger, exposeActionErrors: true });
      const events = await eventsOf(ex, call('bad'));
      assert.deepEqual(
        events.map((e) => e.type),
        ['run-start', 'error', 'run-end'],
      );
      const error = events[1];
      assert.ok(error?.type === 'error');
      assert.equal(error.code, 'internal');
      assert.match(error.message, pattern);
      assertIdle(ex);
      assert.equal((await ex.run(call('streaming_action')))?.responses.length, 3);
    });
  }

  test('an action that keeps emitting after its run ended gets a SluiceError', async () => {
    let late: unknown;
    const leaky = defineAction({
      name: 'leaky',
      async run(d) {
        setTimeout(() => {
          try {
            d.streamChunk({ text: 'too late' });
          } catch (e) {
            late = e;
          }
        }, 5);
        return [];
      },
    });
    const ex = new ActionExecutor({ actions: [leaky], logger: silentLogger });
    await ex.run(call('leaky'), { sink: () => {} });
    await sleep(20);
    assert.ok(SluiceError.isInstance(late) && late.code === 'failed_precondition' && /after its run ended/.test(late.message));
  });

  test('a generator that yields junk gets an error naming it', async () => {
    const junk = defineAction({
      name: 'junk',
      async *stream() {
        yield 'ok';
        yield 42 as never;
        return [];
      },
    });
    const events = await eventsOf(new ActionExecutor({ actions: [junk], logger: silentLogger }), call('junk'));
    const error = events.find((e) => e.type === 'error');
    assert.match(error?.type === 'error' ? error.message : '', /yielded number/);
    // The stream the generator had opened is closed, not left dangling.
    assert.equal(events.filter((e) => e.type === 'stream-end').length, 1);
  });

  const malformed: Array<[string, unknown, RegExp]> = [
    ['a body that is not an object', 'hello', /must be a JSON object/],
    ['a missing tracker', { next_action: 'streaming_action' }, /tracker: is required/],
    ['a tracker without sender_id', { next_action: 'streaming_action', tracker: {} }, /tracker\.sender_id: is required/],
    ['slots of the wrong type', { next_action: 'streaming_action', tracker: { sender_id: 'x', slots: [1] } }, /tracker\.slots/],
    ['next_action of the wrong type', { next_action: 7, tracker: { sender_id: 'x' } }, /next_action: expected a string/],
  ];
  for (const [what, body, pattern] of malformed) {
    test(`a malformed call (${what}): invalid_argument naming the field, run ends with error`, async () => {
      const ex = executor();
      await assert.rejects(ex.run(body), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && pattern.test(e.message));
      const events = await eventsOf(ex, body);
      assert.deepEqual(
        events.map((e) => e.type),
        ['run-start', 'error', 'run-end'],
      );
      assertIdle(ex);
    });
  }

  test('defineAction refuses bad definitions', () => {
    assert.throws(() => defineAction({ name: '', run: () => [] }), /'name' must be a non-empty string/);
    assert.throws(() => defineAction({ name: 'x' } as never), /exactly one of/);
    assert.throws(() => defineAction({ name: 'x', run: () => [], stream: async function* () {} } as never), /exactly one of/);
  });

  test('register refuses duplicates and non-actions', () => {
    const ex = executor();
    assert.throws(() => ex.register(streamingAction), (e: unknown) => SluiceError.isInstance(e) && e.code === 'already_exists');
    assert.throws(() => ex.register({ name: 'x' } as never), /defineAction/);
  });

  test('a sink that throws cancels the run and rejects', async () => {
    const ex = executor();
    await assert.rejects(
      ex.run(call('honours_signal'), {
        sink: (e) => {
          if (e.type === 'chunk') throw new Error('socket closed');
        },
      }),
      /socket closed/,
    );
    await sleep(20);
    assertIdle(ex);
  });

  test('exposeActionErrors: false keeps the action’s message out of the public error', async () => {
    const ex = new ActionExecutor({ actions: [boom], logger: silentLogger, exposeActionErrors: false });
    await assert.rejects(ex.run(call('action_boom')), (e: unknown) => SluiceError.isInstance(e) && e.message === "Action 'action_boom' failed");
  });

  test('close() cancels every live run and waits for them', async () => {
    const ex = executor({ bargeInTimeoutSeconds: 0.05 });
    ex.start(call('hangs_after_chunk'));
    ex.start(call('honours_signal'));
    await sleep(5);
    await ex.close();
    assertIdle(ex);
  });
});

describe('ended runs', () => {
  test('an ended run stays reachable for late readers, then goes', async () => {
    const ex = executor({ retainEndedRunsMs: 30 });
    const run = ex.start(call('streaming_action'));
    await run.done;
    assert.equal(ex.getRun(run.id), run);
    await sleep(40);
    assert.equal(ex.getRun(run.id), undefined);
  });
});

describe('limits (issue 14)', () => {
  test('action error text is redacted by default (exposeActionErrors is opt-in)', async () => {
    const ex = new ActionExecutor({ actions: [boom], logger: silentLogger });
    assert.equal(ex.exposeActionErrors, false);
    await assert.rejects(ex.run(call('action_boom')), (e: unknown) => SluiceError.isInstance(e) && e.message === "Action 'action_boom' failed");
  });

  test('maxConcurrentRuns and maxConcurrentRunsPerOwner: start throws resource_exhausted with a retry hint', async () => {
    const ex = executor({ maxConcurrentRuns: 3, maxConcurrentRunsPerOwner: 2, bargeInTimeoutSeconds: 0.05 });
    const a1 = ex.start(call('hangs_after_chunk'), { owner: 'alice' });
    const a2 = ex.start(call('hangs_after_chunk'), { owner: 'alice' });
    assert.equal(a1.owner, 'alice');
    assert.throws(
      () => ex.start(call('hangs_after_chunk'), { owner: 'alice' }),
      (e: unknown) => SluiceError.isInstance(e) && e.code === 'resource_exhausted' && e.details.retryAfterSeconds === 1 && /per client/.test(e.message),
    );
    const b1 = ex.start(call('hangs_after_chunk'), { owner: 'bob' });
    assert.throws(() => ex.start(call('hangs_after_chunk')), (e: unknown) => SluiceError.isInstance(e) && e.code === 'resource_exhausted' && /at most 3/.test(e.message));
    a1.cancel();
    await a1.done;
    const a3 = ex.start(call('hangs_after_chunk'), { owner: 'alice' });
    await ex.close();
    for (const run of [a2, b1, a3]) assert.equal(run.state, 'ended');
    await sleep(20);
    assertIdle(ex);
  });

  test('maxRunDurationMs: a run that lasts too long is cancelled and ends with reason timeout', async () => {
    const ex = executor({ maxRunDurationMs: 50, bargeInTimeoutSeconds: 1 });
    const run = ex.start(call('honours_signal'));
    const end = await run.done;
    assert.equal(end.reason, 'timeout');
    assert.equal(run.cancelReason?.code, 'timeout');
    await sleep(20);
    assertIdle(ex);
  });

  test('retainEndedRunsBytes: ended runs are kept by estimated size as well as by count', async () => {
    const big = defineAction({
      name: 'big',
      async *stream() {
        for (let i = 0; i < 50; i++) yield 'x'.repeat(10_000);
      },
    });
    const ex = new ActionExecutor({ actions: [big], logger: silentLogger, retainEndedRunsBytes: 3_000_000 });
    const runs = [];
    for (let i = 0; i < 10; i++) {
      const run = ex.start(call('big'));
      await run.done;
      runs.push(run);
    }
    const { runs: kept, bytes } = ex.retained;
    // Each run holds 50 × 10,000 UTF-16 characters ≈ 1 MB: three fit, the oldest went first.
    assert.ok(kept >= 2 && kept <= 3, `kept ${kept} runs`);
    assert.ok(bytes <= 3_000_000, `${bytes} bytes`);
    assert.equal(ex.getRun(runs[0]!.id), undefined);
    assert.equal(ex.getRun(runs[9]!.id), runs[9]);
  });
});
