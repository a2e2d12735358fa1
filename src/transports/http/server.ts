/**
 * `createHttpServer`: the Fastify server of the HTTP transport.
 * @module
 */

import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { AppRegistry } from '../../app/registry.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';
import { Authenticator, type AuthOptions } from '../auth.ts';
import { serverTlsOptions, type TlsOptions } from '../tls.ts';
import { appRoutes } from './app-routes.ts';
import type { StepLocks } from '../../app/step-locks.ts';
import { registerAuth } from './auth.ts';
import { registerCrossSite, resolveOrigins } from './cross-site.ts';
import { BODY_TOO_LARGE, registerBodyParser } from './body.ts';
import type { HttpContext } from './context.ts';
import { registerControlRoutes } from './control-routes.ts';
import { HTTP_STATUS, SluiceError } from '../../protocol/errors.ts';
import {
  resolveBodyLimit,
  resolveHttpLimits,
  resolveMaxDepth,
  resolveSseOptions,
  resolveWsOptions,
  type HttpLimitsOptions,
  type SseOptions,
  type WsOptions,
} from './options.ts';
import { registerRasaRoutes } from './rasa-routes.ts';
import { registerSseRoutes } from './sse-routes.ts';
import { registerWebsocketPlugin, registerWsRoutes } from './ws-routes.ts';
import { SHUTTING_DOWN } from '../../runtime/lifecycle.ts';

/** Options of {@link createHttpServer}. */
export interface HttpServerOptions {
  /** Runs the actions. The server never closes it: call `executor.close()` on shutdown. */
  executor: ActionExecutor;
  /**
   * Fastify's request logger: `false` (default), `true`, pino options, or a pino-compatible
   * logger instance. Sluice's own transport warnings go to `executor.logger`.
   */
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Largest request body in bytes, compressed and inflated; larger ones get 413. Default 1 MiB. */
  bodyLimit?: number;
  /** Server-Sent Events settings. */
  sse?: SseOptions;
  /** WebSocket settings. */
  ws?: WsOptions;
  /** Request/header timeouts, keep-alive and the connection cap (see {@link HttpLimitsOptions}). */
  limits?: HttpLimitsOptions;
  /** Deepest nesting of objects and arrays accepted in a request body or socket message; deeper is a 400 naming the limit. Default 64. */
  maxDepth?: number;
  /** Serves these applications under `/apps/:appId/…` (see `app-routes.ts`), with the `sse` settings. */
  apps?: AppRegistry;
  /**
   * Several instances serving the same `apps`: the step locks they share (`RedisStepLocks`), so one
   * step runs at a time per app across them (see `app-routes.ts`). Default: this instance only.
   */
  stepLocks?: StepLocks;
  /**
   * Authentication of every route but `GET /health` (and `publicPaths`): API keys and/or your own
   * `authenticate` hook (see `src/transports/auth.ts`). Off (every request anonymous) when neither
   * is given.
   */
  auth?: AuthOptions & { publicPaths?: readonly string[] };
  /**
   * CORS origins (Rasa SDK's `--cors`; `*` for any); also the origins WebSocket upgrades may come
   * from besides the server's own. Default none: no CORS headers, same-origin WebSockets only.
   */
  cors?: readonly string[];
  /** HTTPS (and mTLS with `ca`). Default plain HTTP. */
  tls?: TlsOptions;
}

/** Control requests stay allowed while draining: they stop or read work, never start it. */
const CONTROL = /\/(?:cancel|ack|stop)(?:\?|$)/;

/** A request that starts a run or a long-lived socket: a POST other than a control one, or an upgrade. */
function startsWork(method: string, url: string, upgrade: string | undefined): boolean {
  if (upgrade !== undefined) return true;
  return method === 'POST' && !CONTROL.test(url);
}

function isLoggerInstance(value: unknown): value is FastifyBaseLogger {
  return typeof value === 'object' && value !== null && typeof (value as { child?: unknown }).child === 'function';
}

/**
 * Builds the HTTP transport (not listening yet: call `listen`).
 *
 * Routes: Rasa's `GET /health`, `GET /actions`, `POST /webhook`; SSE on `POST /webhook/stream` (or
 * `/webhook` with `Accept: text/event-stream`) and `GET /runs/:runId/events`; control on
 * `POST /runs/:runId/cancel` and `POST /streams/:responseId/ack`; WebSocket on `GET /ws` (a run's
 * events, or with `view: 'sentences'` its sentences then its `result`/`error` and `run-end`); with
 * `apps`, applications on `/apps/:appId/stream`, `…/state`, `…/runs` and `…/runs/:runId/{events,cancel}`. Every
 * error is JSON with an `error` message; unknown routes get 404. Every request body, on routes you
 * add to the instance too, must be JSON (`Content-Type: application/json` or `+json`, optionally
 * deflate/gzip-encoded): anything else is 415 (see `cross-site.ts`). With `auth`, every route but
 * `GET /health` needs credentials (401 otherwise) and runs belong to the principal that started
 * them: someone else's run id is answered 404, as an unknown one.
 *
 * Disconnect vs cancel: a client that leaves an SSE stream it opened with an action call
 * (`POST /webhook/stream`, or `/webhook` with `Accept: text/event-stream`), or closes the
 * WebSocket it started a run on, cancels that run; `?detach=true` / `X-Sluice-Detach: true` (or
 * `detach: true` on WebSocket) starts a run that outlives its reader and is resumed with
 * `GET /runs/:runId/events`. Readers that resume never cancel. A unary `POST /webhook` whose client
 * hangs up before the answer cancels its run too.
 *
 * Throws `invalid_argument` for an invalid option.
 *
 * @example
 * const app = createHttpServer({ executor, sse: { pingIntervalMs: 10_000 } });
 * await app.listen({ port: 5055, host: '0.0.0.0' });
 */
export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const bodyLimit = resolveBodyLimit(options.bodyLimit);
  const limits = resolveHttpLimits(options.limits);
  const maxDepth = resolveMaxDepth(options.maxDepth);
  const ctx: HttpContext = {
    executor: options.executor,
    logger: options.executor.logger,
    sse: resolveSseOptions(options.sse),
    ws: resolveWsOptions(options.ws, bodyLimit),
    maxDepth,
    writers: new Set(),
  };
  const authenticator = new Authenticator(options.auth);
  const origins = resolveOrigins(options.cors);
  const https = options.tls === undefined ? {} : { https: serverTlsOptions('createHttpServer', options.tls) };
  const logger = options.logger ?? false;
  // Node checks the request/header timeouts on a timer (30 s by default): check often enough that
  // a slow client is dropped close to its deadline.
  const serverOptions = {
    bodyLimit,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, limits.headersTimeoutMs / 4)),
    },
  };
  const app = (
    isLoggerInstance(logger) ? Fastify({ ...serverOptions, loggerInstance: logger, ...https }) : Fastify({ ...serverOptions, logger, ...https })
  ) as unknown as FastifyInstance;
  app.server.maxConnections = limits.maxConnections;

  // First, at the root: every route added later, by plugins too, goes through them.
  registerAuth(app, authenticator, { publicPaths: options.auth?.publicPaths, logger: ctx.logger });
  registerCrossSite(app, origins);
  registerBodyParser(app, bodyLimit, maxDepth);

  // While the server drains, whatever would start work is refused at once, on routes added to the
  // instance later too (/api/chat, /apps, /voice/ws): 503 before the body is read.
  const lifecycle = options.executor.lifecycle;
  app.addHook('onRequest', (request, reply, done) => {
    if (lifecycle.accepting || !startsWork(request.method, request.url, request.headers.upgrade)) return done();
    // A refused upgrade's socket is no longer the HTTP server's to close: end it once answered.
    if (request.headers.upgrade !== undefined) reply.raw.once('finish', () => request.raw.socket.destroy());
    reply.code(503).header('retry-after', '1').header('connection', 'close').send({ error: SHUTTING_DOWN, code: 'unavailable' });
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `Route ${request.method} ${request.url.split('?')[0]} not found`, code: 'not_found' });
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    if (error.code === BODY_TOO_LARGE) {
      reply.code(413).send({ error: `Request body is too large: the limit is ${bodyLimit} bytes` });
      return;
    }
    // A SluiceError thrown by a route (e.g. resource_exhausted from executor.start) keeps its status.
    if (SluiceError.isInstance(error) && error.code !== 'internal') {
      const retryAfter = error.details.retryAfterSeconds;
      if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
      reply.code(HTTP_STATUS[error.code]).send({ error: error.message, code: error.code });
      return;
    }
    if (status >= 500) {
      request.log.error({ err: error }, 'Request failed');
      reply.code(status).send({ error: 'Internal server error' });
      return;
    }
    reply.code(status).send({ error: error.message });
  });

  // Open SSE responses would hold `close()` forever; end them first. Their runs belong to the executor.
  app.addHook('preClose', async () => {
    for (const writer of ctx.writers) writer.end('ended', ': server shutting down\n\n');
  });

  registerRasaRoutes(app, ctx);
  registerSseRoutes(app, ctx);
  registerControlRoutes(app, ctx);
  registerWebsocketPlugin(app, ctx.ws);
  // In a child scope so the route is added once the plugin above has loaded (its onRoute hook).
  app.register(async (scope) => registerWsRoutes(scope, ctx));
  if (options.apps !== undefined) {
    app.register(appRoutes, {
      apps: options.apps,
      pingIntervalMs: ctx.sse.pingIntervalMs,
      maxDurationMs: ctx.sse.maxDurationMs,
      stallTimeoutMs: ctx.sse.stallTimeoutMs,
      logger: ctx.logger,
      // A drain waits for the steps streaming now, as for the executor's own runs; with a shared
      // log, other instances can read and stop them.
      onRun: (run, owner) => ctx.executor.adopt(run, { owner }),
      findRun: (runId) => ctx.executor.findRun(runId),
      ...(options.stepLocks !== undefined ? { stepLocks: options.stepLocks } : {}),
    });
  }
  return app;
}
