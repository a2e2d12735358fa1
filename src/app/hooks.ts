/**
 * Lifecycle hooks of an application. Every hook takes one object, so fields can be added without
 * breaking anyone; every hook may be sync or async (async ones are awaited on every path).
 *
 * Pairing rule: each post hook fires exactly once for every pre hook that was called, even when
 * that pre hook threw, the action failed, the consumer stopped reading, or the container was
 * dropped. Finish order is always `postStreamItem`… → `postEndStream` → `postRunStep` →
 * `postExecuteCall`.
 * @module
 */

import type { Run } from '../runtime/run.ts';
import type { Inputs } from './action.ts';
import type { State } from './state.ts';

/** How a step ended. `interrupted`: cancelled, and committed with what it produced. */
export type StepStatus = 'completed' | 'interrupted' | 'failed';

/** The public call a hook is about. */
export type ExecuteMethod = 'step' | 'iterate' | 'run' | 'streamResult' | 'streamIterate';

interface AppFields {
  appId: string;
  partitionKey: string;
}

interface StepFields extends AppFields {
  action: string;
  sequenceId: number;
  /** The step's run (its events are what transports serve). */
  run: Run;
}

/** Before a public call (`step`, `run`, `streamResult`, …) does anything. */
export interface PreExecuteCallEvent extends AppFields {
  method: ExecuteMethod;
  state: State;
}

/** After a public call's last step ended (for `streamResult`, when the streamed step ended). */
export interface PostExecuteCallEvent extends AppFields {
  method: ExecuteMethod;
  state: State;
  /** Why the call failed, if it did (the real error, not a wrapper). */
  error?: unknown;
}

/** Before a step's action runs. `inputs` are those the action gets (bound inputs applied). */
export interface PreRunStepEvent extends StepFields {
  state: State;
  inputs: Inputs;
}

/** Stream statistics of a step whose action streams. Times are epoch milliseconds (fractional). */
export interface StreamStats {
  startedAt: number;
  /** When the first intermediate item was produced; null when there was none. */
  firstItemAt: number | null;
  itemCount: number;
  endedAt: number;
}

/** After a step was committed (or failed). */
export interface PostRunStepEvent extends StepFields {
  status: StepStatus;
  /** The committed state: the new one, or the one before the step when it failed. */
  state: State;
  /** The step's result (for `interrupted`, the partial result); undefined when it failed. */
  result: unknown;
  /** Failed: the real error. Interrupted: the cancel reason. */
  error?: unknown;
  inputs: Inputs;
  startedAt: number;
  endedAt: number;
  /** Present when the action streams (also when it ran through as an ordinary step). */
  stream?: StreamStats;
}

/** After `streamResult` / `streamIterate` started a streamed step (before its generator runs). */
export interface PreStartStreamEvent extends StepFields {}

/** After an intermediate item was handed to the consumer (never for the final item). */
export interface PostStreamItemEvent extends StepFields {
  item: unknown;
  /** 0-based, in every form. */
  index: number;
  streamStartedAt: number;
  firstItemAt: number;
}

/** After a streamed step ended, however it ended. */
export interface PostEndStreamEvent extends StepFields {
  status: StepStatus;
  error?: unknown;
  stream: StreamStats;
}

type HookFn<E> = (event: E) => void | Promise<void>;

/**
 * A set of lifecycle hooks; implement any subset. Trackers are hooks too.
 *
 * @example
 * const log: LifecycleHooks = {
 *   postRunStep: ({ action, sequenceId, status }) => console.log(sequenceId, action, status),
 * };
 * builder.withHooks(log);
 */
export interface LifecycleHooks {
  preExecuteCall?: HookFn<PreExecuteCallEvent>;
  postExecuteCall?: HookFn<PostExecuteCallEvent>;
  preRunStep?: HookFn<PreRunStepEvent>;
  postRunStep?: HookFn<PostRunStepEvent>;
  preStartStream?: HookFn<PreStartStreamEvent>;
  postStreamItem?: HookFn<PostStreamItemEvent>;
  postEndStream?: HookFn<PostEndStreamEvent>;
}

/** @internal The hooks of each kind, bound, so the hot path only checks an array's length. */
export class HookSet {
  readonly preExecuteCall: HookFn<PreExecuteCallEvent>[] = [];
  readonly postExecuteCall: HookFn<PostExecuteCallEvent>[] = [];
  readonly preRunStep: HookFn<PreRunStepEvent>[] = [];
  readonly postRunStep: HookFn<PostRunStepEvent>[] = [];
  readonly preStartStream: HookFn<PreStartStreamEvent>[] = [];
  readonly postStreamItem: HookFn<PostStreamItemEvent>[] = [];
  readonly postEndStream: HookFn<PostEndStreamEvent>[] = [];

  constructor(hooks: readonly LifecycleHooks[]) {
    for (const h of hooks) {
      const add = <K extends keyof LifecycleHooks>(key: K): void => {
        const fn = h[key];
        if (typeof fn === 'function') (this[key] as unknown[]).push(fn.bind(h));
      };
      add('preExecuteCall');
      add('postExecuteCall');
      add('preRunStep');
      add('postRunStep');
      add('preStartStream');
      add('postStreamItem');
      add('postEndStream');
    }
  }
}

/** Calls hooks in order, awaiting async ones; the first error is thrown after all ran. */
export async function callHooks<E>(hooks: readonly HookFn<E>[], event: E): Promise<void> {
  let failure: { error: unknown } | null = null;
  for (const hook of hooks) {
    try {
      const out = hook(event);
      if (out !== undefined && typeof (out as Promise<void>).then === 'function') await out;
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure !== null) throw failure.error;
}
