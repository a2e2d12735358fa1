/**
 * A small Server-Sent Events writer for UI message streams, on Node's `ServerResponse`.
 *
 * Why not the HTTP transport's writer: channels sit below transports in the layering (DESIGN §2),
 * and this stream's framing differs (no `id:`/`event:` lines, `[DONE]` at the end). The duties
 * are the same and are kept here:
 * - backpressure: a `write()` that returns false is awaited until `drain` **or** `close`, so a
 *   client that vanished while the socket was full cannot hang the loop;
 * - disconnect: the response's `close` before we ended it is a disconnect;
 * - liveness: headers are flushed at once and a `: ping` comment (which SSE parsers, the AI SDK's
 *   included, ignore) fills silences, so idle proxies and load balancers keep the stream open.
 *
 * Frames written during one burst of promise callbacks leave in one `res.write`, flushed on
 * `process.nextTick` (after the microtask queue has drained) or at 16 KiB.
 * @module
 */

import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Why a stream closed: we ended it, the client left, or the maximum duration was reached. */
export type StreamCloseReason = 'ended' | 'disconnected' | 'max-duration';

/** Options of a {@link UiSseWriter}. */
export interface UiSseWriterOptions {
  /** Silence (ms) after which a `: ping` comment is written; 0 for none. */
  pingIntervalMs: number;
  /** End the response after this many ms (the run is not touched: the client may resume). */
  maxDurationMs?: number | undefined;
}

const PING = ': ping\n\n';
const FLUSH_AT = 16 * 1024;

/** Writes an SSE stream to a `ServerResponse`; see the module comment. */
export class UiSseWriter {
  readonly res: ServerResponse;
  /** Called once when the response closes, for any reason. */
  onclose: ((reason: StreamCloseReason) => void) | null = null;

  #options: UiSseWriterOptions;
  #reason: StreamCloseReason | null = null;
  #pending = '';
  #wrote = false;
  #ping: NodeJS.Timeout | null = null;
  #deadline: NodeJS.Timeout | null = null;
  #drain: Promise<void> | null = null;
  #release: (() => void) | null = null;

  constructor(res: ServerResponse, options: UiSseWriterOptions) {
    this.res = res;
    this.#options = options;
    res.on('close', this.#onClose);
    // Socket errors also end in `close`; this listener keeps them from being unhandled.
    res.on('error', this.#onClose);
  }

  /** True once nothing more can be written. */
  get closed(): boolean {
    return this.#reason !== null;
  }

  /** Why the stream closed, or null while open. */
  get closeReason(): StreamCloseReason | null {
    return this.#reason;
  }

  /** Sends status 200 and the headers at once, and starts the ping and max-duration timers. */
  open(headers: OutgoingHttpHeaders): void {
    if (this.#reason !== null) return;
    const res = this.res;
    // The client may have gone while its request body was read: its `close` is already past.
    if (res.destroyed || res.socket === null || res.socket.destroyed) {
      this.#closed('disconnected');
      return;
    }
    res.writeHead(200, headers);
    res.flushHeaders();
    if (this.#options.pingIntervalMs > 0) {
      this.#ping = setInterval(this.#tick, this.#options.pingIntervalMs);
      this.#ping.unref();
    }
    if (this.#options.maxDurationMs !== undefined) {
      this.#deadline = setTimeout(() => this.end('', 'max-duration'), this.#options.maxDurationMs);
      this.#deadline.unref();
    }
  }

  /**
   * Queues whole frames. Returns a promise when the caller should wait (the socket is full); it
   * settles on `drain` or when the response closes. Text written after close is dropped.
   */
  write(text: string): Promise<void> | undefined {
    if (this.#reason !== null || text === '') return undefined;
    this.#wrote = true;
    if (this.#pending === '') {
      this.#pending = text;
      process.nextTick(this.#flush);
    } else this.#pending += text;
    if (this.#pending.length >= FLUSH_AT) this.#flush();
    return this.res.writableNeedDrain ? this.#waitDrain() : undefined;
  }

  /** Ends the response with a last text (e.g. `data: [DONE]\n\n`); nothing when already closed. */
  end(text = '', reason: StreamCloseReason = 'ended'): void {
    if (this.#reason !== null) return;
    const last = this.#pending + text;
    this.#pending = '';
    this.#closed(reason);
    if (last === '') this.res.end();
    else this.res.end(last);
  }

  #flush = (): void => {
    const pending = this.#pending;
    if (pending === '') return;
    this.#pending = '';
    if (this.#reason === null) this.res.write(pending);
  };

  #waitDrain(): Promise<void> {
    if (this.#drain === null) {
      this.#drain = new Promise<void>((resolve) => {
        this.#release = resolve;
      });
      this.res.once('drain', this.#releaseDrain);
    }
    return this.#drain;
  }

  #releaseDrain = (): void => {
    const release = this.#release;
    if (release === null) return;
    this.#drain = null;
    this.#release = null;
    this.res.off('drain', this.#releaseDrain);
    release();
  };

  #tick = (): void => {
    if (this.#wrote) {
      this.#wrote = false;
      return;
    }
    // A socket that is backed up is not idle.
    if (this.#reason === null && !this.res.writableNeedDrain) this.res.write(PING);
  };

  #onClose = (): void => {
    if (this.#reason === null) this.#closed('disconnected');
    else this.#releaseDrain();
  };

  #closed(reason: StreamCloseReason): void {
    this.#reason = reason;
    if (this.#ping !== null) clearInterval(this.#ping);
    if (this.#deadline !== null) clearTimeout(this.#deadline);
    this.#ping = this.#deadline = null;
    this.#releaseDrain();
    const onclose = this.onclose;
    this.onclose = null;
    onclose?.(reason);
  }
}
