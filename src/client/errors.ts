/**
 * The errors the client raises, as `SluiceError`s with the code the server would use.
 * @module
 */

import { SluiceError, isErrorCode, type ErrorCode } from '../protocol/errors.ts';

/** Statuses worth another try: the server (or a proxy) may be back in a moment. */
const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

function codeOfStatus(status: number): ErrorCode {
  if (status === 400 || status === 422) return 'invalid_argument';
  if (status === 401 || status === 403) return 'permission_denied';
  if (status === 404) return 'not_found';
  if (status === 409) return 'failed_precondition';
  if (status === 410) return 'out_of_range';
  if (status === 429) return 'resource_exhausted';
  if (status === 501) return 'unimplemented';
  if (status === 503 || status === 502) return 'unavailable';
  if (status === 504 || status === 408) return 'timeout';
  return status >= 500 ? 'internal' : 'invalid_argument';
}

/**
 * The error for a response that is not what was asked for: the server's message (Sluice and Rasa
 * bodies carry `error`) and code when the body has them, else the status.
 * `details.status` holds the HTTP status, `details.retryable` whether another try may succeed.
 */
export async function responseError(response: Response, what: string): Promise<SluiceError> {
  let body: unknown = null;
  const text = await response.text().catch(() => '');
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the text itself is the best message there is
  }
  const record = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const message = typeof record.error === 'string' ? record.error : text.trim() !== '' ? text.trim().slice(0, 200) : response.statusText;
  const code = isErrorCode(record.code) ? record.code : codeOfStatus(response.status);
  return new SluiceError(code, `${what}: ${message} (HTTP ${response.status})`, {
    details: { status: response.status, retryable: RETRYABLE_STATUS.has(response.status), ...(typeof record.action_name === 'string' ? { actionName: record.action_name } : {}) },
  });
}

/** Why a request never got a response, in a few words (`ECONNREFUSED`, `fetch failed`, …). */
function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/** The error for a request that reached no server. */
export function connectError(url: string, error: unknown): SluiceError {
  return new SluiceError('unavailable', `cannot connect to ${url} (${causeOf(error)})`, {
    cause: error,
    details: { reason: 'connect_failed', retryable: true },
  });
}

/** True when trying again may help: a dropped or refused connection, or a retryable status. */
export function isRetryable(error: SluiceError): boolean {
  return error.details.retryable === true || (error.details.retryable === undefined && (error.code === 'unavailable' || error.code === 'resource_exhausted'));
}
