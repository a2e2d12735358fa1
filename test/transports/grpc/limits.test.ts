/**
 * Issue 14 on the gRPC port: over the run cap a call is RESOURCE_EXHAUSTED (Webhook and the
 * batched WebhookStream path), and malformed request bytes are INVALID_ARGUMENT with a safe message.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { defineAction } from '../../../src/runtime/action.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { WebhookRequestSchema } from '../../../src/transports/grpc/gen/action_webhook_pb.ts';
import { createGrpcServer } from '../../../src/transports/grpc/server.ts';
import { readStream, request, startHarness } from './helpers.ts';

const waits = defineAction({
  name: 'action_waits',
  async run(_dispatcher, _tracker, _domain, { signal }) {
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    return [];
  },
});

describe('gRPC limits', () => {
  it('maxConnections: a connection over the cap is refused, the ones within it are served', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    const server = createGrpcServer({ executor, logger: silentLogger, maxConnections: 1 });
    const { port } = await server.listen(0, '127.0.0.1');
    const first = http2.connect(`http://127.0.0.1:${port}`);
    const second = http2.connect(`http://127.0.0.1:${port}`);
    try {
      await new Promise<void>((resolve, reject) => first.once('connect', () => resolve()).once('error', reject));
      const refused = await new Promise<boolean>((resolve) => {
        second.once('close', () => resolve(true));
        second.once('error', () => resolve(true));
        setTimeout(() => resolve(false), 3_000).unref();
      });
      assert.ok(refused, 'the second connection is closed by the server');
      const health = first.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc' });
      health.end(Buffer.from([0, 0, 0, 0, 0]));
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => health.once('response', resolve));
      assert.equal(headers[':status'], 200, 'the first connection is still served');
      health.close();
    } finally {
      first.destroy();
      second.destroy();
      await server.close();
    }
  });

  it('over maxConcurrentRuns: RESOURCE_EXHAUSTED on Webhook and WebhookStream', async () => {
    const h = await startHarness([waits], { maxConcurrentRuns: 2, bargeInTimeoutSeconds: 0.1 });
    try {
      const runs = [h.executor.start({ next_action: 'action_waits', tracker: { sender_id: 'a' } }), h.executor.start({ next_action: 'action_waits', tracker: { sender_id: 'b' } })];
      await assert.rejects(h.client.webhook(request('action_waits')), (e: unknown) => e instanceof ConnectError && e.code === Code.ResourceExhausted && /at most 2/.test(e.rawMessage));
      const outcome = await readStream(h.client.webhookStream(request('action_waits')));
      assert.equal(outcome.error?.code, Code.ResourceExhausted, String(outcome.error));
      for (const run of runs) run.cancel();
      await Promise.all(runs.map((run) => run.done));
    } finally {
      await h.close();
    }
  });

  it('a streaming client that takes no data is reset after stallTimeoutMs, releasing its run', async () => {
    const flood = defineAction({
      name: 'action_flood',
      async *stream() {
        const text = 'x'.repeat(2_000);
        for (let i = 0; i < 5_000; i++) yield text;
      },
    });
    const executor = new ActionExecutor({ logger: silentLogger, actions: [flood] });
    const server = createGrpcServer({ executor, logger: silentLogger, stallTimeoutMs: 300 });
    const { port } = await server.listen(0, '127.0.0.1');
    const client = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const message = toBinary(WebhookRequestSchema, create(WebhookRequestSchema, request('action_flood')));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(message.byteLength, 1);
      const stream = client.request({ ':method': 'POST', ':path': '/action_server_webhook.ActionService/WebhookStream', 'content-type': 'application/grpc', te: 'trailers' });
      const reset = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
      stream.on('error', () => {});
      stream.end(Buffer.concat([head, message]));
      stream.pause(); // never read: flow control stops the server
      const started = Date.now();
      const code = await Promise.race([reset, sleep(10_000).then(() => -1)]);
      assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 'the stalled stream was reset');
      assert.ok(Date.now() - started < 8_000);
      // The reader went away: a WebhookStream run is cancelled with its caller (as on disconnect).
      const deadline = Date.now() + 5_000;
      while (executor.activeRuns > 0 && Date.now() < deadline) await sleep(20);
      assert.equal(executor.activeRuns, 0, 'the run was released');
    } finally {
      client.close();
      await server.close();
      await executor.close();
    }
  });

  // Regression: a destroyed HTTP/2 session only ends its socket and waits for the peer to close
  // its side; a client that kept its connection (a stock Connect client that abandoned a
  // WebhookStream mid-call does) held close() for ever.
  it('close() cuts a connection whose client never closes its side, after closeTimeoutMs', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    const server = createGrpcServer({ executor, logger: silentLogger, closeTimeoutMs: 200 });
    const { port } = await server.listen(0, '127.0.0.1');
    // An HTTP/2 client that never closes: the preface and SETTINGS, then nothing (half-open allowed).
    const peer = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    peer.on('error', () => {});
    // The server's side of the connection is gone (the peer, half-open, would never close).
    const cut = new Promise<void>((resolve) => peer.once('end', () => resolve()));
    try {
      await new Promise<void>((resolve) => peer.once('connect', () => resolve()));
      peer.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
      await new Promise<void>((resolve) => peer.once('data', () => resolve()));
      peer.resume();
      const started = Date.now();
      const closed = await Promise.race([server.close().then(() => true), sleep(5_000).then(() => false)]);
      assert.ok(closed, 'close() settled');
      assert.ok(Date.now() - started < 2_000, `within closeTimeoutMs and some slack (${Date.now() - started} ms)`);
      await cut;
    } finally {
      peer.destroy();
      await executor.close();
    }
  });
});
