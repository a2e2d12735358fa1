/**
 * The model seam: what every model adapter (OpenAI-compatible, AI SDK, scripted) implements and
 * what {@link streamModel} consumes. Kept small on purpose: messages in an OpenAI-like shape and a
 * stream of flat deltas, so an adapter is a thin translation and a test model is a few lines.
 * @module
 */

import type { Citation } from '../protocol/events.ts';

/**
 * A tool call as it appears in an assistant message. `arguments` is the JSON text the model
 * produced (kept as text so it goes back to the provider byte for byte).
 */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** Instructions for the model. */
export interface SystemMessage {
  role: 'system';
  content: string;
}

/** What the user said. */
export interface UserMessage {
  role: 'user';
  content: string;
}

/** What the model said: text, tool calls, or both. */
export interface AssistantMessage {
  role: 'assistant';
  content: string | null;
  toolCalls?: ToolCall[];
}

/** The outcome of one tool call, as the model reads it (usually JSON text). */
export interface ToolMessage {
  role: 'tool';
  toolCallId: string;
  /** The tool's name; some providers (and the AI SDK) need it beside the id. */
  name: string;
  content: string;
}

/** One message of a conversation, OpenAI-like: `system`, `user`, `assistant` (with tool calls), `tool`. */
export type ChatMessage = SystemMessage | UserMessage | AssistantMessage | ToolMessage;

/** A JSON Schema object (draft 7 / 2020-12 subset the providers accept). */
export type JsonSchema = Record<string, unknown>;

/** A tool as the model sees it: a name, what it does, and its parameters as a JSON Schema. */
export interface ToolDefinition {
  name: string;
  description?: string;
  parameters: JsonSchema;
}

/** Whether the model may, must or must not call tools. */
export type ToolChoice = 'auto' | 'none' | 'required';

/**
 * Why the model stopped. `aborted` means the caller's signal aborted (barge-in, stop, idle
 * timeout); `other` covers anything a provider reports that fits nowhere else.
 */
export type FinishReason = 'stop' | 'length' | 'tool-calls' | 'content-filter' | 'aborted' | 'other';

/**
 * Tokens a model call used. `estimated` is true when the provider did not report them (an
 * aborted request never receives the provider's usage frame) and they were counted locally.
 */
export interface ModelUsage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** Input tokens served from the provider's prompt cache, when reported. */
  cachedInputTokens?: number;
  /** Output tokens spent on hidden reasoning, when reported. */
  reasoningTokens?: number;
  estimated?: boolean;
}

/**
 * One piece of a model's output. Text comes as `text`; a tool call as `tool-start`, any number of
 * `tool-delta` (fragments of its JSON arguments), then `tool-end` with the complete arguments;
 * sources as `citations`; `usage` and `finish` come last. A model that is aborted yields the
 * usage it knows so far and `finish` with reason `aborted`, then ends.
 */
export type ModelDelta =
  | { type: 'text'; text: string }
  | { type: 'citations'; citations: Citation[] }
  | { type: 'tool-start'; id: string; name: string }
  | { type: 'tool-delta'; id: string; argsDelta: string }
  | { type: 'tool-end'; id: string; name: string; arguments: string }
  | { type: 'usage'; usage: ModelUsage }
  | { type: 'finish'; reason: FinishReason };

/** What a model is asked to do. */
export interface ModelRequest {
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  /**
   * Aborts on barge-in, stop or idle timeout. Adapters pass it to the HTTP request, so an abort
   * closes the connection to the provider and token spend stops.
   */
  signal: AbortSignal;
  maxOutputTokens?: number;
  temperature?: number;
}

/**
 * A chat model. `stream` returns the model's output as an async iterable of deltas; it throws a
 * `SluiceError` (`unavailable`, `timeout`, `resource_exhausted`, `internal`, …) with a message safe
 * to show, the provider's error being its `cause`.
 */
export interface ChatModel {
  /** Short id of the model answering, e.g. `gpt-4o-mini` or `scripted`. */
  readonly name: string;
  /** Who serves it (`openai`, `ai-sdk`, `scripted`, …), for traces (`gen_ai.system`). */
  readonly provider?: string;
  /** One line saying which model answers and where (never a key), for logs and the dev UI. */
  readonly description: string;
  /**
   * False for a model that produces its answer all at once: {@link streamModel} then delivers
   * the text as one chunk instead of pretending to stream.
   */
  readonly supportsStreaming: boolean;
  stream(request: ModelRequest): AsyncIterable<ModelDelta>;
}

/** Adds two usages; the sum is estimated if either part is. */
export function addUsage(a: ModelUsage, b: ModelUsage): ModelUsage {
  const sum: ModelUsage = {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    totalTokens: a.totalTokens + b.totalTokens,
  };
  if (a.cachedInputTokens !== undefined || b.cachedInputTokens !== undefined) {
    sum.cachedInputTokens = (a.cachedInputTokens ?? 0) + (b.cachedInputTokens ?? 0);
  }
  if (a.reasoningTokens !== undefined || b.reasoningTokens !== undefined) {
    sum.reasoningTokens = (a.reasoningTokens ?? 0) + (b.reasoningTokens ?? 0);
  }
  if (a.estimated === true || b.estimated === true) sum.estimated = true;
  return sum;
}

/** Usage of nothing. */
export function emptyUsage(): ModelUsage {
  return { inputTokens: 0, outputTokens: 0, totalTokens: 0 };
}

/**
 * A rough token count (about four characters per token for English), used only when a provider
 * gives no usage, i.e. after an abort; results are marked `estimated`.
 */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

/** Estimated input tokens of a request: its messages and tool definitions. */
export function estimateInputTokens(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): number {
  let n = 0;
  for (const m of messages) {
    n += 4 + estimateTokens(m.content ?? '');
    if (m.role === 'assistant') for (const call of m.toolCalls ?? []) n += estimateTokens(call.name) + estimateTokens(call.arguments);
  }
  for (const tool of tools ?? []) n += estimateTokens(JSON.stringify(tool));
  return n;
}
