/**
 * Immutable application state: every write returns a new {@link State}; the old one is unchanged.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';

/** The shape of a state's data: string keys to JSON-like values. */
export type StateData = Record<string, unknown>;

/** `T` with the keys of `U` replaced or added. */
export type Merge<T, U> = { [K in keyof T as K extends keyof U ? never : K]: T[K] } & U;

/** Keys of `T` whose value is an array (or untyped). */
export type ArrayKeys<T> = { [K in keyof T]-?: unknown extends T[K] ? K : NonNullable<T[K]> extends readonly unknown[] ? K : never }[keyof T] &
  string;

/** Keys of `T` whose value is a number (or untyped). */
export type NumberKeys<T> = { [K in keyof T]-?: unknown extends T[K] ? K : NonNullable<T[K]> extends number ? K : never }[keyof T] & string;

type ElementOf<A> = unknown extends A ? unknown : NonNullable<A> extends readonly (infer E)[] ? E : never;

/**
 * An immutable map of state keys to values. Writes (`update`, `append`, `merge`, …) return a new
 * State and share unchanged values with the old one: nothing is deep-copied, so appending to a long
 * chat history copies the array of references, never its messages. Values should be JSON (they are
 * persisted as JSON) and must not be mutated in place.
 *
 * @example
 * const s0 = State.of({ count: 0, history: [] as string[] });
 * const s1 = s0.update({ count: 1 }).append('history', 'hi');
 * s1.get('count'); // 1 — s0.get('count') is still 0
 */
export class State<T extends StateData = StateData> {
  readonly #data: Readonly<T>;

  constructor(data: T = {} as T) {
    this.#data = Object.freeze({ ...data });
  }

  /** A state holding `data` (its type is inferred). */
  static of<T extends StateData>(data: T): State<T> {
    return new State(data);
  }

  /** The value of `key` (undefined when absent). */
  get<K extends keyof T & string>(key: K): T[K] {
    return this.#data[key];
  }

  /** True when `key` is present. */
  has(key: string): boolean {
    return Object.hasOwn(this.#data, key);
  }

  /** The keys present. */
  keys(): (keyof T & string)[] {
    return Object.keys(this.#data) as (keyof T & string)[];
  }

  /** The frozen data object (shallow: do not mutate nested values). */
  get data(): Readonly<T> {
    return this.#data;
  }

  /** Sets keys (adds them if absent). */
  update<U extends Partial<T> & StateData>(values: U): State<Merge<T, U>> {
    return new State({ ...this.#data, ...values } as unknown as Merge<T, U>);
  }

  /** Pushes values onto the array at `key` (an absent key starts an empty array). */
  append<K extends ArrayKeys<T>>(key: K, ...values: ElementOf<T[K]>[]): State<T> {
    const current = this.#data[key] as unknown;
    if (current !== undefined && !Array.isArray(current)) {
      throw new SluiceError('invalid_argument', `State.append: '${key}' holds a ${typeof current}, not an array`);
    }
    const next = current === undefined ? values.slice() : (current as unknown[]).concat(values);
    return new State({ ...this.#data, [key]: next } as T);
  }

  /** Appends every value of an iterable to the array at `key`. */
  extend<K extends ArrayKeys<T>>(key: K, values: Iterable<ElementOf<T[K]>>): State<T> {
    return this.append(key, ...values);
  }

  /** Adds `by` (default 1) to the number at `key` (an absent key counts as 0). */
  increment<K extends NumberKeys<T>>(key: K, by = 1): State<T> {
    const current = (this.#data[key] as unknown) ?? 0;
    if (typeof current !== 'number') {
      throw new SluiceError('invalid_argument', `State.increment: '${key}' holds a ${typeof current}, not a number`);
    }
    return new State({ ...this.#data, [key]: current + by } as T);
  }

  /** Overlays the keys of `other` (a State or a plain object). */
  merge<U extends StateData>(other: State<U> | U): State<Merge<T, U>> {
    const values = other instanceof State ? other.#data : other;
    return new State({ ...this.#data, ...values } as unknown as Merge<T, U>);
  }

  /** A state with only `keys` (absent keys stay absent). */
  subset<K extends keyof T & string>(...keys: K[]): State<Pick<T, K>> {
    const out: StateData = {};
    for (const key of keys) if (Object.hasOwn(this.#data, key)) out[key] = this.#data[key];
    return new State(out as Pick<T, K>);
  }

  /** Shows the data in `console.log` / `util.inspect`. */
  [Symbol.for('nodejs.util.inspect.custom')](_depth: number, options: object, inspect: (value: unknown, options: object) => string): string {
    return `State ${inspect(this.#data, options)}`;
  }

  /** The data as a plain (unfrozen, shallow) copy, ready for `JSON.stringify`. */
  toJSON(): T {
    return { ...this.#data } as T;
  }
}
