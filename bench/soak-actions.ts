/**
 * The actions `npm run soak` serves: short streamed answers with a little latency, so that runs
 * start and end all the time and barge-ins land mid-stream.
 * @module
 */

import { defineAction, status } from '../src/runtime/action.ts';
import { slotSet } from '../src/runtime/rasa-events.ts';
import { pause } from '../examples/pause.ts';

/** `count` words (default 30), one every `delay_ms` (default 5), with a status first. */
export const soakStream = defineAction({
  name: 'action_soak',
  async *stream({ tracker, signal }) {
    const count = Number(tracker.getSlot('count') ?? 30);
    const delay = Number(tracker.getSlot('delay_ms') ?? 5);
    yield status('Thinking…');
    for (let i = 0; i < count && !signal.aborted; i++) {
      yield `word${i}. `;
      await pause(delay, signal);
    }
    return [slotSet('done', !signal.aborted)];
  },
});

/** The chat action `/api/chat` answers with. */
export const soakChat = defineAction({
  name: 'action_chat',
  async *stream({ signal }) {
    for (let i = 0; i < 20 && !signal.aborted; i++) {
      yield `token${i} `;
      await pause(5, signal);
    }
    return [];
  },
});

export const actions = [soakStream, soakChat];
