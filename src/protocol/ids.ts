/**
 * Identifiers used on the wire.
 * @module
 */

import { randomUUID } from 'node:crypto';

/** A new response id: 32 lowercase hex characters, like Python's `uuid4().hex` (Rasa-compatible). */
export function newResponseId(): string {
  return randomUUID().replaceAll('-', '');
}

/** A new run id: a UUID. */
export function newRunId(): string {
  return randomUUID();
}

/** True when `value` has the shape of a response id. */
export function isResponseId(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{32}$/.test(value);
}
