// The gRPC protocol around the batched WebhookStream handler: the requests it hands to Connect's
// generic handler (JSON codec, bad headers) behave the same, compressed requests are read, and
// malformed calls get proper statuses. Raw HTTP/2 where no stock client sends such requests.
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, createClient } from '@connectrpc/connect';
import { compressionGzip, createGrpcTransport } from '@connectrpc/connect-node';
import { defineAction } from '../../../src/runtime/action.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { ActionService, WebhookRequestSchema } from '../../../src/transports/grpc/gen/action_webhook_pb.ts';
import { encodeGrpcMessage } from '../../../src/transports/grpc/response-writer.ts';
import { kinds, pick, readStream, request, startHarness, type Harness } from './helpers.ts';

function aborted(signal: AbortSignal): Promise<void> {
  return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

const streaming = defineAction({
  name: 'action_streaming',
  async run(d, tracker) {
    await d.streamStart();
    await d.streamChunk({ text: 'Hello ' });
    await d.streamChunk({ text: 'world' });
    await d.streamEnd();
    return [slotSet('who', tracker.senderId)];
  },
});

const bargeIn = defineAction({
  name: 'action_barge_in',
  async run(d) {
    await d.streamChunk({ text: 'delivered' });
    await aborted(d.signal);
    await d.streamChunk({ text: 'cancelled' });
    return [slotSet('interrupted', true)];
  },
});

const boom = defineAction({
  name: 'action_boom',
  async run(d) {
    await d.streamChunk({ text: 'before boom' });
    throw new Error('action exploded: 100% sure, see /docs');
  },
});

interface RawOutcome {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One gRPC call over a bare HTTP/2 client, with headers and body of our choosing. */
function rawCall(port: number, path: string, headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    stream.end(body);
  });
}

function frame(message: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

/** The status of a raw call: from the trailers, or from the headers of a trailers-only answer. */
function statusOf(outcome: RawOutcome): { code: number; message: string } {
  const source = outcome.trailers['grpc-status'] !== undefined ? outcome.trailers : outcome.headers;
  return { code: Number(source['grpc-status']), message: decodeURIComponent(String(source['grpc-message'] ?? '')) };
}

const STREAM = '/action_server_webhook.ActionService/WebhookStream';
const validRequest = () => frame(toBinary(WebhookRequestSchema, create(WebhookRequestSchema, request('action_streaming'))));

describe('gRPC protocol details', () => {
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  test('the JSON codec is served by Connect\'s generic handler with the same semantics (stream, barge-in, errors)', async () => {
    h = await startHarness([streaming, bargeIn, boom]);
    const json = createClient(ActionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${h.port}`, useBinaryFormat: false }));

    const happy = await readStream(json.webhookStream(request('action_streaming')));
    assert.equal(happy.error, null);
    assert.deepEqual(kinds(happy.events), ['chunk_start', 'chunk', 'chunk', 'chunk_end', 'final_result']);

    const interrupted = await readStream(json.webhookStream(request('action_barge_in')), async (event) => {
      if (event.event.case === 'chunk') await json.ackStreamChunks({ responseId: event.event.value.responseId });
    });
    assert.equal(interrupted.error, null);
    assert.deepEqual(kinds(interrupted.events), ['chunk_start', 'chunk', 'final_result']);
    assert.deepEqual(pick(interrupted.events[2], 'finalResult').events, [{ event: 'slot', timestamp: null, name: 'interrupted', value: true }]);

    const failed = await readStream(json.webhookStream(request('action_boom')));
    assert.deepEqual(kinds(failed.events), ['chunk_start', 'chunk', 'error']);
    assert.equal(failed.error?.code, Code.Internal);
    assert.equal(failed.error?.rawMessage, 'action exploded: 100% sure, see /docs');
  });

  test('a gzip-compressed request is read on the batched path', async () => {
    h = await startHarness([streaming]);
    const gzip = createClient(
      ActionService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${h.port}`, sendCompression: compressionGzip, compressMinBytes: 0 }),
    );
    const { events, error } = await readStream(gzip.webhookStream({ nextAction: 'action_streaming', tracker: { senderId: 'zipped' } }));
    assert.equal(error, null);
    assert.deepEqual(pick(events.at(-1), 'finalResult').events, [{ event: 'slot', timestamp: null, name: 'who', value: 'zipped' }]);
  });

  test('raw HTTP/2: a valid call, and the status message percent-encoded as the gRPC spec says', async () => {
    h = await startHarness([streaming, boom]);
    const ok = await rawCall(h.port, STREAM, {}, validRequest());
    assert.equal(ok.headers[':status'], 200);
    assert.equal(ok.headers['content-type'], 'application/grpc+proto');
    assert.equal(ok.trailers['grpc-status'], '0');
    assert.ok(ok.body.byteLength > 0);

    const failed = await rawCall(h.port, STREAM, {}, frame(toBinary(WebhookRequestSchema, create(WebhookRequestSchema, request('action_boom')))));
    assert.equal(failed.trailers['grpc-status'], String(Code.Internal));
    // Only bytes outside space..~ and "%" itself are escaped.
    assert.equal(failed.trailers['grpc-message'], 'action exploded: 100%25 sure, see /docs');
  });

  test('raw HTTP/2: bad calls get gRPC statuses, not hangs or resets', async () => {
    h = await startHarness([streaming]);
    const port = h.port;
    const cases: [string, http2.OutgoingHttpHeaders, Buffer, number][] = [
      ['no request message', {}, Buffer.alloc(0), Code.Unimplemented],
      ['two request messages', {}, Buffer.concat([validRequest(), validRequest()]), Code.Unimplemented],
      // The client's error, said without the decoder's detail (issue 14, defect 6).
      ['a request that is not protobuf', {}, frame(Buffer.from([0xff, 0xff, 0xff])), Code.InvalidArgument],
      ['a truncated frame', {}, validRequest().subarray(0, 12), Code.InvalidArgument],
      ['a compressed frame without grpc-encoding', {}, frame(gzipSync(Buffer.from('x')), 1), Code.Internal],
      ['a frame that is not gzip', { 'grpc-encoding': 'gzip' }, frame(Buffer.from('not gzip'), 1), Code.InvalidArgument],
      ['a malformed grpc-timeout', { 'grpc-timeout': 'soon' }, validRequest(), Code.InvalidArgument],
      ['an unsupported request encoding', { 'grpc-encoding': 'snappy' }, validRequest(), Code.Unimplemented],
    ];
    for (const [label, headers, body, code] of cases) {
      const outcome = await rawCall(port, STREAM, headers, body);
      assert.equal(statusOf(outcome).code, code, `${label}: ${JSON.stringify(statusOf(outcome))}`);
    }
    const tooBig = await startHarness([streaming]);
    try {
      const big = frame(toBinary(WebhookRequestSchema, create(WebhookRequestSchema, request('action_streaming', { version: 'x'.repeat(5 * 1024 * 1024) }))));
      const outcome = await rawCall(tooBig.port, STREAM, {}, big);
      assert.equal(statusOf(outcome).code, Code.ResourceExhausted, 'over the 4 MiB default');
      // Small on the wire, too large once inflated.
      const bomb = frame(gzipSync(toBinary(WebhookRequestSchema, create(WebhookRequestSchema, request('action_streaming', { version: 'x'.repeat(5 * 1024 * 1024) })))), 1);
      assert.ok(bomb.byteLength < 100_000);
      const inflated = await rawCall(tooBig.port, STREAM, { 'grpc-encoding': 'gzip' }, bomb);
      assert.equal(statusOf(inflated).code, Code.ResourceExhausted, 'over the limit after gunzip');
      const zipped = frame(gzipSync(toBinary(WebhookRequestSchema, create(WebhookRequestSchema, request('action_streaming')))), 1);
      assert.equal(statusOf(await rawCall(tooBig.port, STREAM, { 'grpc-encoding': 'gzip' }, zipped)).code, 0, 'a gzip request within the limit is served');
    } finally {
      await tooBig.close();
    }
  });

  test('encodeGrpcMessage escapes only what the spec requires', () => {
    assert.equal(encodeGrpcMessage(`{"a":"b, c"} /x`), `{"a":"b, c"} /x`);
    assert.equal(encodeGrpcMessage('100% é\n'), '100%25 %C3%A9%0A');
  });
});
