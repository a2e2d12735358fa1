/**
 * `sluice serve` / `sluice dev`: the action server — HTTP (Rasa webhook, SSE, WebSocket) and gRPC
 * (Rasa's ActionService, Sluice's VoiceService) on their own ports, one executor behind both.
 * @module
 */

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../protocol/errors.ts';
import { ActionExecutor } from '../runtime/executor.ts';
import type { Logger } from '../runtime/logger.ts';
import { createLogger } from '../runtime/logger.ts';
import { createGrpcServer } from '../transports/grpc/index.ts';
import type { AppRegistry } from '../app/registry.ts';
import { createHttpServer } from '../transports/http/index.ts';
import { uiMessageRoutes } from '../channels/ui-message/index.ts';
import { sentenceRoutes, voiceWsRoutes } from '../channels/voice/index.ts';
import type { ServerLimits } from './flags/limits.ts';
import { loadActionModule } from './load-actions.ts';

/** The playground page: plain files, no build step, shipped beside `src/` and `dist/`. */
const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

/** Options of {@link startServer}. */
export interface ServeOptions {
  /** Path of the actions module (or a package name). */
  actions: string;
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
  /** Resource limits (flags in `flags/limits.ts`); absent ones keep the layers' defaults. */
  limits?: ServerLimits;
}

/** A running server. */
export interface RunningServer {
  executor: ActionExecutor;
  httpUrl: string;
  grpcAddress: string;
  /** Stops accepting, cancels live runs, closes both listeners. */
  close(): Promise<void>;
}

/** Starts the HTTP and gRPC listeners for the actions of a module. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const logger = options.logger ?? createLogger();
  const { actions, exports } = await loadActionModule(options.actions);
  const executor = new ActionExecutor({ actions, logger, ...options.limits?.executor });
  const http = createHttpServer({ executor, apps: options.apps, ...options.limits?.http });
  // AI SDK front ends (useChat) talk to /api/chat; it answers with the assistant action when the
  // module has one, else with the chat action.
  const chatAction = ['action_assistant', 'action_chat'].find((name) => executor.getAction(name) !== undefined);
  if (chatAction !== undefined) await http.register(uiMessageRoutes, { executor, action: chatAction });
  // Voice: sentences of any run as SSE, and the voice socket (sentences + embedded TTS audio).
  await http.register(sentenceRoutes, { executor });
  await http.register(voiceWsRoutes, { executor, limits: options.limits?.voiceWs });
  if (options.playground === true) await registerPlayground(http, executor, exports, logger);
  const grpc = createGrpcServer({ executor, logger, ...options.limits?.grpc });
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
  const address = http.server.address();
  const httpPort = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    executor,
    httpUrl: `http://${host}:${httpPort}`,
    grpcAddress: `${host}:${grpcPort}`,
    async close() {
      await Promise.allSettled([executor.close(), grpc.close(), http.close()]);
    },
  };
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

/** Runs the server until SIGINT/SIGTERM, printing where it listens. */
export async function serve(options: ServeOptions & { dev?: boolean }): Promise<void> {
  const playground = options.playground ?? options.dev === true;
  // The dev server also shows an Application (examples/app.ts), persisted under SLUICE_DATA_DIR.
  // A computed specifier: the examples are not part of the build (`tsc` must not compile them into dist).
  const examples = new URL('../../examples/app.ts', import.meta.url).href;
  const apps =
    options.apps ??
    (options.dev === true ? ((await import(examples)) as { exampleApps(): AppRegistry }).exampleApps() : undefined);
  const server = await startServer({ ...options, playground, apps });
  const out = process.stdout;
  const names = server.executor.actions.map((a) => a.name).join(', ');
  out.write(`Sluice ${options.dev ? 'dev server (example assistant)' : 'action server'} is up\n`);
  out.write(`  HTTP   ${server.httpUrl}   (POST /webhook, POST /webhook/stream, GET /runs/:id/events, /ws)\n`);
  out.write(`  gRPC   ${server.grpcAddress}   (action_server_webhook.ActionService, sluice.v1.VoiceService)\n`);
  if (server.executor.getAction('action_assistant') !== undefined || server.executor.getAction('action_chat') !== undefined) {
    out.write(`  AI SDK ${server.httpUrl}/api/chat   (useChat / UI message stream)\n`);
  }
  out.write(`  Voice  ${server.httpUrl.replace('http', 'ws')}/voice/ws   (sentences + audio), GET /runs/:id/sentences\n`);
  if (playground) out.write(`  Web    ${server.httpUrl}/   (playground)\n`);
  if (apps !== undefined) out.write(`  Apps   ${server.httpUrl}/apps/:appId/stream   (application steps as SSE)\n`);
  out.write(`  actions: ${names}\n`);
  if (options.dev) out.write(`  try:   npx sluice chat --url ${server.httpUrl}\n`);
  let closing = false;
  const stop = (): void => {
    if (closing) process.exit(1);
    closing = true;
    out.write('Shutting down…\n');
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
