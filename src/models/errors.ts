/**
 * Turns provider failures into `SluiceError`s with public, safe messages. The provider's own error
 * (which may hold hostnames, request ids or a quoted prompt) stays in `cause`, for logs only.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { status?: unknown; statusCode?: unknown; lastError?: unknown; cause?: unknown };
  if (typeof e.status === 'number') return e.status;
  if (typeof e.statusCode === 'number') return e.statusCode;
  // The AI SDK wraps the last attempt of a retried call in a RetryError.
  if (e.lastError !== undefined) return statusOf(e.lastError);
  return undefined;
}

function nameOf(error: unknown): string {
  if (typeof error !== 'object' || error === null) return '';
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : '';
}

/**
 * Maps what a model call threw to a `SluiceError`: rate limits → `resource_exhausted`, provider
 * timeouts → `timeout`, unparseable responses → `internal`, everything else the provider did
 * (5xx, refused credentials, connection failures, errors mid-stream) → `unavailable`.
 * `details` carry `reason`, `model` and the HTTP `status` when there is one.
 */
export function modelError(error: unknown, model: string): SluiceError {
  if (SluiceError.isInstance(error)) return error;
  const name = nameOf(error);
  if (name === 'AbortError' || name === 'APIUserAbortError') {
    return new SluiceError('cancelled', 'The model call was cancelled', { cause: error, details: { reason: 'model_cancelled', model } });
  }
  const status = statusOf(error);
  const details = (reason: string): Record<string, unknown> => (status === undefined ? { reason, model } : { reason, model, status });
  if (name === 'TimeoutError' || name === 'APIConnectionTimeoutError' || status === 408 || status === 504) {
    return new SluiceError('timeout', 'The model took too long to answer', { cause: error, details: details('model_timeout') });
  }
  if (status === 429) {
    return new SluiceError('resource_exhausted', 'The model is rate-limited; try again shortly', { cause: error, details: details('model_rate_limited') });
  }
  if (status === 401 || status === 403) {
    return new SluiceError('unavailable', 'The model refused the credentials it was given', { cause: error, details: details('model_auth_failed') });
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return new SluiceError('internal', 'The model rejected the request', { cause: error, details: details('model_bad_request') });
  }
  if (error instanceof SyntaxError || name === 'AI_JSONParseError' || name === 'AI_TypeValidationError') {
    return new SluiceError('internal', 'The model sent a malformed response', { cause: error, details: details('model_malformed_response') });
  }
  if (name === 'APIConnectionError' || (status === undefined && isConnectionFailure(error))) {
    return new SluiceError('unavailable', 'The model could not be reached', { cause: error, details: details('model_unreachable') });
  }
  if (status !== undefined) {
    return new SluiceError('unavailable', 'The model is unavailable', { cause: error, details: details('model_unavailable') });
  }
  return new SluiceError('unavailable', 'The model failed while answering', { cause: error, details: details('model_failed') });
}

function isConnectionFailure(error: unknown): boolean {
  // undici reports a dropped connection as `TypeError: terminated` / `fetch failed`, with a socket error as cause.
  if (!(error instanceof Error)) return false;
  if (error.message === 'terminated' || error.message === 'fetch failed') return true;
  const code = (error.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EPIPE|UND_ERR_)/.test(code);
}

/** True for what an aborted fetch, SDK or stream throws. */
export function isAbortLike(error: unknown, signal: AbortSignal): boolean {
  if (!signal.aborted) return false;
  if (error === signal.reason) return true;
  const name = nameOf(error);
  return name === 'AbortError' || name === 'APIUserAbortError' || (SluiceError.isInstance(error) && error.code === 'cancelled');
}
