/**
 * `sluice serve` / `sluice dev`: the action server — HTTP (Rasa webhook, SSE, WebSocket) and gRPC
 * (Rasa's ActionService) on their own ports, one executor behind both.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import { ActionExecutor } from '../runtime/executor.ts';
import type { Logger } from '../runtime/logger.ts';
import { createLogger } from '../runtime/logger.ts';
import { createGrpcServer } from '../transports/grpc/index.ts';
import { createHttpServer } from '../transports/http/index.ts';
import { uiMessageRoutes } from '../channels/ui-message/index.ts';
import { loadActions } from './load-actions.ts';

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
  const actions = await loadActions(options.actions);
  const executor = new ActionExecutor({ actions, logger });
  const http = createHttpServer({ executor });
  // AI SDK front ends (useChat) talk to /api/chat; it answers with the assistant action when the
  // module has one, else with the chat action.
  const chatAction = ['action_assistant', 'action_chat'].find((name) => executor.getAction(name) !== undefined);
  if (chatAction !== undefined) await http.register(uiMessageRoutes, { executor, action: chatAction });
  const grpc = createGrpcServer({ executor, logger });
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

/** Runs the server until SIGINT/SIGTERM, printing where it listens. */
export async function serve(options: ServeOptions & { dev?: boolean }): Promise<void> {
  const server = await startServer(options);
  const out = process.stdout;
  const names = server.executor.actions.map((a) => a.name).join(', ');
  out.write(`Sluice ${options.dev ? 'dev server (example assistant)' : 'action server'} is up\n`);
  out.write(`  HTTP   ${server.httpUrl}   (POST /webhook, POST /webhook/stream, GET /runs/:id/events, /ws)\n`);
  out.write(`  gRPC   ${server.grpcAddress}   (action_server_webhook.ActionService)\n`);
  if (server.executor.getAction('action_assistant') !== undefined || server.executor.getAction('action_chat') !== undefined) {
    out.write(`  AI SDK ${server.httpUrl}/api/chat   (useChat / UI message stream)\n`);
  }
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
