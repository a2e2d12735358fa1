/**
 * From parsed flags (environment applied) and the config module to the server's options.
 * Precedence, per setting: flag > environment variable > config module > default.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { SluiceConfig } from './config.ts';
import type { FlagValues } from './flags/spec.ts';
import type { ServeOptions } from './serve.ts';

/** A flag's string value, if given. */
export function str(value: FlagValues[string]): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** A boolean flag's value (true when given, or the env's true/false), if set. */
export function bool(value: FlagValues[string]): boolean | undefined {
  return typeof value === 'boolean' ? value : undefined;
}

/** A port number 0–65535, naming the flag when it is not one. */
export function port(name: string, value: FlagValues[string], fallback: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  // Number() reads '' and ' ' as 0, which would silently mean "any free port".
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new SluiceError('invalid_argument', `--${name} must be a port number 0–65535 (got '${text}')`);
  }
  return n;
}

/** Seconds (a positive decimal number) as milliseconds. */
export function seconds(name: string, value: FlagValues[string]): number | undefined {
  const text = str(value);
  if (text === undefined) return undefined;
  const n = /^\d+(?:\.\d+)?$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(n > 0)) throw new SluiceError('invalid_argument', `--${name} must be a number of seconds > 0 (got '${text}')`);
  return Math.round(n * 1000);
}

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 };

/** A byte size: `262144`, `256kb`, `2mb` (binary units). */
export function bytes(name: string, value: FlagValues[string]): number | undefined {
  const text = str(value);
  if (text === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  const n = match && unit !== undefined ? Math.floor(Number(match[1]) * unit) : Number.NaN;
  if (!(n > 0)) throw new SluiceError('invalid_argument', `--${name} must be a size in bytes such as 262144, 256kb or 2mb (got '${text}')`);
  return n;
}

/** The log level the flags ask for: `--log-level`, else Rasa's `--debug` / `--verbose` / `--quiet`, else the config's, else `info`. */
export function logLevel(values: FlagValues, config: SluiceConfig): string {
  const given = [values.debug === true && 'debug', values.verbose === true && 'info', values.quiet === true && 'warn'].filter(
    (level): level is string => typeof level === 'string',
  );
  if (given.length > 1) throw new SluiceError('invalid_argument', 'Give only one of --debug, --verbose and --quiet');
  return str(values['log-level']) ?? given[0] ?? config.log?.level ?? 'info';
}

/**
 * The two ports. Rasa SDK's `--grpc` serves gRPC on `-p/--port`; so does Sluice's, which then puts
 * HTTP on `--http-port` (default 5056), and takes no `--grpc-port`.
 */
function listenPorts(values: FlagValues, config: SluiceConfig): { port: number; grpcPort: number } {
  if (values.grpc === true) {
    if (values['grpc-port'] !== undefined) throw new SluiceError('invalid_argument', 'With --grpc, -p/--port is the gRPC port (as in Rasa SDK): drop --grpc-port / SLUICE_GRPC_PORT, and use --http-port for HTTP');
    return { grpcPort: port('port', values.port, config.grpcPort ?? 5055), port: port('http-port', values['http-port'], config.port ?? 5056) };
  }
  if (values['http-port'] !== undefined) throw new SluiceError('invalid_argument', '--http-port goes with --grpc; without it, -p/--port is the HTTP port');
  return { port: port('port', values.port, config.port ?? 5055), grpcPort: port('grpc-port', values['grpc-port'], config.grpcPort ?? 5056) };
}

/** What `serve` / `dev` take from flags and config (everything but the logger). */
export type ResolvedServeOptions = Omit<ServeOptions, 'logger'> & { drainTimeoutSeconds: number };

/**
 * Resolves the server's options. `actions` comes from `--actions`, else the config; `dev` uses
 * its own module (`devActions`).
 */
export function resolveServeOptions(values: FlagValues, config: SluiceConfig, devActions?: string): ResolvedServeOptions {
  const actions = devActions ?? str(values.actions) ?? config.actions;
  if (actions === undefined) throw new SluiceError('invalid_argument', '--actions <module> is required (or `actions` in the config module)');
  const drainMs = seconds('drain-timeout', values['drain-timeout']);
  const bodyLimit = bytes('body-limit', values['body-limit']);
  const pingIntervalMs = seconds('sse-ping-interval', values['sse-ping-interval']);
  const maxDurationMs = seconds('sse-max-duration', values['sse-max-duration']);
  const heartbeatMs = seconds('ws-heartbeat', values['ws-heartbeat']);
  const http = config.http ?? {};
  const exposeActionErrors = bool(values['expose-action-errors']) ?? config.exposeActionErrors;
  const executor = { ...config.executor, ...(exposeActionErrors !== undefined ? { exposeActionErrors } : {}) };
  const options: ResolvedServeOptions = {
    actions,
    host: str(values.host) ?? config.host ?? '127.0.0.1',
    ...listenPorts(values, config),
    autoReload: bool(values['auto-reload']) ?? config.autoReload ?? false,
    chatCancelOnDisconnect: bool(values['chat-cancel-on-disconnect']) ?? config.chatCancelOnDisconnect ?? false,
    drainTimeoutSeconds: drainMs !== undefined ? drainMs / 1000 : (config.drainTimeoutSeconds ?? 10),
    http: {
      ...http,
      ...(bodyLimit !== undefined ? { bodyLimit } : {}),
      sse: { ...http.sse, ...(pingIntervalMs !== undefined ? { pingIntervalMs } : {}), ...(maxDurationMs !== undefined ? { maxDurationMs } : {}) },
      ws: { ...http.ws, ...(heartbeatMs !== undefined ? { heartbeatMs } : {}) },
    },
    grpc: config.grpc,
    executor,
  };
  const chatAction = str(values['chat-action']) ?? config.chatAction;
  if (chatAction !== undefined) options.chatAction = chatAction;
  if (!(options.drainTimeoutSeconds >= 0)) {
    throw new SluiceError('invalid_argument', `drainTimeoutSeconds in the config module must be a number ≥ 0 (got ${String(config.drainTimeoutSeconds)})`);
  }
  return options;
}
