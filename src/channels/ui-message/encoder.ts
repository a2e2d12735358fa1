/**
 * `UiMessageEncoder`: Sluice events → AI SDK UI message stream parts, one run per encoder.
 *
 * Mapping (one assistant message per run; its id is the run id unless told otherwise):
 *
 * | Sluice event | parts |
 * |---|---|
 * | `run-start` | `start { messageId }` |
 * | `status` | `data-status { data: { text }, transient: true }` |
 * | `stream-start` | nothing yet: the text block opens with its first text |
 * | `chunk.text` | `text-start { id }` (first text of the block), `text-delta { id, delta }` |
 * | `chunk.citations` | `source-url` (citations with a URL) or `source-document` (without) |
 * | `chunk.image` / `buttons` / `elements` / `attachment` / `custom` | `data-image` / `data-buttons` / `data-elements` / `data-attachment` / `data-custom`, each with an `id` |
 * | `stream-end` | `text-end { id }` |
 * | `message` | `text-start` / `text-delta` / `text-end` (id `msg-<seq>`) + the same data parts |
 * | `tool-start` / `tool-delta` / `tool-call` | `tool-input-start` / `tool-input-delta` / `tool-input-available` |
 * | `tool-result` | `tool-output-available { output }` or `tool-output-error { errorText }` |
 * | `result` | nothing (its messages were already streamed as `message` events) |
 * | `error` | `error { errorText }` (a safe text: see {@link safeErrorText}) |
 * | `run-end` | `finish { finishReason: 'stop' \| 'error' }`, or `abort { reason }` when cancelled |
 *
 * Framing rules the AI SDK client enforces, kept here: every `text-delta` follows its
 * `text-start`; a text block is closed (`text-end`) before a tool or data part, so the client keeps
 * the parts in the order they were produced (text after a tool call opens a new block, id
 * `<responseId>-<n>`); a `tool-input-delta` for a call never started is dropped (the later
 * `tool-call` carries the whole input); and before `error`, `abort` or `finish` every open block is
 * closed, so no tool is left `input-streaming`. Ids derive from the response id or the event's
 * `seq`, so a replay (resume) yields the same ids and the client reconciles instead of duplicating.
 * @module
 */

import type { Citation, ErrorEvent, SluiceEvent } from '../../protocol/events.ts';
import type { JsonObject, UiMessageChunk } from './parts.ts';

/** Options of a {@link UiMessageEncoder}. */
export interface UiMessageEncoderOptions {
  /** Id of the assistant message (`start.messageId`). Default: the run id of the first event. */
  messageId?: string;
  /** The public text of an `error` part. Default {@link safeErrorText}. */
  errorText?: (event: ErrorEvent) => string;
  /** The `reason` of the `abort` part sent for a cancelled run (e.g. `stop`, `disconnect`). */
  abortReason?: () => string | undefined;
  /** Told about a part that `JSON.stringify` refused (a circular or BigInt value in `custom`); the part is skipped. */
  onEncodingError?: (error: unknown, part: UiMessageChunk) => void;
}

/** How a run's message ended, for closing what is still open. */
export type CloseReason = 'completed' | 'cancelled' | 'error';

/**
 * The default public text of an error: an `internal` error (an action's own exception, whose text
 * may hold hostnames or paths) becomes the AI SDK's `'An error occurred.'`; other codes carry a
 * message Sluice wrote to be shown.
 */
export function safeErrorText(event: ErrorEvent): string {
  return event.code === 'internal' || event.message === '' ? 'An error occurred.' : event.message;
}

const TOOL_CANCELLED = 'The tool call was cancelled';
const TOOL_UNFINISHED = 'The tool call did not finish';

/**
 * Encodes one run's events as UI message stream parts. Stateful (open blocks, tool calls), so use
 * one encoder per stream; feed it the run's events in order, from the first or from any later one
 * (a resume from a trimmed log starts mid-run and still yields a valid stream).
 *
 * Hot path: a text chunk costs one `JSON.stringify` of its text and one concat.
 */
export class UiMessageEncoder {
  #options: UiMessageEncoderOptions;
  #started = false;
  #ended = false;
  #failed = false;
  /** Response id of the streamed message in progress. */
  #stream: string | null = null;
  /** Text blocks opened so far in that message. */
  #segments = 0;
  /** Id of the open text block. */
  #textId: string | null = null;
  /** `data: {"type":"text-delta","id":…,"delta":` for the open block. */
  #deltaPrefix: string | null = null;
  /** Tool calls opened and not yet answered: id → tool name and whether the input is complete. */
  #tools = new Map<string, { name: string; available: boolean }>();

  constructor(options: UiMessageEncoderOptions = {}) {
    this.#options = options;
  }

  /** True once the run's end was encoded (`finish` or `abort` sent). */
  get ended(): boolean {
    return this.#ended;
  }

  /** SSE frames (`data: <json>\n\n` each) for one event; `''` when it maps to nothing. */
  encode(event: SluiceEvent): string {
    if (
      event.type === 'chunk' &&
      event.responseId === this.#stream &&
      this.#deltaPrefix !== null &&
      typeof event.text === 'string' &&
      event.citations === undefined &&
      event.image === undefined &&
      event.buttons === undefined &&
      event.elements === undefined &&
      event.attachment === undefined &&
      event.custom === undefined
    ) {
      return event.text === '' ? '' : `${this.#deltaPrefix}${JSON.stringify(event.text)}}\n\n`;
    }
    const parts = this.parts(event);
    let text = '';
    for (let i = 0; i < parts.length; i++) text += this.frame(parts[i]!);
    return text;
  }

  /** SSE frames for {@link UiMessageEncoder.close}. */
  encodeClose(reason: CloseReason): string {
    let text = '';
    for (const part of this.close(reason)) text += this.frame(part);
    return text;
  }

  /** Frames one part; `''` (and `onEncodingError`) when it cannot be encoded. */
  frame(part: UiMessageChunk): string {
    try {
      return `data: ${JSON.stringify(part)}\n\n`;
    } catch (error) {
      this.#options.onEncodingError?.(error, part);
      return '';
    }
  }

  /** The parts of one event, as objects. */
  parts(event: SluiceEvent): UiMessageChunk[] {
    const out: UiMessageChunk[] = [];
    if (this.#ended) return out;
    if (!this.#started) {
      this.#started = true;
      out.push({ type: 'start', messageId: this.#options.messageId ?? event.runId });
      if (event.type === 'run-start') return out;
    }
    switch (event.type) {
      case 'run-start':
      case 'result':
        break;
      case 'status':
        out.push({ type: 'data-status', data: { text: event.text }, transient: true });
        break;
      case 'stream-start':
        this.#enterStream(event.responseId, out);
        break;
      case 'chunk': {
        if (event.responseId !== this.#stream) this.#enterStream(event.responseId, out);
        if (typeof event.text === 'string' && event.text !== '') {
          if (this.#textId === null) this.#openText(out);
          out.push({ type: 'text-delta', id: this.#textId as string, delta: event.text });
        }
        if (Array.isArray(event.citations)) this.#sources(event.citations, event.responseId, event.seq, out);
        this.#data(event, event.seq, out);
        break;
      }
      case 'stream-end':
        if (event.responseId === this.#stream) {
          this.#closeText(out);
          this.#stream = null;
        }
        break;
      case 'message': {
        this.#closeText(out);
        const message = event.message;
        if (typeof message.text === 'string' && message.text !== '') {
          const id = `msg-${event.seq}`;
          out.push({ type: 'text-start', id }, { type: 'text-delta', id, delta: message.text }, { type: 'text-end', id });
        }
        this.#data(message, event.seq, out);
        break;
      }
      case 'tool-start':
        this.#startTool(event.toolCallId, event.name, out);
        break;
      case 'tool-delta':
        // The client throws on a delta for a call it never saw; the later tool-call has the whole input.
        if (this.#tools.get(event.toolCallId)?.available === false) {
          out.push({ type: 'tool-input-delta', toolCallId: event.toolCallId, inputTextDelta: event.argsDelta });
        }
        break;
      case 'tool-call': {
        const tool = this.#tools.get(event.toolCallId);
        if (tool === undefined || tool.available) this.#startTool(event.toolCallId, event.name, out);
        (this.#tools.get(event.toolCallId) as { available: boolean }).available = true;
        out.push({ type: 'tool-input-available', toolCallId: event.toolCallId, toolName: event.name, input: event.args ?? null });
        break;
      }
      case 'tool-result': {
        if (!this.#tools.has(event.toolCallId)) {
          // A result for a call this reader never saw open (a resume from a trimmed log).
          this.#startTool(event.toolCallId, event.name, out);
          out.push({ type: 'tool-input-available', toolCallId: event.toolCallId, toolName: event.name, input: null });
        }
        this.#tools.delete(event.toolCallId);
        if (event.error !== undefined) out.push({ type: 'tool-output-error', toolCallId: event.toolCallId, errorText: event.error });
        else out.push({ type: 'tool-output-available', toolCallId: event.toolCallId, output: event.output ?? null });
        break;
      }
      case 'error':
        this.#closeAll(TOOL_UNFINISHED, out);
        this.#failed = true;
        out.push({ type: 'error', errorText: (this.#options.errorText ?? safeErrorText)(event) });
        break;
      case 'run-end':
        this.#finish(event.reason === 'completed' ? 'completed' : event.reason === 'error' ? 'error' : 'cancelled', out);
        break;
    }
    return out;
  }

  /**
   * Closes every open block and ends the message, as the run's end would: `finish` for
   * `completed` / `error`, `abort` for `cancelled`. For a stream that stops before the run's
   * `run-end` arrives (e.g. building a stored snapshot of a stopped run). Nothing once ended.
   */
  close(reason: CloseReason): UiMessageChunk[] {
    const out: UiMessageChunk[] = [];
    if (this.#ended) return out;
    if (!this.#started) {
      this.#started = true;
      if (this.#options.messageId !== undefined) out.push({ type: 'start', messageId: this.#options.messageId });
    }
    this.#finish(reason, out);
    return out;
  }

  #finish(reason: CloseReason, out: UiMessageChunk[]): void {
    this.#closeAll(reason === 'cancelled' ? TOOL_CANCELLED : TOOL_UNFINISHED, out);
    this.#ended = true;
    if (reason === 'cancelled') {
      const why = this.#options.abortReason?.();
      // The AI SDK core sends `abort` and closes the stream without `finish`.
      out.push(why === undefined ? { type: 'abort' } : { type: 'abort', reason: why });
    } else {
      out.push({ type: 'finish', finishReason: reason === 'error' || this.#failed ? 'error' : 'stop' });
    }
  }

  #enterStream(responseId: string, out: UiMessageChunk[]): void {
    this.#closeText(out);
    this.#stream = responseId;
    this.#segments = 0;
  }

  #openText(out: UiMessageChunk[]): void {
    const stream = this.#stream as string;
    const id = this.#segments === 0 ? stream : `${stream}-${this.#segments}`;
    this.#segments++;
    this.#textId = id;
    this.#deltaPrefix = `data: {"type":"text-delta","id":${JSON.stringify(id)},"delta":`;
    out.push({ type: 'text-start', id });
  }

  #closeText(out: UiMessageChunk[]): void {
    if (this.#textId === null) return;
    out.push({ type: 'text-end', id: this.#textId });
    this.#textId = null;
    this.#deltaPrefix = null;
  }

  #startTool(toolCallId: string, name: string, out: UiMessageChunk[]): void {
    this.#closeText(out);
    this.#tools.set(toolCallId, { name, available: false });
    out.push({ type: 'tool-input-start', toolCallId, toolName: name });
  }

  #closeAll(toolError: string, out: UiMessageChunk[]): void {
    this.#closeText(out);
    this.#stream = null;
    for (const toolCallId of this.#tools.keys()) out.push({ type: 'tool-output-error', toolCallId, errorText: toolError });
    this.#tools.clear();
  }

  #sources(citations: Citation[], responseId: string, seq: number, out: UiMessageChunk[]): void {
    for (let i = 0; i < citations.length; i++) {
      const citation = citations[i];
      if (typeof citation !== 'object' || citation === null) continue;
      const sourceId = typeof citation.position === 'number' ? `${responseId}-src-${citation.position}` : `${responseId}-src-${seq}.${i}`;
      const meta: JsonObject = {};
      if (citation.position !== undefined) meta.position = citation.position;
      if (typeof citation.snippet === 'string') meta.snippet = citation.snippet;
      const providerMetadata = Object.keys(meta).length > 0 ? { sluice: meta } : undefined;
      const title = typeof citation.title === 'string' ? citation.title : undefined;
      if (typeof citation.url === 'string' && citation.url !== '') {
        const part: UiMessageChunk = { type: 'source-url', sourceId, url: citation.url };
        if (title !== undefined) part.title = title;
        if (providerMetadata !== undefined) part.providerMetadata = providerMetadata;
        out.push(part);
      } else {
        const label = title ?? (typeof citation.snippet === 'string' ? citation.snippet : `Source ${citation.position ?? i + 1}`);
        const part: UiMessageChunk = { type: 'source-document', sourceId, mediaType: 'text/plain', title: label };
        if (providerMetadata !== undefined) part.providerMetadata = providerMetadata;
        out.push(part);
      }
    }
  }

  /** Rich content as `data-*` parts; each one closes the text block so the client keeps the order. */
  #data(content: Record<string, unknown>, seq: number, out: UiMessageChunk[]): void {
    const { image, buttons, elements, attachment, custom } = content;
    if (typeof image === 'string' && image !== '') this.#pushData(out, 'image', seq, { url: image });
    if (Array.isArray(buttons) && buttons.length > 0) this.#pushData(out, 'buttons', seq, { buttons });
    if (Array.isArray(elements) && elements.length > 0) this.#pushData(out, 'elements', seq, { elements });
    if (attachment !== undefined && attachment !== null && attachment !== '') this.#pushData(out, 'attachment', seq, { attachment });
    if (typeof custom === 'object' && custom !== null && Object.keys(custom).length > 0) {
      // A custom payload with its own string `id` reconciles with earlier ones (update a card in place).
      const own = (custom as { id?: unknown }).id;
      this.#pushData(out, 'custom', seq, custom, typeof own === 'string' && own !== '' ? own : undefined);
    }
  }

  #pushData(out: UiMessageChunk[], kind: string, seq: number, data: unknown, id = `${kind}-${seq}`): void {
    this.#closeText(out);
    out.push({ type: `data-${kind}`, id, data });
  }
}
