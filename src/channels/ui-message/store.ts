/**
 * Where a chat's messages are kept between requests, so a page that reloads (or a second tab)
 * shows the conversation, including an answer that was stopped half-way.
 * @module
 */

import type { UiMessage } from './parts.ts';

/**
 * A chat's saved messages by chat id. Implement it over your database; methods may be async.
 * `save` replaces the chat's whole list.
 */
export interface ChatStore {
  get(chatId: string): UiMessage[] | undefined | Promise<UiMessage[] | undefined>;
  save(chatId: string, messages: UiMessage[]): void | Promise<void>;
  /**
   * Optional, for several instances: the id of the run answering the chat right now, wherever it
   * runs (null: none). Without it the answer in progress is known to this instance only.
   */
  getActive?(chatId: string): Promise<string | null>;
  /** Optional, with `getActive`: records `runId` as the chat's answer in progress. */
  setActive?(chatId: string, runId: string): Promise<void>;
  /** Optional, with `getActive`: forgets the chat's answer in progress if it still is `runId`. */
  clearActive?(chatId: string, runId: string): Promise<void>;
}

/** Options of {@link MemoryChatStore}. */
export interface MemoryChatStoreOptions {
  /** Most chats kept; the least recently used go first. Default 1,000. */
  maxChats?: number;
  /** Most messages kept per chat, newest last. Default 200. */
  maxMessages?: number;
}

function limit(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`MemoryChatStore: '${name}' must be a positive integer (got ${String(value)})`);
  return value;
}

/** A bounded, in-process {@link ChatStore} (lost on restart; one instance only). */
export class MemoryChatStore implements ChatStore {
  readonly maxChats: number;
  readonly maxMessages: number;
  #chats = new Map<string, UiMessage[]>();

  constructor(options: MemoryChatStoreOptions = {}) {
    this.maxChats = limit('maxChats', options.maxChats, 1_000);
    this.maxMessages = limit('maxMessages', options.maxMessages, 200);
  }

  /** Chats held. */
  get size(): number {
    return this.#chats.size;
  }

  get(chatId: string): UiMessage[] | undefined {
    const messages = this.#chats.get(chatId);
    if (messages === undefined) return undefined;
    // Map order is insertion order: re-inserting marks the chat as recently used.
    this.#chats.delete(chatId);
    this.#chats.set(chatId, messages);
    return messages.slice();
  }

  save(chatId: string, messages: UiMessage[]): void {
    this.#chats.delete(chatId);
    this.#chats.set(chatId, messages.length > this.maxMessages ? messages.slice(-this.maxMessages) : messages.slice());
    for (const id of this.#chats.keys()) {
      if (this.#chats.size <= this.maxChats) break;
      this.#chats.delete(id);
    }
  }

  delete(chatId: string): boolean {
    return this.#chats.delete(chatId);
  }
}
