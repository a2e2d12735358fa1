// Interop with a stock @grpc/grpc-js client (another gRPC implementation than the server's),
// including what the write coalescing must get right: long streams, a client that pauses
// (backpressure), cancel, and statuses with details.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { defineAction } from '../../../src/runtime/action.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import type { WebhookStreamEvent } from '../../../src/transports/grpc/gen/action_webhook_pb.ts';
import { assertIdle, grpcJsClient, kinds, pick, sleep, startHarness, type GrpcJsClient, type Harness } from './helpers.ts';

interface Outcome {
  events: WebhookStreamEvent[];
  error: grpc.ServiceError | null;
}

function read(call: grpc.ClientReadableStream<WebhookStreamEvent>, onEvent?: (event: WebhookStreamEvent) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const events: WebhookStreamEvent[] = [];
    call.on('data', (event: WebhookStreamEvent) => {
      events.push(event);
      onEvent?.(event);
    });
    call.on('error', (error: grpc.ServiceError) => resolve({ events, error }));
    call.on('end', () => resolve({ events, error: null }));
  });
}

const tracker = { senderId: 'u' };

describe('a stock @grpc/grpc-js client', () => {
  let h: Harness | null = null;
  let client: GrpcJsClient | null = null;
  afterEach(async () => {
    client?.close();
    client = null;
    await h?.close();
    h = null;
  });

  test('a long stream arrives whole and in order, and a client that stops reading holds the producer back', async () => {
    const n = 20_000;
    let produced = 0;
    const counting = defineAction({
      name: 'action_counting',
      async *stream() {
        for (let i = 0; i < n; i++) {
          produced = i + 1;
          yield `${i} `;
        }
        return [slotSet('count', n)];
      },
    });
    h = await startHarness([counting]);
    client = grpcJsClient(h.port);
    const call = client.WebhookStream(webhookRequest('action_counting'));
    let producedWhilePaused = -1;
    const outcome = await read(call, (event) => {
      if (producedWhilePaused === -1 && event.event.case === 'chunk' && event.event.value.text === '1000 ') {
        producedWhilePaused = 0;
        call.pause();
        setTimeout(() => {
          producedWhilePaused = produced;
          call.resume();
        }, 300);
      }
    });
    assert.equal(outcome.error, null);
    assert.ok(producedWhilePaused > 0 && producedWhilePaused < n / 2, `the action waited for the reader (${producedWhilePaused} of ${n} produced)`);
    const chunks = outcome.events.flatMap((e) => (e.event.case === 'chunk' ? [e.event.value.text] : []));
    assert.deepEqual(chunks, Array.from({ length: n }, (_, i) => `${i} `));
    assert.deepEqual(kinds(outcome.events.slice(-2)), ['chunk_end', 'final_result']);
  });

  test('an action error reaches grpc-js as the error event, then INTERNAL with the details', async () => {
    const boom = defineAction({
      name: 'action_boom',
      async run(d) {
        await d.streamChunk({ text: 'before boom' });
        throw new Error('action exploded');
      },
    });
    h = await startHarness([boom]);
    client = grpcJsClient(h.port);
    const outcome = await read(client.WebhookStream(webhookRequest('action_boom')));
    assert.deepEqual(kinds(outcome.events), ['chunk_start', 'chunk', 'error']);
    assert.equal(outcome.error?.code, grpc.status.INTERNAL);
    assert.equal(outcome.error?.details, 'action exploded');
  });

  test('NOT_FOUND details are the compact JSON body', async () => {
    h = await startHarness([]);
    client = grpcJsClient(h.port);
    const outcome = await read(client.WebhookStream(webhookRequest('action_nope')));
    assert.deepEqual(kinds(outcome.events), ['error']);
    assert.equal(outcome.error?.code, grpc.status.NOT_FOUND);
    assert.equal(outcome.error?.details, `{"action_name":"action_nope","message":"No registered action found for name 'action_nope'.","resource_type":"ACTION"}`);
  });

  test('barge-in through AckStreamChunks, and a cancelled call cancels its run', async () => {
    const seen = { aborted: 0 };
    const talk = defineAction({
      name: 'action_talk',
      async run(d) {
        d.signal.addEventListener('abort', () => seen.aborted++);
        for (let i = 0; i < 10_000 && !d.signal.aborted; i++) {
          await d.streamChunk({ text: `w${i} ` });
          await sleep(1);
        }
        return [slotSet('stopped', true)];
      },
    });
    h = await startHarness([talk]);
    const c = grpcJsClient(h.port);
    client = c;

    const acked = await read(c.WebhookStream(webhookRequest('action_talk')), (event) => {
      if (event.event.case === 'chunk' && event.event.value.text === 'w3 ') {
        c.AckStreamChunks({ $typeName: 'action_server_webhook.StreamChunkAck', responseId: event.event.value.responseId }, (error) => assert.equal(error, null));
      }
    });
    assert.equal(acked.error, null);
    assert.deepEqual(kinds(acked.events.slice(-1)), ['final_result']);
    assert.equal(acked.events.some((e) => e.event.case === 'chunkEnd'), false, 'no chunk_end after a barge-in');
    assert.deepEqual(pick(acked.events.at(-1), 'finalResult').events, [{ event: 'slot', timestamp: null, name: 'stopped', value: true }]);

    const call = c.WebhookStream(webhookRequest('action_talk'));
    const cancelled = await read(call, (event) => {
      if (event.event.case === 'chunk' && event.event.value.text === 'w3 ') call.cancel();
    });
    assert.equal(cancelled.error?.code, grpc.status.CANCELLED);
    assert.equal(cancelled.events.some((e) => e.event.case === 'finalResult'), false);
    await assertIdle(h.executor);
    assert.equal(seen.aborted, 2);
  });

  test('an unknown method is UNIMPLEMENTED', async () => {
    h = await startHarness([]);
    client = grpcJsClient(h.port);
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      (client as GrpcJsClient).makeUnaryRequest(
        '/action_server_webhook.ActionService/Nope',
        () => Buffer.alloc(0),
        (b: Buffer) => b,
        {},
        (e) => resolve(e),
      );
    });
    assert.equal(error?.code, grpc.status.UNIMPLEMENTED);
  });
});

function webhookRequest(nextAction: string) {
  return {
    $typeName: 'action_server_webhook.WebhookRequest' as const,
    nextAction,
    senderId: 'u',
    version: '',
    tracker: { $typeName: 'action_server_webhook.Tracker' as const, ...tracker, events: [], paused: false, activeLoop: {}, stack: [] },
  };
}
