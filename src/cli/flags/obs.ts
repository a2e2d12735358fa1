/**
 * Observability flags of `sluice serve` / `dev`: where `/metrics` is served. Traces need no flag:
 * the standard `OTEL_*` variables turn them on (see `src/obs/otel.ts`).
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { FlagSpec, FlagValues } from './spec.ts';

/** `--metrics-path`, `--metrics-port`, `--no-metrics`. */
export const obsFlags: readonly FlagSpec[] = [
  {
    name: 'metrics-path',
    type: 'string',
    value: '<path>',
    env: 'SLUICE_METRICS_PATH',
    default: '/metrics',
    help: 'path of the Prometheus metrics route (on the HTTP port, behind its authentication, unless --metrics-port)',
    commands: ['serve', 'dev'],
  },
  {
    name: 'metrics-port',
    type: 'string',
    value: '<port>',
    env: 'SLUICE_METRICS_PORT',
    help: 'serve the metrics route on a listener of its own on this port instead of the HTTP port',
    commands: ['serve', 'dev'],
  },
  { name: 'no-metrics', type: 'boolean', env: 'SLUICE_NO_METRICS', help: 'do not serve Prometheus metrics', commands: ['serve', 'dev'] },
];

/** Where metrics are served: `false` for nowhere. */
export type MetricsServeOptions = false | { path: string; port?: number };

/** Reads the observability flags; throws `invalid_argument` naming the flag for a bad value. */
export function metricsOptionsFrom(values: FlagValues): MetricsServeOptions {
  if (values['no-metrics'] === true) return false;
  const rawPath = values['metrics-path'];
  const path = typeof rawPath === 'string' ? rawPath.trim() : '/metrics';
  if (!/^\/[\w\-./~]*$/.test(path)) {
    throw new SluiceError('invalid_argument', `--metrics-path must be a URL path starting with '/' (got '${String(rawPath)}')`);
  }
  const rawPort = values['metrics-port'];
  if (rawPort === undefined) return { path };
  const text = String(rawPort).trim();
  const port = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new SluiceError('invalid_argument', `--metrics-port must be a port number 0–65535 (got '${text}')`);
  }
  return { path, port };
}
