/**
 * The AI SDK adapter: any AI SDK `LanguageModel` (OpenAI, Anthropic, Google, Bedrock, a gateway
 * model id, a mock) as a Sluice {@link ChatModel}. It calls `streamText` for one step with the
 * tools declared but not executed, so the tool loop, its events and its limits stay in
 * {@link streamModel}; the caller's signal becomes `abortSignal`, which aborts the provider's
 * HTTP request.
 * @module
 */

import { jsonSchema, streamText, tool as aiTool } from 'ai';
import type { LanguageModel, LanguageModelUsage, ModelMessage, ToolSet } from 'ai';
import { SluiceError } from '../protocol/errors.ts';
import type { Citation } from '../protocol/events.ts';
import { isAbortLike, modelError } from './errors.ts';
import { toProviderMessages } from './provider-messages.ts';
import type { ChatMessage, ChatModel, FinishReason, ModelDelta, ModelRequest, ModelUsage, ToolDefinition } from './types.ts';

/** Options of {@link AiSdkChatModel}. */
export interface AiSdkModelOptions {
  /** Name reported by the model. Default: the model id (`provider:modelId` for model objects). */
  name?: string;
  /** Retries of a call that failed before streaming began (`streamText`'s `maxRetries`). Default 2. */
  maxRetries?: number;
  /** Passed to `streamText` as they are (provider-specific settings). */
  providerOptions?: Record<string, Record<string, unknown>>;
}

/** A {@link ChatModel} on an AI SDK `LanguageModel`. */
export class AiSdkChatModel implements ChatModel {
  readonly name: string;
  readonly provider = 'ai-sdk';
  readonly description: string;
  readonly supportsStreaming = true;
  readonly model: LanguageModel;
  readonly #options: AiSdkModelOptions;

  constructor(model: LanguageModel, options: AiSdkModelOptions = {}) {
    if (model === undefined || model === null) throw new SluiceError('invalid_argument', 'AiSdkChatModel: a LanguageModel is required');
    this.model = model;
    this.#options = options;
    const id = typeof model === 'string' ? model : `${model.provider}:${model.modelId}`;
    this.name = options.name ?? id;
    this.description = `${id} (AI SDK)`;
  }

  async *stream(request: ModelRequest): AsyncGenerator<ModelDelta> {
    const { signal } = request;
    const result = streamText({
      model: this.model,
      messages: toModelMessages(request.messages),
      // Our messages come from the action's code, not from the user: system turns are trusted.
      allowSystemInMessages: true,
      ...(request.tools !== undefined && request.tools.length > 0 ? { tools: toToolSet(request.tools), toolChoice: request.toolChoice ?? 'auto' } : {}),
      ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(this.#options.maxRetries === undefined ? {} : { maxRetries: this.#options.maxRetries }),
      ...(this.#options.providerOptions === undefined ? {} : { providerOptions: this.#options.providerOptions as never }),
      abortSignal: signal,
      // Errors reach us as `error` parts; the default handler would also print them.
      onError: () => {},
    });
    const seen = new Set<string>();
    let usage: ModelUsage | null = null;
    let finish: FinishReason | null = null;
    let calls = 0;
    try {
      for await (const part of result.fullStream) {
        switch (part.type) {
          case 'text-delta':
            if (part.text !== '') yield { type: 'text', text: part.text };
            break;
          case 'source': {
            const citation = fromSource(part, seen);
            if (citation !== null) yield { type: 'citations', citations: [citation] };
            break;
          }
          case 'text-end': {
            const cited = (part.citations ?? []).map((c) => fromSource(c.source, seen, c.citedText)).filter((c): c is Citation => c !== null);
            if (cited.length > 0) yield { type: 'citations', citations: cited };
            break;
          }
          case 'tool-input-start':
            if (part.providerExecuted !== true) yield { type: 'tool-start', id: part.id, name: part.toolName };
            break;
          case 'tool-input-delta':
            yield { type: 'tool-delta', id: part.id, argsDelta: part.delta };
            break;
          case 'tool-call': {
            if (part.providerExecuted === true) break;
            calls++;
            const input = part.input;
            yield { type: 'tool-end', id: part.toolCallId, name: part.toolName, arguments: typeof input === 'string' ? input : JSON.stringify(input ?? {}) };
            break;
          }
          case 'finish-step':
            usage = toUsage(part.usage);
            break;
          case 'finish':
            usage = toUsage(part.totalUsage);
            if (part.finishReason === 'interrupted' && !signal.aborted) {
              // The provider's stream ended without its completion signal: the answer is partial.
              throw new SluiceError('unavailable', "The model's answer was cut off", { details: { reason: 'model_stream_truncated', model: this.name } });
            }
            finish = toFinishReason(part.finishReason);
            break;
          case 'abort':
            finish = 'aborted';
            break;
          case 'error':
            if (isAbortLike(part.error, signal)) finish = 'aborted';
            else throw modelError(part.error, this.name);
            break;
          default:
        }
      }
    } catch (error) {
      if (!isAbortLike(error, signal)) throw SluiceError.isInstance(error) ? error : modelError(error, this.name);
    }
    if (signal.aborted || finish === 'aborted') {
      if (usage !== null) yield { type: 'usage', usage: { ...usage, estimated: true } };
      yield { type: 'finish', reason: 'aborted' };
      return;
    }
    if (usage !== null) yield { type: 'usage', usage };
    yield { type: 'finish', reason: finish ?? (calls > 0 ? 'tool-calls' : 'stop') };
  }
}

/** Our messages as AI SDK `ModelMessage`s. Tool arguments are parsed back to objects. */
export function toModelMessages(messages: readonly ChatMessage[]): ModelMessage[] {
  return toProviderMessages<ModelMessage>(messages, {
    assistantWithCalls: (m, calls) => ({
      role: 'assistant',
      content: [
        ...(m.content ? [{ type: 'text' as const, text: m.content }] : []),
        ...calls.map((c) => ({ type: 'tool-call' as const, toolCallId: c.id, toolName: c.name, input: parseArgs(c.arguments) })),
      ],
    }),
    tool: (m) => ({
      role: 'tool',
      content: [{ type: 'tool-result', toolCallId: m.toolCallId, toolName: m.name, output: toolOutput(m.content) }],
    }),
  });
}

function parseArgs(text: string): unknown {
  try {
    return text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    return text;
  }
}

/** A tool message as the AI SDK's output: JSON when it parses, an error when it says it failed. */
function toolOutput(content: string): { type: 'json'; value: never } | { type: 'text' | 'error-text'; value: string } {
  try {
    const value = JSON.parse(content) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && typeof (value as { error?: unknown }).error === 'string') {
      return { type: 'error-text', value: (value as { error: string }).error };
    }
    return { type: 'json', value: value as never };
  } catch {
    return { type: 'text', value: content };
  }
}

function toToolSet(tools: readonly ToolDefinition[]): ToolSet {
  const set: ToolSet = {};
  for (const t of tools) {
    set[t.name] = aiTool({
      ...(t.description === undefined ? {} : { description: t.description }),
      inputSchema: jsonSchema(t.parameters as Parameters<typeof jsonSchema>[0]),
    });
  }
  return set;
}

function fromSource(source: unknown, seen: Set<string>, snippet?: string): Citation | null {
  if (typeof source !== 'object' || source === null) return null;
  const s = source as { sourceType?: unknown; url?: unknown; title?: unknown; id?: unknown };
  const key = typeof s.url === 'string' ? s.url : typeof s.id === 'string' ? s.id : typeof s.title === 'string' ? s.title : null;
  if (key === null || seen.has(key)) return null;
  seen.add(key);
  const citation: Citation = {};
  if (typeof s.url === 'string') citation.url = s.url;
  if (typeof s.title === 'string') citation.title = s.title;
  if (snippet !== undefined) citation.snippet = snippet;
  return citation;
}

function toFinishReason(reason: string): FinishReason {
  switch (reason) {
    case 'stop':
    case 'length':
    case 'tool-calls':
    case 'content-filter':
      return reason;
    default:
      return 'other';
  }
}

function toUsage(u: LanguageModelUsage | undefined): ModelUsage | null {
  if (u === undefined || (u.inputTokens === undefined && u.outputTokens === undefined)) return null;
  const inputTokens = u.inputTokens ?? 0;
  const outputTokens = u.outputTokens ?? 0;
  const usage: ModelUsage = { inputTokens, outputTokens, totalTokens: u.totalTokens ?? inputTokens + outputTokens };
  const cached = u.inputTokenDetails?.cacheReadTokens;
  if (cached !== undefined) usage.cachedInputTokens = cached;
  const reasoning = u.outputTokenDetails?.reasoningTokens;
  if (reasoning !== undefined) usage.reasoningTokens = reasoning;
  return usage;
}
