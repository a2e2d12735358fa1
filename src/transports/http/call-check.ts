/**
 * Validation of an action call before a stream is opened. Once SSE headers (or a WebSocket
 * `started`) are sent, a failure can only be an `error` event; checking first lets a malformed
 * call get a proper 4xx reply naming the problem.
 * @module
 */

import { SluiceError, clipped } from '../../protocol/errors.ts';
import { parseActionCall } from '../../protocol/schemas.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';

/**
 * Checks a call the way the executor will, in the same order as Rasa (a call naming no action is
 * valid and answered with a skipped result; the action is looked up before the tracker is read).
 * Throws the executor's own {@link SluiceError}s (`invalid_body`, `action_not_found`, and
 * `unavailable` while the server drains). A missing
 * domain can only be told by running the call, so it still arrives as an `error` event.
 */
export function checkActionCall(executor: ActionExecutor, call: unknown): void {
  if (!executor.lifecycle.accepting) throw executor.lifecycle.refusal();
  if (typeof call !== 'object' || call === null || Array.isArray(call)) {
    throw new SluiceError('invalid_argument', 'Invalid action call: the body must be a JSON object', {
      details: { reason: 'invalid_body' },
    });
  }
  const next = (call as Record<string, unknown>).next_action;
  if (next === undefined || next === null || next === '') return;
  if (typeof next !== 'string') {
    throw new SluiceError('invalid_argument', 'Invalid action call: next_action: expected a string', {
      details: { reason: 'invalid_body' },
    });
  }
  if (executor.getAction(next) === undefined) {
    throw new SluiceError('not_found', `No registered action found for name '${clipped(next)}'.`, {
      details: { reason: 'action_not_found', actionName: next },
    });
  }
  try {
    parseActionCall(call);
  } catch (error) {
    if (SluiceError.isInstance(error)) {
      throw new SluiceError(error.code, error.message, { details: { ...error.details, actionName: next } });
    }
    throw error;
  }
}
