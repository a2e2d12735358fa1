/**
 * The nesting-depth limit on client input. `JSON.parse` accepts any depth, but much of what
 * follows (`JSON.stringify`, schema validation, structured clone, storage drivers) recurses and
 * throws `RangeError` on deep values — a 500 at best, a stored value that cannot be read back at
 * worst. Every transport checks what it parsed once, here, and answers 400 naming the limit.
 * @module
 */

import { SluiceError } from './errors.ts';

/** Default deepest nesting of objects and arrays accepted from clients. */
export const DEFAULT_MAX_DEPTH = 64;

/**
 * Depth of the deepest nesting in `value` (a scalar is 0, `{}` and `[]` are 1), or `limit + 1` as
 * soon as the value is known to be deeper than `limit`. Iterative: never overflows the stack.
 */
export function nestingDepth(value: unknown, limit: number = Infinity): number {
  if (typeof value !== 'object' || value === null) return 0;
  const stack: unknown[] = [value];
  const depths: number[] = [1];
  let deepest = 0;
  while (stack.length > 0) {
    const node = stack.pop() as object;
    const depth = depths.pop()!;
    if (depth > deepest) {
      deepest = depth;
      if (deepest > limit) return deepest;
    }
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const child: unknown = node[i];
        if (typeof child === 'object' && child !== null) {
          stack.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      for (const key in node) {
        const child: unknown = (node as Record<string, unknown>)[key];
        if (typeof child === 'object' && child !== null) {
          stack.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return deepest;
}

/**
 * Throws `invalid_argument` (reason `too_deep`) when `value` nests deeper than `maxDepth`; `what`
 * names the input in the message ("Request body", "WebSocket message").
 */
export function checkDepth(value: unknown, maxDepth: number = DEFAULT_MAX_DEPTH, what = 'Input'): void {
  if (nestingDepth(value, maxDepth) > maxDepth) {
    throw new SluiceError('invalid_argument', `${what} is nested too deeply: the limit is ${maxDepth} levels of objects and arrays`, {
      details: { reason: 'too_deep', maxDepth },
    });
  }
}
