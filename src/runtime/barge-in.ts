/**
 * The barge-in timeout: how long a cancelled action may take to return its events.
 * @module
 */

import type { Logger } from './logger.ts';

/** Rasa's default, in seconds. */
export const DEFAULT_BARGE_IN_TIMEOUT_SECONDS = 30;

/** The environment variable Rasa SDK reads. */
export const BARGE_IN_TIMEOUT_ENV = 'ACTION_SERVER_STREAM_BARGE_IN_TIMEOUT_SECONDS';

/**
 * The timeout in seconds: `explicit` if given, else the environment variable, else 30. A value that
 * is not a number or is ≤ 0 falls back to 30 with a warning (Rasa validates only the variable).
 */
export function resolveBargeInTimeout(
  explicit: number | undefined,
  env: Record<string, string | undefined>,
  logger: Logger,
): number {
  const raw = explicit ?? env[BARGE_IN_TIMEOUT_ENV];
  if (raw === undefined) return DEFAULT_BARGE_IN_TIMEOUT_SECONDS;
  const value = typeof raw === 'number' ? raw : raw.trim() === '' ? Number.NaN : Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    logger.warn(
      { value: raw },
      `Invalid barge-in timeout ${JSON.stringify(raw)} (${explicit === undefined ? BARGE_IN_TIMEOUT_ENV : 'bargeInTimeoutSeconds'}): expected a number > 0; using ${DEFAULT_BARGE_IN_TIMEOUT_SECONDS}s`,
    );
    return DEFAULT_BARGE_IN_TIMEOUT_SECONDS;
  }
  return value;
}
