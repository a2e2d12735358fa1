/**
 * `sluice/obs`: Prometheus metrics of a server, the `/metrics` route, and the OpenTelemetry SDK
 * switch of `sluice serve`. Run spans themselves live in the runtime (`RunTracer`).
 * @module
 */

export { SluiceMetrics } from './metrics.ts';
export type { MetricsOptions } from './metrics.ts';
export { DEFAULT_METRICS_PATH, createMetricsServer, registerMetricsRoute } from './route.ts';
export { otelRequested, startOtelFromEnv } from './otel.ts';
export type { OtelHandle } from './otel.ts';
