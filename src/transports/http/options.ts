/**
 * Options of the HTTP transport, their defaults, and their validation (done once, when the
 * server is built, so a bad setting fails at start-up rather than on the first stream).
 * @module
 */

import { DEFAULT_MAX_DEPTH } from '../../protocol/depth.ts';
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
  /**
   * Longest a response may stay unable to take more data (the client reads nothing) before it is
   * dropped: a last `event: error` frame with code `resource_exhausted` ("reader too slow") is
   * queued and the connection is closed. So no reader holds a run's producer — and with it every
   * other reader — for longer than this at a time. Default 30,000; must be > 0.
   */
  stallTimeoutMs?: number;
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
  /**
   * Most bytes queued to a socket when a message arrives from it; above it the socket is closed
   * (1008 "send queue full"). Default 8 MiB (see `WsGuardOptions`).
   */
  maxQueuedBytes?: number;
  /** Incoming messages per second per socket (token bucket); above it the socket is closed (1008). Default 100. */
  messageRate?: number;
  /** Burst of incoming messages allowed above `messageRate`. Default 200. */
  messageBurst?: number;
}

/** Connection-level limits of the HTTP server (Node's `http.Server` settings). */
export interface HttpLimitsOptions {
  /**
   * Time to receive a whole request, headers and body (Node's `requestTimeout`): a client that
   * trickles its body is answered 408 and dropped. Responses that stream for longer (SSE) are not
   * affected: the clock stops once the request is received. Default 30,000 ms.
   */
  requestTimeoutMs?: number;
  /** Time to receive the request headers (Node's `headersTimeout`). Default 10,000 ms; at most `requestTimeoutMs`. */
  headersTimeoutMs?: number;
  /** Idle time of a kept-alive connection between requests. Default 72,000 ms (Fastify's: above common load balancers' 60 s). */
  keepAliveTimeoutMs?: number;
  /** Most open connections (HTTP, SSE and WebSocket together); more are refused at accept. Default 10,000. */
  maxConnections?: number;
}

/** Resolved connection limits. */
export interface ResolvedHttpLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

/** Resolved SSE settings. */
export interface ResolvedSseOptions {
  pingIntervalMs: number;
  maxDurationMs: number | undefined;
  stallTimeoutMs: number;
}

/** Resolved WebSocket settings. */
export interface ResolvedWsOptions {
  heartbeatMs: number;
  highWaterMark: number;
  stallTimeoutMs: number;
  maxPayload: number;
  maxQueuedBytes: number;
  messageRate: number;
  messageBurst: number;
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
    stallTimeoutMs: positive('sse.stallTimeoutMs', options.stallTimeoutMs, 30_000),
  };
}

/** Validates and completes the WebSocket settings. */
export function resolveWsOptions(options: WsOptions = {}, bodyLimit: number): ResolvedWsOptions {
  return {
    heartbeatMs: positive('ws.heartbeatMs', options.heartbeatMs, 30_000),
    highWaterMark: positive('ws.highWaterMark', options.highWaterMark, 1024 * 1024),
    stallTimeoutMs: positive('ws.stallTimeoutMs', options.stallTimeoutMs, 30_000),
    maxPayload: positive('ws.maxPayload', options.maxPayload, bodyLimit),
    maxQueuedBytes: positive('ws.maxQueuedBytes', options.maxQueuedBytes, 8 * 1024 * 1024),
    messageRate: positive('ws.messageRate', options.messageRate, 100),
    messageBurst: positive('ws.messageBurst', options.messageBurst, 200),
  };
}

/** Validates and completes the connection limits. */
export function resolveHttpLimits(options: HttpLimitsOptions = {}): ResolvedHttpLimits {
  const requestTimeoutMs = positive('limits.requestTimeoutMs', options.requestTimeoutMs, 30_000);
  const headersTimeoutMs = positive('limits.headersTimeoutMs', options.headersTimeoutMs, Math.min(10_000, requestTimeoutMs));
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new SluiceError('invalid_argument', `createHttpServer: 'limits.headersTimeoutMs' (${headersTimeoutMs}) must be ≤ 'limits.requestTimeoutMs' (${requestTimeoutMs})`);
  }
  const maxConnections = positive('limits.maxConnections', options.maxConnections, 10_000);
  if (!Number.isInteger(maxConnections)) {
    throw new SluiceError('invalid_argument', `createHttpServer: 'limits.maxConnections' must be an integer (got ${maxConnections})`);
  }
  return {
    requestTimeoutMs,
    headersTimeoutMs,
    keepAliveTimeoutMs: positive('limits.keepAliveTimeoutMs', options.keepAliveTimeoutMs, 72_000),
    maxConnections,
  };
}

/** Validates the nesting-depth limit of request bodies and socket messages. */
export function resolveMaxDepth(value: number | undefined): number {
  const depth = positive('maxDepth', value, DEFAULT_MAX_DEPTH);
  if (!Number.isInteger(depth)) throw new SluiceError('invalid_argument', `createHttpServer: 'maxDepth' must be an integer (got ${depth})`);
  return depth;
}
