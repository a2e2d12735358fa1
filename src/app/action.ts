/**
 * Application actions: a step of the state machine. Three forms — a plain function
 * ({@link action}), a generator function ({@link streamingAction}) and a class
 * ({@link StreamingAction}) — all normalised to one internal spec.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { Dispatcher } from '../runtime/dispatcher.ts';
import type { Run } from '../runtime/run.ts';
import type { State, StateData } from './state.ts';

/** Inputs given to a step (`run({ inputs })`, `bind(…)`). */
export type Inputs = Record<string, unknown>;

/** What a step's code gets besides its state and inputs. */
export interface ActionContext {
  /**
   * Aborts when the step is cancelled: the consumer stopped reading, `application.cancel()`, the
   * call's signal, or the step's {@link Run} was cancelled by a transport. After it aborts the step
   * has the grace period to yield (or return) its final item; pass it to model and tool calls.
   */
  readonly signal: AbortSignal;
  /**
   * Sends output to the step's run beside the yielded items: `status()`, `streamChunk()`,
   * `utterMessage()`, tool events. Await what it returns (backpressure).
   */
  readonly dispatcher: Dispatcher;
  /** The step's run (its events are what transports serve). */
  readonly run: Run;
  readonly appId: string;
  readonly partitionKey: string;
  readonly sequenceId: number;
  readonly actionName: string;
}

/** What was produced before a step was cancelled, for actions that build a partial result. */
export interface PartialOutput<I = unknown> {
  /** The text of the items delivered before the cancel (strings, `{ text }` and chunk items). */
  text: string;
  /** How many intermediate items were delivered before the cancel. */
  itemCount: number;
  /** The items themselves; kept only when the action defines `onInterrupt` / `interrupted`. */
  items?: I[];
}

/**
 * The final item of a function-form streaming action, or the outcome of a plain action. The new
 * state's type is not checked statically (`State` is invariant in its data): at run time only the
 * declared `writes` are committed, and undeclared changes are rejected.
 */
export type Final<R> = readonly [result: R, state: State<any>];

type Bare = string | number | boolean | bigint | symbol | object | null | undefined;

/**
 * What a function-form streaming action yields: `[item, null]` (or a bare `item`) for each
 * intermediate item, and `[result, newState]` last. (Listing tuples here makes TypeScript infer
 * `yield [token, null]` as a tuple.)
 */
export type StreamYield = readonly [unknown, null] | readonly [unknown, State<any>] | Bare;

/** The intermediate item type of a yield type. */
export type ItemOf<Y> = Y extends readonly [infer I, null] ? I : Y extends readonly [unknown, State<any>] ? never : Y;

/** The final result type of a yield type. */
export type ResultOf<Y> = Y extends readonly [infer R, State<any>] ? R : never;

/** The generator a function-form streaming action returns (sync or async). */
export type StreamGenerator<Y extends StreamYield = StreamYield> =
  | AsyncGenerator<Y, void | Final<unknown>, undefined>
  | Generator<Y, void | Final<unknown>, undefined>;

/** Builds a result and a new state from what was produced before a cancel (function forms). */
export type InterruptHandler<I, R, S extends StateData = StateData> = (
  partial: PartialOutput<I>,
  state: State<S>,
  inputs: Inputs,
) => Final<R> | Promise<Final<R>>;

/** Declared keys of an action. */
export interface ActionSpec<I = unknown, R = unknown, S extends StateData = StateData> {
  /** Keys the action reads: it is handed a state holding only these. */
  reads: readonly string[];
  /** Keys the action writes: each must be in its new state; only these are committed. */
  writes: readonly string[];
  /** Tags, usable in halt lists as `@tag:<name>`. */
  tags?: readonly string[];
  /**
   * Builds the committed result and state when the step was cancelled and the action produced no
   * final item within the grace period (or threw an abort). Default: the result is the
   * {@link PartialOutput} and the state is left as it was.
   */
  onInterrupt?: InterruptHandler<I, R, S>;
}

/** @internal The normalised form every action has. */
export interface NormalizedAction {
  readonly kind: 'plain' | 'stream' | 'class';
  readonly reads: readonly string[];
  readonly writes: readonly string[];
  readonly tags: readonly string[];
  readonly bound: Inputs;
  readonly plain?: (state: State, inputs: Inputs, ctx: ActionContext) => Final<unknown> | Promise<Final<unknown>>;
  readonly stream?: (state: State, inputs: Inputs, ctx: ActionContext) => Iterator<unknown, unknown> | AsyncIterator<unknown, unknown>;
  readonly update?: (result: unknown, state: State) => State | Promise<State>;
  readonly onInterrupt?: InterruptHandler<unknown, unknown>;
  /** Class form: builds a result from partial output (then `update` makes the state). */
  readonly interrupted?: (partial: PartialOutput, state: State) => unknown;
}

const SPEC: unique symbol = Symbol('sluice.app.action');

/** Any action an application accepts. */
export interface Action<I = unknown, R = unknown> {
  readonly reads: readonly string[];
  readonly writes: readonly string[];
  readonly tags: readonly string[];
  /** True for streaming forms (they can be the target of `streamResult`). */
  readonly streaming: boolean;
  /** A copy of this action with some inputs fixed (they win over call-time inputs). */
  bind(inputs: Inputs): Action<I, R>;
  /** @internal */
  readonly [SPEC]: NormalizedAction;
  /** @internal Phantom types of the items and the result. */
  readonly __types?: { item: I; result: R };
}

function checkKeys(where: string, name: string, keys: unknown): readonly string[] {
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string' || k === '')) {
    throw new SluiceError('invalid_argument', `${where}: '${name}' must be an array of non-empty strings`);
  }
  return Object.freeze(keys.slice());
}

function makeAction<I, R>(spec: NormalizedAction): Action<I, R> {
  const action: Action<I, R> = {
    reads: spec.reads,
    writes: spec.writes,
    tags: spec.tags,
    streaming: spec.kind !== 'plain',
    bind(inputs: Inputs): Action<I, R> {
      return makeAction<I, R>({ ...spec, bound: Object.freeze({ ...spec.bound, ...inputs }) });
    },
    [SPEC]: spec,
  };
  return Object.freeze(action);
}

function normalizeSpec(where: string, spec: ActionSpec<never, never, never>): Pick<NormalizedAction, 'reads' | 'writes' | 'tags'> {
  if (typeof spec !== 'object' || spec === null) throw new SluiceError('invalid_argument', `${where}: expected { reads, writes }`);
  return {
    reads: checkKeys(where, 'reads', spec.reads),
    writes: checkKeys(where, 'writes', spec.writes),
    tags: checkKeys(where, 'tags', spec.tags ?? []),
  };
}

/**
 * A non-streaming action: a function of the state (holding only `reads`) and the inputs that
 * returns `[result, newState]`.
 *
 * @example
 * const increment = action({ reads: ['count'], writes: ['count'] }, (state) => {
 *   const count = state.get('count') + 1;
 *   return [{ count }, state.update({ count })];
 * });
 */
export function action<R = unknown, S extends StateData = StateData>(
  spec: ActionSpec<never, R, S>,
  fn: (state: State<S>, inputs: Inputs, ctx: ActionContext) => Final<R> | Promise<Final<R>>,
): Action<never, R> {
  if (typeof fn !== 'function') throw new SluiceError('invalid_argument', 'action: expected a function');
  return makeAction({
    kind: 'plain',
    ...normalizeSpec('action', spec as ActionSpec<never, never, never>),
    bound: Object.freeze({}),
    plain: fn as unknown as NormalizedAction['plain'],
    onInterrupt: spec.onInterrupt as InterruptHandler<unknown, unknown> | undefined,
  });
}

/**
 * A streaming action: a generator function (sync or async) that yields `[item, null]` (or just
 * `item`) for each intermediate item and `[result, newState]` last. Items reach the consumer and
 * the step's {@link Run} as they are yielded — no look-ahead. `ctx.signal` aborts when the
 * consumer stops; the generator may then still yield a final item within the grace period.
 *
 * @example
 * const chat = streamingAction({ reads: ['prompt'], writes: ['response'] }, async function* (state, _inputs, ctx) {
 *   let text = '';
 *   for await (const token of model.stream(state.get('prompt'), { signal: ctx.signal })) {
 *     text += token;
 *     yield [token, null];
 *   }
 *   yield [{ text }, state.update({ response: text })];
 * });
 */
export function streamingAction<Y extends StreamYield, S extends StateData = StateData>(
  spec: ActionSpec<ItemOf<Y>, ResultOf<Y>, S>,
  fn: (state: State<S>, inputs: Inputs, ctx: ActionContext) => StreamGenerator<Y>,
): Action<ItemOf<Y>, ResultOf<Y>> {
  if (typeof fn !== 'function') throw new SluiceError('invalid_argument', 'streamingAction: expected a generator function');
  return makeAction({
    kind: 'stream',
    ...normalizeSpec('streamingAction', spec as unknown as ActionSpec<never, never, never>),
    bound: Object.freeze({}),
    stream: fn as unknown as NormalizedAction['stream'],
    onInterrupt: spec.onInterrupt as InterruptHandler<unknown, unknown> | undefined,
  });
}

/**
 * The class form of a streaming action. `streamRun` yields the intermediate items and *returns*
 * the final result (a JavaScript generator can, so no item is held back to find the last one);
 * `update` turns the result into the new state.
 *
 * @example
 * class Echo extends StreamingAction<string, { text: string }> {
 *   readonly reads = ['prompt'];
 *   readonly writes = ['response'];
 *   async *streamRun(state: State) {
 *     let text = '';
 *     for (const c of String(state.get('prompt'))) { text += c; yield c; }
 *     return { text };
 *   }
 *   update(result: { text: string }, state: State) { return state.update({ response: result.text }); }
 * }
 */
export abstract class StreamingAction<I = unknown, R = unknown, S extends StateData = StateData> implements Action<I, R> {
  abstract readonly reads: readonly string[];
  abstract readonly writes: readonly string[];
  readonly tags: readonly string[] = [];
  readonly streaming = true;

  /** Yields the intermediate items; returns the final result. */
  abstract streamRun(state: State<S>, inputs: Inputs, ctx: ActionContext): AsyncGenerator<I, R, undefined> | Generator<I, R, undefined>;

  /** The new state for a final result (only `writes` are committed). */
  abstract update(result: R, state: State<S>): State<any> | Promise<State<any>>;

  /**
   * Optional: the result to commit when the step was cancelled and `streamRun` returned nothing
   * within the grace period. It then goes through `update`. Without it the state is left as it was.
   */
  interrupted?(partial: PartialOutput<I>, state: State<S>): R;

  bind(inputs: Inputs): Action<I, R> {
    return makeAction<I, R>({ ...this[SPEC], bound: Object.freeze({ ...inputs }) });
  }

  get [SPEC](): NormalizedAction {
    return {
      kind: 'class',
      reads: checkKeys('StreamingAction', 'reads', this.reads),
      writes: checkKeys('StreamingAction', 'writes', this.writes),
      tags: checkKeys('StreamingAction', 'tags', this.tags),
      bound: Object.freeze({}),
      stream: (state, inputs, ctx) => this.streamRun(state as State<S>, inputs, ctx),
      update: (result, state) => this.update(result as R, state as State<S>),
      interrupted:
        typeof this.interrupted === 'function'
          ? (partial, state) => (this.interrupted as NonNullable<this['interrupted']>)(partial as PartialOutput<I>, state as State<S>)
          : undefined,
    };
  }
}

/** @internal The normalised spec of an action; throws for anything that is not one. */
export function specOf(name: string, value: unknown): NormalizedAction {
  const spec = typeof value === 'object' && value !== null ? (value as { [SPEC]?: unknown })[SPEC] : undefined;
  if (typeof spec !== 'object' || spec === null) {
    throw new SluiceError(
      'invalid_argument',
      `Action '${name}' is not an action: make it with action(), streamingAction() or a StreamingAction subclass`,
    );
  }
  return spec as NormalizedAction;
}
