/**
 * Fuzz: every gRPC method (ActionService, Health, VoiceService) over raw HTTP/2 with generated
 * request bytes — random, truncated, mis-framed, structurally valid with hostile fields, and
 * deeply nested Structs. A malformed request is INVALID_ARGUMENT (or another client status), never
 * INTERNAL, and its message carries no parser detail; the server is healthy after.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import type { RunningServer } from '../../src/cli/serve.ts';
import { WebhookRequestSchema } from '../../src/transports/grpc/gen/action_webhook_pb.ts';
import { assertHealthy, fuzzServer, hostileString, runs } from './harness.ts';

const METHODS = [
  '/action_server_webhook.ActionService/Webhook',
  '/action_server_webhook.ActionService/WebhookStream',
  '/action_server_webhook.ActionService/AckStreamChunks',
  '/action_server_webhook.ActionService/Actions',
  '/grpc.health.v1.Health/Check',
  '/grpc.health.v1.Health/Watch',
  '/sluice.v1.VoiceService/StreamSentences',
  '/sluice.v1.VoiceService/FollowSentences',
];

function frame(message: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

function field(number: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}

/** A WebhookRequest whose tracker slot `deep` is a `google.protobuf.Value` list nested `depth` levels. */
function deepRequest(depth: number): Buffer {
  let value: Buffer = Buffer.alloc(0);
  // Value.list_value (6) → ListValue.values (1) → Value …
  for (let i = 0; i < depth; i++) value = field(6, field(1, value));
  const entry = Buffer.concat([field(1, Buffer.from('deep')), field(2, value)]);
  const slots = field(1, entry); // Struct.fields
  const tracker = Buffer.concat([field(1, Buffer.from('u')), field(2, slots)]);
  return Buffer.concat([field(1, Buffer.from('action_greet')), field(3, tracker)]);
}

interface Status {
  code: number | undefined;
  message: string;
}

async function call(client: http2.ClientHttp2Session, path: string, body: Buffer, headers: http2.OutgoingHttpHeaders = {}): Promise<Status> {
  const req = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '200m', ...headers });
  return new Promise((resolve, reject) => {
    let head: http2.IncomingHttpHeaders = {};
    const timer = setTimeout(() => {
      req.close();
      reject(new Error(`${path}: no status within 5 s`));
    }, 5_000);
    const finish = (trailers: http2.IncomingHttpHeaders): void => {
      clearTimeout(timer);
      const raw = trailers['grpc-status'] ?? head['grpc-status'];
      const message = String(trailers['grpc-message'] ?? head['grpc-message'] ?? '');
      resolve({ code: raw === undefined ? undefined : Number(raw), message: decodeURIComponent(message) });
    };
    req.on('response', (h) => {
      head = h;
    });
    req.on('trailers', finish);
    req.on('data', () => {});
    req.on('end', () => finish({}));
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(body);
  });
}

const INTERNAL = 13;

const body = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((bytes) => frame(bytes)),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
  fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.nat({ max: 2 ** 32 - 1 })).map(([bytes, length]) => {
    const framed = frame(bytes);
    framed.writeUInt32BE(length, 1);
    return framed;
  }),
  fc
    .record({ nextAction: fc.oneof(fc.constantFrom('action_nope', ''), hostileString.map((s) => s.slice(0, 500))), senderId: hostileString.map((s) => s.slice(0, 500)), version: hostileString.map((s) => s.slice(0, 100)) })
    .map((init) => frame(toBinary(WebhookRequestSchema, create(WebhookRequestSchema, { ...init, nextAction: init.nextAction.startsWith('action_') && init.nextAction !== 'action_nope' ? 'action_nope' : init.nextAction })))),
  fc.constantFrom(frame(deepRequest(2_000)), frame(deepRequest(200))),
);

describe('fuzz: gRPC methods', () => {
  let server: RunningServer;
  let client: http2.ClientHttp2Session;
  before(async () => {
    server = await fuzzServer();
    client = http2.connect(`http://${server.grpcAddress}`);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('malformed and hostile requests get a client status, never INTERNAL or parser detail', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...METHODS), body, fc.constantFrom<http2.OutgoingHttpHeaders>({}, { 'grpc-encoding': 'gzip' }, { 'grpc-timeout': 'soon' }), async (method, bytes, headers) => {
        const status = await call(client, method, bytes, headers);
        assert.ok(status.code !== undefined, `${method}: no grpc-status`);
        assert.notEqual(status.code, INTERNAL, `${method}: INTERNAL ${status.message}`);
        assert.doesNotMatch(status.message, /premature EOF|invalid wire type|Maximum call stack|at .*\.ts:\d+/, `${method}: ${status.message}`);
      }),
      { numRuns: runs(400) },
    );
  });

  it('a Struct nested 2,000 deep is INVALID_ARGUMENT or refused by the depth limit, not a crash', async () => {
    for (const path of METHODS.slice(0, 2)) {
      const status = await call(client, path, frame(deepRequest(2_000)));
      assert.notEqual(status.code, INTERNAL, `${path}: ${status.message}`);
      assert.notEqual(status.code, 0, `${path}: a 2,000-deep slot was accepted`);
    }
  });

  it('afterwards: healthy on both ports', async () => {
    await assertHealthy(server.httpUrl);
    const status = await call(client, '/grpc.health.v1.Health/Check', frame(new Uint8Array()));
    assert.equal(status.code, 0);
  });
});
