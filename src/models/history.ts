/**
 * Conversation history for a model, from the Rasa tracker an action receives.
 * @module
 */

import type { Tracker } from '../runtime/tracker.ts';
import type { ChatMessage } from './types.ts';

/** Options of {@link historyFromTracker}. */
export interface HistoryOptions {
  /** A system prompt to put first. */
  system?: string;
  /** Most user/assistant messages kept, newest last. Default 20. */
  maxMessages?: number;
}

/**
 * The conversation as chat messages: `user` events become user messages and `bot` events
 * assistant messages (only those with text; events before the last `restart` are left out). The
 * latest user message is appended when the events do not end with it, so the result always ends
 * with what the user just said (when there is any).
 */
export function historyFromTracker(tracker: Tracker, options: HistoryOptions = {}): ChatMessage[] {
  const max = options.maxMessages ?? 20;
  const turns: ChatMessage[] = [];
  for (const event of tracker.eventsAfterLatestRestart()) {
    const text = event.text;
    if (typeof text !== 'string' || text.trim() === '') continue;
    if (event.event === 'user') turns.push({ role: 'user', content: text });
    else if (event.event === 'bot') turns.push({ role: 'assistant', content: text });
  }
  const latest = tracker.latestMessage.text;
  const last = turns[turns.length - 1];
  if (typeof latest === 'string' && latest.trim() !== '' && !(last?.role === 'user' && last.content === latest)) {
    turns.push({ role: 'user', content: latest });
  }
  const kept = max > 0 ? turns.slice(-max) : [];
  // A history should not open with the assistant talking to nobody.
  while (kept[0]?.role === 'assistant') kept.shift();
  return options.system === undefined ? kept : [{ role: 'system', content: options.system }, ...kept];
}
