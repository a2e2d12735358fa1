// modelFromEnv picks the model from the environment and says which one answers; history from the
// tracker becomes chat messages.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_OPENAI_MODEL, modelFromEnv } from '../../src/models/env.ts';
import { historyFromTracker } from '../../src/models/history.ts';
import { OpenAIChatModel } from '../../src/models/openai.ts';
import { ScriptedModel } from '../../src/models/scripted.ts';
import { Tracker } from '../../src/runtime/tracker.ts';

describe('modelFromEnv', () => {
  test('no key and no base URL → the scripted model, which says so', () => {
    const model = modelFromEnv({ env: {} });
    assert.ok(model instanceof ScriptedModel);
    assert.equal(model.name, 'scripted');
    assert.match(model.description, /offline/);
    assert.ok(modelFromEnv({ env: { OPENAI_API_KEY: '  ', OPENAI_BASE_URL: '' } }) instanceof ScriptedModel);
  });

  test('a key → the OpenAI adapter with SLUICE_MODEL (or the default); the key is never shown', () => {
    const model = modelFromEnv({ env: { OPENAI_API_KEY: 'sk-test-123', SLUICE_MODEL: 'gpt-4.1-mini' } });
    assert.ok(model instanceof OpenAIChatModel);
    assert.equal(model.name, 'gpt-4.1-mini');
    assert.match(model.description, /gpt-4\.1-mini at https:\/\/api\.openai\.com\/v1/);
    assert.doesNotMatch(model.description, /sk-test/);
    assert.equal(modelFromEnv({ env: { OPENAI_API_KEY: 'sk-test-123' } }).name, DEFAULT_OPENAI_MODEL);
  });

  test('a base URL alone (Ollama, llama.cpp, vLLM) → the OpenAI adapter on that server', () => {
    const model = modelFromEnv({ env: { OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1', SLUICE_MODEL: 'llama3.1' } });
    assert.ok(model instanceof OpenAIChatModel);
    assert.equal(model.client.baseURL, 'http://127.0.0.1:11434/v1');
    assert.match(model.description, /llama3\.1 at http:\/\/127\.0\.0\.1:11434\/v1/);
  });

  test('SLUICE_MODEL=scripted forces the scripted model', () => {
    assert.ok(modelFromEnv({ env: { OPENAI_API_KEY: 'sk-x', SLUICE_MODEL: 'scripted' } }) instanceof ScriptedModel);
  });
});

describe('historyFromTracker', () => {
  const tracker = (events: Record<string, unknown>[], latest: string) =>
    Tracker.fromJson({ sender_id: 'u', events: events as never, latest_message: { text: latest } } as never);

  test('user and bot events become user and assistant messages, ending with the latest message', () => {
    const t = tracker(
      [
        { event: 'action', name: 'action_listen' },
        { event: 'user', text: 'Hi' },
        { event: 'bot', text: 'Hello! How can I help?' },
        { event: 'bot', data: { custom: {} } },
        { event: 'user', text: 'Weather in Paris?' },
      ],
      'Weather in Paris?',
    );
    assert.deepEqual(historyFromTracker(t, { system: 'Be brief.' }), [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello! How can I help?' },
      { role: 'user', content: 'Weather in Paris?' },
    ]);
  });

  test('the latest message is appended when the events lack it; restarts cut the history; maxMessages keeps the newest', () => {
    const t = tracker(
      [
        { event: 'user', text: 'old' },
        { event: 'restart' },
        { event: 'user', text: 'one' },
        { event: 'bot', text: 'two' },
        { event: 'user', text: 'three' },
        { event: 'bot', text: 'four' },
      ],
      'five',
    );
    assert.deepEqual(
      historyFromTracker(t).map((m) => m.content),
      ['one', 'two', 'three', 'four', 'five'],
    );
    // Never starts with the assistant.
    assert.deepEqual(
      historyFromTracker(t, { maxMessages: 4 }).map((m) => m.content),
      ['three', 'four', 'five'],
    );
  });
});
