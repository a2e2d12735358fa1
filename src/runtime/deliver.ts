/**
 * Hands an item a generator yields to a dispatcher: shared by generator actions and application steps.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { TypedStreamItem } from './action.ts';
import type { Dispatcher } from './dispatcher.ts';

/** Item types {@link deliverTyped} knows. */
export const TYPED_ITEM_TYPES: ReadonlySet<string> = new Set([
  'chunk',
  'status',
  'message',
  'stream-end',
  'tool-start',
  'tool-delta',
  'tool-call',
  'tool-result',
]);

/** Sends a typed item (`status(…)`, `chunk(…)`, `message(…)`, `endStream()`, tool items); await the result. */
export function deliverTyped(dispatcher: Dispatcher, item: TypedStreamItem): Promise<void> | undefined {
  switch (item.type) {
    case 'chunk':
      return dispatcher.streamChunk(item.chunk);
    case 'status':
      return dispatcher.status(item.text);
    case 'message':
      return dispatcher.utterMessage(item.message);
    case 'stream-end':
      return dispatcher.streamEnd();
    case 'tool-start':
      return dispatcher.toolStart(item.toolCallId, item.name);
    case 'tool-delta':
      return dispatcher.toolDelta(item.toolCallId, item.argsDelta);
    case 'tool-call':
      return dispatcher.toolCall(item.toolCallId, item.name, item.args);
    case 'tool-result':
      return dispatcher.toolResult(item.toolCallId, item.name, item);
    default:
      throw new SluiceError(
        'invalid_argument',
        `Action '${dispatcher.actionName}' yielded an item of unknown type '${String((item as { type: unknown }).type)}'`,
        { details: { reason: 'invalid_output', actionName: dispatcher.actionName } },
      );
  }
}
