/**
 * The OpenAI-compatible adapter: chat completions through the official `openai` SDK, against
 * OpenAI or any server speaking its protocol (vLLM, llama.cpp server, Ollama, LiteLLM, …).
 * Streams with `stream_options.include_usage` so the last frame carries the usage, and passes
 * the caller's signal to the request so an abort closes the HTTP connection.
 * @module
 */

import OpenAI, { APIError } from 'openai';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import { SluiceError } from '../protocol/errors.ts';
import type { Citation } from '../protocol/events.ts';
import type { Logger } from '../runtime/logger.ts';
import { isAbortLike, modelError } from './errors.ts';
import { toProviderMessages } from './provider-messages.ts';
import type { ChatMessage, ChatModel, FinishReason, ModelDelta, ModelRequest, ModelUsage, ToolDefinition } from './types.ts';

/** Options of {@link OpenAIChatModel}. */
export interface OpenAIModelOptions {
  /** The model id, e.g. `gpt-4o-mini`, `llama3.1`, `Qwen/Qwen2.5-7B-Instruct`. */
  model: string;
  /** Server URL ending in `/v1`, e.g. `http://127.0.0.1:11434/v1` (Ollama). Default: OpenAI's. */
  baseURL?: string;
  /** API key. Local servers usually need none; a placeholder is sent then. */
  apiKey?: string;
  /** A ready client (its base URL and key are used as they are). */
  client?: OpenAI;
  /**
   * False for servers or proxies that cannot stream: one plain request, its answer delivered as
   * one chunk. Default true.
   */
  stream?: boolean;
  /** Ask for usage in the last frame (`stream_options.include_usage`). Default true; turn off for servers that reject it. */
  includeUsage?: boolean;
  /** Retries of a request that failed before streaming began (the SDK's `maxRetries`). Default 2. */
  maxRetries?: number;
  /** Extra fields merged into every request body, e.g. `{ top_p: 0.9 }` or a server's own options. */
  extraBody?: Record<string, unknown>;
  /** Name reported by the model. Default: the model id. */
  name?: string;
  /** Where the SDK's own diagnostics go (it prints to the console by default). */
  logger?: Logger;
}

const PLACEHOLDER_KEY = 'sluice-no-key';

/**
 * A {@link ChatModel} on the OpenAI chat-completions API.
 *
 * Tool calls are ended as soon as the stream moves on to the next call's index (so the first
 * tool already runs while the model writes the second call), the rest at `finish_reason`.
 * Citations are read from OpenAI's `url_citation` annotations and from the top-level
 * `citations` / `search_results` some providers send (often in a first frame without text).
 */
export class OpenAIChatModel implements ChatModel {
  readonly name: string;
  readonly provider = 'openai';
  readonly description: string;
  readonly supportsStreaming: boolean;
  readonly model: string;
  readonly client: OpenAI;
  readonly #includeUsage: boolean;
  readonly #extraBody: Record<string, unknown>;
  readonly #maxTokensField: 'max_tokens' | 'max_completion_tokens';

  constructor(options: OpenAIModelOptions) {
    if (typeof options?.model !== 'string' || options.model === '') {
      throw new SluiceError('invalid_argument', "OpenAIChatModel: 'model' must be a non-empty string");
    }
    this.model = options.model;
    this.client =
      options.client ??
      new OpenAI({
        apiKey: options.apiKey === undefined || options.apiKey === '' ? PLACEHOLDER_KEY : options.apiKey,
        ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
        ...(options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries }),
        ...(options.logger === undefined ? {} : { logger: sdkLogger(options.logger) }),
      });
    this.supportsStreaming = options.stream ?? true;
    this.#includeUsage = options.includeUsage ?? true;
    this.#extraBody = options.extraBody ?? {};
    // OpenAI's newer models refuse `max_tokens`; most other servers only know it.
    this.#maxTokensField = options.baseURL === undefined && options.client === undefined ? 'max_completion_tokens' : 'max_tokens';
    this.name = options.name ?? options.model;
    this.description = `${options.model} at ${redactUrl(this.client.baseURL)} (OpenAI-compatible${this.supportsStreaming ? '' : ', not streaming'})`;
  }

  stream(request: ModelRequest): AsyncIterable<ModelDelta> {
    return this.supportsStreaming ? this.#streamed(request) : this.#whole(request);
  }

  #body(request: ModelRequest): Record<string, unknown> {
    const body: Record<string, unknown> = { model: this.model, messages: toOpenAIMessages(request.messages) };
    if (request.tools !== undefined && request.tools.length > 0) {
      body.tools = request.tools.map(toOpenAITool);
      if (request.toolChoice !== undefined) body.tool_choice = request.toolChoice;
    }
    if (request.maxOutputTokens !== undefined) body[this.#maxTokensField] = request.maxOutputTokens;
    if (request.temperature !== undefined) body.temperature = request.temperature;
    return { ...body, ...this.#extraBody };
  }

  async *#streamed(request: ModelRequest): AsyncGenerator<ModelDelta> {
    const { signal } = request;
    const body = this.#body(request) as unknown as ChatCompletionCreateParamsStreaming;
    body.stream = true;
    if (this.#includeUsage) body.stream_options = { ...(body.stream_options ?? {}), include_usage: true };
    const calls = new ToolCallAssembler();
    const citations = new CitationCollector();
    let usage: ModelUsage | null = null;
    let finish: FinishReason | null = null;
    try {
      const stream = await this.client.chat.completions.create(body, { signal });
      for await (const chunk of stream) {
        const frame = chunk as ChatCompletionChunk & Record<string, unknown>;
        if (typeof frame !== 'object' || frame === null) continue;
        if (frame.usage) usage = toUsage(frame.usage);
        const found = citations.fromFrame(frame);
        if (found.length > 0) yield { type: 'citations', citations: found };
        const choice = Array.isArray(frame.choices) ? frame.choices.find((c) => (c?.index ?? 0) === 0) : undefined;
        if (choice === undefined) continue;
        const delta = (choice.delta ?? {}) as ChatCompletionChunk.Choice.Delta & { annotations?: unknown };
        const annotated = citations.fromAnnotations(delta.annotations);
        if (annotated.length > 0) yield { type: 'citations', citations: annotated };
        if (typeof delta.content === 'string' && delta.content !== '') yield { type: 'text', text: delta.content };
        if (Array.isArray(delta.tool_calls)) for (const part of delta.tool_calls) yield* calls.add(part);
        if (choice.finish_reason) {
          finish = toFinishReason(choice.finish_reason);
          yield* calls.endAll();
        }
      }
    } catch (error) {
      if (!isAbortLike(error, signal)) throw toModelError(error, this.name);
    }
    if (signal.aborted) {
      // The usage frame never comes after an abort: report the last one seen (servers with
      // continuous usage send it on every frame) and let the caller estimate otherwise.
      if (usage !== null) yield { type: 'usage', usage: { ...usage, estimated: true } };
      yield { type: 'finish', reason: 'aborted' };
      return;
    }
    if (finish === null) {
      // Every server we target ends with a finish_reason; a stream without one was cut off, and
      // passing it on as complete would show a partial answer as if it were whole.
      throw new SluiceError('unavailable', "The model's answer was cut off", { details: { reason: 'model_stream_truncated', model: this.name } });
    }
    yield* calls.endAll();
    if (usage !== null) yield { type: 'usage', usage };
    yield { type: 'finish', reason: finish };
  }

  async *#whole(request: ModelRequest): AsyncGenerator<ModelDelta> {
    const { signal } = request;
    const body = this.#body(request) as unknown as ChatCompletionCreateParamsNonStreaming;
    let completion: ChatCompletion;
    try {
      completion = await this.client.chat.completions.create(body, { signal });
    } catch (error) {
      if (isAbortLike(error, signal)) {
        yield { type: 'finish', reason: 'aborted' };
        return;
      }
      throw toModelError(error, this.name);
    }
    const frame = completion as ChatCompletion & Record<string, unknown>;
    const citations = new CitationCollector();
    const found = citations.fromFrame(frame);
    const choice = Array.isArray(frame.choices) ? frame.choices[0] : undefined;
    const message = (choice?.message ?? {}) as ChatCompletion.Choice['message'] & { annotations?: unknown };
    found.push(...citations.fromAnnotations(message.annotations));
    if (found.length > 0) yield { type: 'citations', citations: found };
    if (typeof message.content === 'string' && message.content !== '') yield { type: 'text', text: message.content };
    for (const call of message.tool_calls ?? []) {
      if (call.type !== 'function') continue;
      yield { type: 'tool-start', id: call.id, name: call.function.name };
      yield { type: 'tool-end', id: call.id, name: call.function.name, arguments: call.function.arguments ?? '' };
    }
    if (frame.usage) yield { type: 'usage', usage: toUsage(frame.usage) };
    yield { type: 'finish', reason: choice?.finish_reason ? toFinishReason(choice.finish_reason) : 'stop' };
  }
}

/** Messages in the chat-completions shape. */
export function toOpenAIMessages(messages: readonly ChatMessage[]): ChatCompletionMessageParam[] {
  return toProviderMessages<ChatCompletionMessageParam>(messages, {
    assistantWithCalls: (m, calls) => ({
      role: 'assistant',
      content: m.content,
      tool_calls: calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })),
    }),
    tool: (m) => ({ role: 'tool', tool_call_id: m.toolCallId, content: m.content }),
  });
}

function toOpenAITool(tool: ToolDefinition): ChatCompletionTool {
  return {
    type: 'function',
    function: { name: tool.name, ...(tool.description === undefined ? {} : { description: tool.description }), parameters: tool.parameters },
  };
}

function toFinishReason(reason: string): FinishReason {
  switch (reason) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool-calls';
    case 'content_filter':
      return 'content-filter';
    default:
      return 'other';
  }
}

function toUsage(raw: unknown): ModelUsage {
  const u = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const inputTokens = num(u.prompt_tokens);
  const outputTokens = num(u.completion_tokens);
  const usage: ModelUsage = { inputTokens, outputTokens, totalTokens: typeof u.total_tokens === 'number' ? u.total_tokens : inputTokens + outputTokens };
  const cached = (u.prompt_tokens_details as Record<string, unknown> | null | undefined)?.cached_tokens;
  if (typeof cached === 'number') usage.cachedInputTokens = cached;
  const reasoning = (u.completion_tokens_details as Record<string, unknown> | null | undefined)?.reasoning_tokens;
  if (typeof reasoning === 'number') usage.reasoningTokens = reasoning;
  return usage;
}

function toModelError(error: unknown, model: string): SluiceError {
  // An `error` payload inside the stream: the SDK raises an APIError without an HTTP status.
  if (error instanceof APIError && error.status === undefined && !(error.name === 'APIConnectionError' || error.name === 'APIConnectionTimeoutError')) {
    return new SluiceError('unavailable', 'The model stopped with an error', { cause: error, details: { reason: 'model_stream_error', model } });
  }
  return modelError(error, model);
}

function sdkLogger(logger: Logger): NonNullable<ConstructorParameters<typeof OpenAI>[0]>['logger'] {
  const at =
    (level: keyof Logger) =>
    (message: string, ...args: unknown[]): void => {
      logger[level](args.length === 0 ? { source: 'openai' } : { source: 'openai', args }, message);
    };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

/** Removes credentials and query strings from a URL before it is shown. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return 'a custom URL';
  }
}

interface CallState {
  index: number;
  id: string;
  name: string;
  args: string;
  started: boolean;
  ended: boolean;
}

/**
 * Rebuilds tool calls from `delta.tool_calls` fragments: the first fragment of an index carries
 * the id and name, later ones pieces of the arguments. Tolerates servers that omit ids, send the
 * name late, or reuse index 0 for every call (a new id at an open index starts a new call).
 */
class ToolCallAssembler {
  #byIndex = new Map<number, CallState>();
  #order: CallState[] = [];
  #generated = 0;

  get count(): number {
    return this.#order.length;
  }

  *add(part: ChatCompletionChunk.Choice.Delta.ToolCall): Generator<ModelDelta> {
    if (typeof part !== 'object' || part === null) return;
    const index = typeof part.index === 'number' ? part.index : 0;
    const fn = part.function ?? {};
    let call = this.#byIndex.get(index);
    if (call !== undefined && typeof part.id === 'string' && part.id !== '' && part.id !== call.id && call.started) {
      yield* this.#end(call);
      call = undefined;
    }
    if (call === undefined || call.ended) {
      // Calls stream one after another: a new index means the earlier ones are complete.
      for (const earlier of this.#order) if (earlier.index < index && !earlier.ended) yield* this.#end(earlier);
      call = { index, id: typeof part.id === 'string' && part.id !== '' ? part.id : `call_${index}_${++this.#generated}`, name: '', args: '', started: false, ended: false };
      this.#byIndex.set(index, call);
      this.#order.push(call);
    }
    // Servers send the name whole, in the call's first fragment (some repeat it later: ignored).
    if (!call.started && typeof fn.name === 'string') call.name = fn.name;
    const argsDelta = typeof fn.arguments === 'string' ? fn.arguments : '';
    if (!call.started && call.name !== '') {
      call.started = true;
      yield { type: 'tool-start', id: call.id, name: call.name };
      // Arguments that came before the name go out now, in one piece.
      if (call.args !== '') yield { type: 'tool-delta', id: call.id, argsDelta: call.args };
    }
    if (argsDelta !== '') {
      call.args += argsDelta;
      if (call.started) yield { type: 'tool-delta', id: call.id, argsDelta };
    }
  }

  *endAll(): Generator<ModelDelta> {
    for (const call of this.#order) if (!call.ended) yield* this.#end(call);
  }

  *#end(call: CallState): Generator<ModelDelta> {
    call.ended = true;
    yield { type: 'tool-end', id: call.id, name: call.name, arguments: call.args };
  }
}

/** Collects provider citations once each, numbered as the provider numbers them. */
class CitationCollector {
  #seen = new Set<string>();
  #count = 0;

  fromFrame(frame: Record<string, unknown>): Citation[] {
    const found: Citation[] = [];
    // Perplexity-style: `search_results` (with titles) and `citations` (URLs); [n] refers to entry n.
    const results = frame.search_results;
    if (Array.isArray(results)) {
      results.forEach((r: unknown, i) => {
        if (typeof r !== 'object' || r === null) return;
        const { url, title, snippet, date } = r as Record<string, unknown>;
        if (typeof url !== 'string') return;
        this.#take(found, { position: i + 1, url, ...(typeof title === 'string' ? { title } : {}), ...(typeof snippet === 'string' ? { snippet } : {}), ...(typeof date === 'string' ? { date } : {}) });
      });
    }
    const urls = frame.citations;
    if (Array.isArray(urls)) {
      urls.forEach((u: unknown, i) => {
        if (typeof u === 'string') this.#take(found, { position: i + 1, url: u });
        else if (typeof u === 'object' && u !== null && typeof (u as Citation).url === 'string') this.#take(found, { position: i + 1, ...(u as Citation) });
      });
    }
    return found;
  }

  /** OpenAI's `url_citation` annotations. */
  fromAnnotations(annotations: unknown): Citation[] {
    const found: Citation[] = [];
    if (!Array.isArray(annotations)) return found;
    for (const a of annotations) {
      const c = (a as { url_citation?: Record<string, unknown> } | null)?.url_citation;
      if (typeof c?.url !== 'string') continue;
      this.#take(found, { position: this.#count + 1, url: c.url, ...(typeof c.title === 'string' ? { title: c.title } : {}) });
    }
    return found;
  }

  #take(found: Citation[], citation: Citation): void {
    const key = citation.url as string;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.#count++;
    found.push(citation);
  }
}
