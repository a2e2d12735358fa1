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
import { WsGuard } from '../../channels/ws-guard.ts';
import { traceHeadersOf } from '../../runtime/observer.ts';

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
 * Registers `/ws` (after {@link registerWebsocketPlugin}) with its {@link WsGuard}: every
 * `heartbeatMs` each socket is pinged, and one that has not answered the previous ping with a pong
 * is terminated (a dead peer sends no `close`; a message is not a pong), which releases its
 * subscriptions and cancels the runs it owns. A socket that sends faster than `messageRate` or
 * whose send queue passes `maxQueuedBytes` is closed with 1008.
 */
export function registerWsRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const guard = new WsGuard(ctx.ws, ctx.logger);
  app.addHook('onClose', async () => guard.close());
  app.get('/ws', { websocket: true }, (socket, request) => {
    guard.watch(socket);
    new WsSession(socket, ctx, ownerOf(request), traceHeadersOf(request.headers));
  });
}
