/**
 * Actions shared by the sentence tests of each wire (WebSocket view, gRPC VoiceService): a
 * streamed story plus a whole message, a static message, a barge-in target, an endless ticker and
 * a failure mid-sentence.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { defineAction, type ActionDefinition } from '../../../src/runtime/action.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';

export const STORY = 'Good morning. The shop opens at nine. See you soon!';

/** Word tokens that join back to `text` exactly. */
export function tokens(text: string): string[] {
  return text.split(/(?<=\s)(?=\S)/);
}

/** The sentence said before the tool call of {@link toolAction}, and the one after it. */
export const BEFORE_TOOL = 'Let me check the weather in Paris for you. ';
export const AFTER_TOOL = 'It is sunny there.';
/** How long the tool of {@link toolAction} runs. */
export const TOOL_MS = 1500;

/** When the tool of a {@link toolAction} run started and ended (performance.now()), by sender id. */
export const toolTimes = new Map<string, { startAt: number; endAt: number }>();

/**
 * Says a sentence, calls a tool that runs {@link TOOL_MS} (no text meanwhile: the model waits),
 * then says one more: the first sentence must be released by the tool-start, not by the resume.
 */
export function toolAction(name = 'action_tool', toolMs = TOOL_MS): ActionDefinition {
  return defineAction({
    name,
    async *stream({ signal, tracker }) {
      for (const token of tokens(BEFORE_TOOL)) yield token;
      const times = { startAt: performance.now(), endAt: -1 };
      toolTimes.set(tracker.senderId, times);
      yield { type: 'tool-start', toolCallId: 'call_1', name: 'weather' };
      yield { type: 'tool-call', toolCallId: 'call_1', name: 'weather', args: { city: 'Paris' } };
      await sleep(toolMs, undefined, { signal });
      times.endAt = performance.now();
      yield { type: 'tool-result', toolCallId: 'call_1', name: 'weather', output: { sky: 'sunny' } };
      for (const token of tokens(AFTER_TOOL)) yield token;
      return [slotSet('weather', 'sunny')];
    },
  });
}

export function sentenceActions(aborted: Set<string>): ActionDefinition[] {
  return [
    toolAction(),
    // Three streamed sentences, then a whole message: four sentences across two messages.
    defineAction({
      name: 'action_story',
      async run(dispatcher, _tracker, _domain, { signal }) {
        for (const token of tokens(STORY)) {
          await sleep(2, undefined, { signal });
          await dispatcher.streamChunk({ text: token });
        }
        await dispatcher.streamEnd();
        dispatcher.utterMessage({ text: 'Anything else?' });
        return [slotSet('told', true)];
      },
    }),
    defineAction({
      name: 'action_static',
      run(dispatcher) {
        dispatcher.utterMessage({ text: 'Hello there. How are you today?', buttons: [{ title: 'Fine', payload: '/fine' }] });
        return [slotSet('greeted', true)];
      },
    }),
    // One sentence and the start of a second, then waits for a barge-in; later text is dropped.
    defineAction({
      name: 'action_barge',
      async *stream({ signal, tracker }) {
        yield 'First sentence. ';
        yield 'Second ';
        await sleep(5000, undefined, { signal }).catch(() => aborted.add(tracker.senderId));
        yield 'half, never heard. ';
        return [slotSet('interrupted', signal.aborted)];
      },
    }),
    // A sentence every 10 ms until cancelled.
    defineAction({
      name: 'action_forever',
      async *stream({ signal, tracker }) {
        try {
          for (let i = 0; ; i++) {
            await sleep(10, undefined, { signal });
            yield `Tick ${i}. `;
          }
        } catch (error) {
          if (signal.aborted) aborted.add(tracker.senderId);
          throw error;
        }
      },
    }),
    defineAction({
      name: 'action_fail',
      async *stream() {
        yield 'Partial sentence. Broken';
        throw new Error('action exploded');
      },
    }),
  ];
}
