/**
 * Options of the HTTP transport, their defaults, and their validation (done once, when the
 * server is built, so a bad setting fails at start-up rather than on the first stream).
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';

/** Server-Sent Events settings. */
export interface SseOptions {
  /**
   * While a stream is idle, a `: ping` comment is written every `pingIntervalMs`, so proxies and
   * load balancers with idle timeouts keep it open (a ping goes out once a whole interval passed
   * without a write, so silence never exceeds twice the interval). Default 15,000; must be > 0.
   */
  pingIntervalMs?: number;
  /**
   * Longest a single SSE response may last, in milliseconds. When reached the response ends but
   * the run goes on; the client resumes with `GET /runs/:runId/events` and `Last-Event-ID`.
   * Default: no limit.
   */
  maxDurationMs?: number;
}

/** WebSocket settings. */
export interface WsOptions {
  /** Interval of the ping/pong heartbeat; a socket that missed a pong is terminated. Default 30,000 ms. */
  heartbeatMs?: number;
  /**
   * Bytes a socket may have queued (`bufferedAmount`) before the server stops sending to it and
   * waits; the runs it reads then slow their producers through their own backpressure. Default 1 MiB.
   */
  highWaterMark?: number;
  /** Milliseconds a socket may stay above `highWaterMark` before it is terminated. Default 30,000. */
  stallTimeoutMs?: number;
  /** Largest message accepted from a client, in bytes. Default: the server's `bodyLimit`. */
  maxPayload?: number;
}

/** Resolved SSE settings. */
export interface ResolvedSseOptions {
  pingIntervalMs: number;
  maxDurationMs: number | undefined;
}

/** Resolved WebSocket settings. */
export interface ResolvedWsOptions {
  heartbeatMs: number;
  highWaterMark: number;
  stallTimeoutMs: number;
  maxPayload: number;
}

/** Default request body limit: 1 MiB. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

function positive(name: string, value: number | undefined, fallback: number): number;
function positive(name: string, value: number | undefined, fallback: undefined): number | undefined;
function positive(name: string, value: number | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new SluiceError('invalid_argument', `createHttpServer: '${name}' must be a finite number > 0 (got ${String(value)})`);
  }
  return value;
}

/** Validates the body limit. */
export function resolveBodyLimit(value: number | undefined): number {
  const limit = positive('bodyLimit', value, DEFAULT_BODY_LIMIT);
  if (!Number.isInteger(limit)) {
    throw new SluiceError('invalid_argument', `createHttpServer: 'bodyLimit' must be an integer number of bytes (got ${limit})`);
  }
  return limit;
}

/** Validates and completes the SSE settings. */
export function resolveSseOptions(options: SseOptions = {}): ResolvedSseOptions {
  return {
    pingIntervalMs: positive('sse.pingIntervalMs', options.pingIntervalMs, 15_000),
    maxDurationMs: positive('sse.maxDurationMs', options.maxDurationMs, undefined),
  };
}

/** Validates and completes the WebSocket settings. */
export function resolveWsOptions(options: WsOptions = {}, bodyLimit: number): ResolvedWsOptions {
  return {
    heartbeatMs: positive('ws.heartbeatMs', options.heartbeatMs, 30_000),
    highWaterMark: positive('ws.highWaterMark', options.highWaterMark, 1024 * 1024),
    stallTimeoutMs: positive('ws.stallTimeoutMs', options.stallTimeoutMs, 30_000),
    maxPayload: positive('ws.maxPayload', options.maxPayload, bodyLimit),
  };
}
