/**
 * The logging seam: a subset of pino's API, so a pino (or Fastify) logger plugs in as is.
 * @module
 */

import { pino } from 'pino';

type LogFn = (obj: object, msg?: string) => void;

/** What Sluice logs through. pino loggers satisfy it. */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const noop: LogFn = () => {};

/** A logger that drops everything. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** A pino logger named `sluice`, at `SLUICE_LOG_LEVEL` (default `info`). */
export function createLogger(level = process.env.SLUICE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'sluice', level });
}
