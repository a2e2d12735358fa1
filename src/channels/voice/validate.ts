/**
 * Option checks shared by the voice channel: every invalid option fails where it is given, with
 * a `SluiceError('invalid_argument')` whose message names it.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';

/** A short printable form of a bad value for error messages. */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'bigint') return `${v}n`;
  try {
    return String(JSON.stringify(v) ?? v);
  } catch {
    return typeof v;
  }
}

export function invalidOption(who: string, name: string, expected: string, got: unknown): SluiceError {
  return new SluiceError('invalid_argument', `${who}: option '${name}' must be ${expected} (got ${show(got)})`);
}

/** Checks that `options` is a plain object with only known keys; returns it as a record. */
export function checkOptionsObject(who: string, options: unknown, known: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new SluiceError('invalid_argument', `${who}: options must be an object (got ${show(options)})`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new SluiceError('invalid_argument', `${who}: unknown option '${key}' (known: ${known.join(', ')})`);
    }
  }
  return options as Record<string, unknown>;
}

/** A number option ≥ `min` (integers only unless `integer` is false); `Infinity` when allowed. */
export function numberOption(
  who: string,
  name: string,
  v: unknown,
  fallback: number,
  { min = 0, integer = true, infinity = false, exclusiveMin = false }: { min?: number; integer?: boolean; infinity?: boolean; exclusiveMin?: boolean } = {},
): number {
  if (v === undefined) return fallback;
  const bound = `${exclusiveMin ? '>' : '≥'} ${min}`;
  const what = `${integer ? 'an integer' : 'a number'} ${bound}${infinity ? ' (or Infinity)' : ''}`;
  if (typeof v !== 'number' || Number.isNaN(v)) throw invalidOption(who, name, what, v);
  if (v === Infinity) {
    if (infinity) return v;
    throw invalidOption(who, name, what, v);
  }
  if ((integer && !Number.isInteger(v)) || !Number.isFinite(v) || v < min || (exclusiveMin && v === min)) {
    throw invalidOption(who, name, what, v);
  }
  return v;
}

export function booleanOption(who: string, name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw invalidOption(who, name, 'a boolean', v);
  return v;
}

export function stringOption(who: string, name: string, v: unknown, fallback: string, { empty = false } = {}): string {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || (!empty && v === '')) throw invalidOption(who, name, empty ? 'a string' : 'a non-empty string', v);
  return v;
}

export function functionOption<F>(who: string, name: string, v: unknown): F | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'function') throw invalidOption(who, name, 'a function', v);
  return v as F;
}

export function enumOption<T extends string>(who: string, name: string, v: unknown, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalidOption(who, name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v);
  }
  return v as T;
}

/** Sleeps `ms`, resolving early (never rejecting) when `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true || ms <= 0) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
