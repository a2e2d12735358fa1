/**
 * The example assistant: a few actions showing each way to stream. `sluice serve --actions
 * examples/actions.ts` serves them; `npm start` runs them with the dev server.
 */

import { defineAction, endStream, slotSet, status } from '../src/index.ts';
import { pause } from './pause.ts';

const FORECASTS: Record<string, string> = {
  paris: 'Light rain in the morning, clearing by noon. Highs of 14°C.',
  berlin: 'Cloudy with a cold wind from the east. Highs of 9°C.',
  lisbon: 'Sunny and mild all day. Highs of 21°C.',
};

/** Generator style: a status update, then the forecast word by word, then a slot. */
export const weather = defineAction({
  name: 'action_weather',
  async *stream({ tracker, signal }) {
    const city = String(tracker.getSlot('city') ?? 'Lisbon');
    yield status(`Looking up the forecast for ${city}…`);
    await pause(300, signal);
    const forecast = FORECASTS[city.toLowerCase()] ?? `No forecast for ${city} today, sorry.`;
    for (const word of `In ${city}: ${forecast}`.split(/(?<= )/)) {
      if (signal.aborted) return [slotSet('forecast_interrupted', true)];
      yield word;
      await pause(40, signal);
    }
    return [slotSet('forecast', forecast)];
  },
});

/** Rasa style: stream with the dispatcher, add rich chunks, honour barge-in. */
export const story = defineAction({
  name: 'action_story',
  async run(dispatcher) {
    await dispatcher.status('Writing a very short story…');
    await dispatcher.streamStart();
    const text = 'Once upon a time, a small stream met a sluice. It learned to wait its turn, and so it never flooded anyone.';
    for (const word of text.split(/(?<= )/)) {
      if (dispatcher.isStreamingCancelled) break;
      await dispatcher.streamChunk({ text: word });
      await pause(50, dispatcher.signal);
    }
    await dispatcher.streamChunk({
      text: ' Want another?',
      buttons: [
        { title: 'Yes', payload: '/affirm' },
        { title: 'No', payload: '/deny' },
      ],
    });
    await dispatcher.streamEnd();
    return [slotSet('story_told', !dispatcher.isStreamingCancelled)];
  },
});

/** Two messages from one generator: a card, then a follow-up line. */
export const card = defineAction({
  name: 'action_card',
  async *stream() {
    yield { text: 'Here is your booking:', json: { type: 'card', title: 'Table for two', time: '19:30' } };
    yield endStream();
    yield 'Anything else?';
    return [];
  },
});

/** A plain, non-streamed answer (Rasa's utter_message). */
export const greet = defineAction({
  name: 'action_greet',
  run(dispatcher, tracker) {
    dispatcher.utterMessage({ text: `Hello ${tracker.senderId}! Ask me for the weather or a story.` });
    return [];
  },
});

/**
 * The chat entry point (`sluice chat` calls it): reads the user's text and answers from the
 * examples above, streaming word by word.
 */
export const chatAction = defineAction({
  name: 'action_chat',
  async *stream({ tracker, signal }) {
    const text = String(tracker.latestMessage.text ?? '').toLowerCase();
    const city = Object.keys(FORECASTS).find((c) => text.includes(c));
    let reply: string;
    if (city !== undefined || text.includes('weather')) {
      const name = city === undefined ? 'Lisbon' : city[0]?.toUpperCase() + city.slice(1);
      yield status(`Looking up the forecast for ${name}…`);
      await pause(300, signal);
      reply = `In ${name}: ${FORECASTS[name.toLowerCase()] ?? ''}`;
    } else if (text.includes('story')) {
      yield status('Writing a very short story…');
      reply = 'Once upon a time, a small stream met a sluice. It learned to wait its turn, and so it never flooded anyone.';
    } else {
      reply = `You said “${tracker.latestMessage.text ?? ''}”. Ask me about the weather in Paris, Berlin or Lisbon, or for a story.`;
    }
    for (const word of reply.split(/(?<= )/)) {
      if (signal.aborted) return [slotSet('interrupted', true)];
      yield word;
      await pause(30, signal);
    }
    return [];
  },
});

/** Every example action, for `sluice serve --actions`. */
export const actions = [weather, story, card, greet, chatAction];
