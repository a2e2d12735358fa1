/**
 * Transitions between actions and the conditions that choose them.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { State, StateData } from './state.ts';

/** A named predicate on the state that guards a transition. */
export interface Condition {
  /** Shown in errors and graph descriptions. */
  readonly name: string;
  /** True for the unconditional (default) transition. */
  readonly isDefault: boolean;
  evaluate(state: State): boolean;
}

/** Matches when every key equals (`Object.is`) the value given. */
export function when(values: StateData): Condition {
  if (typeof values !== 'object' || values === null) throw new SluiceError('invalid_argument', 'when: expected an object of key → value');
  const entries = Object.entries(values);
  return Object.freeze({
    name: entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', '),
    isDefault: false,
    evaluate: (state: State) => entries.every(([k, v]) => Object.is(state.get(k), v)),
  });
}

/**
 * Matches when `predicate(state)` is true (Burr's `expr("count < 10")`, as a function).
 *
 * @example
 * ['counter', 'counter', expr((s) => s.get('count') < 10, 'count < 10')]
 */
export function expr<S extends StateData = StateData>(predicate: (state: State<S>) => boolean, name?: string): Condition {
  if (typeof predicate !== 'function') throw new SluiceError('invalid_argument', 'expr: expected a predicate function');
  return Object.freeze({
    name: name ?? (predicate.toString().replace(/\s+/g, ' ').slice(0, 80) || 'expr'),
    isDefault: false,
    evaluate: (state: State) => predicate(state as State<S>) === true,
  });
}

/** Negates a condition. */
export function not(condition: Condition): Condition {
  return Object.freeze({
    name: `not(${condition.name})`,
    isDefault: false,
    evaluate: (state: State) => !condition.evaluate(state),
  });
}

/** The unconditional transition: taken when no conditional one from the same action matches. */
export const DEFAULT: Condition = Object.freeze({ name: 'default', isDefault: true, evaluate: () => true });

/**
 * A transition: `[from, to]` (default), or `[from, to, condition]`. `from` may list several
 * actions; the condition may be a {@link Condition} or a plain predicate.
 */
export type Transition =
  | readonly [from: string | readonly string[], to: string]
  | readonly [from: string | readonly string[], to: string, condition: Condition | ((state: State) => boolean)];

/** @internal A transition with one source and a normalised condition. */
export interface Edge {
  from: string;
  to: string;
  condition: Condition;
}

/** @internal Expands and validates transitions against the known actions. */
export function normalizeTransitions(transitions: readonly Transition[], actions: ReadonlySet<string>): Map<string, Edge[]> {
  const byFrom = new Map<string, Edge[]>();
  for (const transition of transitions) {
    if (!Array.isArray(transition) || transition.length < 2 || transition.length > 3) {
      throw new SluiceError('invalid_argument', 'withTransitions: each transition is [from, to] or [from, to, condition]');
    }
    const [from, to, cond] = transition as [string | string[], string, Condition | ((s: State) => boolean) | undefined];
    const condition = cond === undefined ? DEFAULT : typeof cond === 'function' ? expr(cond) : cond;
    if (typeof condition.evaluate !== 'function') {
      throw new SluiceError('invalid_argument', `withTransitions: the condition of ${String(from)} → ${to} is not a condition`);
    }
    if (!actions.has(to)) throw new SluiceError('invalid_argument', `withTransitions: unknown action '${to}' (target of a transition)`);
    for (const source of typeof from === 'string' ? [from] : from) {
      if (!actions.has(source)) throw new SluiceError('invalid_argument', `withTransitions: unknown action '${source}' (source of a transition)`);
      let edges = byFrom.get(source);
      if (edges === undefined) byFrom.set(source, (edges = []));
      edges.push({ from: source, to, condition });
    }
  }
  // Conditional edges are tried in declaration order, defaults last, whatever order they came in.
  for (const [source, edges] of byFrom) {
    byFrom.set(source, [...edges.filter((e) => !e.condition.isDefault), ...edges.filter((e) => e.condition.isDefault)]);
  }
  return byFrom;
}

/** @internal The action after `from` for this state, or null when no transition matches. */
export function nextFrom(edges: Map<string, Edge[]>, from: string, state: State): string | null {
  const candidates = edges.get(from);
  if (candidates === undefined) return null;
  for (const edge of candidates) if (edge.condition.evaluate(state)) return edge.to;
  return null;
}
