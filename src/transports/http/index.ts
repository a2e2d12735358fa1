/**
 * The HTTP transport: Rasa's action-server protocol, Server-Sent Events, control routes and a
 * WebSocket endpoint (`/ws`: a run's events, or with `view: 'sentences'` its sentences and end
 * events for voice gateways), on Fastify.
 * @module
 */

export { createHttpServer } from './server.ts';
export type { HttpServerOptions } from './server.ts';
export { DEFAULT_BODY_LIMIT } from './options.ts';
export type { HttpLimitsOptions, SseOptions, WsOptions } from './options.ts';
export { WS_POLICY_VIOLATION, WsGuard, resolveWsGuardOptions } from '../../channels/ws-guard.ts';
export type { WsGuardOptions } from '../../channels/ws-guard.ts';
export { DEFAULT_STALL_TIMEOUT_MS, SSE_HEADERS, SseWriter, TOO_SLOW_FRAME, formatSseEvent } from '../../channels/sse-writer.ts';
export type { SseCloseReason, SseWriterOptions } from '../../channels/sse-writer.ts';
export { DETACH_HEADER, RUN_ID_HEADER, wantsEventStream } from './sse-routes.ts';
export { STATUS_DOMAIN_MISSING, rasaErrorReply } from './errors.ts';
export type { WsSentenceMessage } from './ws-session.ts';
export { ACTION_HEADER, SEQUENCE_ID_HEADER, appRoutes } from './app-routes.ts';
export type { AppRoutesOptions } from './app-routes.ts';
export { Authenticator, keyFingerprint } from '../auth.ts';
export type { ApiKey, AuthOptions, AuthRequest, Authenticate, Principal } from '../auth.ts';
export { loadTlsFiles } from '../tls.ts';
export type { TlsFiles, TlsOptions } from '../tls.ts';
export { mayAccess, ownedRun, ownerOf, principalOf } from '../../channels/principal.ts';
export { isJsonType, originAllowed } from './cross-site.ts';
