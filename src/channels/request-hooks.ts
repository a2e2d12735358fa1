/**
 * Fastify helpers that the route plugins share (the UI message routes here, the SSE and
 * application routes in the HTTP transport): they answer bad requests alike, and carry a reply's
 * headers over to a stream they hijack.
 * @module
 */

import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../runtime/logger.ts';
import { HTTP_STATUS, SluiceError } from '../protocol/errors.ts';

/**
 * An `onRequest` hook for routes whose body is optional: a request that says it has no body
 * (`content-length: 0`) loses its content type, so that Fastify does not reject the empty body
 * as invalid JSON.
 */
export function dropEmptyBodyType(request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  if (request.headers['content-length'] === '0') delete request.headers['content-type'];
  done();
}

/**
 * An error handler for what Fastify raises before a handler runs (an unreadable or too large
 * body…), answering `{ error, code }`: 400 `invalid_argument` for a body that is not JSON, 413
 * `resource_exhausted`, other 4xx `invalid_argument` with Fastify's message. Anything else is
 * logged as `<plugin>: request failed` and answered 500 `internal`, without its message.
 */
export function requestErrorHandler(logger: Logger, plugin: string): (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => void {
  return (error, request, reply) => {
    // A SluiceError (e.g. `resource_exhausted` from executor.start) keeps its code and status.
    if (SluiceError.isInstance(error) && error.code !== 'internal') {
      const retryAfter = error.details.retryAfterSeconds;
      if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
      reply.code(HTTP_STATUS[error.code]).send({ error: error.message, code: error.code });
      return;
    }
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      logger.error({ err: error, url: request.url }, `${plugin}: request failed`);
      reply.code(500).send({ error: 'Internal server error', code: 'internal' });
      return;
    }
    const code = typeof error.code === 'string' ? error.code : '';
    if (status === 400 && (code.includes('JSON') || code === 'INVALID_BODY')) {
      reply.code(400).send({ error: 'Invalid request body: it is not valid JSON', code: 'invalid_argument' });
      return;
    }
    reply.code(status).send({ error: error.message, code: status === 413 ? 'resource_exhausted' : 'invalid_argument' });
  };
}

/** Headers a hijacked response must not inherit from the reply: they describe a body we do not send. */
const DROPPED_HEADERS = new Set(['content-length', 'content-type', 'content-encoding', 'transfer-encoding']);

/**
 * The headers already set on a reply (e.g. by a CORS `onRequest` hook), for a stream that hijacks
 * it: hijacking skips the hooks that would send them. Body headers are left out.
 */
export function carriedHeaders(reply: FastifyReply): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const set = reply.getHeaders();
  for (const name in set) if (!DROPPED_HEADERS.has(name.toLowerCase())) headers[name] = set[name];
  return headers;
}

/** True for a WebSocket upgrade request. */
export function isWebSocketUpgrade(request: FastifyRequest): boolean {
  const upgrade = request.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket';
}

/**
 * Answers a request from an `onRequest` hook with a JSON error. For a WebSocket upgrade the
 * connection is closed once the answer is out: it was taken from the HTTP server at the upgrade,
 * so nothing else would close it (and `@fastify/websocket`'s own clean-up only runs for requests
 * that reached its hook).
 */
export function refuseRequest(request: FastifyRequest, reply: FastifyReply, status: number, body: Record<string, unknown>): FastifyReply {
  if (isWebSocketUpgrade(request)) {
    const socket = request.raw.socket;
    reply.header('connection', 'close');
    reply.raw.once('finish', () => socket.end());
    reply.raw.once('close', () => socket.destroySoon());
  }
  return reply.code(status).send(body);
}
