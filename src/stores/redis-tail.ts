/**
 * One blocking reader per instance: a dedicated Redis connection that runs `XREAD BLOCK` over the
 * streams of every run this instance follows and hands each entry to its follower. A connection
 * per reader costs Redis a client per browser tab (p99 3.7 ms at 100 readers, 14 ms at 500 on our
 * machine), and a blocking read on the shared command connection would stall every other command;
 * this keeps one connection whatever the number of readers. The block is short, and a follower
 * that joins while the read is blocked re-arms it at once (`CLIENT UNBLOCK` from the command
 * connection), so a new reader never waits for the block to time out.
 * @module
 */

import type { Logger } from '../runtime/logger.ts';

/** A stream followed by the tail. */
export interface Follower {
  /** The stream key. */
  readonly key: string;
  /** Seq of the last event received: the read continues after entry `<cursor>-0`. */
  cursor(): number;
  /** False while the follower cannot take more (its readers are behind): it is left out of reads. */
  ready(): boolean;
  /** New entries, in order: `[id, [field, value, …]]`. */
  deliver(entries: [string, string[]][]): void;
}

/** A connection that can send raw commands. */
export interface CommandClient {
  sendCommand<T = unknown>(args: string[], options?: { timeout?: number }): Promise<T>;
}

/** Options of a {@link StreamTail}. */
export interface StreamTailOptions {
  /** The dedicated connection the tail blocks on. */
  reader: CommandClient;
  /** The shared command connection (for `CLIENT UNBLOCK`). */
  commands: CommandClient;
  /** Longest block of one read, in ms. */
  blockMs: number;
  /** Most entries per stream and read. */
  count: number;
  logger: Logger;
}

/** See the module notes. */
export class StreamTail {
  readonly #o: StreamTailOptions;
  readonly #followers = new Map<string, Follower>();
  #readerId: string | null = null;
  #blocked = false;
  #unblockQueued = false;
  #closed = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #failures = 0;

  constructor(options: StreamTailOptions) {
    this.#o = options;
  }

  /** Number of streams followed. */
  get size(): number {
    return this.#followers.size;
  }

  /** Starts the read loop. */
  async start(): Promise<void> {
    this.#readerId = String(await this.#o.reader.sendCommand(['CLIENT', 'ID']));
    this.#loop = this.#run();
  }

  /** Follows a stream (replacing a follower of the same key). */
  follow(follower: Follower): void {
    this.#followers.set(follower.key, follower);
    this.rearm();
  }

  /** Stops following a stream. */
  unfollow(key: string): void {
    this.#followers.delete(key);
  }

  /** A follower joined or became ready again: include it in the next read without waiting. */
  rearm(): void {
    if (this.#wake !== null) {
      const wake = this.#wake;
      this.#wake = null;
      wake();
      return;
    }
    if (!this.#blocked || this.#unblockQueued || this.#readerId === null) return;
    this.#unblockQueued = true;
    queueMicrotask(() => {
      this.#unblockQueued = false;
      if (this.#blocked) this.#o.commands.sendCommand(['CLIENT', 'UNBLOCK', this.#readerId!]).catch(() => {});
    });
  }

  /** Stops the loop (the caller closes the connections). */
  async close(): Promise<void> {
    this.#closed = true;
    this.rearm();
    this.#wake?.();
    if (this.#blocked && this.#readerId !== null) await this.#o.commands.sendCommand(['CLIENT', 'UNBLOCK', this.#readerId]).catch(() => {});
    await this.#loop;
  }

  async #run(): Promise<void> {
    const o = this.#o;
    while (!this.#closed) {
      const keys: string[] = [];
      const ids: string[] = [];
      for (const follower of this.#followers.values()) {
        if (!follower.ready()) continue;
        keys.push(follower.key);
        ids.push(`${follower.cursor()}-0`);
      }
      if (keys.length === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        continue;
      }
      let reply: unknown;
      this.#blocked = true;
      try {
        reply = await o.reader.sendCommand(['XREAD', 'COUNT', String(o.count), 'BLOCK', String(o.blockMs), 'STREAMS', ...keys, ...ids]);
        this.#failures = 0;
      } catch (error) {
        this.#blocked = false;
        if (this.#closed) return;
        if (this.#failures++ === 0) o.logger.warn({ err: error }, `Redis stream reader failed (${(error as Error).message}); retrying`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * this.#failures)));
        continue;
      }
      this.#blocked = false;
      for (const [key, entries] of streamsOf(reply)) {
        const follower = this.#followers.get(key);
        if (follower === undefined || entries.length === 0) continue;
        try {
          follower.deliver(entries);
        } catch (error) {
          o.logger.error({ err: error, key }, 'A stream follower failed');
          this.#followers.delete(key);
        }
      }
    }
  }
}

/** `XREAD`'s reply as `[key, entries]` pairs (RESP2 arrays or RESP3 maps). */
function streamsOf(reply: unknown): [string, [string, string[]][]][] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) return reply as [string, [string, string[]][]][];
  if (reply instanceof Map) return [...reply.entries()] as [string, [string, string[]][]][];
  return Object.entries(reply as Record<string, [string, string[]][]>);
}
