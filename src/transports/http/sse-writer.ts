/**
 * The one Server-Sent Events writer of the HTTP transport, written against Node's
 * `ServerResponse` so that its three failure-prone duties are done in one audited place:
 *
 * - **Backpressure.** `write()` returning false is honoured by waiting for `drain` *or* `close` /
 *   `error`; waiting for `drain` alone would hang forever on a client that vanished while the
 *   socket was full (the bug `reference/peers-and-style.md` §1.8 notes in other writers).
 * - **Disconnect.** Detected on the *response's* `close` (the request's `close` fires as soon as its
 *   body has been read, nodejs/node #40775); a `close` before we ended the response is a disconnect.
 * - **Liveness.** Headers are flushed at once, `: ping` comments fill silences, and an optional
 *   maximum duration ends the response without touching the run.
 *
 * Hot path: one `JSON.stringify` and one template concat per event ({@link formatSseEvent}); the
 * frames of one burst are joined and leave in one `res.write` (see {@link SseWriter.write}).
 * @module
 */

import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { SluiceEvent } from '../../protocol/events.ts';

/**
 * The headers of every SSE response. `no-transform` and `X-Accel-Buffering: no` stop proxies
 * (nginx, CDNs) from buffering or compressing the stream.
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
});

/** Why an SSE response closed. */
export type SseCloseReason =
  /** We ended it (the run ended, or the server shut down). */
  | 'ended'
  /** The client went away (or the socket failed) first. */
  | 'disconnected'
  /** `maxDurationMs` was reached. */
  | 'max-duration';

/** Options of an {@link SseWriter}. */
export interface SseWriterOptions {
  /** Silence, in milliseconds, after which a `: ping` comment is written. */
  pingIntervalMs: number;
  /** End the response after this many milliseconds (the caller's run is not touched). */
  maxDurationMs?: number | undefined;
  /** Last text written when `maxDurationMs` is reached (an SSE comment telling the client how to resume). */
  maxDurationNotice?: string;
}

const PING = ': ping\n\n';
/** Pending text at which a burst is flushed without waiting for the microtask queue to empty. */
const FLUSH_AT = 16 * 1024;

/**
 * Formats one event as an SSE frame: `id: <seq>`, `event: <type>`, `data: <JSON>`. One
 * `JSON.stringify` and one template concat; JSON never contains a raw CR or LF, so the data fits
 * on one `data:` line. An event that cannot be encoded (a circular or BigInt value an action put in
 * `custom`) keeps its id and type, so a reader's seq stays gap-free, and says why in `encodingError`.
 */
export function formatSseEvent(event: SluiceEvent): string {
  let data: string;
  try {
    data = JSON.stringify(event);
  } catch (error) {
    data = encodingFallback(event, error);
  }
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${data}\n\n`;
}

/** The JSON sent in place of an event that `JSON.stringify` refused. */
export function encodingFallback(event: SluiceEvent, error: unknown): string {
  return JSON.stringify({
    type: event.type,
    runId: event.runId,
    seq: event.seq,
    encodingError: `The event could not be encoded as JSON: ${error instanceof Error ? error.message : String(error)}`,
  });
}

/**
 * Writes an SSE stream to a `ServerResponse`.
 *
 * @example
 * const writer = new SseWriter(res, { pingIntervalMs: 15_000 });
 * writer.onclose = (reason) => { if (reason === 'disconnected') run.cancel(); };
 * writer.open({ 'x-sluice-run-id': run.id });
 * const wait = writer.write(formatSseEvent(event));
 * if (wait !== undefined) await wait;
 */
export class SseWriter {
  readonly res: ServerResponse;
  /** Called once, when the response closes for any reason (after `closeReason` is set). */
  onclose: ((reason: SseCloseReason) => void) | null = null;

  #options: SseWriterOptions;
  #closeReason: SseCloseReason | null = null;
  #wrote = false;
  /** Frames written since the last flush. */
  #pending = '';
  #ping: NodeJS.Timeout | null = null;
  #maxTimer: NodeJS.Timeout | null = null;
  #drain: Promise<void> | null = null;
  #resolveDrain: (() => void) | null = null;

  constructor(res: ServerResponse, options: SseWriterOptions) {
    this.res = res;
    this.#options = options;
    res.on('close', this.#onClose);
    // A socket error surfaces as `close` too; this listener only keeps it from being unhandled.
    res.on('error', this.#onClose);
  }

  /** True once nothing more can be written. */
  get closed(): boolean {
    return this.#closeReason !== null;
  }

  /** Why the response closed, or null while open. */
  get closeReason(): SseCloseReason | null {
    return this.#closeReason;
  }

  /**
   * Sends status 200 with {@link SSE_HEADERS} over `headers` and flushes them at once, so the
   * client (and any proxy) sees the stream open before the first event. Starts the ping and
   * max-duration timers.
   */
  open(headers: OutgoingHttpHeaders = {}): void {
    if (this.#closeReason !== null) return;
    const res = this.res;
    // The client may have left before the stream opened (while its body was read): its `close` is past.
    if (res.destroyed || res.socket === null || res.socket.destroyed) {
      this.#closed('disconnected');
      return;
    }
    res.writeHead(200, { ...headers, ...SSE_HEADERS });
    res.flushHeaders();
    this.#ping = setInterval(this.#tick, this.#options.pingIntervalMs);
    this.#ping.unref();
    if (this.#options.maxDurationMs !== undefined) {
      this.#maxTimer = setTimeout(() => this.end('max-duration', this.#options.maxDurationNotice), this.#options.maxDurationMs);
      this.#maxTimer.unref();
    }
  }

  /**
   * Writes text (one or more whole frames). Returns `undefined` when the caller may write again at
   * once, or a promise that settles when it may: on `drain` after a `res.write()` returned false, or
   * when the response closed (check {@link SseWriter.closed} after awaiting). Writes after close
   * are dropped. Text is sent once the current burst of promise callbacks is over, or at 16 KiB.
   */
  write(text: string): Promise<void> | undefined {
    if (this.#closeReason !== null) return undefined;
    this.#wrote = true;
    // Frames written in one burst of promise callbacks (a fast producer, a reader catching up)
    // leave in one `res.write`: the flush runs once the microtask queue is empty, so no timer
    // delays a frame. (`res.cork()` would batch too, but a corked response whose socket never
    // fills never emits `drain`, and the stream would hang.)
    if (this.#pending === '') {
      this.#pending = text;
      process.nextTick(this.#flush);
    } else this.#pending += text;
    if (this.#pending.length >= FLUSH_AT) this.#flush();
    return this.res.writableNeedDrain ? this.#waitDrain() : undefined;
  }

  /** Ends the response (optionally with a last text). Does nothing when already closed. */
  end(reason: SseCloseReason = 'ended', text?: string): void {
    if (this.#closeReason !== null) return;
    const last = this.#pending + (text ?? '');
    this.#pending = '';
    this.#closed(reason);
    if (last === '') this.res.end();
    else this.res.end(last);
  }

  #flush = (): void => {
    const pending = this.#pending;
    if (pending === '') return;
    this.#pending = '';
    if (this.#closeReason === null) this.res.write(pending);
  };

  #waitDrain(): Promise<void> {
    if (this.#drain === null) {
      this.#drain = new Promise<void>((resolve) => {
        this.#resolveDrain = resolve;
      });
      this.res.once('drain', this.#releaseDrain);
    }
    return this.#drain;
  }

  #releaseDrain = (): void => {
    const resolve = this.#resolveDrain;
    if (resolve === null) return;
    this.#drain = null;
    this.#resolveDrain = null;
    this.res.off('drain', this.#releaseDrain);
    resolve();
  };

  #tick = (): void => {
    if (this.#wrote) {
      this.#wrote = false;
      return;
    }
    // A backed-up socket is not idle: a ping would only add to the queue.
    if (this.#closeReason !== null || this.res.writableNeedDrain) return;
    this.res.write(PING);
  };

  #onClose = (): void => {
    if (this.#closeReason === null) this.#closed('disconnected');
    else this.#releaseDrain();
  };

  #closed(reason: SseCloseReason): void {
    this.#closeReason = reason;
    if (this.#ping !== null) clearInterval(this.#ping);
    if (this.#maxTimer !== null) clearTimeout(this.#maxTimer);
    this.#ping = this.#maxTimer = null;
    this.#releaseDrain();
    const onclose = this.onclose;
    this.onclose = null;
    if (onclose !== null) onclose(reason);
  }
}
