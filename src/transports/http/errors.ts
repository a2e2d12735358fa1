/**
 * How errors become HTTP responses: Rasa's action-server shapes for the webhook
 * (`reference/rasa-sdk.md` §1b) and one JSON shape, `{ error }`, for everything else.
 * @module
 */

import { HTTP_STATUS, type SluiceError } from '../../protocol/errors.ts';

/** Rasa's status for an action server that needs the domain sent again. */
export const STATUS_DOMAIN_MISSING = 449;

/** The body Rasa sends for a request body it cannot read. */
export const INVALID_BODY = 'Invalid body request';

/** An HTTP error reply: status and JSON body. */
export interface ErrorReply {
  status: number;
  body: Record<string, unknown>;
  /** For a `Retry-After` header (limits). */
  retryAfterSeconds?: number;
}

/** Statuses Rasa gives its own exceptions, keyed by `SluiceError.details.reason`. */
const RASA_STATUS: Readonly<Record<string, number>> = {
  invalid_body: 400,
  action_rejected: 400,
  action_not_found: 404,
  domain_missing: STATUS_DOMAIN_MISSING,
};

/** Conditions of the server rather than of the action; they keep their own status. */
const SERVER_CODES = new Set(['unavailable', 'cancelled', 'timeout', 'resource_exhausted']);

/**
 * Maps an executor error to Rasa's webhook reply: 400 / 404 / 449 `{ error, action_name }` for
 * malformed calls, rejections, unknown actions and a missing domain; 500 `{ error }` for an
 * action that failed, with `request_body` (what Sanic's catch-all handler sends) only when
 * `exposeErrors` — the executor's `exposeActionErrors` — allows echoing. A `resource_exhausted`
 * reply carries `retryAfterSeconds` for a `Retry-After` header.
 */
export function rasaErrorReply(error: SluiceError, requestBody: unknown, exposeErrors = false): ErrorReply {
  const reason = typeof error.details.reason === 'string' ? error.details.reason : '';
  const actionName = typeof error.details.actionName === 'string' ? error.details.actionName : undefined;
  const status = RASA_STATUS[reason] ?? (SERVER_CODES.has(error.code) ? HTTP_STATUS[error.code] : undefined);
  if (status === undefined) {
    return { status: 500, body: exposeErrors ? { error: error.message, request_body: requestBody ?? null } : { error: error.message } };
  }
  const body: Record<string, unknown> = { error: error.message };
  if (actionName !== undefined && actionName !== '') body.action_name = actionName;
  const retryAfter = error.details.retryAfterSeconds;
  return typeof retryAfter === 'number' ? { status, body, retryAfterSeconds: retryAfter } : { status, body };
}

/** Maps any SluiceError to `{ status: HTTP_STATUS[code], body: { error, code } }`. */
export function errorReply(error: SluiceError): ErrorReply {
  const reply: ErrorReply = { status: HTTP_STATUS[error.code], body: { error: error.message, code: error.code } };
  const retryAfter = error.details.retryAfterSeconds;
  if (typeof retryAfter === 'number') reply.retryAfterSeconds = retryAfter;
  return reply;
}

/** An error carrying the HTTP status it should be answered with (for Fastify's error handler). */
export function httpError(status: number, message: string, code?: string): Error & { statusCode: number; code?: string } {
  const error = new Error(message) as Error & { statusCode: number; code?: string };
  error.statusCode = status;
  if (code !== undefined) error.code = code;
  return error;
}
