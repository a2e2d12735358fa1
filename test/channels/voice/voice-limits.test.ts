/**
 * Issue 14, defect 1 on `/voice/ws`: the socket's limits (only a pong is a heartbeat, a send-queue
 * cap, an incoming message rate) hold on the voice socket as on `/ws`.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import websocket from '@fastify/websocket';
import Fastify from 'fastify';
import { WebSocket } from 'ws';
import { voiceWsRoutes } from '../../../src/channels/voice/ws-routes.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';

async function voiceServer(limits: Record<string, number>) {
  const executor = new ActionExecutor({ logger: silentLogger });
  const app = Fastify({ logger: false });
  await app.register(websocket, { options: { perMessageDeflate: false } });
  await app.register(voiceWsRoutes, { executor, logger: silentLogger, limits });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    app,
    wsUrl: `${url.replace('http', 'ws')}/voice/ws`,
    async close() {
      await app.close();
      await executor.close();
    },
  };
}

describe('/voice/ws limits', () => {
  it('a client that sends large messages and never reads is dropped; the server queue stays small', async () => {
    const server = await voiceServer({ messageRate: 20, messageBurst: 20 });
    try {
      const socket = new WebSocket(server.wsUrl, { perMessageDeflate: false });
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('open', resolve));
      (socket as unknown as { _socket: net.Socket })._socket.pause();
      const big = JSON.stringify({ type: 'z'.repeat(200_000) });
      let queued = 0;
      for (let i = 0; i < 60 && socket.readyState === WebSocket.OPEN; i++) {
        socket.send(big);
        for (const client of server.app.websocketServer.clients) queued = Math.max(queued, client.bufferedAmount);
      }
      const deadline = Date.now() + 5_000;
      while (server.app.websocketServer.clients.size > 0 && Date.now() < deadline) await sleep(20);
      assert.equal(server.app.websocketServer.clients.size, 0, 'the flooding socket was dropped');
      assert.ok(queued < 256 * 1024, `the server queue reached ${queued} bytes`);
      socket.terminate();
    } finally {
      await server.close();
    }
  });

  it('only a pong counts as a heartbeat', async () => {
    const server = await voiceServer({ heartbeatMs: 100 });
    try {
      const socket = new WebSocket(server.wsUrl, { perMessageDeflate: false, autoPong: false });
      await new Promise((resolve) => socket.once('open', resolve));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const chatter = setInterval(() => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ type: 'history' })), 20);
      try {
        await Promise.race([closed, sleep(3_000).then(() => assert.fail('a socket that never pongs was kept'))]);
      } finally {
        clearInterval(chatter);
      }
    } finally {
      await server.close();
    }
  });

  it('a start naming an unknown action with a huge name: not_found, quoting only its first 200 characters', async () => {
    const server = await voiceServer({});
    try {
      const socket = new WebSocket(server.wsUrl, { perMessageDeflate: false });
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      const reply = new Promise<Record<string, unknown>>((resolve) => socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as Record<string, unknown>;
        if (message.type === 'error') resolve(message);
      }));
      socket.send(JSON.stringify({ type: 'start', call: { next_action: 'x'.repeat(5_000) } }));
      const error = await reply;
      assert.equal(error.code, 'not_found');
      assert.equal(error.message, `start: no registered action found for name '${'x'.repeat(200)}…'`);
      socket.close();
    } finally {
      await server.close();
    }
  });
});
