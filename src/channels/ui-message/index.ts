/**
 * The AI SDK UI message stream channel: an encoder from Sluice events to UI message stream parts,
 * a server-side message assembler, a chat store, and the `/api/chat` endpoints (a Fastify plugin)
 * that the AI SDK's `useChat` / `DefaultChatTransport` talk to unchanged.
 * @module
 */

export { UiMessageEncoder, safeErrorText } from './encoder.ts';
export type { CloseReason, UiMessageEncoderOptions } from './encoder.ts';
export { UiMessageAssembler, assembleMessage, messageText } from './assembler.ts';
export type { AssembleOptions, MessageStatus } from './assembler.ts';
export { DONE_FRAME, UI_MESSAGE_STREAM_HEADERS, formatPart, parseFrames } from './parts.ts';
export type { JsonObject, UiFinishReason, UiMessage, UiMessageChunk, UiMessagePart } from './parts.ts';
export { MAX_CHAT_ID_LENGTH, buildActionCall, chatIdSchema, parseChatRequest } from './request.ts';
export type { ActionCallOptions, ChatRequest } from './request.ts';
export { MemoryChatStore } from './store.ts';
export type { ChatStore, MemoryChatStoreOptions } from './store.ts';
export { RUN_ID_HEADER, uiMessageRoutes } from './routes.ts';
export type { UiMessageRoutesOptions } from './routes.ts';
