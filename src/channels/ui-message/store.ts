/**
 * Where a chat's messages are kept between requests, so a page that reloads (or a second tab)
 * shows the conversation, including an answer that was stopped half-way.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
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
  /** Most bytes (of the messages as JSON) kept over all chats; the least recently used go first. Default 64 MiB. */
  maxBytes?: number;
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
  readonly maxBytes: number;
  #chats = new Map<string, { messages: UiMessage[]; bytes: number }>();
  #bytes = 0;

  constructor(options: MemoryChatStoreOptions = {}) {
    this.maxChats = limit('maxChats', options.maxChats, 1_000);
    this.maxMessages = limit('maxMessages', options.maxMessages, 200);
    this.maxBytes = limit('maxBytes', options.maxBytes, 64 * 1024 * 1024);
  }

  /** Bytes held (the saved messages as JSON). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Chats held. */
  get size(): number {
    return this.#chats.size;
  }

  get(chatId: string): UiMessage[] | undefined {
    const entry = this.#chats.get(chatId);
    if (entry === undefined) return undefined;
    // Map order is insertion order: re-inserting marks the chat as recently used.
    this.#chats.delete(chatId);
    this.#chats.set(chatId, entry);
    return entry.messages.slice();
  }

  /**
   * Replaces a chat's messages. Throws `invalid_argument` for messages that cannot be serialised
   * as JSON (nothing is stored that could not be read back) and `resource_exhausted` for one chat
   * larger than `maxBytes`.
   */
  save(chatId: string, messages: UiMessage[]): void {
    const kept = messages.length > this.maxMessages ? messages.slice(-this.maxMessages) : messages.slice();
    let bytes: number;
    try {
      // Once per save (not per chunk): measures the chat and proves it can be read back.
      bytes = JSON.stringify(kept).length + chatId.length;
    } catch (error) {
      throw new SluiceError('invalid_argument', `MemoryChatStore: chat '${chatId}' cannot be stored: its messages are not serialisable as JSON`, { cause: error });
    }
    if (bytes > this.maxBytes) {
      throw new SluiceError('resource_exhausted', `MemoryChatStore: chat '${chatId}' is larger than the store's ${this.maxBytes} bytes`);
    }
    this.delete(chatId);
    this.#chats.set(chatId, { messages: kept, bytes });
    this.#bytes += bytes;
    for (const [id, entry] of this.#chats) {
      if (this.#chats.size <= this.maxChats && this.#bytes <= this.maxBytes) break;
      this.#chats.delete(id);
      this.#bytes -= entry.bytes;
    }
  }

  delete(chatId: string): boolean {
    const entry = this.#chats.get(chatId);
    if (entry === undefined) return false;
    this.#chats.delete(chatId);
    this.#bytes -= entry.bytes;
    return true;
  }
}
