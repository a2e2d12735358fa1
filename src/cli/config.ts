/**
 * The optional config module of `sluice serve` / `sluice dev`: `sluice.config.ts` (or `.js`,
 * `.mjs`) in the working directory, or the file named by `--config`. It holds what flags make
 * awkward — an actions array, an application registry, a logger — and any setting a flag has.
 *
 * Precedence, per setting: command-line flag > environment variable > config module > default.
 *
 * @example
 * // sluice.config.ts
 * import { defineConfig } from 'sluice';
 * import { weather } from './actions/weather.ts';
 * export default defineConfig({ actions: [weather], port: 8080, http: { bodyLimit: 256 * 1024 } });
 * @module
 */

import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AppRegistry } from '../app/registry.ts';
import { SluiceError } from '../protocol/errors.ts';
import type { ActionDefinition } from '../runtime/action.ts';
import type { ExecutorOptions } from '../runtime/executor.ts';
import type { Logger } from '../runtime/logger.ts';
import type { GrpcServerOptions } from '../transports/grpc/server.ts';
import type { HttpServerOptions } from '../transports/http/server.ts';

/** Logging settings (the flags `--log-level`, `--log-pretty`, `--log-file`). */
export interface LogConfig {
  /** pino level: `fatal`, `error`, `warn`, `info` (default), `debug`, `trace`, `silent`. */
  level?: string;
  /** Human-readable lines instead of JSON. Default: only when stdout is a terminal. */
  pretty?: boolean;
  /** Also write the JSON lines to this file (appended). */
  file?: string;
}

/** What a config module exports (as its default export, or as `config`). */
export interface SluiceConfig {
  /** The actions: a module path (like `--actions`; `./…` is relative to the config file) or the action objects themselves. */
  actions?: string | readonly ActionDefinition[];
  /** Applications served under `/apps/:appId/…`: a registry, or a module path (like `--apps`; `./…` is relative to the config file). */
  apps?: AppRegistry | string;
  host?: string;
  /** HTTP port (0: any free port). */
  port?: number;
  /** gRPC port (0: any free port). */
  grpcPort?: number;
  /** The action that answers the AI SDK chat route `/api/chat` (`--chat-action`). */
  chatAction?: string;
  /** Cancel a chat's answer when its POST connection drops, instead of letting a reload resume it. Default false. */
  chatCancelOnDisconnect?: boolean;
  /** Put an action's own error message in public `error` events (the executor's `exposeActionErrors`). */
  exposeActionErrors?: boolean;
  /** Seconds running runs get to finish on SIGTERM / SIGINT before they are cancelled. Default 10. */
  drainTimeoutSeconds?: number;
  /** Reload the actions module when its files change (`--auto-reload`). Default false. */
  autoReload?: boolean;
  /** Logging settings, or a logger of your own (pino-compatible). */
  log?: LogConfig;
  logger?: Logger;
  /** Options of `createHttpServer` (body limit, SSE, WebSocket). */
  http?: Omit<HttpServerOptions, 'executor' | 'apps' | 'logger'>;
  /** Options of `createGrpcServer`. */
  grpc?: Omit<GrpcServerOptions, 'executor' | 'logger'>;
  /** Options of the `ActionExecutor` (barge-in timeout, buffers, retention). */
  executor?: Omit<ExecutorOptions, 'actions' | 'logger' | 'exposeActionErrors' | 'lifecycle'>;
}

/** Types a config module's export; returns it unchanged. */
export function defineConfig(config: SluiceConfig): SluiceConfig {
  return config;
}

/** File names looked for in the working directory, in order. */
export const CONFIG_FILES = ['sluice.config.ts', 'sluice.config.js', 'sluice.config.mjs'] as const;

/** A loaded config module. */
export interface LoadedConfig {
  config: SluiceConfig;
  /** Absolute path of the module. */
  path: string;
}

/**
 * Loads `file` (relative to `cwd`), or else the first of {@link CONFIG_FILES} in `cwd`; undefined
 * when no file was named and none exists. Throws `not_found` for a named file that does not exist
 * and `invalid_argument` for a module that fails to load or exports no object.
 */
export async function loadConfig(file: string | undefined, cwd = process.cwd()): Promise<LoadedConfig | undefined> {
  let path: string | undefined;
  if (file !== undefined) {
    path = resolve(cwd, file);
    if (!existsSync(path)) throw new SluiceError('not_found', `Cannot find the config module '${file}' (looked for ${path})`);
  } else {
    path = CONFIG_FILES.map((name) => resolve(cwd, name)).find((candidate) => existsSync(candidate));
    if (path === undefined) return undefined;
  }
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new SluiceError('invalid_argument', `Cannot load the config module ${path}: ${(error as Error).message}`, { cause: error });
  }
  const config = module.default ?? module.config;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new SluiceError('invalid_argument', `The config module ${path} must export an object: export default defineConfig({ … })`);
  }
  const unknown = Object.keys(config).filter((key) => !CONFIG_KEYS.has(key));
  if (unknown.length > 0) {
    throw new SluiceError('invalid_argument', `The config module ${path} has unknown setting(s) ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${[...CONFIG_KEYS].join(', ')})`);
  }
  // Module paths in the config are relative to the config file, not to where the server starts.
  const resolved: SluiceConfig = { ...(config as SluiceConfig) };
  const base = dirname(path);
  if (typeof resolved.actions === 'string' && isRelative(resolved.actions)) resolved.actions = resolve(base, resolved.actions);
  if (typeof resolved.apps === 'string' && isRelative(resolved.apps)) resolved.apps = resolve(base, resolved.apps);
  if (resolved.log?.file !== undefined && isRelative(resolved.log.file)) resolved.log = { ...resolved.log, file: resolve(base, resolved.log.file) };
  return { config: resolved, path };
}

const CONFIG_KEYS = new Set<string>([
  'actions', 'apps', 'host', 'port', 'grpcPort', 'chatAction', 'chatCancelOnDisconnect', 'exposeActionErrors',
  'drainTimeoutSeconds', 'autoReload', 'log', 'logger', 'http', 'grpc', 'executor',
] satisfies (keyof SluiceConfig)[]);

/** A relative file path (`./x.ts`, `actions.ts`), as opposed to an absolute one or a package name. */
function isRelative(path: string): boolean {
  return !isAbsolute(path) && (path.startsWith('.') || /\.[cm]?[jt]s$/.test(path));
}
