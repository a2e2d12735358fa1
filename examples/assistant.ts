/**
 * An LLM assistant action: answers the user's latest message with the conversation so far,
 * streaming the reply, calling a `get_weather` tool when it needs a forecast.
 *
 * The model comes from the environment (`modelFromEnv`): with `OPENAI_API_KEY` or
 * `OPENAI_BASE_URL` (plus `SLUICE_MODEL`) it talks to OpenAI or any OpenAI-compatible server
 * (vLLM, llama.cpp, Ollama…); without them the offline scripted model answers, so the demo works
 * anywhere. A barge-in aborts the model's request, so an interrupted answer stops costing tokens.
 *
 *   sluice serve --actions examples/assistant.ts
 *   OPENAI_BASE_URL=http://127.0.0.1:11434/v1 SLUICE_MODEL=llama3.1 sluice serve --actions examples/assistant.ts
 */

import { defineAction, SluiceError } from '../src/index.ts';
import type { ActionDefinition } from '../src/index.ts';
import { DEFAULT_FORECASTS, historyFromTracker, modelFromEnv, streamModel } from '../src/models/index.ts';
import type { ChatModel, StreamModelOptions, Tool } from '../src/models/index.ts';
import type { Logger } from '../src/runtime/logger.ts';
import { silentLogger } from '../src/runtime/logger.ts';

const SYSTEM_PROMPT =
  'You are a friendly assistant in a demo of Sluice, a framework for streaming conversational-AI actions. ' +
  'Answer in two or three short sentences. Use the get_weather tool for any question about the weather, ' +
  'one call per city, and never invent a forecast.';

/** Sleeps, but wakes as soon as the signal aborts (the user interrupted). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/**
 * The weather tool. A real one would call a weather API with `fetch(url, { signal })`; this one
 * reads the demo table after a short, cancellable wait.
 */
export const getWeather: Tool<{ city: string }> = {
  name: 'get_weather',
  description: 'Get the current weather for a city.',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string', description: 'The city name, e.g. "Paris"' } },
    required: ['city'],
    additionalProperties: false,
  },
  status: ({ city }) => `Checking the weather in ${city}…`,
  async execute({ city }, { signal }) {
    await pause(250, signal);
    const forecast = DEFAULT_FORECASTS.find((f) => f.city.toLowerCase() === String(city).trim().toLowerCase());
    // A SluiceError's message is shown to the model (and the user) as the tool's error.
    if (forecast === undefined) throw new SluiceError('not_found', `No forecast is available for ${city}`);
    return { city: forecast.city, conditions: forecast.conditions, temperatureC: forecast.temperatureC };
  },
};

/** The codes `streamModel` throws for a failing provider. */
const MODEL_FAILURES = new Set(['unavailable', 'timeout', 'resource_exhausted', 'internal']);

/** Options of {@link assistantAction}. */
export interface AssistantOptions {
  /** The model; default `modelFromEnv()`. */
  model?: ChatModel;
  logger?: Logger;
  /** Passed to `streamModel` (e.g. `idleTimeoutMs`, `maxToolRounds`). */
  modelOptions?: Partial<Omit<StreamModelOptions, 'messages' | 'tools'>>;
}

/** Builds `action_assistant` for a given model (tests and the dev server inject their own). */
export function assistantAction(options: AssistantOptions = {}): ActionDefinition {
  const model = options.model ?? modelFromEnv();
  const logger = options.logger ?? silentLogger;
  return defineAction({
    name: 'action_assistant',
    async run(dispatcher, tracker) {
      const messages = historyFromTracker(tracker, { system: SYSTEM_PROMPT, maxMessages: 20 });
      if (messages.at(-1)?.role !== 'user') {
        dispatcher.utterMessage({ text: 'Ask me anything, for example about the weather in Paris.' });
        return [];
      }
      try {
        const result = await streamModel(dispatcher, model, {
          messages,
          tools: [getWeather],
          status: 'Thinking…',
          logger,
          ...options.modelOptions,
        });
        logger.info(
          { model: model.name, usage: result.usage, finishReason: result.finishReason, cancelled: result.cancelled, toolCalls: result.toolCalls.length },
          'action_assistant answered',
        );
      } catch (error) {
        // The partial answer (if any) is already delivered; close the turn politely instead of
        // ending the run with an error event.
        if (!SluiceError.isInstance(error) || !MODEL_FAILURES.has(error.code)) throw error;
        dispatcher.utterMessage({ text: 'Sorry, I could not finish that answer. Please try again in a moment.' });
      }
      return [];
    },
  });
}

/** The model the environment configures; its `description` says which one answers (for a startup log line). */
export const assistantModel: ChatModel = modelFromEnv();

/** The assistant on that model. */
export const assistant = assistantAction({ model: assistantModel });

/** Every action of this example, for `sluice serve --actions`. */
export const actions = [assistant];
