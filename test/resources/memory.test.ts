/**
 * Resource tests: the in-memory sets a client can grow — WebSocket send queues, the app cache,
 * ended runs kept for late readers, saved chats — stay bounded under a flood, and the server
 * stays healthy. (Slow bodies, partial headers, never-reading readers, run caps and deep input:
 * test/transports/http/limits.test.ts.)
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { exampleApps } from '../../examples/app.ts';
import { MemoryChatStore } from '../../src/channels/ui-message/store.ts';
import { defineAction } from '../../src/runtime/action.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { createHttpServer } from '../../src/transports/http/index.ts';
import { assertHealthy, heapAfterGc } from './health.ts';

const MB = 1024 * 1024;

describe('memory stays bounded', () => {
  it('WebSocket flood: 20 clients sending 256 KiB messages and never reading', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    const app = createHttpServer({ executor, ws: { messageRate: 20, messageBurst: 20 } });
    const url = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws');
    try {
      const before = heapAfterGc();
      const big = JSON.stringify({ type: 'y'.repeat(256 * 1024) });
      const sockets: WebSocket[] = [];
      for (let i = 0; i < 20; i++) {
        const socket = new WebSocket(`${url}/ws`, { perMessageDeflate: false });
        socket.on('error', () => {});
        await new Promise((resolve) => socket.once('open', resolve));
        (socket as unknown as { _socket: net.Socket })._socket.pause();
        sockets.push(socket);
      }
      // 20 × 25 × 256 KiB = 125 MiB offered; each reply used to echo its message.
      let queued = 0;
      for (let round = 0; round < 25; round++) {
        for (const socket of sockets) if (socket.readyState === WebSocket.OPEN) socket.send(big);
        await sleep(5);
        for (const client of app.websocketServer.clients) queued = Math.max(queued, client.bufferedAmount);
      }
      await new Promise<void>((resolve) => {
        let pending = sockets.length;
        for (const socket of sockets) {
          if (socket.readyState !== WebSocket.OPEN) {
            if (--pending === 0) resolve();
            continue;
          }
          // Resolves once everything sent before it was received (the socket's frames are ordered).
          socket.send('{"type":"ack","responseId":"x"}', () => {
            if (--pending === 0) resolve();
          });
        }
      });
      await sleep(200);
      assert.ok(queued < 1 * MB, `a server send queue reached ${queued} bytes`);
      for (const socket of sockets) socket.terminate();
      await sleep(50);
      const grown = heapAfterGc() - before;
      assert.ok(grown < 64 * MB, `heap grew ${(grown / MB).toFixed(1)} MiB`);
      await assertHealthy(url.replace('ws', 'http'));
    } finally {
      await app.close();
      await executor.close();
    }
  });

  it('app cache: 3,000 GETs of new app ids keep at most maxApps apps', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    const apps = exampleApps({ path: ':memory:', wordDelayMs: 0 });
    const app = createHttpServer({ executor, apps });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      for (let i = 0; i < 3_000; i += 50) {
        const batch = [];
        for (let j = i; j < i + 50; j++) batch.push(fetch(`${url}/apps/flood-${j}/state`).then((r) => r.text()));
        await Promise.all(batch);
      }
      assert.ok(apps.size <= 1_000, `${apps.size} apps cached`);
      await assertHealthy(url);
    } finally {
      await app.close();
      await executor.close();
    }
  });

  it('ended runs: 200 runs of ~1 MB each hold at most retainEndedRunsBytes', async () => {
    const big = defineAction({
      name: 'action_big',
      async *stream() {
        for (let i = 0; i < 100; i++) yield 'z'.repeat(5_000);
      },
    });
    const executor = new ActionExecutor({ actions: [big], logger: silentLogger, retainEndedRunsBytes: 16 * MB });
    const before = heapAfterGc();
    for (let i = 0; i < 200; i++) {
      const run = executor.start({ next_action: 'action_big', tracker: { sender_id: 'u' } });
      for await (const _ of run.subscribe());
    }
    await sleep(10);
    assert.ok(executor.retained.bytes <= 16 * MB, `${executor.retained.bytes} bytes retained`);
    const grown = heapAfterGc() - before;
    assert.ok(grown < 48 * MB, `heap grew ${(grown / MB).toFixed(1)} MiB for 200 MB of output`);
    await executor.close();
  });

  it('saved chats: bounded by bytes as well as by count, and unserialisable messages are refused', () => {
    const store = new MemoryChatStore({ maxBytes: 2 * MB });
    const text = 'w'.repeat(100_000);
    for (let i = 0; i < 100; i++) store.save(`chat-${i}`, [{ id: 'm', role: 'user', parts: [{ type: 'text', text }] }]);
    assert.ok(store.bytes <= 2 * MB, `${store.bytes} bytes`);
    assert.ok(store.size < 25);
    assert.ok(store.get('chat-99') !== undefined, 'the newest chats are kept');
    assert.equal(store.get('chat-0'), undefined, 'the oldest went first');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.throws(() => store.save('bad', [{ id: 'm', role: 'user', parts: [], metadata: circular }]), /not serialisable/);
    assert.equal(store.get('bad'), undefined);
  });
});
