/**
 * `sluice/client`: a small typed client of a Sluice server for browsers and Node. It starts runs
 * over SSE or WebSocket, hands out their events as an async iterable, resumes a dropped connection
 * from the last seq (back-off with jitter, bounded attempts), and acks, cancels and aborts.
 * Only web globals (`fetch`, `WebSocket`, `AbortSignal`): no Node built-ins.
 * @module
 */

export { SluiceClient, type ClientOptions, type RunOptions } from './client.ts';
export { ClientRun, type ReconnectInfo, type Transport } from './run.ts';
export { readSseEvents, SseEventDecoder, toEvent, type ReadSseOptions } from './sse.ts';
export type { RetryOptions } from './backoff.ts';
export type { WebSocketConstructor } from './websocket.ts';
export { SluiceError, type ErrorCode } from '../protocol/errors.ts';
export type * from '../protocol/events.ts';
