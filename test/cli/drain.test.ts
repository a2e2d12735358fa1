/**
 * Graceful drain with real clients on every transport: health turns 503 / NOT_SERVING at once,
 * new runs are refused (503 / UNAVAILABLE), running runs get the drain timeout, then are cancelled
 * and each open stream ends properly (SSE `error` + `run-end`, WebSocket `run-end` then 1001,
 * gRPC UNAVAILABLE, the AI SDK stream `abort`).
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { WebSocket } from 'ws';
import { startServer, type RunningServer } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { ActionService } from '../../src/transports/grpc/gen/action_webhook_pb.ts';
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from '../../src/transports/grpc/gen/health_pb.ts';
import { kinds, readStream, request } from '../transports/grpc/helpers.ts';
import { call, openSse, WsClient } from '../transports/http/fixtures.ts';

const FIXTURE = 'test/cli/fixtures/slow-actions.ts';

function start(): Promise<RunningServer> {
  return startServer({ actions: FIXTURE, host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, chatAction: 'action_ticker' });
}

function chatBody(id: string): unknown {
  return { id, messages: [{ id: `${id}-u1`, role: 'user', parts: [{ type: 'text', text: 'hello' }] }] };
}

/** The status of a WebSocket upgrade the server refuses (or 101 when it accepts). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
    socket.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      socket.terminate();
    });
    socket.once('open', () => {
      resolve(101);
      socket.close();
    });
    socket.once('error', (error) => reject(error));
  });
}

describe('graceful drain', () => {
  test('refuses new work at once, then cancels what is left after the timeout and ends every stream properly', { timeout: 60_000 }, async () => {
    const server = await start();
    const grpc = createClient(ActionService, createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }));
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }));
    try {
      // One open stream per transport, each past its first chunk.
      const sse = await openSse(`${server.httpUrl}/webhook/stream`, { body: call('action_ticker', { sender: 'sse' }) });
      const ws = await WsClient.connect(server.httpUrl);
      ws.send({ type: 'start', id: 'w1', call: call('action_ticker', { sender: 'ws' }) });
      const chat = await openSse(`${server.httpUrl}/api/chat`, { body: chatBody('drain-chat') });
      const grpcStream = readStream(grpc.webhookStream(request('action_ticker', { tracker: { senderId: 'grpc' } })));
      await sse.until((s) => s.types().includes('chunk'));
      await ws.next((m) => m.type === 'chunk');
      await chat.until((s) => s.text.includes('"type":"text-delta"'));
      const until = Date.now() + 5_000;
      while (server.executor.activeRuns < 4 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(server.executor.activeRuns, 4);

      const started = Date.now();
      const shutdown = server.shutdown(1_000);

      // At once: not serving, and nothing new starts on any transport.
      const h = await fetch(`${server.httpUrl}/health`);
      assert.equal(h.status, 503);
      assert.deepEqual(await h.json(), { status: 'draining', error: 'The server is shutting down', code: 'unavailable' });
      assert.equal((await health.check({ service: '' })).status, ServingStatus.NOT_SERVING);
      const refusedSse = await fetch(`${server.httpUrl}/webhook/stream`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(call('action_quick')),
      });
      assert.equal(refusedSse.status, 503);
      assert.equal(((await refusedSse.json()) as { code: string }).code, 'unavailable');
      const refusedChat = await fetch(`${server.httpUrl}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatBody('late')) });
      assert.equal(refusedChat.status, 503);
      assert.equal(await upgradeStatus(server.httpUrl), 503, 'a new WebSocket is refused');
      ws.send({ type: 'start', id: 'w2', call: call('action_quick') });
      const wsRefusal = await ws.next((m) => m.type === 'error' && m.id === 'w2');
      assert.equal(wsRefusal.code, 'unavailable');
      await assert.rejects(grpc.webhook(request('action_quick')), (error: unknown) => ConnectError.from(error).code === Code.Unavailable);
      await assert.rejects(
        readStream(grpc.webhookStream(request('action_quick'))).then((outcome) => {
          if (outcome.error !== null) throw outcome.error;
        }),
        (error: unknown) => ConnectError.from(error).code === Code.Unavailable,
      );
      assert.equal(server.executor.activeRuns, 4, 'the running runs go on meanwhile');

      const outcome = await shutdown;
      assert.deepEqual(outcome, { finished: 0, cancelled: 4 });
      assert.ok(Date.now() - started >= 900, 'the runs had the drain timeout to finish');

      // SSE: an `unavailable` error, then run-end.
      const frames = await sse.done();
      assert.deepEqual(frames.slice(-2).map((f) => f.event), ['error', 'run-end']);
      assert.equal(frames.at(-2)?.data.code, 'unavailable');
      assert.equal(frames.at(-1)?.data.reason, 'cancelled');
      // WebSocket: the run's error and run-end, then close 1001.
      assert.equal(await ws.closed, 1001);
      const runId = ws.messages.find((m) => m.type === 'started' && m.id === 'w1')?.runId;
      const wsEvents = ws.ofRun(runId).map((m) => m.type);
      assert.deepEqual(wsEvents.slice(-2), ['error', 'run-end']);
      // gRPC: the stream ends with UNAVAILABLE.
      const g = await grpcStream;
      assert.ok(kinds(g.events).includes('chunk'));
      assert.equal(g.error?.code, Code.Unavailable, `gRPC status: ${g.error?.message}`);
      // AI SDK: `abort`.
      await chat.ended;
      assert.match(chat.text, /"type":"abort"/);
      assert.equal(server.executor.activeRuns, 0);
    } finally {
      await server.close();
    }
  });

  test('a run that finishes within the drain timeout completes normally', { timeout: 60_000 }, async () => {
    const server = await start();
    try {
      const sse = await openSse(`${server.httpUrl}/webhook/stream`, { body: call('action_ticker', { slots: { ticks: 10, interval_ms: 30 } }) });
      await sse.until((s) => s.types().includes('chunk'));
      const outcome = await server.shutdown(10_000);
      assert.deepEqual(outcome, { finished: 1, cancelled: 0 });
      const frames = await sse.done();
      assert.deepEqual(frames.slice(-2).map((f) => f.event), ['result', 'run-end']);
      assert.equal(frames.at(-1)?.data.reason, 'completed');
      assert.equal(frames.filter((f) => f.event === 'chunk').length, 10);
    } finally {
      await server.close();
    }
  });
});
