/**
 * `sluice serve` / `sluice dev`: the action server — HTTP (Rasa webhook, SSE, WebSocket, the AI SDK
 * chat route, voice, applications) and gRPC (Rasa's ActionService, Sluice's VoiceService) on their
 * own ports, one executor behind both — and its graceful drain on SIGTERM / SIGINT.
 * @module
 */

import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../app/registry.ts';
import { uiMessageRoutes } from '../channels/ui-message/index.ts';
import { VoiceChannel, sentenceRoutes, voiceWsRoutes } from '../channels/voice/index.ts';
import { startOtelFromEnv } from '../obs/otel.ts';
import { SluiceError } from '../protocol/errors.ts';
import type { ActionDefinition } from '../runtime/action.ts';
import { ActionExecutor, type ExecutorOptions } from '../runtime/executor.ts';
import type { Logger } from '../runtime/logger.ts';
import { createLogger } from '../runtime/logger.ts';
import { createGrpcServer, type GrpcServerOptions } from '../transports/grpc/index.ts';
import { createHttpServer, type HttpServerOptions } from '../transports/http/index.ts';
import type { RedisRuns } from '../stores/redis-runs.ts';
import type { MetricsServeOptions } from './flags/obs.ts';
import { isLoopback, type SecurityOptions } from './flags/security.ts';
import type { VoiceServeOptions } from './flags/voice.ts';
import type { ServerLimits } from './flags/limits.ts';
import { loadActionModule } from './load-actions.ts';
import { errorLocation, syntaxErrorLocation } from './logging.ts';
import { examplePath, WEB_ROOT } from './package-files.ts';
import { Authenticator } from '../transports/auth.ts';
import { registerAuth } from '../transports/http/auth.ts';
import { watchActions, type ActionsWatcher } from './reload.ts';

/** Actions that answer `/api/chat` when no `chatAction` is named, in order of preference. */
const DEFAULT_CHAT_ACTIONS = ['action_assistant', 'action_chat'];

/** Options of {@link startServer}. */
export interface ServeOptions {
  /** Path of the actions module (or a package name), or the actions themselves. */
  actions: string | readonly ActionDefinition[];
  host: string;
  /** HTTP port (0: any free port). */
  port: number;
  /** gRPC port (0: any free port). */
  grpcPort: number;
  logger?: Logger;
  /**
   * Also serve the playground — the chat page in `web/` at `/` — and `GET /info`
   * (`{ model, actions }`: the description of the model the actions module exports, or null, and
   * the action names). Default false; `sluice dev` turns it on. The page can do nothing the HTTP API
   * does not already allow (it is static files calling the same endpoints), but an action server in
   * production has no use for a page at `/`, so it is opt-in. Only the page's own files get routes:
   * no catch-all that would shadow routes added to the server later.
   */
  playground?: boolean;
  /** Applications to serve under `/apps/:appId/…` (see `appRoutes`). */
  apps?: AppRegistry;
  /**
   * The action answering the AI SDK chat route (`POST /api/chat`, …). Default: `action_assistant`,
   * else `action_chat`, when the module has one (else the route is not mounted). A name that is
   * not an action is an error.
   */
  chatAction?: string;
  /** A dropped `POST /api/chat` cancels its answer. Default false: the run goes on and a reload resumes it. */
  chatCancelOnDisconnect?: boolean;
  /** Reload a module given by path when its files change (see `reload.ts`). */
  autoReload?: boolean;
  /** Log one line per request and one per run end. Default false (`serve()` turns it on). */
  logRequests?: boolean;
  /** Options of `createHttpServer` (body limit, SSE, WebSocket, …): threaded through as given. */
  http?: Omit<HttpServerOptions, 'executor' | 'apps'>;
  /** Options of `createGrpcServer`. */
  grpc?: Omit<GrpcServerOptions, 'executor'>;
  /** Options of the `ActionExecutor` (`exposeActionErrors`, barge-in timeout, buffers, …). */
  executor?: Omit<ExecutorOptions, 'actions' | 'logger'>;
  /** Share runs with other instances through this Redis (`--redis`, `--redis-prefix`). */
  redis?: { url: string; prefix?: string };
  /** Options of the voice socket `/voice/ws` (TTS, audio lead, segmenter, rails…; see `flags/voice.ts`). */
  voice?: VoiceServeOptions;
  /** Prometheus metrics: on the HTTP port at `path` (default `/metrics`), on a port of their own, or `false`. */
  metrics?: MetricsServeOptions;
  /** Authentication, TLS, CORS and listing, for both listeners (see `flags/security.ts`). */
  security?: SecurityOptions;
  /** Resource limits (flags in `flags/limits.ts`); absent ones keep the layers' defaults. */
  limits?: ServerLimits;
}

/** A running server. */
export interface RunningServer {
  executor: ActionExecutor;
  httpUrl: string;
  grpcAddress: string;
  /** The action behind `/api/chat`, if the route is mounted. */
  chatAction: string | undefined;
  /** Where Prometheus scrapes, unless metrics are off. */
  metricsUrl?: string;
  /**
   * Graceful stop: health turns 503 / NOT_SERVING and new runs are refused at once; running runs
   * get `drainTimeoutMs` to finish, then are cancelled (their readers get an `unavailable` error
   * and `run-end`); then the listeners close (WebSockets with 1001, open gRPC calls UNAVAILABLE).
   */
  shutdown(drainTimeoutMs: number): Promise<{ finished: number; cancelled: number }>;
  /** Stops at once: cancels live runs, closes both listeners. */
  close(): Promise<void>;
}

/** Starts the HTTP and gRPC listeners for the actions of a module. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const logger = options.logger ?? createLogger();
  const { actions, exports } =
    typeof options.actions === 'string' ? await loadActions(options.actions, logger) : { actions: [...options.actions], exports: {} };
  // Several instances: connect first, so an unreachable Redis stops the start with its URL named.
  // Loaded only then: a server without Redis does not pay for the client's import.
  const redis = options.redis === undefined ? undefined : await import('../stores/redis-index.ts');
  const shared: RedisRuns | undefined = redis === undefined ? undefined : await redis.connectRedisRuns({ ...options.redis!, logger });
  const otel = await startOtelFromEnv(process.env, logger);
  const metricsOption = options.metrics ?? { path: '/metrics' };
  // Loaded here, not at the top: `sluice` commands that start no server do not pay for prom-client.
  const { SluiceMetrics, createMetricsServer, registerMetricsRoute } = await import('../obs/index.ts');
  const metrics = metricsOption === false ? undefined : new SluiceMetrics();
  const limits = options.limits;
  const executor = new ActionExecutor({
    ...options.executor,
    ...definedOnly(limits?.executor),
    actions,
    logger,
    logRunEnds: options.logRequests === true,
    ...(shared !== undefined ? { shared } : {}),
    observers: [...(options.executor?.observers ?? []), ...(metrics === undefined ? [] : [metrics])],
  });
  metrics?.attach(executor);
  const security = options.security ?? {};
  // The playground's own files stay reachable without a key (they hold no data); its API calls do not.
  const publicPaths = options.playground === true && existsSync(WEB_ROOT) ? ['/', ...readdirSync(WEB_ROOT).map((name) => `/${name}`)] : [];
  const auth = security.auth === undefined ? undefined : { ...security.auth, publicPaths };
  const httpOptions = withLimits(options.http, limits?.http);
  // Several instances: one step at a time per app across them.
  const stepLocks = shared !== undefined && options.apps !== undefined ? new redis!.RedisStepLocks(shared, { logger }) : undefined;
  const http = createHttpServer({ ...httpOptions, executor, apps: options.apps, stepLocks, auth, cors: security.cors, tls: security.tls });
  if (options.logRequests === true) logEachRequest(http, logger);
  const metricsServer = metrics !== undefined && metricsOption !== false && metricsOption.port !== undefined ? createMetricsServer(metrics, metricsOption.path) : undefined;
  if (metrics !== undefined && metricsOption !== false && metricsServer === undefined) registerMetricsRoute(http, metrics, metricsOption.path);
  // Its own listener takes the same keys (Prometheus sends them with `authorization`).
  if (metricsServer !== undefined && security.auth !== undefined) registerAuth(metricsServer, new Authenticator(security.auth), { logger });
  const chatAction = options.chatAction ?? DEFAULT_CHAT_ACTIONS.find((name) => executor.getAction(name) !== undefined);
  if (chatAction !== undefined) {
    if (executor.getAction(chatAction) === undefined) {
      throw new SluiceError('invalid_argument', `--chat-action '${chatAction}' is not an action of the module (actions: ${executor.actions.map((a) => a.name).join(', ')})`);
    }
    const resumable = options.chatCancelOnDisconnect !== true;
    // Several instances: chats and their answers in progress are shared too.
    const store = shared === undefined ? undefined : new redis!.RedisChatStore(shared);
    await http.register(uiMessageRoutes, { executor, action: chatAction, resumable, store, ...sseOf(httpOptions) });
  }
  // Voice: sentences of any run as SSE, and the voice socket (sentences + embedded TTS audio).
  const sse = sseOf(httpOptions);
  await http.register(sentenceRoutes, { executor, ...definedOnly({ pingIntervalMs: sse.pingIntervalMs, stallTimeoutMs: sse.stallTimeoutMs }) });
  const voice = new VoiceChannel({ ...options.voice, executor, logger });
  http.addHook('onClose', async () => voice.close());
  await http.register(voiceWsRoutes, { channel: voice, listing: security.listing === true, limits: limits?.voiceWs });
  if (options.playground === true) await registerPlayground(http, executor, exports, logger);
  const grpc = createGrpcServer({ ...options.grpc, ...definedOnly(limits?.grpc), executor, logger, voice, auth: security.auth, tls: security.tls });
  try {
    await http.listen({ port: options.port, host: options.host });
  } catch (error) {
    throw new SluiceError('unavailable', `Cannot listen for HTTP on ${options.host}:${options.port}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let grpcPort: number;
  try {
    grpcPort = (await grpc.listen(options.grpcPort, options.host)).port;
  } catch (error) {
    await http.close();
    throw new SluiceError('unavailable', `Cannot listen for gRPC on ${options.host}:${options.grpcPort}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let watcher: ActionsWatcher | undefined;
  if (options.autoReload === true && typeof options.actions === 'string') {
    watcher = watchActions({ specifier: options.actions, logger, onReload: (next) => executor.replaceActions(next) });
  } else if (options.autoReload === true) {
    logger.warn({}, 'Auto-reload needs the actions as a module path (--actions); the actions given as objects are not reloaded');
  }
  const address = http.server.address();
  const httpPort = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let metricsUrl: string | undefined;
  if (metricsOption !== false) {
    if (metricsServer !== undefined) {
      try {
        await metricsServer.listen({ port: metricsOption.port, host: options.host });
      } catch (error) {
        await Promise.allSettled([http.close(), grpc.close()]);
        throw new SluiceError('unavailable', `Cannot listen for metrics on ${options.host}:${metricsOption.port}: ${(error as Error).message}`, { cause: error });
      }
      const bound = metricsServer.server.address();
      metricsUrl = `${security.tls === undefined || metricsServer !== undefined ? 'http' : 'https'}://${host}:${typeof bound === 'object' && bound !== null ? bound.port : metricsOption.port}${metricsOption.path}`;
    } else metricsUrl = `${security.tls === undefined || metricsServer !== undefined ? 'http' : 'https'}://${host}:${httpPort}${metricsOption.path}`;
  }
  const closeListeners = async (): Promise<void> => {
    watcher?.close();
    await Promise.allSettled([grpc.close(), http.close(), metricsServer?.close()]);
    await shared?.close();
    await otel?.shutdown().catch(() => {});
  };
  return {
    executor,
    httpUrl: `${security.tls === undefined ? 'http' : 'https'}://${host}:${httpPort}`,
    grpcAddress: `${host}:${grpcPort}`,
    chatAction,
    ...(metricsUrl === undefined ? {} : { metricsUrl }),
    async shutdown(drainTimeoutMs) {
      const outcome = await executor.drain(drainTimeoutMs);
      // The last events of cancelled runs are on their way to the sockets: let the writers flush.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await closeListeners();
      return outcome;
    },
    async close() {
      await Promise.allSettled([executor.close(), closeListeners()]);
    },
  };
}

/** `value` without its undefined fields, so spreading it keeps what it does not set. */
function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The HTTP options with the limit flags laid over them (field by field: `sse` and `ws` hold both kinds). */
function withLimits(http: ServeOptions['http'], limits: ServerLimits['http'] | undefined): ServeOptions['http'] {
  if (limits === undefined) return http;
  return {
    ...http,
    ...definedOnly({ limits: limits.limits, maxDepth: limits.maxDepth }),
    sse: { ...http?.sse, ...definedOnly(limits.sse) },
    ws: { ...http?.ws, ...definedOnly(limits.ws) },
  };
}

/** The SSE settings of the HTTP options, for the chat route. */
function sseOf(http: ServeOptions['http']): { pingIntervalMs?: number; maxDurationMs?: number; stallTimeoutMs?: number } {
  const sse = http?.sse;
  return definedOnly({ pingIntervalMs: sse?.pingIntervalMs, maxDurationMs: sse?.maxDurationMs, stallTimeoutMs: sse?.stallTimeoutMs });
}

/** Loads the actions module; a module that throws on import is logged with its file and line, the stack at debug. */
async function loadActions(specifier: string, logger: Logger): Promise<{ actions: ActionDefinition[]; exports: Record<string, unknown> }> {
  try {
    return await loadActionModule(specifier);
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause ?? error;
    const at = errorLocation(cause) ?? (cause instanceof SyntaxError && existsSync(resolve(specifier)) ? syntaxErrorLocation(resolve(specifier)) : undefined);
    logger.error({ module: specifier, ...(at ?? {}), error: (error as Error).message }, (error as Error).message);
    logger.debug({ module: specifier, stack: (cause as { stack?: unknown }).stack }, 'Actions module import failed: stack');
    if (at !== undefined && SluiceError.isInstance(error) && !error.message.includes(`${at.file}:${at.line}`)) {
      throw new SluiceError(error.code, `${error.message} (at ${at.file}:${at.line})`, { cause: error.cause, details: error.details });
    }
    throw error;
  }
}

/** One log line per request: method, url, status, ms, request id (WebSockets when the socket closes). */
function logEachRequest(http: FastifyInstance, logger: Logger): void {
  http.addHook('onRequest', (request, reply, done) => {
    const started = performance.now();
    const upgrade = request.headers.upgrade !== undefined;
    const line = (): void => {
      const status = upgrade && !reply.sent ? 101 : reply.raw.statusCode;
      logger.info(
        { reqId: request.id, method: request.method, url: request.url, status, ms: Math.round((performance.now() - started) * 10) / 10 },
        'request',
      );
    };
    if (upgrade) request.raw.socket.once('close', line);
    else reply.raw.once('close', line);
    done();
  });
}

/** `web/` at `/`, and `GET /info` for the page's header line. */
async function registerPlayground(http: FastifyInstance, executor: ActionExecutor, exports: Record<string, unknown>, logger: Logger): Promise<void> {
  // A published package ships dist/ only; the API works without the page, so say so and go on.
  if (!existsSync(`${WEB_ROOT}index.html`)) {
    logger.warn({ root: WEB_ROOT }, 'Playground requested but its page is missing; serving the API only');
    return;
  }
  await http.register(fastifyStatic, { root: WEB_ROOT, wildcard: false, decorateReply: false });
  // The first exported value shaped like a ChatModel (examples/index.ts exports `assistantModel`).
  const model = Object.values(exports).find(
    (value): value is { description: string } =>
      typeof value === 'object' && value !== null && typeof (value as { description?: unknown }).description === 'string' &&
      typeof (value as { stream?: unknown }).stream === 'function',
  );
  http.get('/info', async () => ({ model: model?.description ?? null, actions: executor.actions.map((a) => a.name) }));
}

/** Options of {@link serve}. */
export interface ServeCommandOptions extends ServeOptions {
  /** The dev server (example assistant, playground, example applications). */
  dev?: boolean;
  logger: Logger;
  /** Human banner on stdout instead of the JSON "listening" line (pretty logs). */
  banner?: boolean;
  /** Seconds runs get to finish on SIGTERM / SIGINT. Default 10. */
  drainTimeoutSeconds?: number;
}

/**
 * Runs the server until SIGTERM / SIGINT, then drains (see {@link RunningServer.shutdown}) and
 * exits 0; a second signal exits at once (128 + the signal's number).
 */
export async function serve(options: ServeCommandOptions): Promise<void> {
  const { logger } = options;
  const playground = options.playground ?? options.dev === true;
  // The dev server also shows an Application (examples/app.ts), persisted under SLUICE_DATA_DIR.
  const examples = pathToFileURL(examplePath('app')).href;
  const apps =
    options.apps ??
    (options.dev === true ? ((await import(examples)) as { exampleApps(): AppRegistry }).exampleApps() : undefined);
  const server = await startServer({ logRequests: true, ...options, playground, apps });
  const names = server.executor.actions.map((a) => a.name);
  const ws = server.httpUrl.replace('http', 'ws');
  const urls = {
    httpUrl: server.httpUrl,
    grpcAddress: server.grpcAddress,
    ...(server.chatAction !== undefined ? { chatUrl: `${server.httpUrl}/api/chat`, chatAction: server.chatAction } : {}),
    voiceUrl: `${ws}/voice/ws`,
    ...(playground ? { playgroundUrl: `${server.httpUrl}/` } : {}),
    ...(apps !== undefined ? { appsUrl: `${server.httpUrl}/apps/:appId/stream` } : {}),
    ...(server.metricsUrl !== undefined ? { metricsUrl: server.metricsUrl } : {}),
  };
  const what = options.dev ? 'dev server (example assistant)' : 'action server';
  if (options.banner === true) {
    const out = process.stdout;
    out.write(`Sluice ${what} is up\n`);
    out.write(`  HTTP   ${server.httpUrl}   (POST /webhook, POST /webhook/stream, GET /runs/:id/events, /ws)\n`);
    out.write(`  gRPC   ${server.grpcAddress}   (action_server_webhook.ActionService, sluice.v1.VoiceService)\n`);
    if (server.chatAction !== undefined) out.write(`  AI SDK ${server.httpUrl}/api/chat   (useChat / UI message stream, ${server.chatAction})\n`);
    out.write(`  Voice  ${ws}/voice/ws   (sentences + audio), GET /runs/:id/sentences\n`);
    if (playground) out.write(`  Web    ${server.httpUrl}/   (playground)\n`);
    if (apps !== undefined) out.write(`  Apps   ${server.httpUrl}/apps/:appId/stream   (application steps as SSE)\n`);
    if (server.metricsUrl !== undefined) out.write(`  Metrics ${server.metricsUrl}   (Prometheus)\n`);
    out.write(`  actions: ${names.join(', ')}\n`);
    if (options.dev) out.write(`  try:   npx sluice chat --url ${server.httpUrl}\n`);
  } else {
    logger.info({ ...urls, actions: names, dev: options.dev === true }, `Sluice ${what} listening on ${server.httpUrl} (gRPC ${server.grpcAddress})`);
  }
  const security = options.security ?? {};
  if (security.auth !== undefined) {
    logger.info({ apiKeys: security.auth.apiKeys?.length ?? 0, tokenName: security.auth.tokenName ?? 'token' }, 'Authentication on: Authorization: Bearer <key>, ?token=<key>, or Basic');
  } else if (!isLoopback(options.host)) {
    logger.warn({ host: options.host }, `Serving on ${options.host} WITHOUT AUTHENTICATION: anyone who can reach the port can run actions and read runs. Give --api-key.`);
  }
  const drainMs = (options.drainTimeoutSeconds ?? 10) * 1000;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'Second signal: exiting now');
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    }
    stopping = true;
    logger.info({ signal, drainTimeoutMs: drainMs, activeRuns: server.executor.activeRuns }, 'Shutting down: draining running runs');
    server.shutdown(drainMs).then(
      (outcome) => {
        logger.info(outcome, 'Stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
