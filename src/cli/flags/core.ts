/**
 * The flags every server command has — where the actions are, where to listen, logging, drain,
 * reload, the config module — and the chat client's. Rasa SDK's names where it has the setting
 * (`--actions`, `-p/--port`, `--auto-reload`, `-v/--verbose`, `--debug`, `--quiet`, `--log-file`).
 * @module
 */

import type { FlagSpec } from './spec.ts';

/** Listening, the actions module, logging and lifecycle (`serve`, `dev`), and the chat client (`chat`). */
export const coreFlags: readonly FlagSpec[] = [
  { name: 'actions', type: 'string', value: '<module>', env: 'SLUICE_ACTIONS', help: 'the actions module (.ts or .js file, or a package name)', commands: ['serve'] },
  { name: 'port', short: 'p', type: 'string', value: '<port>', env: 'PORT', default: '5055', help: 'HTTP port (0: any free port)', commands: ['serve', 'dev'] },
  { name: 'grpc-port', type: 'string', value: '<port>', env: 'SLUICE_GRPC_PORT', default: '5056', help: 'gRPC port (0: any free port)', commands: ['serve', 'dev'] },
  { name: 'grpc', type: 'boolean', help: 'Rasa SDK --grpc: -p/--port is then the gRPC port, and HTTP moves to --http-port', commands: ['serve', 'dev'] },
  { name: 'http-port', type: 'string', value: '<port>', env: 'SLUICE_HTTP_PORT', default: '5056', help: 'HTTP port with --grpc', commands: ['serve', 'dev'] },
  { name: 'host', type: 'string', value: '<host>', env: 'SLUICE_HOST', default: '127.0.0.1', help: 'address to listen on', commands: ['serve', 'dev'] },
  { name: 'config', type: 'string', value: '<file>', env: 'SLUICE_CONFIG', default: './sluice.config.{ts,js,mjs} if present', help: 'config module (export default defineConfig({…}))', commands: ['serve', 'dev'] },
  { name: 'auto-reload', type: 'boolean', env: 'SLUICE_AUTO_RELOAD', help: 'reload the actions module when its files change; open streams keep the old code', commands: ['serve', 'dev'] },
  { name: 'drain-timeout', type: 'string', value: '<seconds>', env: 'SLUICE_DRAIN_TIMEOUT', default: '10', help: 'on SIGTERM/SIGINT, time running runs get to finish before they are cancelled', commands: ['serve', 'dev'] },
  { name: 'log-level', type: 'string', value: '<level>', env: 'SLUICE_LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug, trace or silent', commands: ['serve', 'dev'] },
  { name: 'log-pretty', type: 'boolean', env: 'SLUICE_LOG_PRETTY', default: 'on a terminal', help: 'human-readable log lines instead of JSON', commands: ['serve', 'dev'] },
  { name: 'log-file', type: 'string', value: '<file>', env: 'SLUICE_LOG_FILE', help: 'also append the JSON log lines to this file (Rasa SDK --log-file)', commands: ['serve', 'dev'] },
  { name: 'verbose', short: 'v', type: 'boolean', help: 'log level info (Rasa SDK -v)', commands: ['serve', 'dev'] },
  { name: 'debug', type: 'boolean', help: 'log level debug (Rasa SDK -vv/--debug)', commands: ['serve', 'dev'] },
  { name: 'quiet', type: 'boolean', help: 'log level warn (Rasa SDK --quiet)', commands: ['serve', 'dev'] },
  { name: 'url', type: 'string', value: '<url>', env: 'SLUICE_URL', default: 'http://127.0.0.1:5055', help: 'the server to chat with', commands: ['chat'] },
  { name: 'action', type: 'string', value: '<name>', default: 'action_assistant', help: 'the action to call', commands: ['chat'] },
];
