/**
 * The WebSocket endpoint `GET /ws` (`@fastify/websocket` on `ws`); the protocol, with its
 * `'events'` and `'sentences'` views, is described in `ws-session.ts`. `perMessageDeflate` is off:
 * compression costs CPU per message and has a history of fragmentation and memory problems in
 * `ws` (websockets/ws #1202, #497); streamed chunks are small anyway.
 * @module
 */

import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import type { ResolvedWsOptions } from './options.ts';
import type { HttpContext } from './context.ts';
import { ownerOf } from '../../channels/principal.ts';
import { WsSession } from './ws-session.ts';

/**
 * Registers `@fastify/websocket` on `app` itself (it is encapsulation-free, so `app.websocketServer`
 * is reachable and its `preClose` closes every socket when the server closes).
 */
export function registerWebsocketPlugin(app: FastifyInstance, ws: ResolvedWsOptions): void {
  app.register(websocket, {
    options: { perMessageDeflate: false, maxPayload: ws.maxPayload },
    // 1001 "going away" rather than the plugin's bare close(): clients know to reconnect elsewhere.
    preClose(done) {
      for (const client of this.websocketServer.clients) client.close(1001, 'server shutting down');
      this.websocketServer.close();
      done();
    },
  });
}

/**
 * Registers `/ws` and the heartbeat (after {@link registerWebsocketPlugin}): every `heartbeatMs` each socket is pinged, and one that has
 * not answered the previous ping is terminated (a dead peer sends no `close`), which releases its
 * subscriptions and cancels the runs it owns.
 */
export function registerWsRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const sessions = new Set<WsSession>();
  const heartbeat = setInterval(() => {
    for (const session of sessions) {
      if (!session.alive) {
        session.socket.terminate();
        continue;
      }
      session.alive = false;
      session.socket.ping();
    }
  }, ctx.ws.heartbeatMs);
  heartbeat.unref();
  app.addHook('onClose', async () => {
    clearInterval(heartbeat);
  });
  app.get('/ws', { websocket: true }, (socket, request) => {
    const session = new WsSession(socket, ctx, ownerOf(request));
    sessions.add(session);
    socket.on('close', () => sessions.delete(session));
  });
}
