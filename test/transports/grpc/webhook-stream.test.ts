// WebhookStream over a real server and a stock Connect gRPC client: Rasa SDK 3.17's own
// test_grpc_server.py cases (reference/rasa-sdk.md §1e, numbered as there) as real RPCs, then the
// cases only a real connection shows (client cancel, deadline, shutdown, large streams).
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, test } from 'node:test';
import { Code } from '@connectrpc/connect';
import { actionRejected, defineAction, type ActionDefinition } from '../../../src/runtime/action.ts';
import { BARGE_IN_TIMEOUT_ENV } from '../../../src/runtime/barge-in.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { isResponseId } from '../../../src/protocol/ids.ts';
import { assertIdle, kinds, pick, readStream, recordingLogger, request, sleep, startHarness, type Harness } from './helpers.ts';

const buttons = [{ title: 'A', payload: '/a' }];
const MISSING_DOMAIN =
  'Missing domain context, assistant will retry the request and include the domain in the request payload. For more information please see https://rasa.com/docs/action-server/';

/** A promise with its resolver, to hold an action at a point until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

function aborted(signal: AbortSignal): Promise<void> {
  return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

const streaming = defineAction({
  name: 'action_streaming',
  async run(d) {
    await d.streamStart();
    await d.streamChunk({ text: 'Hello ' });
    await d.streamChunk({ text: 'world' });
    await d.streamEnd();
    d.utterMessage({ text: 'plain utter' });
    return [slotSet('done', true)];
  },
});

const twoSequences = defineAction({
  name: 'action_two_sequences',
  async run(d) {
    await d.streamStart();
    await d.streamChunk({ text: 'one' });
    await d.streamEnd();
    await d.streamStart();
    await d.streamChunk({ text: 'two' });
    await d.streamEnd();
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

const reject = defineAction({
  name: 'action_reject',
  run() {
    throw actionRejected('action_reject');
  },
});

const missingEnd = defineAction({
  name: 'action_missing_end',
  async run(d) {
    await d.streamChunk({ text: 'Hello' });
    await d.streamChunk({ buttons });
    return [];
  },
});

const rich = defineAction({
  name: 'action_rich',
  async run(d) {
    await d.streamChunk({
      text: 'Choose:',
      image: 'https://example.com/a.png',
      attachment: 'https://example.com/a.pdf',
      buttons,
      json: { k: 'v', n: 3, nested: { list: [1, 'a', null] } },
      elements: [{ title: 'card' }],
      extra_field: 'dropped on grpc',
    });
    await d.streamChunk({});
    await d.streamEnd();
    return [];
  },
});

const hello = defineAction({
  name: 'action_hello',
  run(d) {
    d.utterMessage({ text: 'hi' });
    return [];
  },
});

describe('WebhookStream (Rasa test_grpc_server.py cases)', () => {
  let h: Harness | null = null;
  const start = async (actions: ActionDefinition[], options?: Parameters<typeof startHarness>[1]): Promise<Harness> => {
    h = await startHarness(actions, options);
    return h;
  };
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  for (const [label, options] of [
    ['1. the environment variable sets the barge-in timeout', { env: { [BARGE_IN_TIMEOUT_ENV]: '0.05' } }],
    ['2. an explicit timeout beats the environment variable', { env: { [BARGE_IN_TIMEOUT_ENV]: '12.5' }, bargeInTimeoutSeconds: 0.05 }],
  ] as const) {
    test(label, async () => {
      const hung = defineAction({
        name: 'action_hung',
        async run(d) {
          await d.streamChunk({ text: 'delivered' });
          await new Promise(() => {}); // ignores its signal; only the timeout ends the run
        },
      });
      const { client } = await start([hung], options);
      const began = Date.now();
      const { events, error } = await readStream(client.webhookStream(request('action_hung')), async (event) => {
        if (event.event.case === 'chunk') await client.ackStreamChunks({ responseId: event.event.value.responseId });
      });
      assert.equal(error, null);
      assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'final_result']);
      assert.ok(Date.now() - began < 2_000, 'the configured 0.05 s timeout applied, not 12.5 s or 30 s');
    });
  }

  test('3–5. happy path: start, chunks, end, final_result; one shared 32-hex response_id; responses only whole messages', async () => {
    const { client } = await start([streaming]);
    const { events, error } = await readStream(client.webhookStream(request('action_streaming')));
    assert.equal(error, null, 'status OK');
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'chunk', 'chunk_end', 'final_result']);
    const id = pick(events[0], 'chunkStart').responseId;
    assert.ok(isResponseId(id), `32 lowercase hex: ${id}`);
    assert.deepEqual(
      events.slice(1, 3).map((e) => pick(e, 'chunk').text),
      ['Hello ', 'world'],
    );
    for (const e of events.slice(1, 3)) assert.equal(pick(e, 'chunk').responseId, id);
    assert.equal(pick(events[3], 'chunkEnd').responseId, id);
    const final = pick(events[4], 'finalResult');
    assert.deepEqual(final.events, [{ event: 'slot', timestamp: null, name: 'done', value: true }]);
    assert.deepEqual(final.responses, [
      { text: 'plain utter', buttons: [], elements: [], custom: {}, template: null, response: null, image: null, attachment: null },
    ]);
  });

  test('6. two sequences get two ids, each chunk carries its own', async () => {
    const { client } = await start([twoSequences]);
    const { events, error } = await readStream(client.webhookStream(request('action_two_sequences')));
    assert.equal(error, null);
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'chunk_end', 'chunk_start', 'chunk', 'chunk_end', 'final_result']);
    const first = pick(events[0], 'chunkStart').responseId;
    const second = pick(events[3], 'chunkStart').responseId;
    assert.notEqual(first, second);
    assert.equal(pick(events[1], 'chunk').responseId, first);
    assert.equal(pick(events[2], 'chunkEnd').responseId, first);
    assert.equal(pick(events[4], 'chunk').responseId, second);
    assert.equal(pick(events[5], 'chunkEnd').responseId, second);
  });

  test('7. a second start without an end: no chunk_end for the first, its ack is a no-op, registry empty after', async () => {
    const hold = gate();
    const restart = defineAction({
      name: 'action_restart',
      async run(d) {
        await d.streamStart();
        await d.streamChunk({ text: 'a' });
        await d.streamStart();
        await d.streamChunk({ text: 'b' });
        await hold.promise;
        await d.streamEnd();
        return [slotSet('finished', true)];
      },
    });
    const { client, executor } = await start([restart]);
    let firstId = '';
    const { events, error } = await readStream(client.webhookStream(request('action_restart')), async (event, index) => {
      if (index === 0) firstId = pick(event, 'chunkStart').responseId;
      if (index === 3) {
        // The first stream was superseded and delivered: acking it must not cancel the run.
        await client.ackStreamChunks({ responseId: firstId });
        hold.open();
      }
    });
    assert.equal(error, null);
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'chunk_start', 'chunk', 'chunk_end', 'final_result']);
    const [a, b] = [pick(events[0], 'chunkStart').responseId, pick(events[2], 'chunkStart').responseId];
    assert.notEqual(a, b);
    assert.equal(pick(events[1], 'chunk').responseId, a);
    assert.equal(pick(events[3], 'chunk').responseId, b);
    assert.equal(pick(events[4], 'chunkEnd').responseId, b);
    assert.deepEqual(pick(events[5], 'finalResult').events, [{ event: 'slot', timestamp: null, name: 'finished', value: true }]);
    await assertIdle(executor);
  });

  test('8. a rich chunk carries text, image, attachment, buttons, custom and elements; extra keys are dropped', async () => {
    const { client } = await start([rich]);
    const { events, error } = await readStream(client.webhookStream(request('action_rich')));
    assert.equal(error, null);
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'chunk', 'chunk_end', 'final_result']);
    const chunk = pick(events[1], 'chunk');
    assert.equal(chunk.text, 'Choose:');
    assert.equal(chunk.image, 'https://example.com/a.png');
    assert.equal(chunk.attachment, 'https://example.com/a.pdf');
    assert.deepEqual(chunk.buttons, buttons);
    assert.deepEqual(chunk.custom, { k: 'v', n: 3, nested: { list: [1, 'a', null] } });
    assert.deepEqual(chunk.elements, [{ title: 'card' }]);
    assert.equal('extra_field' in chunk, false);
    const empty = pick(events[2], 'chunk');
    assert.deepEqual(
      { text: empty.text, image: empty.image, attachment: empty.attachment, custom: empty.custom, buttons: empty.buttons, elements: empty.elements },
      { text: '', image: '', attachment: '', custom: undefined, buttons: [], elements: [] },
      'a chunk with no fields carries only its response_id',
    );
    assert.equal(empty.responseId, chunk.responseId);
  });

  for (const c of [
    {
      label: 'a rejection → INTERNAL with {action_name, message}',
      name: 'action_reject',
      code: Code.Internal,
      message: "Custom action 'action_reject' rejected execution.",
      details: `{"action_name":"action_reject","message":"Custom action 'action_reject' rejected execution."}`,
      extra: {},
    },
    {
      label: 'an unknown action → NOT_FOUND with resource_type ACTION',
      name: 'action_unknown',
      code: Code.NotFound,
      message: "No registered action found for name 'action_unknown'.",
      details: `{"action_name":"action_unknown","message":"No registered action found for name 'action_unknown'.","resource_type":"ACTION"}`,
      extra: {},
    },
    {
      label: 'a missing domain → NOT_FOUND with resource_type DOMAIN',
      name: 'action_hello',
      code: Code.NotFound,
      message: MISSING_DOMAIN,
      details: JSON.stringify({ action_name: 'action_hello', message: MISSING_DOMAIN, resource_type: 'DOMAIN' }),
      extra: { domainDigest: 'stale-digest' },
    },
  ]) {
    test(`9. ${c.label}: exactly one error event, then the status`, async () => {
      const { client } = await start([reject, hello]);
      const { events, error } = await readStream(client.webhookStream(request(c.name, c.extra)));
      assert.deepEqual(kinds(events), ['error']);
      assert.deepEqual(
        { actionName: pick(events[0], 'error').actionName, message: pick(events[0], 'error').message },
        { actionName: c.name, message: c.message },
      );
      assert.equal(error?.code, c.code);
      assert.equal(error?.rawMessage, c.details);
    });
  }

  test('10. a call that names no action ends OK with zero events', async () => {
    const { client } = await start([hello]);
    const { events, error } = await readStream(client.webhookStream({ senderId: 'u', tracker: { senderId: 'u' } }));
    assert.equal(error, null);
    assert.deepEqual(events, []);
  });

  test('11. an unexpected error: chunks so far, one error event (no chunk_end), INTERNAL with the message', async () => {
    const { client } = await start([boom]);
    const { events, error } = await readStream(client.webhookStream(request('action_boom')));
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'error']);
    assert.equal(pick(events[1], 'chunk').text, 'before boom');
    assert.deepEqual(
      { ...pick(events[2], 'error'), $typeName: undefined },
      { $typeName: undefined, actionName: 'action_boom', message: 'action exploded' },
    );
    assert.equal(error?.code, Code.Internal);
    assert.equal(error?.rawMessage, 'action exploded');
  });

  test('12 + 14. barge-in: the ack cancels the stream; [chunk_start, chunk, final_result], no chunk_end, the action\'s events kept', async () => {
    const seen: { cancelled?: boolean; signal?: boolean } = {};
    const bargeIn = defineAction({
      name: 'action_barge_in',
      async run(d) {
        await d.streamStart();
        await d.streamChunk({ text: 'delivered' });
        await aborted(d.signal);
        seen.cancelled = d.isStreamingCancelled;
        seen.signal = d.signal.aborted;
        await d.streamChunk({ text: 'cancelled' });
        await d.streamEnd();
        return [slotSet('interrupted', true)];
      },
    });
    const { client } = await start([bargeIn]);
    const { events, error } = await readStream(client.webhookStream(request('action_barge_in')), async (event) => {
      if (event.event.case === 'chunk') {
        const ack = await client.ackStreamChunks({ responseId: event.event.value.responseId });
        assert.equal(ack.$typeName, 'google.protobuf.Empty');
      }
    });
    assert.equal(error, null, 'status OK');
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'final_result']);
    const id = pick(events[0], 'chunkStart').responseId;
    assert.equal(pick(events[1], 'chunk').responseId, id);
    assert.equal(pick(events[1], 'chunk').text, 'delivered');
    assert.deepEqual(pick(events[2], 'finalResult').events, [{ event: 'slot', timestamp: null, name: 'interrupted', value: true }]);
    assert.deepEqual(seen, { cancelled: true, signal: true });
  });

  test('13. an ack for an unknown id returns Empty, OK, and is only logged at debug with the id', async () => {
    const logger = recordingLogger();
    const { client } = await start([hello], { logger });
    const ack = await client.ackStreamChunks({ responseId: 'deadbeefdeadbeefdeadbeefdeadbeef' });
    assert.equal(ack.$typeName, 'google.protobuf.Empty');
    const mentions = logger.records.filter((r) => `${r.msg ?? ''} ${JSON.stringify(r.obj)}`.includes('deadbeefdeadbeefdeadbeefdeadbeef'));
    assert.ok(mentions.length > 0, 'the id is logged');
    assert.deepEqual(new Set(mentions.map((r) => r.level)), new Set(['debug']));
  });

  test('15. barge-in timeout with a hung action: an empty final_result, quickly', async () => {
    const hung = defineAction({
      name: 'action_hung',
      async run(d) {
        await d.streamStart();
        await d.streamChunk({ text: 'delivered' });
        await new Promise(() => {});
      },
    });
    const { client } = await start([hung], { bargeInTimeoutSeconds: 0.05 });
    const began = Date.now();
    const { events, error } = await readStream(client.webhookStream(request('action_hung')), async (event) => {
      if (event.event.case === 'chunk') await client.ackStreamChunks({ responseId: event.event.value.responseId });
    });
    assert.equal(error, null);
    assert.ok(Date.now() - began < 2_000);
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'final_result']);
    const final = pick(events[2], 'finalResult');
    assert.deepEqual([final.events.length, final.responses.length], [0, 0]);
  });

  test('16. the client cancels mid-stream: the action\'s signal aborts, its code after the wait never runs', async () => {
    const seen = { aborted: false, after: false };
    const slow = defineAction({
      name: 'action_slow',
      async run(d) {
        await d.streamStart();
        await d.streamChunk({ text: 'first' });
        d.signal.addEventListener('abort', () => (seen.aborted = true));
        await delay(10_000, undefined, { signal: d.signal });
        seen.after = true;
        return [];
      },
    });
    const logger = recordingLogger();
    const { client, executor } = await start([slow], { logger });
    const controller = new AbortController();
    const { events, error } = await readStream(client.webhookStream(request('action_slow'), { signal: controller.signal }), (event) => {
      if (event.event.case === 'chunk') controller.abort();
    });
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk']);
    assert.equal(error?.code, Code.Canceled);
    await assertIdle(executor);
    assert.deepEqual(seen, { aborted: true, after: false });
    assert.deepEqual(logger.records.filter((r) => r.level === 'error'), [], 'a client going away is routine');
  });

  test('17. the client goes away just before the result: the run still ends (cancelled), nothing is left behind', async () => {
    let runId = '';
    const late = defineAction({
      name: 'action_late',
      async run(d, _tracker, _domain, context) {
        runId = context.runId;
        await d.streamStart();
        await d.streamChunk({ text: 'x' });
        await d.streamEnd();
        await aborted(d.signal); // the server noticed the client leaving
        return [slotSet('late', true)];
      },
    });
    const { client, executor } = await start([late]);
    const controller = new AbortController();
    const { events, error } = await readStream(client.webhookStream(request('action_late'), { signal: controller.signal }), (event) => {
      if (event.event.case === 'chunkEnd') controller.abort();
    });
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'chunk_end']);
    assert.equal(error?.code, Code.Canceled);
    await assertIdle(executor);
    assert.equal(executor.getRun(runId)?.endReason, 'cancelled');
  });
});

describe('WebhookStream beyond Rasa\'s unit tests', () => {
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  test('a forgotten stream end is auto-closed: chunk_end before final_result', async () => {
    h = await startHarness([missingEnd]);
    const { events, error } = await readStream(h.client.webhookStream(request('action_missing_end')));
    assert.equal(error, null);
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'chunk', 'chunk_end', 'final_result']);
    assert.deepEqual(pick(events[2], 'chunk').buttons, buttons);
  });

  test('status, tool events and live utterances are not on this wire; utterances come in final_result', async () => {
    const mixed = defineAction({
      name: 'action_mixed',
      async *stream({ dispatcher }) {
        yield { type: 'status', text: 'Searching…' };
        yield { type: 'tool-call', toolCallId: 't1', name: 'search', args: { q: 'x' } };
        dispatcher.utterMessage({ text: 'whole' });
        yield 'streamed';
        return [];
      },
    });
    h = await startHarness([mixed]);
    const { events, error } = await readStream(h.client.webhookStream(request('action_mixed')));
    assert.equal(error, null);
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk', 'chunk_end', 'final_result']);
    assert.deepEqual(
      pick(events[3], 'finalResult').responses.map((r) => r.text),
      ['whole'],
    );
  });

  test('a malformed request ends with an error event and INVALID_ARGUMENT naming the field', async () => {
    h = await startHarness([hello]);
    const noTracker = await readStream(h.client.webhookStream({ nextAction: 'action_hello', senderId: 'u' }));
    assert.deepEqual(kinds(noTracker.events), ['error']);
    assert.equal(noTracker.error?.code, Code.InvalidArgument);
    assert.match(noTracker.error?.rawMessage ?? '', /\btracker\b.*required/);
    assert.equal(pick(noTracker.events[0], 'error').actionName, 'action_hello');

    // An empty sender_id is absent after MessageToDict, so Rasa's Tracker.from_dict fails too.
    const noSender = await readStream(h.client.webhookStream({ nextAction: 'action_hello', tracker: { senderId: '' } }));
    assert.deepEqual(kinds(noSender.events), ['error']);
    assert.equal(noSender.error?.code, Code.InvalidArgument);
    assert.match(noSender.error?.rawMessage ?? '', /tracker\.sender_id.*required/);
  });

  test('a client deadline cancels the run and ends with DEADLINE_EXCEEDED', async () => {
    const seen = { aborted: false };
    const slow = defineAction({
      name: 'action_slow',
      async run(d) {
        await d.streamChunk({ text: 'first' });
        await delay(10_000, undefined, { signal: d.signal }).catch(() => (seen.aborted = true));
        return [];
      },
    });
    const logger = recordingLogger();
    h = await startHarness([slow], { logger });
    const { events, error } = await readStream(h.client.webhookStream(request('action_slow'), { timeoutMs: 200 }));
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk']);
    assert.equal(error?.code, Code.DeadlineExceeded);
    await assertIdle(h.executor);
    assert.equal(seen.aborted, true);
    assert.deepEqual(logger.records.filter((r) => r.level === 'error'), []);
  });

  test('closing the server cancels open streams (UNAVAILABLE) and their runs', async () => {
    const slow = defineAction({
      name: 'action_slow',
      async run(d) {
        await d.streamChunk({ text: 'first' });
        await delay(10_000, undefined, { signal: d.signal });
        return [];
      },
    });
    const harness = await startHarness([slow]);
    let closed: Promise<void> | null = null;
    const { events, error } = await readStream(harness.client.webhookStream(request('action_slow')), (event) => {
      if (event.event.case === 'chunk') closed = harness.server.close();
    });
    await closed;
    assert.deepEqual(kinds(events), ['chunk_start', 'chunk']);
    assert.equal(error?.code, Code.Unavailable);
    await assertIdle(harness.executor);
  });

  test('concurrent streams stay apart', async () => {
    const numbered = defineAction({
      name: 'action_numbered',
      async *stream({ tracker }) {
        for (let i = 0; i < 200; i++) {
          yield `${tracker.senderId}:${i} `;
          if (i % 50 === 0) await sleep(1);
        }
        return [slotSet('who', tracker.senderId)];
      },
    });
    h = await startHarness([numbered]);
    const client = h.client;
    const outcomes = await Promise.all(
      ['a', 'b', 'c'].map((who) =>
        readStream(client.webhookStream({ nextAction: 'action_numbered', tracker: { senderId: who } })),
      ),
    );
    const ids = new Set<string>();
    outcomes.forEach(({ events, error }, n) => {
      const who = ['a', 'b', 'c'][n];
      assert.equal(error, null);
      const chunks = events.filter((e) => e.event.case === 'chunk').map((e) => pick(e, 'chunk').text);
      assert.deepEqual(chunks, Array.from({ length: 200 }, (_, i) => `${who}:${i} `));
      ids.add(pick(events[0], 'chunkStart').responseId);
      assert.deepEqual(pick(events.at(-1), 'finalResult').events, [{ event: 'slot', timestamp: null, name: 'who', value: who }]);
    });
    assert.equal(ids.size, 3);
  });
});
