/**
 * Picks the model from the environment, so the same assistant runs offline in the demo and
 * against a real model in production.
 * @module
 */

import { OpenAIChatModel, type OpenAIModelOptions } from './openai.ts';
import { ScriptedModel, type ScriptedModelOptions } from './scripted.ts';
import type { ChatModel } from './types.ts';

/** Model id used with an OpenAI key when `SLUICE_MODEL` is not set. */
export const DEFAULT_OPENAI_MODEL = 'gpt-4o-mini';

/** Options of {@link modelFromEnv}. */
export interface ModelFromEnvOptions {
  /** Where to read settings (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Options of the scripted model, when that is the one chosen. */
  scripted?: ScriptedModelOptions;
  /** Extra options of the OpenAI-compatible model, when that is the one chosen. */
  openai?: Omit<OpenAIModelOptions, 'model' | 'baseURL' | 'apiKey'>;
}

/**
 * The model configured by the environment:
 * - `OPENAI_API_KEY` or `OPENAI_BASE_URL` set → an {@link OpenAIChatModel} on that server
 *   (OpenAI, vLLM, llama.cpp, Ollama…) with model `SLUICE_MODEL` (default `gpt-4o-mini`);
 * - otherwise, or with `SLUICE_MODEL=scripted` → the offline {@link ScriptedModel}.
 *
 * The returned model's `name` and `description` say which one answers (never the key).
 *
 * @example
 * // OPENAI_BASE_URL=http://127.0.0.1:11434/v1 SLUICE_MODEL=llama3.1 npm start
 * const model = modelFromEnv();
 * logger.info(`Answering with ${model.description}`);
 */
export function modelFromEnv(options: ModelFromEnvOptions = {}): ChatModel {
  const env = options.env ?? process.env;
  const value = (key: string): string | undefined => {
    const v = env[key]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const apiKey = value('OPENAI_API_KEY');
  const baseURL = value('OPENAI_BASE_URL');
  const model = value('SLUICE_MODEL');
  if (model?.toLowerCase() === 'scripted' || (apiKey === undefined && baseURL === undefined)) {
    return new ScriptedModel(options.scripted);
  }
  return new OpenAIChatModel({
    ...options.openai,
    model: model ?? DEFAULT_OPENAI_MODEL,
    ...(apiKey === undefined ? {} : { apiKey }),
    ...(baseURL === undefined ? {} : { baseURL }),
  });
}
