/**
 * Sluice: write a conversational-AI action once, stream its output to every consumer.
 *
 * This entry point holds what action authors and server builders use; each layer also has its
 * own subpath (`sluice/protocol`, `sluice/runtime`, …).
 * @module
 */

// Authoring actions
export {
  actionRejected,
  chunk,
  defineAction,
  endStream,
  message,
  status,
} from './runtime/action.ts';
export type { ActionContext, ActionDefinition, ActionOutput, StreamItem } from './runtime/action.ts';
export { Dispatcher } from './runtime/dispatcher.ts';
export type { ChunkInput, MessageInput } from './runtime/dispatcher.ts';
export { Tracker } from './runtime/tracker.ts';
export {
  activeLoop,
  allSlotsReset,
  botUttered,
  followupAction,
  restarted,
  slotSet,
  userUttered,
} from './runtime/rasa-events.ts';

// Running actions
export { ActionExecutor } from './runtime/executor.ts';
export type { EventSink, ExecuteOptions, ExecutorOptions, StartOptions } from './runtime/executor.ts';
export { Run } from './runtime/run.ts';
export type { RunOptions } from './runtime/run.ts';
export type { Subscription } from './runtime/subscription.ts';

// The event model and errors
export { SluiceError } from './protocol/errors.ts';
export type { ErrorCode } from './protocol/errors.ts';
export type { ActionResult, RasaEvent, RasaResponse, SluiceEvent } from './protocol/events.ts';

// Server configuration (sluice.config.ts)
export { defineConfig } from './cli/config.ts';
export type { LogConfig, SluiceConfig } from './cli/config.ts';
