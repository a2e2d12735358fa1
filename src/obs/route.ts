/**
 * `GET /metrics`: the Prometheus text exposition of a {@link SluiceMetrics}, as an ordinary route
 * of the server it is registered on (so it gets that server's hooks: authentication, CORS), or on
 * a listener of its own (`--metrics-port`) for a scrape network.
 * @module
 */

import Fastify, { type FastifyInstance } from 'fastify';
import { SluiceError } from '../protocol/errors.ts';
import type { SluiceMetrics } from './metrics.ts';

/** Default path of the metrics route. */
export const DEFAULT_METRICS_PATH = '/metrics';

/** Adds `GET <path>` answering with the metrics' exposition (`text/plain; version=0.0.4`). */
export function registerMetricsRoute(app: FastifyInstance, metrics: SluiceMetrics, path: string = DEFAULT_METRICS_PATH): void {
  if (!path.startsWith('/')) throw new SluiceError('invalid_argument', `The metrics path must start with '/' (got '${path}')`);
  app.get(path, async (_request, reply) => {
    const text = await metrics.expose();
    return reply.code(200).header('content-type', metrics.contentType).header('cache-control', 'no-store').send(text);
  });
}

/** A Fastify server of its own serving only the metrics route (not listening yet). */
export function createMetricsServer(metrics: SluiceMetrics, path: string = DEFAULT_METRICS_PATH): FastifyInstance {
  const app = Fastify({ logger: false });
  registerMetricsRoute(app, metrics, path);
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `Route ${request.method} ${request.url.split('?')[0]} not found`, code: 'not_found' });
  });
  return app;
}
