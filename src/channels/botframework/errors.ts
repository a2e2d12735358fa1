/**
 * What a Bot Connector failure means for a stream. Every failure becomes a {@link SluiceError}
 * with a safe public message, a `details.reason` the stream acts on, and the service's own words
 * only in `cause` (for logs). The 403 texts are the ones documented by Teams (streaming-ux).
 * @module
 */

import type { ErrorCode } from '../../protocol/errors.ts';
import { SluiceError } from '../../protocol/errors.ts';

/** Why a send to the channel failed (`SluiceError.details.reason`). */
export type ChannelFailureReason =
  /** 403 "Content stream was cancelled by user.": the Stop button. */
  | 'stopped_by_user'
  /** 403 "Content stream finished due to exceeded streaming time.": the 2-minute cap. */
  | 'stream_time_exceeded'
  /** 403 "Content stream is not allowed", 405, or "streaming api is not enabled": send one message instead. */
  | 'streaming_not_allowed'
  /** 403 "… on an already completed streamed message". */
  | 'stream_already_completed'
  /** 403 "Message size too large" (or 413). */
  | 'message_too_large'
  /** 429. */
  | 'rate_limited'
  /** 400 (malformed activity). */
  | 'bad_request'
  /** 401, or a 403 that is not about streaming. */
  | 'unauthorized'
  /** 404: the conversation or activity does not exist. */
  | 'conversation_not_found'
  /** 5xx or any other unexpected status. */
  | 'connector_error'
  /** The service could not be reached (connection refused, reset, DNS). */
  | 'connector_unreachable'
  /** The service did not answer within the sender's timeout. */
  | 'connector_timeout'
  /** The token provider failed. */
  | 'token_unavailable';

/** Machine-readable facts of a channel failure. */
export interface ChannelFailureDetails {
  reason: ChannelFailureReason;
  /** HTTP status, when there was a response. */
  status?: number;
  /** The service's error code, e.g. `ContentStreamNotAllowed`. */
  connectorCode?: string;
  /** How long the service asked us to wait (429 `Retry-After`), in ms. */
  retryAfterMs?: number;
  [key: string]: unknown;
}

const CODES: Readonly<Record<ChannelFailureReason, ErrorCode>> = {
  stopped_by_user: 'cancelled',
  stream_time_exceeded: 'timeout',
  streaming_not_allowed: 'permission_denied',
  stream_already_completed: 'failed_precondition',
  message_too_large: 'invalid_argument',
  rate_limited: 'resource_exhausted',
  bad_request: 'invalid_argument',
  unauthorized: 'permission_denied',
  conversation_not_found: 'not_found',
  connector_error: 'unavailable',
  connector_unreachable: 'unavailable',
  connector_timeout: 'timeout',
  token_unavailable: 'unavailable',
};

function publicMessage(reason: ChannelFailureReason, status: number | undefined): string {
  const http = status === undefined ? '' : ` (HTTP ${status})`;
  switch (reason) {
    case 'stopped_by_user':
      return 'The user stopped the response';
    case 'stream_time_exceeded':
      return 'The channel ended the stream: it exceeded the streaming time limit';
    case 'streaming_not_allowed':
      return 'Streaming is not allowed in this conversation';
    case 'stream_already_completed':
      return 'The streamed message was already completed';
    case 'message_too_large':
      return 'The message is too large for the channel';
    case 'rate_limited':
      return 'The Bot Connector rate limit was exceeded';
    case 'bad_request':
      return `The Bot Connector rejected the activity${http}`;
    case 'unauthorized':
      return `The Bot Connector refused the bot's credentials${http}`;
    case 'conversation_not_found':
      return `The conversation was not found${http}`;
    case 'connector_error':
      return `The Bot Connector service is unavailable${http}`;
    case 'connector_unreachable':
      return 'The Bot Connector service could not be reached';
    case 'connector_timeout':
      return 'The Bot Connector service did not answer in time';
    case 'token_unavailable':
      return 'The bot token could not be obtained';
  }
}

/** Builds the error for a channel failure. */
export function channelError(
  reason: ChannelFailureReason,
  facts: Omit<ChannelFailureDetails, 'reason'> = {},
  cause?: unknown,
): SluiceError {
  const details: ChannelFailureDetails = { reason };
  for (const [key, value] of Object.entries(facts)) if (value !== undefined) details[key] = value;
  return new SluiceError(CODES[reason], publicMessage(reason, typeof facts.status === 'number' ? facts.status : undefined), { cause, details });
}

/** The channel failure reason of an error, if it has one. */
export function failureReason(error: unknown): ChannelFailureReason | undefined {
  if (!SluiceError.isInstance(error)) return undefined;
  const reason = error.details.reason;
  return typeof reason === 'string' && reason in CODES ? (reason as ChannelFailureReason) : undefined;
}

/** Reads the service's `{ error: { code, message } }` body (or a bare string). */
export function parseConnectorError(body: unknown): { code?: string; message?: string } {
  let value = body;
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.startsWith('{')) {
      try {
        value = JSON.parse(text);
      } catch {
        return { message: text };
      }
    } else return text === '' ? {} : { message: text };
  }
  if (typeof value !== 'object' || value === null) return {};
  const record = value as Record<string, unknown>;
  const inner = typeof record.error === 'object' && record.error !== null ? (record.error as Record<string, unknown>) : record;
  const code = typeof inner.code === 'string' ? inner.code : undefined;
  const message = typeof inner.message === 'string' ? inner.message : typeof record.message === 'string' ? record.message : undefined;
  const out: { code?: string; message?: string } = {};
  if (code !== undefined) out.code = code;
  if (message !== undefined) out.message = message;
  return out;
}

/**
 * `Retry-After` in ms: delta-seconds or an HTTP date (relative to `nowMs`, wall time). Undefined
 * when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * Classifies an HTTP answer of the Bot Connector. `body` is the response text (or parsed JSON);
 * `retryAfter` is the raw `Retry-After` header.
 */
export function classifyConnectorResponse(status: number, body: unknown, retryAfter?: string | null): SluiceError {
  const { code, message } = parseConnectorError(body);
  const text = `${code ?? ''} ${message ?? ''}`;
  const cause = new Error(`Bot Connector answered ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`);
  const facts = { status, connectorCode: code };
  if (status === 429) return channelError('rate_limited', { ...facts, retryAfterMs: parseRetryAfter(retryAfter) }, cause);
  if (/cancel+ed by user/i.test(text)) return channelError('stopped_by_user', facts, cause);
  if (/exceeded streaming time/i.test(text)) return channelError('stream_time_exceeded', facts, cause);
  if (/already completed/i.test(text)) return channelError('stream_already_completed', facts, cause);
  if (status === 413 || /too large/i.test(text)) return channelError('message_too_large', facts, cause);
  if (status === 405 || /streaming api is not enabled|ContentStreamNotAllowed|stream(ing)? is not allowed/i.test(text)) {
    return channelError('streaming_not_allowed', facts, cause);
  }
  if (status === 400) return channelError('bad_request', facts, cause);
  if (status === 401 || status === 403) return channelError('unauthorized', facts, cause);
  if (status === 404) return channelError('conversation_not_found', facts, cause);
  if (status === 408 || status === 504) return channelError('connector_timeout', facts, cause);
  return channelError('connector_error', facts, cause);
}

/**
 * Classifies anything a sender threw: a classified SluiceError is kept; an HTTP-like error
 * (botbuilder's `RestError` has `statusCode` and a `response`) is read like a response; a timeout
 * or abort becomes `connector_timeout`; anything else `connector_unreachable`.
 */
export function classifySendError(thrown: unknown): SluiceError {
  if (failureReason(thrown) !== undefined) return thrown as SluiceError;
  if (typeof thrown === 'object' && thrown !== null) {
    const e = thrown as Record<string, unknown>;
    const response = typeof e.response === 'object' && e.response !== null ? (e.response as Record<string, unknown>) : undefined;
    const status = [e.statusCode, e.status, response?.status].find((v): v is number => typeof v === 'number');
    if (status !== undefined) {
      const body = e.body ?? response?.parsedBody ?? response?.bodyAsText ?? { error: { code: e.code, message: e.message } };
      const headers = response?.headers as { get?: (name: string) => string | null | undefined } | undefined;
      const retryAfter = typeof headers?.get === 'function' ? headers.get('retry-after') : undefined;
      const classified = classifyConnectorResponse(status, body, retryAfter);
      return new SluiceError(classified.code, classified.message, { cause: thrown, details: classified.details });
    }
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return channelError('connector_timeout', {}, thrown);
  }
  if (SluiceError.isInstance(thrown)) return thrown;
  return channelError('connector_unreachable', {}, thrown);
}
