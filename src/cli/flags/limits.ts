/**
 * Resource limits of `sluice serve` / `sluice dev`: run caps and deadline, retained runs, request
 * timeouts, connections, body size and depth, slow readers and WebSocket floods. Every flag has a
 * `SLUICE_*` variable; absent ones keep the layer's default (README, "Production checklist").
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { WsGuardOptions } from '../../channels/ws-guard.ts';
import type { ExecutorOptions } from '../../runtime/executor.ts';
import type { HttpServerOptions } from '../../transports/http/server.ts';
import type { FlagSpec, FlagValues } from './spec.ts';

const SERVER = ['serve', 'dev'] as const;

/** The limit flags. */
export const limitsFlags: readonly FlagSpec[] = [
  { name: 'max-runs', type: 'string', value: '<n>', env: 'SLUICE_MAX_RUNS', default: '1000', help: 'most runs live at once (then 429 / RESOURCE_EXHAUSTED)', commands: SERVER },
  { name: 'max-runs-per-client', type: 'string', value: '<n>', env: 'SLUICE_MAX_RUNS_PER_CLIENT', default: '100', help: 'most runs live at once per authenticated client', commands: SERVER },
  { name: 'max-run-duration', type: 'string', value: '<seconds>', env: 'SLUICE_MAX_RUN_DURATION', default: '600', help: 'a run lasting longer is cancelled and ends `timeout`', commands: SERVER },
  { name: 'retain-ended-runs', type: 'string', value: '<n>', env: 'SLUICE_RETAIN_ENDED_RUNS', default: '1000', help: 'most ended runs kept for late readers', commands: SERVER },
  { name: 'retain-ended-bytes', type: 'string', value: '<size>', env: 'SLUICE_RETAIN_ENDED_BYTES', default: '64MiB', help: 'most bytes of events held by ended runs kept for late readers', commands: SERVER },
  { name: 'request-timeout', type: 'string', value: '<seconds>', env: 'SLUICE_REQUEST_TIMEOUT', default: '30', help: 'time to receive a whole request (slow bodies are dropped)', commands: SERVER },
  { name: 'headers-timeout', type: 'string', value: '<seconds>', env: 'SLUICE_HEADERS_TIMEOUT', default: '10', help: 'time to receive request headers', commands: SERVER },
  { name: 'keep-alive-timeout', type: 'string', value: '<seconds>', env: 'SLUICE_KEEP_ALIVE_TIMEOUT', default: '72', help: 'idle time of a kept-alive HTTP connection', commands: SERVER },
  { name: 'max-connections', type: 'string', value: '<n>', env: 'SLUICE_MAX_CONNECTIONS', default: '10000', help: 'most open connections per listener: HTTP (SSE and WebSocket included) and gRPC', commands: SERVER },
  { name: 'max-depth', type: 'string', value: '<n>', env: 'SLUICE_MAX_DEPTH', default: '64', help: 'deepest nesting of objects/arrays accepted in a body or message', commands: SERVER },
  { name: 'stall-timeout', type: 'string', value: '<seconds>', env: 'SLUICE_STALL_TIMEOUT', default: '30', help: 'a reader (SSE, WebSocket, gRPC stream) that takes no data this long is dropped', commands: SERVER },
  { name: 'ws-max-queued', type: 'string', value: '<size>', env: 'SLUICE_WS_MAX_QUEUED', default: '8MiB', help: 'WebSocket send queue above which a socket that keeps sending is closed', commands: SERVER },
  { name: 'ws-message-rate', type: 'string', value: '<n>', env: 'SLUICE_WS_MESSAGE_RATE', default: '100', help: 'incoming WebSocket messages per second per socket (burst 2×)', commands: SERVER },
];

/** What the limit flags configure, per layer. */
export interface ServerLimits {
  executor: Pick<ExecutorOptions, 'maxConcurrentRuns' | 'maxConcurrentRunsPerOwner' | 'maxRunDurationMs' | 'retainEndedRuns' | 'retainEndedRunsBytes'>;
  http: Pick<HttpServerOptions, 'limits' | 'maxDepth' | 'sse' | 'ws'>;
  /** For `/voice/ws`. */
  voiceWs: WsGuardOptions;
  grpc: { stallTimeoutMs?: number | undefined; maxConnections?: number | undefined };
}

function text(values: FlagValues, name: string): string | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.at(-1) : String(value);
}

function count(values: FlagValues, name: string): number | undefined {
  const raw = text(values, name);
  if (raw === undefined) return undefined;
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new SluiceError('invalid_argument', `--${name} must be a positive integer (got '${raw}')`);
  return n;
}

function millis(values: FlagValues, name: string): number | undefined {
  const raw = text(values, name);
  if (raw === undefined) return undefined;
  const n = /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isFinite(n) || n <= 0) throw new SluiceError('invalid_argument', `--${name} must be a number of seconds > 0 (got '${raw}')`);
  return Math.round(n * 1000);
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** A size such as `1048576`, `512KiB`, `64MiB`, `1g` (binary units). */
export function parseSize(name: string, raw: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = match === null ? undefined : UNITS[match[2]!.toLowerCase()];
  const n = match === null || unit === undefined ? Number.NaN : Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new SluiceError('invalid_argument', `--${name} must be a size in bytes, e.g. 1048576, 512KiB or 64MiB (got '${raw}')`);
  }
  return n;
}

function size(values: FlagValues, name: string): number | undefined {
  const raw = text(values, name);
  return raw === undefined ? undefined : parseSize(name, raw);
}

/** Reads the limit flags (absent ones stay undefined: the layers' defaults apply). Throws naming a bad flag. */
export function limitsFromFlags(values: FlagValues): ServerLimits {
  const stallTimeoutMs = millis(values, 'stall-timeout');
  const messageRate = count(values, 'ws-message-rate');
  const maxQueuedBytes = size(values, 'ws-max-queued');
  const ws: WsGuardOptions = {};
  if (maxQueuedBytes !== undefined) ws.maxQueuedBytes = maxQueuedBytes;
  if (messageRate !== undefined) {
    ws.messageRate = messageRate;
    ws.messageBurst = 2 * messageRate;
  }
  return {
    executor: {
      maxConcurrentRuns: count(values, 'max-runs'),
      maxConcurrentRunsPerOwner: count(values, 'max-runs-per-client'),
      maxRunDurationMs: millis(values, 'max-run-duration'),
      retainEndedRuns: count(values, 'retain-ended-runs'),
      retainEndedRunsBytes: size(values, 'retain-ended-bytes'),
    },
    http: {
      limits: {
        requestTimeoutMs: millis(values, 'request-timeout'),
        headersTimeoutMs: millis(values, 'headers-timeout'),
        keepAliveTimeoutMs: millis(values, 'keep-alive-timeout'),
        maxConnections: count(values, 'max-connections'),
      },
      maxDepth: count(values, 'max-depth'),
      sse: { stallTimeoutMs },
      ws: { ...ws, stallTimeoutMs },
    },
    voiceWs: ws,
    grpc: { stallTimeoutMs, maxConnections: count(values, 'max-connections') },
  };
}
