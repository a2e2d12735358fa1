// The hand encoder of the hot-path messages must produce exactly what toBinary + gRPC framing do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { chunkEndMessage, chunkMessage, chunkStartMessage, finalResultMessage, streamErrorMessage } from '../../../src/transports/grpc/convert.ts';
import { encodeFrames } from '../../../src/transports/grpc/frames.ts';
import { WebhookStreamEventSchema, type WebhookStreamEvent } from '../../../src/transports/grpc/gen/action_webhook_pb.ts';
import type { ChunkEvent } from '../../../src/protocol/events.ts';

/** What a stock implementation sends: each message serialized by toBinary, then framed. */
function reference(messages: WebhookStreamEvent[]): Buffer {
  return Buffer.concat(
    messages.map((message) => {
      const data = toBinary(WebhookStreamEventSchema, message);
      const head = Buffer.alloc(5);
      head.writeUInt32BE(data.byteLength, 1);
      return Buffer.concat([head, data]);
    }),
  );
}

function splitFrames(bytes: Buffer): WebhookStreamEvent[] {
  const out: WebhookStreamEvent[] = [];
  for (let at = 0; at < bytes.byteLength; ) {
    assert.equal(bytes[at], 0, 'uncompressed');
    const length = bytes.readUInt32BE(at + 1);
    out.push(fromBinary(WebhookStreamEventSchema, bytes.subarray(at + 5, at + 5 + length)));
    at += 5 + length;
  }
  return out;
}

const chunk = (fields: Partial<ChunkEvent>): WebhookStreamEvent =>
  chunkMessage({ type: 'chunk', runId: 'r', seq: 1, responseId: '17eec39000e244eb95aedc6ee495b888', ...fields });

test('encodeFrames matches toBinary + framing for every message shape and size', () => {
  const long = 'x'.repeat(200); // 2-byte varint lengths
  const longer = 'é'.repeat(70_000); // 3-byte varint lengths
  const messages = [
    chunkStartMessage('17eec39000e244eb95aedc6ee495b888'),
    chunk({ text: 'Hello ' }),
    chunk({ text: '' }),
    chunk({}),
    chunk({ text: '😀 naïve — 漢字 \u0000 \ud800 lone surrogate' }),
    chunk({ text: long }),
    chunk({ text: longer }),
    chunk({ text: 'rich', buttons: [{ title: 'A', payload: '/a' }], custom: { n: 3 } }),
    chunk({ image: 'https://example.com/a.png' }),
    chunkEndMessage('17eec39000e244eb95aedc6ee495b888'),
    chunkEndMessage(''),
    finalResultMessage([{ event: 'slot', timestamp: null, name: 'x', value: 1 }], [{ text: 'hi' }]),
    streamErrorMessage('action_boom', 'action exploded'),
    create(WebhookStreamEventSchema, {}),
  ];
  assert.deepEqual(encodeFrames(messages), reference(messages));
  assert.equal(splitFrames(encodeFrames(messages)).length, messages.length);
});

test('property: any text and response id encode identically, in batches of any size', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.constantFrom('start', 'chunk', 'end'), fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ maxLength: 40 })),
        { maxLength: 80 },
      ),
      (items) => {
        const messages = items.map(([kind, text, id]) =>
          kind === 'start' ? chunkStartMessage(id) : kind === 'end' ? chunkEndMessage(id) : chunk({ responseId: id, text }),
        );
        assert.deepEqual(encodeFrames(messages), reference(messages));
      },
    ),
    { numRuns: 300 },
  );
});
