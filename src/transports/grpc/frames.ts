/**
 * gRPC frames for a batch of `WebhookStreamEvent`s, written into one buffer.
 *
 * The messages of a token stream are nearly all `chunk{response_id, text}`, plus the
 * `chunk_start`/`chunk_end` around them. `toBinary` allocates a writer and a zeroed 1 KiB buffer
 * per message, which was the largest allocation (and GC) cost per chunk; those three shapes are
 * encoded here directly into the batch buffer instead. Everything else (rich chunks,
 * `final_result`, `error`) goes through `toBinary`. The output is byte-identical to
 * `toBinary` + framing (tested).
 * @module
 */

import { toBinary } from '@bufbuild/protobuf';
import { WebhookStreamEventSchema, type WebhookStreamEvent } from './gen/action_webhook_pb.ts';

// Wire tags: (field number << 3) | 2 (length-delimited).
const TAG_CHUNK_START = 0x0a; // WebhookStreamEvent.chunk_start = 1
const TAG_CHUNK = 0x12; // WebhookStreamEvent.chunk = 2
const TAG_CHUNK_END = 0x1a; // WebhookStreamEvent.chunk_end = 3
const TAG_RESPONSE_ID = 0x0a; // ChunkStart/Chunk/ChunkEnd.response_id = 1
const TAG_TEXT = 0x12; // Chunk.text = 2

const FRAME_HEADER = 5;

// Per-message plan of the batch being encoded, reused across batches (encoding is synchronous).
let tags = new Uint8Array(64); // 0: encoded by toBinary
let idLengths = new Uint32Array(64);
let textLengths = new Uint32Array(64);
let bodyLengths = new Uint32Array(64);
const encoded: (Uint8Array | undefined)[] = [];

function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[at++] = value;
  return at;
}

/** Size of a proto3 string field (absent when empty). */
function stringFieldSize(byteLength: number): number {
  return byteLength === 0 ? 0 : 1 + varintSize(byteLength) + byteLength;
}

function writeStringField(out: Buffer, at: number, tag: number, value: string, byteLength: number): number {
  if (byteLength === 0) return at;
  out[at++] = tag;
  at = writeVarint(out, at, byteLength);
  return at + out.write(value, at, byteLength, 'utf8');
}

/** A chunk that carries nothing but its response_id and text. */
function isPlainChunk(event: WebhookStreamEvent['event']): boolean {
  if (event.case !== 'chunk') return false;
  const chunk = event.value;
  return (
    chunk.image === '' &&
    chunk.attachment === '' &&
    chunk.custom === undefined &&
    chunk.buttons.length === 0 &&
    chunk.elements.length === 0 &&
    chunk.$unknown === undefined
  );
}

function grow(count: number): void {
  if (count <= tags.length) return;
  let size = tags.length;
  while (size < count) size *= 2;
  tags = new Uint8Array(size);
  idLengths = new Uint32Array(size);
  textLengths = new Uint32Array(size);
  bodyLengths = new Uint32Array(size);
}

/**
 * The frames (flag 0, 4-byte big-endian length, message) of `messages`, in one buffer.
 */
export function encodeFrames(messages: readonly WebhookStreamEvent[]): Buffer {
  const count = messages.length;
  grow(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const event = (messages[i] as WebhookStreamEvent).event;
    let inner: number;
    if ((event.case === 'chunkStart' || event.case === 'chunkEnd') && event.value.$unknown === undefined) {
      tags[i] = event.case === 'chunkStart' ? TAG_CHUNK_START : TAG_CHUNK_END;
      idLengths[i] = Buffer.byteLength(event.value.responseId, 'utf8');
      textLengths[i] = 0;
      inner = stringFieldSize(idLengths[i] as number);
    } else if (isPlainChunk(event)) {
      const chunk = event.value as { responseId: string; text: string };
      tags[i] = TAG_CHUNK;
      idLengths[i] = Buffer.byteLength(chunk.responseId, 'utf8');
      textLengths[i] = Buffer.byteLength(chunk.text, 'utf8');
      inner = stringFieldSize(idLengths[i] as number) + stringFieldSize(textLengths[i] as number);
    } else {
      tags[i] = 0;
      const data = toBinary(WebhookStreamEventSchema, messages[i] as WebhookStreamEvent);
      encoded[i] = data;
      bodyLengths[i] = data.byteLength;
      total += FRAME_HEADER + data.byteLength;
      continue;
    }
    // The oneof member is a message: its tag and length are written even when it is empty.
    const body = 1 + varintSize(inner) + inner;
    bodyLengths[i] = body;
    total += FRAME_HEADER + body;
  }

  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const body = bodyLengths[i] as number;
    out[at] = 0;
    out.writeUInt32BE(body, at + 1);
    at += FRAME_HEADER;
    const tag = tags[i] as number;
    if (tag === 0) {
      out.set(encoded[i] as Uint8Array, at);
      encoded[i] = undefined;
      at += body;
      continue;
    }
    const value = (messages[i] as WebhookStreamEvent).event.value as { responseId: string; text?: string };
    const idLength = idLengths[i] as number;
    const textLength = textLengths[i] as number;
    out[at++] = tag;
    at = writeVarint(out, at, stringFieldSize(idLength) + stringFieldSize(textLength));
    at = writeStringField(out, at, TAG_RESPONSE_ID, value.responseId, idLength);
    if (tag === TAG_CHUNK) at = writeStringField(out, at, TAG_TEXT, value.text as string, textLength);
  }
  return out;
}
