/**
 * The flags every server command has: where the actions are and where to listen; and the chat
 * client's.
 * @module
 */

import type { FlagSpec } from './spec.ts';

/** Listening and the actions module (`serve`, `dev`), and the chat client (`chat`). */
export const coreFlags: readonly FlagSpec[] = [
  { name: 'actions', type: 'string', value: '<module>', env: 'SLUICE_ACTIONS', help: 'the actions module (.ts or .js file, or a package name)', commands: ['serve'] },
  { name: 'port', short: 'p', type: 'string', value: '<port>', env: 'PORT', default: '5055', help: 'HTTP port (0: any free port)', commands: ['serve', 'dev'] },
  { name: 'grpc-port', type: 'string', value: '<port>', env: 'SLUICE_GRPC_PORT', default: '5056', help: 'gRPC port (0: any free port)', commands: ['serve', 'dev'] },
  { name: 'host', type: 'string', value: '<host>', env: 'SLUICE_HOST', default: '127.0.0.1', help: 'address to listen on', commands: ['serve', 'dev'] },
  { name: 'url', type: 'string', value: '<url>', env: 'SLUICE_URL', default: 'http://127.0.0.1:5055', help: 'the server to chat with', commands: ['chat'] },
  { name: 'action', type: 'string', value: '<name>', default: 'action_assistant', help: 'the action to call', commands: ['chat'] },
];
