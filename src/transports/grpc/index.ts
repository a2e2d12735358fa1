/**
 * `sluice/transports/grpc`: Rasa's gRPC action protocol (`action_server_webhook.ActionService`),
 * Sluice's sentence service for voice gateways (`sluice.v1.VoiceService`: `StreamSentences` runs
 * an action and streams its sentences then its result, `FollowSentences` follows a run by id) and
 * gRPC health, served over h2c, or over TLS (mTLS) with `tls`; `auth` checks the `authorization`
 * metadata of every call but health.
 * @module
 */

export { createGrpcServer, DEFAULT_GRPC_PORT } from './server.ts';
export type { GrpcServer, GrpcServerOptions } from './server.ts';
export { HEALTH_SERVICE_NAME } from './action-service.ts';
export { requestToActionCall, statusForError } from './convert.ts';
export type { GrpcStatus } from './convert.ts';
export * as actionWebhookPb from './gen/action_webhook_pb.ts';
export * as healthPb from './gen/health_pb.ts';
export { RUN_ID_METADATA } from './voice-service.ts';
export * as sluiceVoicePb from './gen/sluice_voice_pb.ts';
export { ownerOfCall, principalKey } from './auth.ts';
export type { AuthOptions, Authenticate, AuthRequest, Principal } from '../auth.ts';
export { loadTlsFiles } from '../tls.ts';
export type { TlsFiles, TlsOptions } from '../tls.ts';
