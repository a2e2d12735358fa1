/**
 * `sluice/runtime`: runs, the dispatcher, action definitions and the executor.
 * @module
 */

export { Run } from './run.ts';
export type { RunOptions, RunState } from './run.ts';
export { Subscription } from './subscription.ts';
export type { SubscribeOptions } from './subscription.ts';
export { Dispatcher, buildMessage } from './dispatcher.ts';
export type { ChunkInput, DispatcherOptions, MessageInput, StreamObserver } from './dispatcher.ts';
export { actionRejected, chunk, defineAction, endStream, isActionDefinition, message, status } from './action.ts';
export type {
  ActionContext,
  ActionDefinition,
  ActionOutput,
  ActionStream,
  RunActionSpec,
  StreamActionSpec,
  StreamItem,
  TypedStreamItem,
} from './action.ts';
export { ActionExecutor } from './executor.ts';
export { Lifecycle, SHUTTING_DOWN } from './lifecycle.ts';
export type { EventSink, ExecuteOptions, ExecutorOptions, StartOptions } from './executor.ts';
export { LOCAL_RUNS } from './shared-runs.ts';
export type { ControlBus, ControlHandler, EventLog, SharedRuns } from './shared-runs.ts';
export { ReplicaRun } from './replica-run.ts';
export type { ReplicaSource } from './replica-run.ts';
export { StreamRegistry } from './stream-registry.ts';
export { WireMeter, WireMeters, traceHeadersOf } from './observer.ts';
export type { RunMark, RunObserver, RunStartInfo, RunWatch } from './observer.ts';
export { RunTracer, SPAN_ATTRIBUTES, TRACER_NAME } from './tracing.ts';
export type { RunTracerOptions } from './tracing.ts';
export { BARGE_IN_TIMEOUT_ENV, DEFAULT_BARGE_IN_TIMEOUT_SECONDS, resolveBargeInTimeout } from './barge-in.ts';
export { Tracker } from './tracker.ts';
export type { LatestMessage } from './tracker.ts';
export * from './rasa-events.ts';
export { createLogger, silentLogger } from './logger.ts';
export type { Logger } from './logger.ts';
