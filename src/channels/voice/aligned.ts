/**
 * A wire-invisible mark on a `chunk` event meaning "the text of this response so far ends at a
 * sentence boundary". The output rails set it on the chunks they release (they already decided
 * the boundary), so a sentence consumer downstream emits the sentence at once instead of holding
 * it until the next sentence's first character arrives. A WeakSet, not a field: nothing of it
 * reaches JSON, and events stay the protocol's shape.
 * @module
 */

import type { SluiceEvent } from '../../protocol/events.ts';

const aligned = new WeakSet<object>();

/** Marks `event` as ending on a sentence boundary. */
export function markSentenceAligned(event: SluiceEvent): void {
  aligned.add(event);
}

/** True when `event` was marked by {@link markSentenceAligned}. */
export function isSentenceAligned(event: SluiceEvent): boolean {
  return aligned.has(event);
}
