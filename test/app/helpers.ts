/**
 * Shared fixtures for the application tests: Burr's counter actions in each form, and a hook
 * recorder.
 */

import { setImmediate as tick } from 'node:timers/promises';
import {
  action,
  type Action,
  type ActionContext,
  type Inputs,
  type LifecycleHooks,
  State,
  StreamingAction,
  streamingAction,
} from '../../src/app/index.ts';

export type Mode = 'sync' | 'async';
export const MODES: readonly Mode[] = ['sync', 'async'];

type HookName = keyof Required<LifecycleHooks>;
const HOOK_NAMES: HookName[] = [
  'preExecuteCall',
  'postExecuteCall',
  'preRunStep',
  'postRunStep',
  'preStartStream',
  'postStreamItem',
  'postEndStream',
];

/** Records every hook call, in order. `async: true` makes each hook await a turn first. */
export class HookRecorder implements LifecycleHooks {
  readonly calls: { hook: HookName; event: Record<string, unknown> }[] = [];
  readonly async: boolean;
  preExecuteCall!: LifecycleHooks['preExecuteCall'];
  postExecuteCall!: LifecycleHooks['postExecuteCall'];
  preRunStep!: LifecycleHooks['preRunStep'];
  postRunStep!: LifecycleHooks['postRunStep'];
  preStartStream!: LifecycleHooks['preStartStream'];
  postStreamItem!: LifecycleHooks['postStreamItem'];
  postEndStream!: LifecycleHooks['postEndStream'];

  constructor(options: { async?: boolean } = {}) {
    this.async = options.async ?? false;
    for (const name of HOOK_NAMES) {
      (this as unknown as Record<string, unknown>)[name] = (event: Record<string, unknown>) => {
        if (!this.async) {
          this.calls.push({ hook: name, event });
          return undefined;
        }
        return tick().then(() => {
          this.calls.push({ hook: name, event });
        });
      };
    }
  }

  count(hook: HookName): number {
    return this.calls.filter((c) => c.hook === hook).length;
  }

  events(hook: HookName): Record<string, unknown>[] {
    return this.calls.filter((c) => c.hook === hook).map((c) => c.event);
  }

  sequenceIds(hook: HookName): number[] {
    return this.events(hook).map((e) => e.sequenceId as number);
  }

  /** Hook names in call order. */
  order(): string[] {
    return this.calls.map((c) => c.hook);
  }
}

/** Burr's streaming counter, function form: 10 items `{ count: c + i/10 }`, then `{ count: c + 1 }`. */
export function counterFn(mode: Mode): Action {
  const body = (state: State) => {
    const count = state.get('count') as number;
    return { count, next: count + 1 };
  };
  return mode === 'async'
    ? streamingAction({ reads: ['count', 'tracker'], writes: ['count', 'tracker'] }, async function* (state) {
        const { count, next } = body(state);
        for (let i = 0; i < 10; i++) yield [{ count: count + (i + 1) / 10 }, null];
        yield [{ count: next }, state.update({ count: next }).append('tracker', next)];
      })
    : streamingAction({ reads: ['count', 'tracker'], writes: ['count', 'tracker'] }, function* (state) {
        const { count, next } = body(state);
        for (let i = 0; i < 10; i++) yield [{ count: count + (i + 1) / 10 }, null];
        yield [{ count: next }, state.update({ count: next }).append('tracker', next)];
      });
}

/** Burr's streaming counter, class form. */
export class CounterClass extends StreamingAction<{ count: number }, { count: number }> {
  readonly reads = ['count', 'tracker'];
  readonly writes = ['count', 'tracker'];
  readonly mode: Mode;

  constructor(mode: Mode) {
    super();
    this.mode = mode;
  }

  streamRun(state: State): AsyncGenerator<{ count: number }, { count: number }> | Generator<{ count: number }, { count: number }> {
    const count = state.get('count') as number;
    if (this.mode === 'sync') {
      return (function* () {
        for (let i = 0; i < 10; i++) yield { count: count + (i + 1) / 10 };
        return { count: count + 1 };
      })();
    }
    return (async function* () {
      for (let i = 0; i < 10; i++) yield { count: count + (i + 1) / 10 };
      return { count: count + 1 };
    })();
  }

  update(result: { count: number }, state: State): State {
    return state.update({ count: result.count }).append('tracker', result.count);
  }
}

/** A non-streaming counter. */
export const counterPlain: Action = action({ reads: ['count'], writes: ['count'] }, (state) => {
  const count = (state.get('count') as number) + 1;
  return [{ count }, state.update({ count })];
});

/** Streams `text` one character at a time and writes it to `response`. */
export function spell(mode: Mode, options: { respectSignal?: boolean } = {}): Action {
  const fn = function* (state: State, inputs: Inputs, ctx: ActionContext) {
    const text = String(inputs.text ?? state.get('prompt') ?? 'hello');
    let out = '';
    for (const c of text) {
      if (options.respectSignal === true && ctx.signal.aborted) break;
      out += c;
      yield [c, null] as const;
    }
    yield [{ text: out }, state.update({ response: out })] as const;
  };
  if (mode === 'sync') return streamingAction({ reads: ['prompt'], writes: ['response'] }, fn);
  return streamingAction({ reads: ['prompt'], writes: ['response'] }, async function* (state, inputs, ctx) {
    for (const y of fn(state, inputs, ctx)) {
      await tick();
      yield y;
    }
  });
}

/** Collects a container's (or any async iterable's) items. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export { State };
