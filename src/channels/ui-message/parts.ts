/**
 * The AI SDK UI message stream as Sluice speaks it: the part ("chunk") types it emits, the
 * `UIMessage` shape it reads and stores, and the response headers. Names and fields follow the
 * AI SDK's `uiMessageChunkSchema` (`ai@7`), so a stock `useChat` / `DefaultChatTransport` accepts
 * every part; only the subset Sluice produces is typed here.
 * @module
 */

/** A JSON object (provider metadata, data payloads). */
export type JsonObject = Record<string, unknown>;

/** Why a message finished (the AI SDK's `FinishReason`; Sluice sends `stop` and `error`). */
export type UiFinishReason = 'stop' | 'length' | 'content-filter' | 'tool-calls' | 'error' | 'interrupted' | 'other';

/** One part of the UI message stream. */
export type UiMessageChunk =
  | { type: 'start'; messageId?: string; messageMetadata?: unknown }
  | { type: 'text-start'; id: string }
  | { type: 'text-delta'; id: string; delta: string }
  | { type: 'text-end'; id: string }
  | { type: 'tool-input-start'; toolCallId: string; toolName: string }
  | { type: 'tool-input-delta'; toolCallId: string; inputTextDelta: string }
  | { type: 'tool-input-available'; toolCallId: string; toolName: string; input: unknown }
  | { type: 'tool-output-available'; toolCallId: string; output: unknown }
  | { type: 'tool-output-error'; toolCallId: string; errorText: string }
  | { type: 'source-url'; sourceId: string; url: string; title?: string; providerMetadata?: Record<string, JsonObject> }
  | { type: 'source-document'; sourceId: string; mediaType: string; title: string; providerMetadata?: Record<string, JsonObject> }
  | { type: `data-${string}`; id?: string; data: unknown; transient?: boolean }
  | { type: 'finish'; finishReason?: UiFinishReason }
  | { type: 'error'; errorText: string }
  | { type: 'abort'; reason?: string };

/** A part of a stored {@link UiMessage} (the AI SDK's `UIMessagePart`, loosely typed). */
export interface UiMessagePart {
  type: string;
  [key: string]: unknown;
}

/** A chat message in the AI SDK's `UIMessage` JSON shape. */
export interface UiMessage {
  id: string;
  role: 'system' | 'user' | 'assistant';
  metadata?: unknown;
  parts: UiMessagePart[];
}

/**
 * Headers of a UI message stream response: the AI SDK's `UI_MESSAGE_STREAM_HEADERS`, with
 * `no-transform` added so that proxies and CDNs neither compress nor buffer the stream.
 */
export const UI_MESSAGE_STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-vercel-ai-ui-message-stream': 'v1',
  'x-accel-buffering': 'no',
});

/** The last frame of every stream that reached its end. */
export const DONE_FRAME = 'data: [DONE]\n\n';

/** Frames one part as SSE (`data: <json>\n\n`). Throws what `JSON.stringify` throws. */
export function formatPart(part: UiMessageChunk): string {
  return `data: ${JSON.stringify(part)}\n\n`;
}

/** Reads the frames of a UI message stream body back into parts (`[DONE]` and comments are skipped). */
export function parseFrames(text: string): UiMessageChunk[] {
  const parts: UiMessageChunk[] = [];
  for (const block of text.split('\n\n')) {
    for (const line of block.split('\n')) {
      if (!line.startsWith('data: ')) continue;
      const data = line.slice(6);
      if (data !== '[DONE]') parts.push(JSON.parse(data) as UiMessageChunk);
    }
  }
  return parts;
}
