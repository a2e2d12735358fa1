/**
 * Cross-site protection of the HTTP transport: what stops a page on another site from using a
 * server the browser can reach (a local dev server, an intranet one).
 *
 * - **CORS** is off unless origins are given (Rasa SDK's `--cors`): then `@fastify/cors` answers
 *   preflights and sets the headers. With `*` any origin may call, without credentials (a browser
 *   refuses `*` with credentials, so it is never sent with them); with a list, a listed origin is
 *   reflected and credentials are allowed.
 * - **WebSocket `Origin`**: an upgrade that carries an `Origin` is refused (403) unless it is the
 *   server's own origin (same host as the `Host` header), a listed origin, or the list has `*`.
 *   No `Origin` header means a non-browser client, which CORS does not concern: allowed.
 * - **JSON bodies only**: a request with a body must say `Content-Type: application/json` (or a
 *   `+json` type); anything else is 415. A plain HTML form (`text/plain`,
 *   `application/x-www-form-urlencoded`, `multipart/form-data`) or a body without a type is what a
 *   cross-site page can send without a preflight, so refusing it closes that door. Rasa sends
 *   `application/json` (deflate-compressed when asked), so its clients are unaffected.
 * @module
 */

import cors from '@fastify/cors';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isWebSocketUpgrade, refuseRequest } from '../../channels/request-hooks.ts';
import { SluiceError } from '../../protocol/errors.ts';

/** Response headers a browser script may read (`Access-Control-Expose-Headers`). */
const EXPOSED_HEADERS = ['x-sluice-run-id', 'x-sluice-action', 'x-sluice-sequence-id'];

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Checks and normalises CORS origins: `*`, or `scheme://host[:port]` (a trailing `/` is dropped).
 * Throws `invalid_argument` naming a bad one.
 */
export function resolveOrigins(origins: readonly string[] | undefined): string[] {
  if (origins === undefined) return [];
  if (!Array.isArray(origins)) throw new SluiceError('invalid_argument', "createHttpServer: 'cors' must be an array of origins");
  return origins.map((origin) => {
    if (origin === '*') return origin;
    let url: URL | undefined;
    try {
      url = typeof origin === 'string' ? new URL(origin) : undefined;
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== origin.replace(/\/$/, '')) {
      throw new SluiceError('invalid_argument', `createHttpServer: invalid CORS origin ${JSON.stringify(origin)}: expected '*' or scheme://host[:port], e.g. https://app.example.com`);
    }
    return url.origin;
  });
}

/** True when the media type of a Content-Type header is JSON (`application/json` or `…+json`). */
export function isJsonType(contentType: string): boolean {
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || /^[a-z0-9!#$&^_.-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(type);
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  if (length !== undefined) return length.trim() !== '0';
  return request.headers['transfer-encoding'] !== undefined;
}

/** True when a WebSocket upgrade's `Origin` may connect (see the module notes). */
export function originAllowed(origin: string | undefined, host: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  if (allowed.includes('*')) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (host !== undefined && url.host.toLowerCase() === host.toLowerCase()) return true;
  return allowed.includes(url.origin);
}

/** Registers CORS (when origins are given), the WebSocket Origin check and the JSON-only rule. */
export function registerCrossSite(app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length > 0) {
    const any = origins.includes('*');
    app.register(cors, {
      origin: any ? '*' : [...origins],
      credentials: !any,
      exposedHeaders: EXPOSED_HEADERS,
      methods: ['GET', 'HEAD', 'POST'],
      maxAge: 600,
    });
  }
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (isWebSocketUpgrade(request)) {
      const origin = request.headers.origin;
      if (!originAllowed(origin, request.headers.host, origins)) {
        return refuseRequest(request, reply, 403, {
          error: `WebSocket connections from origin '${origin}' are not allowed: only the server's own origin and the CORS origins (--cors) are`,
          code: 'permission_denied',
        });
      }
      return;
    }
    // An unknown route is a 404 whatever its body.
    if (!BODY_METHODS.has(request.method) || request.is404) return;
    const type = request.headers['content-type'];
    if (type === undefined ? hasBody(request) : !isJsonType(type)) {
      return reply.code(415).send({
        error:
          type === undefined
            ? "A request body needs 'Content-Type: application/json'"
            : `Unsupported Content-Type '${type}': send the body as JSON with 'Content-Type: application/json' (deflate or gzip Content-Encoding allowed)`,
        code: 'invalid_argument',
      });
    }
  });
}
