/**
 * `ScriptedModel`: an offline model for the default demo and for tests. It answers from a small
 * bundled script (weather, opening hours, what Sluice is, a short story, a greeting and a
 * fallback) picked by keywords of the last user message, with realistic pacing, tool calls whose
 * arguments stream in several deltas, citations, exact usage, and an immediate stop on abort.
 * @module
 */

import type { Citation } from '../protocol/events.ts';
import type { ChatMessage, ChatModel, FinishReason, ModelDelta, ModelRequest, ModelUsage, ToolMessage } from './types.ts';

/** A scripted answer: chosen when its keywords best match the user's message. */
export interface ScriptEntry {
  id: string;
  /** Words or phrases (lowercase) matched as whole words in the message. */
  keywords: string[];
  answer: string;
  /** Sources the answer cites with `[n]` markers; sent before the text, as providers do. */
  citations?: Citation[];
}

/** A city forecast the scripted model knows. */
export interface Forecast {
  city: string;
  conditions: string;
  temperatureC: number;
}

/** Sleeps `ms`, resolving early (not rejecting) when `signal` aborts. */
export type Delay = (ms: number, signal: AbortSignal) => Promise<void>;

/** Options of {@link ScriptedModel}. Pacing defaults feel like a fast hosted model. */
export interface ScriptedModelOptions {
  /** Wait before the first delta. Default 350 ms. */
  firstTokenDelayMs?: number;
  /** Output speed; `Infinity` (or 0) for no delay between tokens. Default 40. */
  tokensPerSecond?: number;
  /** Random variation of each token's delay, 0–1. Default 0.3. */
  jitter?: number;
  /** The sleep used for pacing (inject a fake clock in tests). */
  delay?: Delay;
  /** Random source for jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** The answers; default {@link DEFAULT_SCRIPT}. */
  script?: ScriptEntry[];
  /** Forecasts used for weather questions; default {@link DEFAULT_FORECASTS}. */
  forecasts?: Forecast[];
  /** The answer when nothing matches. */
  fallback?: string;
  /** False: answer in one piece (`supportsStreaming` is false), to exercise that path. Default true. */
  streaming?: boolean;
  /** Name of the tool it calls for weather questions when that tool is offered. Default `get_weather`. */
  weatherTool?: string;
}

/** Forecasts of the demo cities. */
export const DEFAULT_FORECASTS: readonly Forecast[] = [
  { city: 'Paris', conditions: 'light rain in the morning, clearing by noon', temperatureC: 14 },
  { city: 'Berlin', conditions: 'cloudy with a cold east wind', temperatureC: 9 },
  { city: 'Lisbon', conditions: 'sunny and mild all day', temperatureC: 21 },
  { city: 'London', conditions: 'grey with a chance of drizzle', temperatureC: 12 },
  { city: 'Tokyo', conditions: 'clear skies and a light breeze', temperatureC: 18 },
  { city: 'New York', conditions: 'bright and breezy', temperatureC: 16 },
];

const HANDBOOK: Citation = { position: 1, title: 'Store handbook: opening hours', snippet: 'Mon–Fri 9:00–18:00, Sat 10:00–16:00, closed Sundays and public holidays.' };

/** The bundled answers. */
export const DEFAULT_SCRIPT: readonly ScriptEntry[] = [
  {
    id: 'sluice',
    keywords: ['sluice', 'framework', 'who are you', 'what are you', 'what is this'],
    answer:
      'Sluice is a TypeScript framework and server for streaming the output of conversational-AI actions [1]. ' +
      'You write an action once; its status updates, text chunks and tool calls reach every consumer, over SSE, WebSocket, gRPC, chat channels or voice, ' +
      'with backpressure and barge-in [1]. Every run ends with exactly one result, even when the user interrupts it [2].',
    citations: [
      { position: 1, title: 'Sluice design: principles', snippet: 'Every action produces the same typed event stream; every transport is an adapter that consumes it.' },
      { position: 2, title: 'Sluice design: semantics', snippet: 'Every run ends with exactly one terminal result.' },
    ],
  },
  {
    id: 'hours',
    keywords: ['open', 'opening', 'hours', 'close', 'closing', 'closed', 'sunday', 'saturday'],
    answer: 'We are open Monday to Friday from 9:00 to 18:00 and on Saturday from 10:00 to 16:00 [1]. On Sundays and public holidays we are closed [1].',
    citations: [HANDBOOK],
  },
  {
    id: 'story',
    keywords: ['story', 'tale', 'once upon'],
    answer:
      'Once upon a time, a small stream ran down a hill, in a hurry to reach the sea. Halfway down it met a sluice. ' +
      '"Wait your turn," said the sluice, and the stream, grumbling, waited. Below, the mill wheel turned at just the right speed, ' +
      'the fields drank without flooding, and the stream reached the sea a little later than it wanted, but whole. ' +
      'It never complained about the sluice again.',
  },
  {
    id: 'greeting',
    keywords: ['hello', 'hi', 'hey', 'good morning', 'good evening', 'help'],
    answer: "Hello! I'm Sluice's scripted demo model. Ask me about the weather in Paris, Berlin, Lisbon, London, Tokyo or New York, our opening hours, what Sluice is, or for a short story.",
  },
];

const DEFAULT_FALLBACK =
  "I'm a scripted model running offline, so I only know a few topics: the weather in a few cities, our opening hours, what Sluice is, and one short story. " +
  'Set OPENAI_API_KEY or OPENAI_BASE_URL to talk to a real model.';

const WEATHER_WORDS = ['weather', 'forecast', 'temperature', 'rain', 'raining', 'sunny', 'cold', 'warm', 'hot', 'snow', 'umbrella'];

/** Sleeps with a timer, resolving early on abort. */
export const timerDelay: Delay = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

function wordPattern(phrase: string): RegExp {
  return new RegExp(`(?<![\\p{L}\\p{N}])${phrase.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}])`, 'iu');
}

/** Splits text into word-sized tokens that join back to it exactly. */
export function scriptTokens(text: string): string[] {
  return text === '' ? [] : text.split(/(?<=\s)(?=\S)/);
}

function countTokens(text: string): number {
  return scriptTokens(text).length;
}

/**
 * An offline {@link ChatModel} answering from a script. Deterministic with zero delays
 * (`ScriptedModel.instant()`), so tests can assert exact chunks, tool calls and usage.
 */
export class ScriptedModel implements ChatModel {
  readonly name = 'scripted';
  readonly provider = 'scripted';
  readonly description: string;
  readonly supportsStreaming: boolean;
  readonly #firstMs: number;
  readonly #tokenMs: number;
  readonly #jitter: number;
  readonly #delay: Delay;
  readonly #random: () => number;
  readonly #script: { entry: ScriptEntry; patterns: RegExp[] }[];
  readonly #forecasts: { forecast: Forecast; pattern: RegExp }[];
  readonly #fallback: string;
  readonly #weatherTool: string;
  readonly #weatherPatterns = WEATHER_WORDS.map(wordPattern);
  #calls = 0;

  constructor(options: ScriptedModelOptions = {}) {
    const tps = options.tokensPerSecond ?? 40;
    this.#firstMs = Math.max(0, options.firstTokenDelayMs ?? 350);
    this.#tokenMs = tps > 0 && Number.isFinite(tps) ? 1000 / tps : 0;
    this.#jitter = Math.min(1, Math.max(0, options.jitter ?? 0.3));
    this.#delay = options.delay ?? timerDelay;
    this.#random = options.random ?? Math.random;
    this.#script = (options.script ?? DEFAULT_SCRIPT).map((entry) => ({ entry, patterns: entry.keywords.map(wordPattern) }));
    this.#forecasts = (options.forecasts ?? DEFAULT_FORECASTS).map((forecast) => ({ forecast, pattern: wordPattern(forecast.city.toLowerCase()) }));
    this.#fallback = options.fallback ?? DEFAULT_FALLBACK;
    this.#weatherTool = options.weatherTool ?? 'get_weather';
    this.supportsStreaming = options.streaming ?? true;
    this.description = 'ScriptedModel (offline, answers from a small built-in script; set OPENAI_API_KEY or OPENAI_BASE_URL for a real model)';
  }

  /** A scripted model without any delay: for tests. */
  static instant(options: Omit<ScriptedModelOptions, 'firstTokenDelayMs' | 'tokensPerSecond' | 'jitter'> = {}): ScriptedModel {
    return new ScriptedModel({ ...options, firstTokenDelayMs: 0, tokensPerSecond: Infinity, jitter: 0 });
  }

  /** The forecast the scripted model knows for `city` (case-insensitive), if any. */
  forecast(city: string): Forecast | undefined {
    return this.#forecasts.find((f) => f.forecast.city.toLowerCase() === city.trim().toLowerCase())?.forecast;
  }

  async *stream(request: ModelRequest): AsyncGenerator<ModelDelta> {
    const { signal } = request;
    const plan = this.#plan(request);
    const inputTokens = request.messages.reduce((n, m) => n + countTokens(m.content ?? '') + (m.role === 'assistant' ? (m.toolCalls ?? []).reduce((k, c) => k + countTokens(c.arguments), 0) : 0), 0);
    let outputTokens = 0;
    const usage = (): ModelUsage => ({ inputTokens, outputTokens, totalTokens: inputTokens + outputTokens });
    const stop = function* (): Generator<ModelDelta> {
      yield { type: 'usage', usage: usage() };
      yield { type: 'finish', reason: 'aborted' };
    };

    if (this.#firstMs > 0) await this.#delay(this.#firstMs, signal);
    if (signal.aborted) return yield* stop();
    if (plan.citations !== undefined && plan.citations.length > 0) yield { type: 'citations', citations: plan.citations.map((c) => ({ ...c })) };

    const tokens = scriptTokens(plan.text);
    if (!this.supportsStreaming) {
      await this.#pace(tokens.length, signal);
      if (signal.aborted) return yield* stop();
      outputTokens += tokens.length;
      if (plan.text !== '') yield { type: 'text', text: plan.text };
    } else {
      for (const token of tokens) {
        await this.#pace(1, signal);
        if (signal.aborted) return yield* stop();
        outputTokens++;
        yield { type: 'text', text: token };
      }
    }

    for (const call of plan.calls) {
      const id = `call_${++this.#calls}`;
      const args = JSON.stringify(call.args);
      yield { type: 'tool-start', id, name: call.name };
      // Several fragments, cut mid-token like real providers do.
      for (const piece of splitArgs(args)) {
        await this.#pace(1, signal);
        if (signal.aborted) return yield* stop();
        outputTokens++;
        yield { type: 'tool-delta', id, argsDelta: piece };
      }
      yield { type: 'tool-end', id, name: call.name, arguments: args };
    }
    yield { type: 'usage', usage: usage() };
    const reason: FinishReason = plan.calls.length > 0 ? 'tool-calls' : 'stop';
    yield { type: 'finish', reason };
  }

  async #pace(tokens: number, signal: AbortSignal): Promise<void> {
    if (this.#tokenMs === 0 || tokens === 0) return;
    const jitter = this.#jitter === 0 ? 1 : 1 + this.#jitter * (2 * this.#random() - 1);
    await this.#delay(this.#tokenMs * tokens * jitter, signal);
  }

  /** Decides the answer: text, citations and tool calls. */
  #plan(request: ModelRequest): { text: string; citations?: Citation[]; calls: { name: string; args: Record<string, unknown> }[] } {
    const messages = request.messages;
    const last = messages[messages.length - 1];
    if (last?.role === 'tool') return { text: this.#answerFromTools(trailingToolMessages(messages)), calls: [] };
    const question = lastUserText(messages);
    const cities = this.#forecasts.filter((f) => f.pattern.test(question)).map((f) => f.forecast);
    const aboutWeather = this.#weatherPatterns.some((p) => p.test(question));
    if (aboutWeather) {
      if (cities.length === 0) {
        return { text: `Which city would you like the weather for? I know ${listOf(this.#forecasts.map((f) => f.forecast.city), 'and')}.`, calls: [] };
      }
      const toolOffered = request.toolChoice !== 'none' && (request.tools ?? []).some((t) => t.name === this.#weatherTool);
      if (toolOffered) {
        return {
          text: `Let me check the weather in ${listOf(cities.map((c) => c.city), 'and')}.`,
          calls: cities.map((c) => ({ name: this.#weatherTool, args: { city: c.city } })),
        };
      }
      return {
        text: cities.map((c, i) => `In ${c.city} it is ${c.conditions}, around ${c.temperatureC} °C [${i + 1}].`).join(' '),
        citations: cities.map((c, i) => ({ position: i + 1, title: `Demo forecast table: ${c.city}` })),
        calls: [],
      };
    }
    let best: ScriptEntry | undefined;
    let bestScore = 0;
    for (const { entry, patterns } of this.#script) {
      const score = patterns.reduce((n, p) => n + (p.test(question) ? 1 : 0), 0);
      if (score > bestScore) {
        best = entry;
        bestScore = score;
      }
    }
    if (best === undefined) return { text: this.#fallback, calls: [] };
    return best.citations === undefined ? { text: best.answer, calls: [] } : { text: best.answer, citations: best.citations, calls: [] };
  }

  #answerFromTools(results: ToolMessage[]): string {
    const sentences = results.map((m) => {
      let value: unknown;
      try {
        value = JSON.parse(m.content);
      } catch {
        value = m.content;
      }
      const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
      if (typeof v.error === 'string') return `Sorry, I couldn't get that from ${m.name} right now.`;
      if (m.name === this.#weatherTool && typeof v.city === 'string') {
        const temperature = v.temperatureC ?? v.temperature;
        const conditions = typeof v.conditions === 'string' ? v.conditions : 'as usual';
        return `In ${v.city} it is ${conditions}${typeof temperature === 'number' ? `, around ${temperature} °C` : ''}.`;
      }
      return `${m.name} says: ${typeof value === 'string' ? value : JSON.stringify(value)}.`;
    });
    return sentences.join(' ');
  }
}

function lastUserText(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role === 'user') return m.content;
  }
  return '';
}

function trailingToolMessages(messages: readonly ChatMessage[]): ToolMessage[] {
  const out: ToolMessage[] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role !== 'tool') break;
    out.unshift(m);
  }
  return out;
}

function listOf(items: string[], word: string): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${word} ${items[items.length - 1]}`;
}

/** Cuts JSON arguments into about four fragments. */
function splitArgs(args: string): string[] {
  const size = Math.max(1, Math.ceil(args.length / 4));
  const pieces: string[] = [];
  for (let i = 0; i < args.length; i += size) pieces.push(args.slice(i, i + size));
  return pieces;
}
