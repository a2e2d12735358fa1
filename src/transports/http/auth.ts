/**
 * Authentication of the HTTP transport: one `onRequest` hook on the root instance, so every route
 * — the transport's own, and the ones plugins add later (AI SDK chat, voice, apps, playground) —
 * goes through it, WebSocket upgrades included (`@fastify/websocket` routes the upgrade request
 * through Fastify's hooks; a refused one gets a plain HTTP 401 before any upgrade). Only
 * `GET /health`, CORS preflights (browsers send no credentials on them) and the paths given as
 * `publicPaths` are open.
 * @module
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../runtime/logger.ts';
import { setPrincipal } from '../../channels/principal.ts';
import { isWebSocketUpgrade, refuseRequest } from '../../channels/request-hooks.ts';
import { Authenticator, unauthenticatedMessage, verifiedClientCertificate, type AuthRequest } from '../auth.ts';

export { ownerOf, owns, principalOf } from '../../channels/principal.ts';

/** The AuthRequest view of a Fastify request. */
export function authRequestOf(request: FastifyRequest): AuthRequest {
  const url = request.url;
  const q = url.indexOf('?');
  const certificate = verifiedClientCertificate(request.raw.socket);
  return {
    ...(certificate === undefined ? {} : { clientCertificate: certificate }),
    headers: request.headers,
    url,
    query: new URLSearchParams(q === -1 ? '' : url.slice(q + 1)),
    method: request.method,
    remoteAddress: request.raw.socket?.remoteAddress,
    transport: isWebSocketUpgrade(request) ? 'websocket' : 'http',
  };
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** A CORS preflight: an OPTIONS request naming the method it asks for. */
function isPreflight(request: FastifyRequest): boolean {
  return request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined;
}

/**
 * Adds the authentication hook to `app` (call it before registering plugins, so they inherit it).
 * Refused requests get 401 `{ error, code: 'unauthenticated' }` with a `WWW-Authenticate` challenge.
 */
export function registerAuth(app: FastifyInstance, authenticator: Authenticator, options: { publicPaths?: readonly string[]; logger: Logger }): void {
  if (!authenticator.enabled) return;
  const open = new Set(['/health', ...(options.publicPaths ?? [])]);
  const logger = options.logger;
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (isPreflight(request)) return;
    if ((request.method === 'GET' || request.method === 'HEAD') && open.has(pathOf(request.url))) return;
    const result = await authenticator.authenticate(authRequestOf(request), (error) => logger.warn({ err: error, url: pathOf(request.url) }, 'authenticate hook failed'));
    if (result.ok) {
      if (result.principal !== undefined) setPrincipal(request, result.principal);
      return;
    }
    logger.debug({ url: pathOf(request.url), failure: result.failure, remoteAddress: request.raw.socket?.remoteAddress }, 'Request refused: not authenticated');
    reply.header('www-authenticate', authenticator.challenge);
    return refuseRequest(request, reply, 401, { error: unauthenticatedMessage(result.failure, authenticator.tokenName), code: 'unauthenticated' });
  });
}
