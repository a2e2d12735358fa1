/**
 * Builds the assistant `UIMessage` that a UI message stream describes, on the server: what the
 * chat store saves when a run completes, fails or is stopped. It applies the parts the way the AI
 * SDK client does (`processUIMessageStream`), for the parts Sluice sends, so a page that reloads
 * the stored messages shows what the stream showed.
 * @module
 */

import type { SluiceEvent } from '../../protocol/events.ts';
import { UiMessageEncoder, type CloseReason } from './encoder.ts';
import type { UiMessage, UiMessageChunk, UiMessagePart } from './parts.ts';

/** How the message's run ended, as stored in `metadata.sluice.status`. */
export type MessageStatus = 'streaming' | 'completed' | 'cancelled' | 'error';

interface ToolPart extends UiMessagePart {
  toolCallId: string;
  state: 'input-streaming' | 'input-available' | 'output-available' | 'output-error';
  input?: unknown;
  output?: unknown;
  errorText?: string;
  rawInput?: string;
}

/** Applies UI message stream parts to one assistant message. */
export class UiMessageAssembler {
  readonly message: UiMessage;
  #text = new Map<string, { type: 'text'; text: string; state: 'streaming' | 'done' }>();
  #tools = new Map<string, ToolPart>();
  #status: MessageStatus = 'streaming';

  constructor(messageId = '') {
    this.message = { id: messageId, role: 'assistant', parts: [] };
  }

  /** `completed`, `error` or `cancelled` once the stream said so (`finish` / `abort`). */
  get status(): MessageStatus {
    return this.#status;
  }

  push(part: UiMessageChunk): void {
    const parts = this.message.parts;
    switch (part.type) {
      case 'start':
        if (part.messageId !== undefined) this.message.id = part.messageId;
        return;
      case 'text-start': {
        const text = { type: 'text' as const, text: '', state: 'streaming' as 'streaming' | 'done' };
        this.#text.set(part.id, text);
        parts.push(text);
        return;
      }
      case 'text-delta': {
        const text = this.#text.get(part.id);
        if (text !== undefined) text.text += part.delta;
        return;
      }
      case 'text-end': {
        const text = this.#text.get(part.id);
        if (text !== undefined) text.state = 'done';
        this.#text.delete(part.id);
        return;
      }
      case 'tool-input-start': {
        const tool: ToolPart = { type: `tool-${part.toolName}`, toolCallId: part.toolCallId, state: 'input-streaming' };
        this.#tools.set(part.toolCallId, tool);
        parts.push(tool);
        return;
      }
      case 'tool-input-delta': {
        const tool = this.#tools.get(part.toolCallId);
        if (tool !== undefined) tool.rawInput = (tool.rawInput ?? '') + part.inputTextDelta;
        return;
      }
      case 'tool-input-available': {
        const tool = this.#tool(part.toolCallId, part.toolName);
        tool.state = 'input-available';
        tool.input = part.input;
        delete tool.rawInput;
        return;
      }
      case 'tool-output-available': {
        const tool = this.#tools.get(part.toolCallId);
        if (tool === undefined) return;
        tool.state = 'output-available';
        tool.output = part.output;
        return;
      }
      case 'tool-output-error': {
        const tool = this.#tools.get(part.toolCallId);
        if (tool === undefined) return;
        tool.state = 'output-error';
        tool.errorText = part.errorText;
        return;
      }
      case 'source-url':
      case 'source-document': {
        const { type, ...rest } = part;
        parts.push({ type, ...rest });
        return;
      }
      case 'finish':
        this.#status = part.finishReason === 'error' ? 'error' : 'completed';
        this.#closeText();
        return;
      case 'abort':
        this.#status = 'cancelled';
        this.#closeText();
        return;
      case 'error':
        this.#status = 'error';
        return;
      default: {
        if (!part.type.startsWith('data-')) return;
        const data = part as { type: string; id?: string; data: unknown; transient?: boolean };
        if (data.transient === true) return;
        // Same type and id: the client replaces the data of the part it has.
        const existing = data.id === undefined ? undefined : parts.find((p) => p.type === data.type && p.id === data.id);
        if (existing !== undefined) existing.data = data.data;
        else parts.push(data.id === undefined ? { type: data.type, data: data.data } : { type: data.type, id: data.id, data: data.data });
      }
    }
  }

  #tool(toolCallId: string, toolName: string): ToolPart {
    let tool = this.#tools.get(toolCallId);
    if (tool === undefined) {
      tool = { type: `tool-${toolName}`, toolCallId, state: 'input-streaming' };
      this.#tools.set(toolCallId, tool);
      this.message.parts.push(tool);
    }
    return tool;
  }

  #closeText(): void {
    for (const text of this.#text.values()) text.state = 'done';
    this.#text.clear();
  }
}

/** Options of {@link assembleMessage}. */
export interface AssembleOptions {
  /** The message id; default the run id. */
  messageId?: string;
  /**
   * For a run that has not ended (a live snapshot, or a stop that cannot wait for the end): close
   * the open blocks as if it ended this way. Omit to leave them open (`state: 'streaming'`).
   */
  close?: CloseReason;
  /** Put `{ sluice: { runId, status } }` in `metadata`. Default true. */
  metadata?: boolean;
}

/**
 * The assistant message of a run, from its events (e.g. `run.events()`). When the run's log no
 * longer starts at its first event, the message holds what the log still has.
 */
export function assembleMessage(events: readonly SluiceEvent[], options: AssembleOptions = {}): UiMessage {
  const runId = events[0]?.runId ?? '';
  const messageId = options.messageId ?? runId;
  const encoder = new UiMessageEncoder({ messageId });
  const assembler = new UiMessageAssembler(messageId);
  for (let i = 0; i < events.length; i++) {
    const parts = encoder.parts(events[i]!);
    for (let j = 0; j < parts.length; j++) assembler.push(parts[j]!);
  }
  if (options.close !== undefined) for (const part of encoder.close(options.close)) assembler.push(part);
  const message = assembler.message;
  if (options.metadata !== false) message.metadata = { sluice: { runId, status: assembler.status } };
  return message;
}

/**
 * The text of a message: its text parts joined, with a blank line between two parts that do not
 * already meet at whitespace.
 */
export function messageText(message: Pick<UiMessage, 'parts'>): string {
  let text = '';
  for (const part of message.parts) {
    if (part.type !== 'text' || typeof part.text !== 'string' || part.text === '') continue;
    if (text === '' || /\s$/.test(text) || /^\s/.test(part.text)) text += part.text;
    else text += `\n\n${part.text}`;
  }
  return text;
}
