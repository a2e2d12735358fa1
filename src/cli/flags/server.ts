/**
 * The flags of what `sluice serve` mounts and of the HTTP transport's production settings.
 * @module
 */

import type { FlagSpec } from './spec.ts';

/** Routes (`/api/chat`, `/apps`), error exposure, and HTTP limits and keep-alives. */
export const serverFlags: readonly FlagSpec[] = [
  { name: 'chat-action', type: 'string', value: '<name>', env: 'SLUICE_CHAT_ACTION', default: 'action_assistant or action_chat if exported', help: 'the action answering the AI SDK chat route /api/chat', commands: ['serve'] },
  { name: 'chat-cancel-on-disconnect', type: 'boolean', env: 'SLUICE_CHAT_CANCEL_ON_DISCONNECT', help: 'a dropped /api/chat request cancels its answer (default: it goes on and GET /api/chat/:id/stream resumes it)', commands: ['serve', 'dev'] },
  { name: 'apps', type: 'string', value: '<module>', env: 'SLUICE_APPS', help: "applications under /apps/:appId/… from a module exporting 'apps' (an AppRegistry, or a function returning one)", commands: ['serve'] },
  { name: 'expose-action-errors', type: 'boolean', env: 'SLUICE_EXPOSE_ACTION_ERRORS', default: "the executor's", help: "put an action's own error message in public error events (env: true or false)", commands: ['serve', 'dev'] },
  { name: 'body-limit', type: 'string', value: '<bytes>', env: 'SLUICE_BODY_LIMIT', default: '1mb', help: 'largest request body (e.g. 262144, 256kb, 2mb); larger ones get 413', commands: ['serve', 'dev'] },
  { name: 'sse-ping-interval', type: 'string', value: '<seconds>', env: 'SLUICE_SSE_PING_INTERVAL', default: '15', help: 'idle SSE streams get a ": ping" comment this often', commands: ['serve', 'dev'] },
  { name: 'sse-max-duration', type: 'string', value: '<seconds>', env: 'SLUICE_SSE_MAX_DURATION', default: 'no limit', help: 'end an SSE response after this long (the run goes on; clients resume)', commands: ['serve', 'dev'] },
  { name: 'ws-heartbeat', type: 'string', value: '<seconds>', env: 'SLUICE_WS_HEARTBEAT', default: '30', help: 'WebSocket ping interval; a socket that missed a pong is closed', commands: ['serve', 'dev'] },
];
