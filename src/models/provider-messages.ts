/**
 * Our chat messages in a provider's wire shape. Providers spell text messages alike; they differ
 * in an assistant message with tool calls and in a tool result, which each adapter gives.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { AssistantMessage, ChatMessage, ToolCall, ToolMessage } from './types.ts';

/** A text message, in the shape every supported provider accepts as is. */
export type TextMessage = { role: 'system'; content: string } | { role: 'user'; content: string } | { role: 'assistant'; content: string };

/** How one provider spells the messages that differ between providers. */
export interface ProviderMessageShapes<T> {
  /** An assistant message with at least one tool call (`calls`, its tool calls). */
  assistantWithCalls(message: AssistantMessage, calls: ToolCall[]): T;
  tool(message: ToolMessage): T;
}

/**
 * Converts messages for a provider: text messages as {@link TextMessage}s (an assistant message
 * without tool calls and without text as empty text), the rest with `shapes`.
 *
 * @throws {SluiceError} `invalid_argument` for a message with an unknown role (callers in plain
 *   JavaScript can pass anything).
 */
export function toProviderMessages<T>(messages: readonly ChatMessage[], shapes: ProviderMessageShapes<T>): (T | TextMessage)[] {
  return messages.map((m): T | TextMessage => {
    switch (m.role) {
      case 'system':
      case 'user':
        return { role: m.role, content: m.content };
      case 'assistant': {
        const calls = m.toolCalls ?? [];
        if (calls.length === 0) return { role: 'assistant', content: m.content ?? '' };
        return shapes.assistantWithCalls(m, calls);
      }
      case 'tool':
        return shapes.tool(m);
      default:
        throw new SluiceError('invalid_argument', `Unknown chat message role '${String((m as { role?: unknown }).role)}'`);
    }
  });
}
