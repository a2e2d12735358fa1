// The example assistant (examples/assistant.ts) end to end with the scripted model: history from
// the tracker, the get_weather tool, a tool error the model recovers from, and a failing model.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assistantAction, getWeather } from '../../examples/assistant.ts';
import { ScriptedModel } from '../../src/models/scripted.ts';
import type { ChatModel } from '../../src/models/types.ts';
import { callFor, chunkText, eventsOf, executorWith, only } from './helpers.ts';

describe('examples/assistant.ts', () => {
  test('answers the latest message with the weather tool', async () => {
    const executor = executorWith([assistantAction({ model: ScriptedModel.instant() })]);
    const events = await eventsOf(
      executor,
      callFor('action_assistant', 'And the weather in Berlin?', [
        { event: 'user', text: 'Hi' },
        { event: 'bot', text: 'Hello!' },
        { event: 'user', text: 'And the weather in Berlin?' },
      ]),
    );
    assert.equal(only(events, 'status')[0]?.text, 'Thinking…');
    assert.equal(only(events, 'status')[1]?.text, 'Checking the weather in Berlin…');
    assert.deepEqual(only(events, 'tool-result')[0]?.output, { city: 'Berlin', conditions: 'cloudy with a cold east wind', temperatureC: 9 });
    assert.match(chunkText(events), /In Berlin it is cloudy with a cold east wind, around 9 °C\.$/);
    assert.equal(only(events, 'run-end')[0]?.reason, 'completed');
  });

  test('the tool reports an unknown city as a public error', async () => {
    await assert.rejects(Promise.resolve(getWeather.execute({ city: 'Atlantis' }, { signal: new AbortController().signal, toolCallId: 't' })), {
      message: 'No forecast is available for Atlantis',
    });
  });

  test('a failing model: the partial answer stays, an apology follows, the run completes', async () => {
    const broken: ChatModel = {
      name: 'broken',
      description: 'always fails',
      supportsStreaming: true,
      async *stream() {
        yield { type: 'text', text: 'Well, ' };
        throw new Error('boom');
      },
    };
    const events = await eventsOf(executorWith([assistantAction({ model: broken })]), callFor('action_assistant', 'Tell me a story'));
    assert.equal(chunkText(events), 'Well, ');
    assert.equal(only(events, 'stream-end')[0]?.reason, 'error');
    assert.match(String(only(events, 'message')[0]?.message.text), /^Sorry/);
    assert.equal(only(events, 'run-end')[0]?.reason, 'completed');
  });
});
