/**
 * How a step's yielded intermediate items become Sluice events on its {@link Run}.
 *
 * | item | event |
 * |---|---|
 * | a string | `chunk { text }` of the step's streamed message (opened by the first chunk) |
 * | `{ text, …rich }` (no `type`) | `chunk` with its rich fields (`image`, `buttons`, `json` → `custom`, `citations`, …) |
 * | `status(…)`, `chunk(…)`, `message(…)`, `endStream()`, tool items (runtime helpers, `type` set) | that event |
 * | any other object, array, number or boolean | `chunk { custom }`: objects as they are, anything else as `{ value }` |
 * | `null` / `undefined` | nothing on the wire (the consumer still gets it) |
 *
 * A step opens at most one streamed message at a time; `endStream()` ends it and the next chunk
 * opens another. The run's `result` event carries the step's state update.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { TypedStreamItem } from '../runtime/action.ts';
import { buildMessage, type ChunkInput, type Dispatcher } from '../runtime/dispatcher.ts';
import type { Run } from '../runtime/run.ts';

const TYPED = new Set(['chunk', 'status', 'message', 'stream-end', 'tool-start', 'tool-delta', 'tool-call', 'tool-result']);

/** Sends one item to the step's run; returns a promise to await when readers lag. */
export function emitItem(dispatcher: Dispatcher, run: Run, item: unknown): Promise<void> | undefined {
  if (typeof item === 'string') return dispatcher.streamChunk({ text: item });
  if (item === null || item === undefined) return undefined;
  if (typeof item !== 'object') return dispatcher.streamChunk({ json: { value: item } });
  if (Array.isArray(item)) return dispatcher.streamChunk({ json: { value: item } });
  const type = (item as { type?: unknown }).type;
  if (type === undefined) {
    if (typeof (item as { text?: unknown }).text === 'string') return dispatcher.streamChunk(item as ChunkInput);
    return dispatcher.streamChunk({ json: item as Record<string, unknown> });
  }
  if (typeof type !== 'string' || !TYPED.has(type)) return dispatcher.streamChunk({ json: item as Record<string, unknown> });
  const typed = item as TypedStreamItem;
  switch (typed.type) {
    case 'chunk':
      return dispatcher.streamChunk(typed.chunk);
    case 'status':
      return dispatcher.status(typed.text);
    case 'message': {
      // What utterMessage() does, keeping emit's promise: utterMessage() returns nothing, so a burst
      // of messages would run past the high-water mark of a slow reader.
      if (!dispatcher.isStreaming) {
        dispatcher.utterMessage(typed.message);
        return undefined;
      }
      const built = buildMessage(typed.message);
      dispatcher.messages.push(built);
      return run.emit({ type: 'message', message: built });
    }
    case 'stream-end':
      return dispatcher.streamEnd();
    case 'tool-start':
      return dispatcher.toolStart(typed.toolCallId, typed.name);
    case 'tool-delta':
      return dispatcher.toolDelta(typed.toolCallId, typed.argsDelta);
    case 'tool-call':
      return dispatcher.toolCall(typed.toolCallId, typed.name, typed.args);
    case 'tool-result':
      return dispatcher.toolResult(typed.toolCallId, typed.name, typed);
    default:
      throw new SluiceError('internal', `unhandled item type ${String(type)}`);
  }
}

/** The text an item contributes to the step's partial output ('' for none). */
export function textOf(item: unknown): string {
  if (typeof item === 'string') return item;
  if (typeof item !== 'object' || item === null) return '';
  const type = (item as { type?: unknown }).type;
  if (type === undefined) {
    const text = (item as { text?: unknown }).text;
    return typeof text === 'string' ? text : '';
  }
  if (type === 'chunk') {
    const text = (item as { chunk?: { text?: unknown } }).chunk?.text;
    return typeof text === 'string' ? text : '';
  }
  return '';
}
