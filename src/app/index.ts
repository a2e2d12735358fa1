/**
 * `sluice/app`: the Application — a state machine whose steps stream, with exactly-once state
 * commits, persistence and tracking (Burr's streaming actions, without their sharp edges).
 * @module
 */

export { State } from './state.ts';
export type { ArrayKeys, Merge, NumberKeys, StateData } from './state.ts';
export { action, streamingAction, StreamingAction } from './action.ts';
export type {
  Action,
  ActionContext,
  ActionSpec,
  Final,
  Inputs,
  InterruptHandler,
  ItemOf,
  PartialOutput,
  ResultOf,
  StreamGenerator,
  StreamYield,
} from './action.ts';
export { DEFAULT, expr, not, when } from './transitions.ts';
export type { Condition, Transition } from './transitions.ts';
export type {
  ExecuteMethod,
  LifecycleHooks,
  PostEndStreamEvent,
  PostExecuteCallEvent,
  PostRunStepEvent,
  PostStreamItemEvent,
  PreExecuteCallEvent,
  PreRunStepEvent,
  PreStartStreamEvent,
  StepStatus,
  StreamStats,
} from './hooks.ts';
export { StreamingResultContainer } from './container.ts';
export type { ContainerStatus } from './container.ts';
export { Application } from './application.ts';
export type { CallOptions, HaltOptions, StepResult, StreamResultOptions } from './application.ts';
export { ApplicationBuilder } from './builder.ts';
export type { ApplicationOptions, InitializeOptions } from './builder.ts';
export type { StepRecord, RunBufferOptions } from './step.ts';
export { duplicateStep, MemoryPersister, STEP_STATUSES } from './persistence.ts';
export type { LoadQuery, PersistedStep, Persister } from './persistence.ts';
export { MemoryTracker, trackedStepOf } from './tracking.ts';
export type { ListRunsOptions, StepTracker, TrackedApp, TrackedStep } from './tracking.ts';
export { CachedAppRegistry } from './registry.ts';
export type { AppFactory, AppRegistry, CachedAppRegistryOptions } from './registry.ts';
export type { CommittedStep, LockView, StepHolder, StepLease, StepLocks } from './step-locks.ts';
// The runtime's item helpers, so authors can yield status updates and rich chunks.
export { chunk, endStream, message, status } from '../runtime/action.ts';
