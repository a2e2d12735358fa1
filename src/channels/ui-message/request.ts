/**
 * What the AI SDK's chat transport sends (`{ id, messages, trigger?, messageId? }` with
 * `UIMessage`s), validated, and the Rasa action call built from it.
 * @module
 */

import { z } from 'zod';
import { DEFAULT_MAX_DEPTH, checkDepth } from '../../protocol/depth.ts';
import { SluiceError } from '../../protocol/errors.ts';
import type { RasaEvent } from '../../protocol/events.ts';
import { describeIssues } from '../../protocol/schemas.ts';
import { messageText } from './assembler.ts';
import type { UiMessage } from './parts.ts';

/** Longest chat id accepted. */
export const MAX_CHAT_ID_LENGTH = 256;

const partSchema = z
  .looseObject({ type: z.string().min(1) })
  .superRefine((part, ctx) => {
    if (part.type === 'text' && typeof (part as { text?: unknown }).text !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['text'], message: 'a text part needs a string `text`' });
    }
  });

const messageSchema = z.looseObject({
  id: z.string().optional(),
  role: z.enum(['system', 'user', 'assistant']),
  metadata: z.unknown().optional(),
  parts: z.array(partSchema),
});

/** A chat id as it appears in a URL or a body. */
export const chatIdSchema = z.string().min(1).max(MAX_CHAT_ID_LENGTH);

/** A validated chat request. */
export interface ChatRequest {
  id: string;
  messages: UiMessage[];
}

/**
 * Validates the body of `POST /api/chat`. Throws `invalid_argument` naming every offending field,
 * e.g. `messages.0.parts.0.text: a text part needs a string \`text\``, and a body nested deeper
 * than `maxDepth` objects/arrays. Messages without an `id`
 * get one (`<chat id>-<index>`), so stored messages can always be addressed.
 */
export function parseChatRequest(body: unknown, maxMessages: number, maxDepth: number = DEFAULT_MAX_DEPTH): ChatRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SluiceError('invalid_argument', 'Invalid chat request: the body must be a JSON object like { id, messages }');
  }
  // Before validation (which recurses) and before anything is stored (a deep value could not be read back).
  checkDepth(body, maxDepth, 'Invalid chat request: the body');
  const schema = z.looseObject({ id: chatIdSchema, messages: z.array(messageSchema).min(1).max(maxMessages) });
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new SluiceError('invalid_argument', `Invalid chat request: ${describeIssues(parsed.error)}`);
  const { id } = parsed.data;
  const messages = parsed.data.messages.map((message, index) =>
    (message.id === undefined || message.id === '' ? { ...message, id: `${id}-${index}` } : message) as UiMessage,
  );
  return { id, messages };
}

/** Options of {@link buildActionCall}. */
export interface ActionCallOptions {
  /** The action to run. */
  action: string;
  /** `latest_input_channel` of the tracker. Default `ui-message`. */
  inputChannel?: string;
}

/**
 * A Rasa action call for a chat: the tracker's `sender_id` is the chat id, `latest_message.text`
 * the last user message's text, and `events` one `user` / `bot` event per user / assistant message
 * that has text (text parts joined; tool, data and file parts are not part of the history).
 */
export function buildActionCall(chatId: string, messages: readonly UiMessage[], options: ActionCallOptions): Record<string, unknown> {
  const channel = options.inputChannel ?? 'ui-message';
  const events: RasaEvent[] = [];
  let latest: Record<string, unknown> = { text: '', intent: {}, entities: [] };
  for (const message of messages) {
    const text = messageText(message);
    if (message.role === 'user') {
      latest = { text, intent: {}, entities: [], message_id: message.id };
      events.push({ event: 'user', timestamp: null, text, parse_data: { text, intent: {}, entities: [] }, input_channel: channel, message_id: message.id });
    } else if (message.role === 'assistant' && text !== '') {
      events.push({ event: 'bot', timestamp: null, text, data: {}, metadata: { message_id: message.id } });
    }
  }
  return {
    next_action: options.action,
    sender_id: chatId,
    tracker: {
      sender_id: chatId,
      slots: {},
      latest_message: latest,
      events,
      paused: false,
      followup_action: null,
      active_loop: {},
      latest_action_name: 'action_listen',
      latest_input_channel: channel,
    },
  };
}
