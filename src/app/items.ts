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

import type { TypedStreamItem } from '../runtime/action.ts';
import { deliverTyped, TYPED_ITEM_TYPES } from '../runtime/deliver.ts';
import type { ChunkInput, Dispatcher } from '../runtime/dispatcher.ts';

/** Sends one item to the step's run; returns a promise to await when readers lag. */
export function emitItem(dispatcher: Dispatcher, item: unknown): Promise<void> | undefined {
  if (typeof item === 'string') return dispatcher.streamChunk({ text: item });
  if (item === null || item === undefined) return undefined;
  if (typeof item !== 'object') return dispatcher.streamChunk({ json: { value: item } });
  if (Array.isArray(item)) return dispatcher.streamChunk({ json: { value: item } });
  const type = (item as { type?: unknown }).type;
  if (type === undefined) {
    if (typeof (item as { text?: unknown }).text === 'string') return dispatcher.streamChunk(item as ChunkInput);
    return dispatcher.streamChunk({ json: item as Record<string, unknown> });
  }
  if (typeof type !== 'string' || !TYPED_ITEM_TYPES.has(type)) return dispatcher.streamChunk({ json: item as Record<string, unknown> });
  return deliverTyped(dispatcher, item as TypedStreamItem);
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
