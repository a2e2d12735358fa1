/**
 * `streamModel`: runs a chat model inside an action. Text becomes the chunks of one streamed
 * message, tool calls become `tool-*` events and are executed as soon as their arguments are
 * complete, and the model is called again with the results until it answers (bounded by
 * `maxToolRounds`). The dispatcher's signal reaches the model's HTTP request and every tool, so a
 * barge-in stops token spend; usage is returned (and reported) also when the turn is cancelled.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { Citation } from '../protocol/events.ts';
import type { Dispatcher } from '../runtime/dispatcher.ts';
import type { Logger } from '../runtime/logger.ts';
import { silentLogger } from '../runtime/logger.ts';
import { isAbortLike, modelError } from './errors.ts';
import type {
  AssistantMessage,
  ChatMessage,
  ChatModel,
  FinishReason,
  JsonSchema,
  ModelDelta,
  ModelRequest,
  ModelUsage,
  ToolCall,
  ToolChoice,
  ToolDefinition,
  ToolMessage,
} from './types.ts';
import { addUsage, emptyUsage, estimateInputTokens, estimateTokens } from './types.ts';
import { startModelSpan, startToolSpan } from './telemetry.ts';

/** What a tool's `execute` gets besides its arguments. */
export interface ToolContext {
  /** Aborts on barge-in, stop, or when the model call fails: stop the tool's work. */
  signal: AbortSignal;
  toolCallId: string;
}

/**
 * A tool the model may call. `execute` returns a JSON-serializable value (returning nothing
 * reports `null`); what it throws becomes a `tool-result` with a safe `error` (a `SluiceError`'s
 * message is shown as is, anything else as "Tool 'x' failed"; the error itself is logged).
 */
export interface Tool<Args = any> {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object. */
  parameters: JsonSchema;
  execute(args: Args, context: ToolContext): unknown;
  /** An informative update sent when the tool starts, e.g. `(a) => \`Checking the weather in ${a.city}…\``. */
  status?: string | ((args: Args) => string);
}

/** Options of {@link streamModel}. */
export interface StreamModelOptions {
  /** The conversation so far, oldest first. */
  messages: ChatMessage[];
  tools?: Tool[];
  /** Whether the model may, must or must not call tools (default `auto`). */
  toolChoice?: ToolChoice;
  /** An informative update ("Thinking…") sent before anything else. */
  status?: string;
  /**
   * Sources you retrieved yourself, attached to the first chunk. The model's own citations are
   * attached to the chunk after they arrive; `false` drops them.
   */
  citations?: Citation[] | false;
  /** Most model calls whose tool calls are executed; the call after that must answer in text. Default 5. */
  maxToolRounds?: number;
  /** Longest wait for the model's next delta before the call fails with `timeout`. Default 30,000 ms. */
  idleTimeoutMs?: number;
  /** After an abort, how long to wait for the model's last usage report before estimating it. Default 1,000 ms. */
  abortGraceMs?: number;
  maxOutputTokens?: number;
  temperature?: number;
  logger?: Logger;
  /** Called once per turn with the tokens used, also when it is cancelled or fails: meter here. */
  onUsage?: (usage: ModelUsage, info: UsageInfo) => void;
}

/** What {@link StreamModelOptions.onUsage} is told besides the usage. */
export interface UsageInfo {
  model: string;
  finishReason: FinishReason;
  cancelled: boolean;
  /** Code of the error that ended the turn, if one did. */
  error?: string;
}

/** A tool call made during the turn, with its outcome. */
export interface ToolCallRecord {
  id: string;
  name: string;
  /** Parsed arguments (the raw text when they were not valid JSON). */
  args: unknown;
  output?: unknown;
  error?: string;
}

/** What {@link streamModel} resolves to. */
export interface StreamModelResult {
  /** The text delivered to the user (what was passed to the dispatcher, also when cancelled). */
  text: string;
  /** Tokens used by all model calls of the turn; `estimated` when a provider did not report them. */
  usage: ModelUsage;
  finishReason: FinishReason;
  toolCalls: ToolCallRecord[];
  /** True when the dispatcher's signal aborted (barge-in, stop). */
  cancelled: boolean;
  citations: Citation[];
  /**
   * The messages this turn adds to the conversation: assistant messages (with their tool calls)
   * and tool results, ending with the answer, partial if cancelled. Every tool call in them has
   * its result, so the history stays valid for the next call.
   */
  messages: ChatMessage[];
  /** Id of the streamed message, or null when no text was sent. */
  responseId: string | null;
}

const DEFAULT_MAX_TOOL_ROUNDS = 5;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_ABORT_GRACE_MS = 1_000;
const ABORTED = Symbol('aborted');
const IDLE = Symbol('idle');

type Step = IteratorResult<ModelDelta> | typeof ABORTED | typeof IDLE;

interface OpenCall {
  id: string;
  name: string;
  args: string;
  started: boolean;
  sentDelta: boolean;
}

/**
 * Streams a model's answer through `dispatcher`: `status` first, then the text as chunks of one
 * streamed message, tool events, and the stream's end. A model that cannot stream, or a
 * dispatcher that collects instead of streaming, gets each round's text as one chunk.
 *
 * Cancellation: when `dispatcher.signal` aborts, the model's request is aborted at once (the
 * provider's connection is closed), tools are signalled, and the promise resolves with
 * `cancelled: true`, the text delivered so far and the usage so far.
 *
 * Failure: a provider that errors, sends malformed data or stalls longer than `idleTimeoutMs`
 * makes this throw a `SluiceError` (`unavailable`, `internal`, `timeout`, `resource_exhausted`)
 * whose message is safe to show and whose `details` hold `reason`, `text` (what was delivered)
 * and `usage`. The text already streamed stays delivered and its message ends with reason
 * `error`. Left uncaught, the action's run ends in an `error` event; to answer anyway, catch it:
 *
 * @example
 * try {
 *   const { text } = await streamModel(dispatcher, model, { messages, tools });
 *   return [slotSet('last_answer', text)];
 * } catch (error) {
 *   if (!SluiceError.isInstance(error)) throw error;
 *   dispatcher.utterMessage({ text: 'Sorry, I lost my train of thought. Could you ask again?' });
 *   return [slotSet('model_error', error.code)];
 * }
 */
export async function streamModel(dispatcher: Dispatcher, model: ChatModel, options: StreamModelOptions): Promise<StreamModelResult> {
  return new ModelTurn(dispatcher, model, options).run();
}

class ModelTurn {
  readonly #dispatcher: Dispatcher;
  readonly #model: ChatModel;
  readonly #options: StreamModelOptions;
  readonly #logger: Logger;
  readonly #tools = new Map<string, Tool>();
  readonly #definitions: ToolDefinition[] | undefined;
  readonly #maxToolRounds: number;
  readonly #idleMs: number;
  readonly #graceMs: number;
  /** Aborted on an idle timeout or a model failure: stops the request and the tools. */
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;

  #text = '';
  #usage = emptyUsage();
  #finish: FinishReason = 'other';
  #toolCalls: ToolCallRecord[] = [];
  #citations: Citation[] = [];
  #citationKeys = new Set<string>();
  #pendingCitations: Citation[] = [];
  #added: ChatMessage[] = [];
  #responseId: string | null = null;
  #streamOpen = false;
  #reported = false;

  constructor(dispatcher: Dispatcher, model: ChatModel, options: StreamModelOptions) {
    if (typeof options !== 'object' || options === null || !Array.isArray(options.messages)) {
      throw new SluiceError('invalid_argument', "streamModel: 'messages' must be an array of chat messages");
    }
    for (const tool of options.tools ?? []) {
      if (typeof tool?.name !== 'string' || tool.name === '' || typeof tool.execute !== 'function') {
        throw new SluiceError('invalid_argument', 'streamModel: every tool needs a name and an execute(args, context) function');
      }
      if (this.#tools.has(tool.name)) throw new SluiceError('invalid_argument', `streamModel: two tools are named '${tool.name}'`);
      this.#tools.set(tool.name, tool);
    }
    this.#maxToolRounds = nonNegative('maxToolRounds', options.maxToolRounds, DEFAULT_MAX_TOOL_ROUNDS);
    this.#idleMs = nonNegative('idleTimeoutMs', options.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS);
    this.#graceMs = nonNegative('abortGraceMs', options.abortGraceMs, DEFAULT_ABORT_GRACE_MS);
    this.#dispatcher = dispatcher;
    this.#model = model;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.#definitions =
      this.#tools.size === 0
        ? undefined
        : [...this.#tools.values()].map((t) => (t.description === undefined ? { name: t.name, parameters: t.parameters } : { name: t.name, description: t.description, parameters: t.parameters }));
    this.#signal = AbortSignal.any([dispatcher.signal, this.#stop.signal]);
  }

  get #cancelled(): boolean {
    return this.#dispatcher.signal.aborted;
  }

  async run(): Promise<StreamModelResult> {
    const history = this.#options.messages.slice();
    try {
      if (this.#cancelled) return this.#cancelledResult();
      if (this.#options.status !== undefined) await this.#dispatcher.status(this.#options.status);
      if (Array.isArray(this.#options.citations)) this.#addCitations(this.#options.citations);
      for (let round = 0; ; round++) {
        const toolsAllowed = round < this.#maxToolRounds;
        const outcome = await this.#round(history, round, toolsAllowed);
        if (outcome === ABORTED) return this.#cancelledResult();
        const { calls, text } = outcome;
        if (calls.length === 0) {
          if (text !== '') this.#added.push({ role: 'assistant', content: text });
          break;
        }
        const assistant: AssistantMessage = { role: 'assistant', content: text === '' ? null : text, toolCalls: calls.map((c) => c.call) };
        if ((await this.#settleTools(calls)) === ABORTED) {
          this.#pushPartial(text, calls);
          return this.#cancelledResult();
        }
        const results = calls.map((c) => c.message as ToolMessage);
        history.push(assistant, ...results);
        this.#added.push(assistant, ...results);
        if (!toolsAllowed) {
          this.#logger.warn({ model: this.#model.name, maxToolRounds: this.#maxToolRounds }, 'The model kept calling tools after the last tool round; its calls were refused');
          this.#finish = 'tool-calls';
          break;
        }
      }
      await this.#flushCitations();
      if (this.#cancelled) return this.#cancelledResult();
      if (this.#streamOpen) {
        this.#streamOpen = false;
        await this.#dispatcher.streamEnd();
      }
      this.#report();
      return this.#result(false);
    } catch (thrown) {
      if (isAbortLike(thrown, this.#dispatcher.signal)) return this.#cancelledResult();
      throw await this.#fail(thrown);
    }
  }

  /** One model call. Resolves to its text and tool calls (with their executions), or ABORTED. */
  async #round(history: ChatMessage[], round: number, toolsAllowed: boolean): Promise<{ text: string; calls: PendingCall[] } | typeof ABORTED> {
    const model = this.#model;
    // Without a live run (Rasa's non-streaming path) every chunk becomes a whole message: one
    // per token would flood the chat, so each round's text goes out as one chunk.
    const buffered = !model.supportsStreaming || !this.#dispatcher.isStreaming;
    const request: ModelRequest = { messages: history, signal: this.#signal };
    if (this.#definitions !== undefined) {
      request.tools = this.#definitions;
      request.toolChoice = toolsAllowed ? (this.#options.toolChoice ?? 'auto') : 'none';
    }
    if (this.#options.maxOutputTokens !== undefined) request.maxOutputTokens = this.#options.maxOutputTokens;
    if (this.#options.temperature !== undefined) request.temperature = this.#options.temperature;
    let reader: DeltaReader;
    try {
      reader = new DeltaReader(model.stream(request)[Symbol.asyncIterator](), this.#idleMs, this.#dispatcher.signal);
    } catch (error) {
      throw modelError(error, model.name);
    }
    const span = startModelSpan(model, round);
    const startedAt = span === null ? 0 : performance.now();
    let firstTokenAt = -1;
    let failed: Error | undefined;
    const open = new Map<string, OpenCall>();
    const calls: PendingCall[] = [];
    const roundStart = this.#text.length;
    let pendingText = '';
    let usage: ModelUsage | null = null;
    let finish: FinishReason | null = null;
    let outputChars = 0;
    try {
      for (;;) {
        const step = await reader.next();
        if (step === ABORTED) {
          usage = await reader.drainUsage(this.#graceMs, usage);
          this.#closeRound(usage, history, outputChars);
          this.#pushPartial(this.#text.slice(roundStart), calls);
          return ABORTED;
        }
        if (step === IDLE) {
          throw new SluiceError('timeout', 'The model stopped responding', {
            details: { reason: 'model_idle_timeout', model: model.name, idleTimeoutMs: this.#idleMs },
          });
        }
        if (step.done === true) break;
        const delta = step.value;
        switch (delta?.type) {
          case 'text': {
            if (typeof delta.text !== 'string' || delta.text === '') break;
            if (firstTokenAt < 0 && span !== null) firstTokenAt = performance.now();
            let piece = delta.text;
            // A later round's answer would otherwise run into the earlier round's text (when
            // collected, each round is a message of its own and needs no separator).
            if (round > 0 && this.#dispatcher.isStreaming && this.#text.length === roundStart && pendingText === '' && this.#text !== '' && !/\s$/.test(this.#text) && !/^\s/.test(piece)) {
              piece = `\n\n${piece}`;
            }
            outputChars += delta.text.length;
            if (buffered) pendingText += piece;
            else await this.#chunk(piece);
            break;
          }
          case 'citations':
            if (this.#options.citations !== false && Array.isArray(delta.citations)) this.#addCitations(delta.citations);
            break;
          case 'tool-start': {
            if (open.has(delta.id)) break;
            open.set(delta.id, { id: delta.id, name: delta.name, args: '', started: true, sentDelta: false });
            await this.#dispatcher.toolStart(delta.id, delta.name);
            break;
          }
          case 'tool-delta': {
            let call = open.get(delta.id);
            if (call === undefined) {
              // A delta before its start: keep the text, announce the call when it ends.
              call = { id: delta.id, name: '', args: '', started: false, sentDelta: false };
              open.set(delta.id, call);
            }
            call.args += delta.argsDelta;
            outputChars += delta.argsDelta.length;
            if (call.started) {
              call.sentDelta = true;
              await this.#dispatcher.toolDelta(delta.id, delta.argsDelta);
            }
            break;
          }
          case 'tool-end': {
            const call = open.get(delta.id) ?? { id: delta.id, name: delta.name, args: '', started: false, sentDelta: false };
            open.delete(delta.id);
            const args = typeof delta.arguments === 'string' ? delta.arguments : call.args;
            if (!call.started) await this.#dispatcher.toolStart(delta.id, delta.name);
            if (!call.sentDelta && args !== '') await this.#dispatcher.toolDelta(delta.id, args);
            if (call.args === '') outputChars += args.length;
            calls.push(this.#startTool(delta.id, delta.name, args, toolsAllowed));
            break;
          }
          case 'usage':
            usage = delta.usage;
            break;
          case 'finish':
            finish = delta.reason;
            break;
          default:
            this.#logger.debug({ model: model.name, delta }, 'Ignoring an unknown model delta');
        }
      }
    } catch (error) {
      if (isAbortLike(error, this.#dispatcher.signal)) {
        this.#closeRound(usage, history, outputChars);
        this.#pushPartial(this.#text.slice(roundStart), calls);
        return ABORTED;
      }
      const failure = SluiceError.isInstance(error) ? error : modelError(error, model.name);
      failed = failure;
      // Stop the provider's request (a stalled one included) and any tool still running.
      if (!this.#stop.signal.aborted) this.#stop.abort(failure);
      reader.close();
      this.#closeRound(usage, history, outputChars);
      await this.#closeOpenCalls(open, 'The model stopped before finishing this tool call');
      throw failure;
    } finally {
      reader.dispose();
      span?.end(usage, finish, firstTokenAt < 0 ? -1 : firstTokenAt - startedAt, failed);
    }
    this.#closeRound(usage, history, outputChars);
    if (this.#cancelled) {
      this.#pushPartial(this.#text.slice(roundStart), calls);
      return ABORTED;
    }
    await this.#closeOpenCalls(open, 'The model did not finish this tool call');
    if (pendingText !== '') await this.#chunk(pendingText);
    this.#finish = finish ?? (calls.length > 0 ? 'tool-calls' : 'other');
    if (!toolsAllowed && calls.length > 0) this.#finish = 'tool-calls';
    return { text: this.#text.slice(roundStart), calls };
  }

  /** Adds the round's usage, estimating it when the model reported none. */
  #closeRound(usage: ModelUsage | null, history: ChatMessage[], outputChars: number): void {
    if (usage !== null) {
      this.#usage = addUsage(this.#usage, usage);
      return;
    }
    const inputTokens = estimateInputTokens(history, this.#definitions);
    const outputTokens = Math.ceil(outputChars / 4);
    this.#usage = addUsage(this.#usage, { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens, estimated: true });
  }

  /** Sends one chunk, opening the streamed message first; pending citations ride along. */
  async #chunk(text: string): Promise<void> {
    if (this.#cancelled) return;
    await this.#open();
    this.#text += text;
    if (this.#pendingCitations.length > 0) {
      const citations = this.#pendingCitations;
      this.#pendingCitations = [];
      await this.#dispatcher.streamChunk({ text, citations });
    } else await this.#dispatcher.streamChunk({ text });
  }

  async #open(): Promise<void> {
    if (this.#streamOpen) return;
    this.#streamOpen = true;
    await this.#dispatcher.streamStart();
    this.#responseId = this.#dispatcher.responseId;
  }

  /** Citations that arrived after the last text go out in a chunk of their own. */
  async #flushCitations(): Promise<void> {
    if (this.#pendingCitations.length === 0 || this.#cancelled || !this.#streamOpen) return;
    const citations = this.#pendingCitations;
    this.#pendingCitations = [];
    await this.#dispatcher.streamChunk({ citations });
  }

  #addCitations(list: readonly Citation[]): void {
    for (const raw of list) {
      if (typeof raw !== 'object' || raw === null) continue;
      const key = typeof raw.url === 'string' ? `u:${raw.url}` : typeof raw.title === 'string' ? `t:${raw.title}` : `j:${JSON.stringify(raw)}`;
      if (this.#citationKeys.has(key)) continue;
      this.#citationKeys.add(key);
      const citation: Citation = raw.position === undefined ? { position: this.#citations.length + 1, ...raw } : { ...raw };
      this.#citations.push(citation);
      this.#pendingCitations.push(citation);
    }
  }

  /** Announces a complete call and starts its tool at once, while the model goes on. */
  #startTool(id: string, name: string, argsText: string, allowed: boolean): PendingCall {
    const call: ToolCall = { id, name, arguments: argsText };
    const pending: PendingCall = { call, message: null, done: Promise.resolve() };
    const record: ToolCallRecord = { id, name, args: argsText };
    this.#toolCalls.push(record);
    let args: unknown;
    let problem: string | null = null;
    try {
      args = argsText.trim() === '' ? {} : JSON.parse(argsText);
      record.args = args;
    } catch {
      problem = `The arguments for tool '${name}' are not valid JSON`;
    }
    const tool = this.#tools.get(name);
    if (problem === null && tool === undefined) problem = `Unknown tool '${name}'`;
    if (problem === null && !allowed) problem = 'Tool call limit reached: answer without calling more tools';
    const done = (async () => {
      await this.#emit(() => this.#dispatcher.toolCall(id, name, record.args));
      if (problem !== null) {
        this.#resolveTool(pending, record, { error: problem });
        await this.#emit(() => this.#dispatcher.toolResult(id, name, { error: problem }));
        return;
      }
      await this.#runTool(tool as Tool, pending, record, args);
    })();
    // Awaited with the other calls of the round, or never (cancel): don't let it go unhandled.
    done.catch(() => {});
    pending.done = done;
    return pending;
  }

  async #runTool(tool: Tool, pending: PendingCall, record: ToolCallRecord, args: unknown): Promise<void> {
    const { id, name } = record;
    if (tool.status !== undefined) {
      let text: string | undefined;
      try {
        text = typeof tool.status === 'function' ? tool.status(args) : tool.status;
      } catch (error) {
        this.#logger.warn({ err: error, tool: name }, `Tool '${name}': its status() threw; no status sent`);
      }
      if (typeof text === 'string' && text !== '') await this.#emit(() => this.#dispatcher.status(text));
    }
    let outcome: { output: unknown } | { error: string };
    const span = startToolSpan(name, id);
    try {
      const value = await tool.execute(args, { signal: this.#signal, toolCallId: id });
      const json = value === undefined ? 'null' : safeStringify(value);
      if (json === undefined) {
        this.#logger.error({ tool: name, toolCallId: id }, `Tool '${name}' returned a value that is not JSON`);
        outcome = { error: `Tool '${name}' returned an invalid result` };
      } else outcome = { output: JSON.parse(json) as unknown };
    } catch (error) {
      if (this.#signal.aborted) {
        outcome = { error: `Tool '${name}' was cancelled` };
      } else {
        this.#logger.error({ err: error, tool: name, toolCallId: id }, `Tool '${name}' failed`);
        outcome = { error: SluiceError.isInstance(error) ? error.message : `Tool '${name}' failed` };
      }
    }
    span?.end('error' in outcome ? outcome.error : undefined);
    this.#resolveTool(pending, record, outcome);
    await this.#emit(() => this.#dispatcher.toolResult(id, name, outcome));
  }

  #resolveTool(pending: PendingCall, record: ToolCallRecord, outcome: { output: unknown } | { error: string }): void {
    if ('error' in outcome) {
      record.error = outcome.error;
      pending.message = { role: 'tool', toolCallId: record.id, name: record.name, content: JSON.stringify({ error: outcome.error }) };
    } else {
      record.output = outcome.output;
      pending.message = { role: 'tool', toolCallId: record.id, name: record.name, content: JSON.stringify(outcome.output) };
    }
  }

  /** Waits for every tool of the round, or for the abort. */
  async #settleTools(calls: PendingCall[]): Promise<void | typeof ABORTED> {
    const all = Promise.all(calls.map((c) => c.done));
    const signal = this.#dispatcher.signal;
    if (signal.aborted) return ABORTED;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<typeof ABORTED>((resolve) => {
      onAbort = () => resolve(ABORTED);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const settled = await Promise.race([all, aborted]);
      return settled === ABORTED || signal.aborted ? ABORTED : undefined;
    } finally {
      signal.removeEventListener('abort', onAbort as () => void);
    }
  }

  /** Closes tool calls the model opened but never finished, so no reader waits on them. */
  async #closeOpenCalls(open: Map<string, OpenCall>, error: string): Promise<void> {
    for (const call of open.values()) {
      if (!call.started) continue;
      this.#toolCalls.push({ id: call.id, name: call.name, args: call.args, error });
      await this.#emit(() => this.#dispatcher.toolResult(call.id, call.name, { error }));
    }
    open.clear();
  }

  /** The partial answer of an interrupted round, for the history (tool calls without results are left out). */
  #pushPartial(text: string, calls: PendingCall[]): void {
    const done = calls.filter((c) => c.message !== null);
    if (text === '' && done.length === 0) return;
    this.#added.push({ role: 'assistant', content: text === '' ? null : text, ...(done.length > 0 ? { toolCalls: done.map((c) => c.call) } : {}) });
    for (const c of done) this.#added.push(c.message as ToolMessage);
  }

  /** Dispatcher calls from tools may come after the run ended (abandoned action): drop them. */
  async #emit(send: () => Promise<void> | undefined): Promise<void> {
    try {
      await send();
    } catch (error) {
      if (!this.#signal.aborted) throw error;
    }
  }

  async #fail(thrown: unknown): Promise<SluiceError> {
    const error = SluiceError.isInstance(thrown) ? thrown : modelError(thrown, this.#model.name);
    if (!this.#stop.signal.aborted) this.#stop.abort(error);
    this.#finish = 'other';
    this.#logger.warn({ err: thrown, code: error.code, model: this.#model.name }, `Model '${this.#model.name}' failed: ${error.message}`);
    if (this.#streamOpen) {
      this.#streamOpen = false;
      try {
        // Readers see the partial message end as an error, whether or not the action catches this.
        await this.#dispatcher.closeStreamOnError();
      } catch {
        // The run has already ended.
      }
    }
    this.#report(error.code);
    error.details.text ??= this.#text;
    error.details.usage ??= this.#usage;
    return error;
  }

  #cancelledResult(): StreamModelResult {
    this.#finish = 'aborted';
    if (this.#streamOpen) {
      this.#streamOpen = false;
      try {
        // The barge-in already ended the stream on the wire; this only tells the dispatcher we are done.
        this.#dispatcher.streamEnd()?.catch(() => {});
      } catch {
        // The run has already ended.
      }
    }
    this.#report();
    return this.#result(true);
  }

  #report(errorCode?: string): void {
    if (this.#reported) return;
    this.#reported = true;
    const cancelled = this.#cancelled;
    const info: UsageInfo = { model: this.#model.name, finishReason: this.#finish, cancelled };
    if (errorCode !== undefined) info.error = errorCode;
    this.#logger.info({ ...info, usage: this.#usage }, 'Model usage');
    try {
      this.#options.onUsage?.(this.#usage, info);
    } catch (error) {
      this.#logger.error({ err: error }, 'onUsage threw');
    }
  }

  #result(cancelled: boolean): StreamModelResult {
    return {
      text: this.#text,
      usage: this.#usage,
      finishReason: this.#finish,
      toolCalls: this.#toolCalls,
      cancelled,
      citations: this.#citations,
      messages: this.#added,
      responseId: this.#responseId,
    };
  }
}

interface PendingCall {
  call: ToolCall;
  /** The tool message once the call has its result. */
  message: ToolMessage | null;
  done: Promise<void>;
}

/**
 * Reads a model's deltas, racing the caller's abort and an idle timer. The timer only counts
 * while waiting on the model, so a slow reader of the run (backpressure) is never a model stall.
 * A read that lost a race stays pending and is the first one {@link DeltaReader.drainUsage} sees.
 */
class DeltaReader {
  readonly #iterator: AsyncIterator<ModelDelta>;
  readonly #ms: number;
  readonly #signal: AbortSignal;
  #timer: NodeJS.Timeout | undefined;
  #pending: Promise<IteratorResult<ModelDelta>> | null = null;
  #fire: ((value: typeof IDLE | typeof ABORTED) => void) | null = null;
  #onAbort = (): void => this.#fire?.(ABORTED);

  constructor(iterator: AsyncIterator<ModelDelta>, ms: number, signal: AbortSignal) {
    this.#iterator = iterator;
    this.#ms = ms;
    this.#signal = signal;
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  async next(): Promise<Step> {
    if (this.#signal.aborted) return ABORTED;
    const read = (this.#pending ??= this.#iterator.next());
    const interrupt = new Promise<typeof IDLE | typeof ABORTED>((resolve) => {
      this.#fire = resolve;
    });
    if (this.#ms > 0) {
      if (this.#timer === undefined) this.#timer = setTimeout(() => this.#fire?.(IDLE), this.#ms);
      else this.#timer.refresh();
    }
    try {
      const step = await Promise.race([read, interrupt]);
      if (step !== IDLE && step !== ABORTED) this.#pending = null;
      return step;
    } finally {
      this.#fire = null;
    }
  }

  /** After an abort: reads what the model still yields for up to `graceMs`, keeping only its usage. */
  async drainUsage(graceMs: number, usage: ModelUsage | null): Promise<ModelUsage | null> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<typeof IDLE>((resolve) => {
      timer = setTimeout(resolve, graceMs, IDLE);
    });
    try {
      for (;;) {
        const read = this.#pending ?? this.#iterator.next();
        this.#pending = null;
        const step = await Promise.race([read, expired]);
        if (step === IDLE || step.done === true) break;
        if (step.value?.type === 'usage') usage = step.value.usage;
        else if (step.value?.type === 'finish') break;
      }
    } catch {
      // An aborted provider stream may throw; the usage so far is all there is.
    } finally {
      clearTimeout(timer);
      this.close();
    }
    return usage;
  }

  /** Ends the model's iterator without waiting: a stalled one would never answer. */
  close(): void {
    this.#pending?.catch(() => {});
    this.#pending = null;
    void closeQuietly(this.#iterator);
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#signal.removeEventListener('abort', this.#onAbort);
  }
}

async function closeQuietly(iterator: AsyncIterator<unknown>): Promise<void> {
  try {
    await iterator.return?.();
  } catch {
    // Closing an aborted provider stream may reject; nothing is waiting for it.
  }
}

function safeStringify(value: unknown): string | undefined {
  try {
    const json = JSON.stringify(value);
    return typeof json === 'string' ? json : undefined;
  } catch {
    return undefined;
  }
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new SluiceError('invalid_argument', `streamModel: '${name}' must be a non-negative number (got ${String(value)})`);
  }
  return value;
}
