// sluice.v1.VoiceService over a real server: StreamSentences (sentences, then final_result or
// error, then run_end; WebhookStream's statuses; barge-in through ActionService.AckStreamChunks;
// a client that goes away cancels the run) and FollowSentences (a run started elsewhere, by index;
// NOT_FOUND), with a stock Connect client and a stock @grpc/grpc-js client.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { create, fromBinary, toBinary, type MessageShape } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { RUN_ID_METADATA } from '../../../src/transports/grpc/index.ts';
import {
  SentenceStreamEventSchema,
  StreamSentencesRequestSchema,
  VoiceService,
  type SentenceStreamEvent,
} from '../../../src/transports/grpc/gen/sluice_voice_pb.ts';
import { AFTER_TOOL, BEFORE_TOOL, STORY, TOOL_MS, sentenceActions, toolTimes } from '../../channels/voice/sentence-actions.ts';
import { assertIdle, request, startHarness, type Harness } from './helpers.ts';

const RASA_NOT_FOUND = { action_name: 'action_nope', message: "No registered action found for name 'action_nope'.", resource_type: 'ACTION' };

interface Outcome {
  events: SentenceStreamEvent[];
  error: ConnectError | null;
  runId: string | null;
}

/** Reads a call to its end; `onEvent` may act on each message (e.g. ack). */
async function read(
  start: (options: { onHeader: (headers: Headers) => void }) => AsyncIterable<SentenceStreamEvent>,
  onEvent?: (event: SentenceStreamEvent) => void | Promise<void>,
): Promise<Outcome> {
  const outcome: Outcome = { events: [], error: null, runId: null };
  try {
    for await (const event of start({ onHeader: (headers) => (outcome.runId = headers.get(RUN_ID_METADATA)) })) {
      outcome.events.push(event);
      await onEvent?.(event);
    }
  } catch (error) {
    outcome.error = ConnectError.from(error);
  }
  return outcome;
}

function kinds(events: SentenceStreamEvent[]): string[] {
  return events.map((event) => String(event.event.case));
}

function sentences(events: SentenceStreamEvent[]): { index: number; text: string; responseId: string }[] {
  return events.flatMap((event) =>
    event.event.case === 'sentence' ? [{ index: event.event.value.index, text: event.event.value.text, responseId: event.event.value.responseId }] : [],
  );
}

function finalResult(events: SentenceStreamEvent[]) {
  const event = events.find((e) => e.event.case === 'finalResult');
  assert.ok(event !== undefined && event.event.case === 'finalResult', 'a final_result');
  return event.event.value;
}

function runEnd(events: SentenceStreamEvent[]): string {
  const last = events.at(-1);
  assert.ok(last !== undefined && last.event.case === 'runEnd', 'run_end comes last');
  return last.event.value.reason;
}

describe('sluice.v1.VoiceService', () => {
  let h: Harness;
  let voice: Client<typeof VoiceService>;
  const aborted = new Set<string>();
  beforeEach(async () => {
    h = await startHarness(sentenceActions(aborted), { bargeInTimeoutSeconds: 0.5 });
    voice = createClient(VoiceService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${h.port}` }));
  });
  afterEach(() => h.close());

  test('StreamSentences: sentences of streamed and whole messages, final_result, run_end; the run id in a header', async () => {
    const outcome = await read((options) => voice.streamSentences({ call: request('action_story') }, options));
    assert.equal(outcome.error, null);
    assert.deepEqual(kinds(outcome.events), ['sentence', 'sentence', 'sentence', 'sentence', 'finalResult', 'runEnd']);
    const said = sentences(outcome.events);
    assert.deepEqual(said.map((s) => s.text), ['Good morning. ', 'The shop opens at nine. ', 'See you soon!', 'Anything else?']);
    assert.deepEqual(said.map((s) => s.index), [0, 1, 2, 3]);
    assert.match(said[0]!.responseId, /^[0-9a-f]{32}$/);
    assert.equal(said[2]!.responseId, said[0]!.responseId);
    assert.match(said[3]!.responseId, /^msg-\d+$/);
    const result = finalResult(outcome.events);
    assert.deepEqual(result.events, [{ event: 'slot', timestamp: null, name: 'told', value: true }]);
    assert.equal(result.responses[0]?.text, 'Anything else?');
    assert.equal(runEnd(outcome.events), 'completed');
    assert.match(outcome.runId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(h.executor.getRun(outcome.runId!)?.endReason, 'completed');
  });

  test('StreamSentences: a tool call releases the sentence before it at once, long before the tool ends', async () => {
    let firstAt = -1;
    const outcome = await read(
      (options) => voice.streamSentences({ call: request('action_tool', { senderId: 'grpc-tool', tracker: { senderId: 'grpc-tool' } }) }, options),
      (event) => {
        if (event.event.case === 'sentence' && firstAt < 0) firstAt = performance.now();
      },
    );
    assert.equal(outcome.error, null);
    assert.deepEqual(sentences(outcome.events).map((s) => s.text), [BEFORE_TOOL, AFTER_TOOL]);
    const times = toolTimes.get('grpc-tool')!;
    assert.ok(firstAt > 0 && firstAt < times.endAt - TOOL_MS / 2, `the sentence came ${Math.round(firstAt - times.startAt)} ms after tool-start`);
  });

  test('FollowSentences: the same boundaries at a tool call as StreamSentences', async () => {
    const run = h.executor.start({ next_action: 'action_tool', sender_id: 'grpc-follow', tracker: { sender_id: 'grpc-follow' } } as never, { streaming: true });
    let firstAt = -1;
    const outcome = await read(
      () => voice.followSentences({ runId: run.id }),
      (event) => {
        if (event.event.case === 'sentence' && firstAt < 0) firstAt = performance.now();
      },
    );
    assert.deepEqual(sentences(outcome.events).map((s) => s.text), [BEFORE_TOOL, AFTER_TOOL]);
    const times = toolTimes.get('grpc-follow')!;
    assert.ok(firstAt > 0 && firstAt < times.endAt - TOOL_MS / 2, `the sentence came ${Math.round(firstAt - times.startAt)} ms after tool-start`);
  });

  test('StreamSentences: a static (non-streamed) message is spoken as sentences; segmenter options apply', async () => {
    const plain = await read((options) => voice.streamSentences({ call: request('action_static') }, options));
    assert.deepEqual(sentences(plain.events).map((s) => s.text), ['Hello there. ', 'How are you today?']);
    assert.match(sentences(plain.events)[0]!.responseId, /^msg-\d+$/);
    const response = finalResult(plain.events).responses[0];
    assert.equal(response?.text, 'Hello there. How are you today?');
    assert.deepEqual(response?.buttons, [{ title: 'Fine', payload: '/fine' }]);
    assert.deepEqual(finalResult(plain.events).events, [{ event: 'slot', timestamp: null, name: 'greeted', value: true }]);

    const joined = await read((options) => voice.streamSentences({ call: request('action_story'), segmenter: { minFirstLength: 20, mode: 'default' } }, options));
    assert.deepEqual(sentences(joined.events).map((s) => s.text), ['Good morning. The shop opens at nine. ', 'See you soon!', 'Anything else?']);
  });

  test("StreamSentences: WebhookStream's statuses for an unknown action, a failing action and a bad request", async () => {
    const unknown = await read((options) => voice.streamSentences({ call: request('action_nope') }, options));
    assert.equal(unknown.error?.code, Code.NotFound);
    assert.deepEqual(JSON.parse(unknown.error!.rawMessage), RASA_NOT_FOUND);
    assert.deepEqual(kinds(unknown.events), ['error', 'runEnd']);
    assert.equal(runEnd(unknown.events), 'error');

    const failing = await read((options) => voice.streamSentences({ call: request('action_fail') }, options));
    assert.equal(failing.error?.code, Code.Internal);
    assert.equal(failing.error?.rawMessage, 'action exploded');
    assert.deepEqual(kinds(failing.events), ['sentence', 'sentence', 'error', 'runEnd']);
    assert.deepEqual(sentences(failing.events).map((s) => s.text), ['Partial sentence. ', 'Broken']);
    const error = failing.events[2]!.event;
    assert.ok(error.case === 'error');
    assert.deepEqual({ actionName: error.value.actionName, message: error.value.message }, { actionName: 'action_fail', message: 'action exploded' });

    const malformed = await read((options) => voice.streamSentences({ call: { nextAction: 'action_story', senderId: 'u' } }, options));
    assert.equal(malformed.error?.code, Code.InvalidArgument);
    assert.match(malformed.error!.rawMessage, /tracker/);

    const started = h.executor.activeRuns;
    const noCall = await read((options) => voice.streamSentences({}, options));
    assert.equal(noCall.error?.code, Code.InvalidArgument);
    assert.equal(noCall.error?.rawMessage, "StreamSentences: 'call' is required (a Rasa WebhookRequest)");
    for (const [segmenter, message] of [
      [{ mode: 'regex' }, `StreamSentences: segmenter: option 'mode' must be one of 'default', 'ace' (got "regex")`],
      [{ maxLength: 0 }, "StreamSentences: segmenter: option 'maxLength' must be an integer ≥ 1 (got 0)"],
      [{ minFirstLength: 10, maxLength: 5 }, "StreamSentences: segmenter: option 'maxLength' must be ≥ minFirstLength (got 5 < 10)"],
      [{ stallFlushMs: 0 }, "StreamSentences: segmenter: option 'stallFlushMs' must be > 0 (got 0)"],
    ] as const) {
      const bad = await read((options) => voice.streamSentences({ call: request('action_story'), segmenter }, options));
      assert.equal(bad.error?.code, Code.InvalidArgument);
      assert.equal(bad.error?.rawMessage, message);
      assert.deepEqual(bad.events, []);
    }
    assert.equal(h.executor.activeRuns, started, 'refused calls start no run');
  });

  test('barge-in: AckStreamChunks with a sentence id stops the sentences at once; final_result and run_end still arrive', async () => {
    const outcome = await read(
      (options) => voice.streamSentences({ call: request('action_barge', { senderId: 'grpc-barge', tracker: { senderId: 'grpc-barge' } }) }, options),
      async (event) => {
        if (event.event.case === 'sentence') await h.client.ackStreamChunks({ responseId: event.event.value.responseId });
      },
    );
    assert.equal(outcome.error, null);
    assert.deepEqual(kinds(outcome.events), ['sentence', 'finalResult', 'runEnd']);
    assert.equal(sentences(outcome.events)[0]!.text, 'First sentence. ');
    assert.deepEqual(finalResult(outcome.events).events, [{ event: 'slot', timestamp: null, name: 'interrupted', value: true }]);
    assert.equal(runEnd(outcome.events), 'cancelled');
    assert.ok(aborted.has('grpc-barge'), "the action's signal aborted");
  });

  test('a client that goes away cancels the run', async () => {
    const controller = new AbortController();
    let runId: string | null = null;
    const outcome = await read(
      (options) => voice.streamSentences({ call: request('action_forever', { senderId: 'grpc-gone', tracker: { senderId: 'grpc-gone' } }) }, { ...options, signal: controller.signal, onHeader: (headers) => (runId = headers.get(RUN_ID_METADATA)) }),
      (event) => {
        if (event.event.case === 'sentence') controller.abort();
      },
    );
    assert.equal(outcome.error?.code, Code.Canceled);
    const run = h.executor.getRun(runId!);
    assert.ok(run !== undefined);
    await run.done;
    assert.equal(run.endReason, 'cancelled');
    assert.ok(aborted.has('grpc-gone'));
    await assertIdle(h.executor);
  });

  test('FollowSentences: a run started elsewhere, from an index; never cancels it; NOT_FOUND for an unknown run', async () => {
    const run = h.executor.start({ next_action: 'action_story', sender_id: 'u', tracker: { sender_id: 'u' } });
    const live = await read((options) => voice.followSentences({ runId: run.id }, options));
    assert.equal(live.error, null);
    assert.deepEqual(kinds(live.events), ['sentence', 'sentence', 'sentence', 'sentence', 'finalResult', 'runEnd']);
    assert.equal(runEnd(live.events), 'completed');

    const later = await read((options) => voice.followSentences({ runId: run.id, afterIndex: 1 }, options));
    assert.deepEqual(sentences(later.events).map((s) => [s.index, s.text]), [[2, 'See you soon!'], [3, 'Anything else?']]);
    assert.deepEqual(finalResult(later.events).events, [{ event: 'slot', timestamp: null, name: 'told', value: true }]);
    const fromZero = await read((options) => voice.followSentences({ runId: run.id, afterIndex: 0 }, options));
    assert.deepEqual(sentences(fromZero.events).map((s) => s.index), [1, 2, 3]);

    // A follower that hangs up leaves the run alone.
    const other = h.executor.start({ next_action: 'action_barge', sender_id: 'f', tracker: { sender_id: 'f' } });
    const controller = new AbortController();
    const gone = await read(
      (options) => voice.followSentences({ runId: other.id }, { ...options, signal: controller.signal }),
      () => controller.abort(),
    );
    assert.equal(gone.error?.code, Code.Canceled);
    await sleep(20);
    assert.equal(other.state, 'running');
    assert.equal(other.subscribers.size, 0, 'the follower was released');
    h.executor.cancel(other.id);
    await other.done;

    const unknown = await read((options) => voice.followSentences({ runId: 'nope' }, options));
    assert.equal(unknown.error?.code, Code.NotFound);
    assert.equal(unknown.error?.rawMessage, "FollowSentences: no run found with id 'nope'");
    const empty = await read((options) => voice.followSentences({ runId: '' }, options));
    assert.equal(empty.error?.code, Code.InvalidArgument);
    const bad = await read((options) => voice.followSentences({ runId: run.id, segmenter: { locale: 'not a locale!' } }, options));
    assert.equal(bad.error?.code, Code.InvalidArgument);
    assert.match(bad.error!.rawMessage, /^FollowSentences: segmenter: option 'locale' must be a BCP 47 language tag/);
  });

  test('FollowSentences after a barge-in: what was said before it, then the end', async () => {
    const run = h.executor.start({ next_action: 'action_barge', sender_id: 'late', tracker: { sender_id: 'late' } });
    const first = await read(
      (options) => voice.followSentences({ runId: run.id }, options),
      async (event) => {
        if (event.event.case === 'sentence') await h.client.ackStreamChunks({ responseId: event.event.value.responseId });
      },
    );
    assert.deepEqual(kinds(first.events), ['sentence', 'finalResult', 'runEnd']);
    const late = await read((options) => voice.followSentences({ runId: run.id }, options));
    assert.deepEqual(kinds(late.events), ['sentence', 'finalResult', 'runEnd']);
    assert.equal(runEnd(late.events), 'cancelled');
  });

  test('a stock @grpc/grpc-js client reads StreamSentences', async () => {
    const requestCodec = {
      serialize: (message: MessageShape<typeof StreamSentencesRequestSchema>) => Buffer.from(toBinary(StreamSentencesRequestSchema, message)),
      deserialize: (bytes: Buffer) => fromBinary(StreamSentencesRequestSchema, bytes),
    };
    const Client = grpc.makeGenericClientConstructor(
      {
        StreamSentences: {
          path: '/sluice.v1.VoiceService/StreamSentences',
          requestStream: false,
          responseStream: true,
          requestSerialize: requestCodec.serialize,
          requestDeserialize: requestCodec.deserialize,
          responseSerialize: (message: SentenceStreamEvent) => Buffer.from(toBinary(SentenceStreamEventSchema, message)),
          responseDeserialize: (bytes: Buffer) => fromBinary(SentenceStreamEventSchema, bytes),
        },
      },
      'VoiceService',
    );
    const client = new Client(`127.0.0.1:${h.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      StreamSentences(message: MessageShape<typeof StreamSentencesRequestSchema>): grpc.ClientReadableStream<SentenceStreamEvent>;
    };
    try {
      const call = client.StreamSentences(create(StreamSentencesRequestSchema, { call: request('action_story') }));
      const events: SentenceStreamEvent[] = [];
      let runId: unknown;
      call.on('metadata', (metadata: grpc.Metadata) => (runId = metadata.get(RUN_ID_METADATA)[0]));
      await new Promise<void>((resolve, reject) => {
        call.on('data', (event: SentenceStreamEvent) => events.push(event));
        call.on('error', reject);
        call.on('end', resolve);
      });
      assert.deepEqual(sentences(events).map((s) => s.index), [0, 1, 2, 3]);
      assert.equal(runEnd(events), 'completed');
      assert.match(String(runId), /^[0-9a-f-]{36}$/);
    } finally {
      client.close();
    }
  });
});
