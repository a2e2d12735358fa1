/**
 * The one Server-Sent Events writer (Sluice events, UI message streams, sentences), written against
 * Node's `ServerResponse` so that its three failure-prone duties are done in one audited place. It
 * sits with the channels, below the transports, so that channels' own routes use it too:
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
 * frames of one burst are joined and leave as one HTTP chunk in one `socket.write`, and one
 * `process.nextTick` flushes every writer that has frames pending (see {@link SseWriter.write}).
 * Per stream: no timer (pings come from one shared wheel per interval) and one listener closure.
 * @module
 */

import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { SluiceEvent } from '../protocol/events.ts';
import type { WireMeter } from '../runtime/observer.ts';

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
  | 'max-duration'
  /** The client read nothing for `stallTimeoutMs` while the socket was full: dropped. */
  | 'too-slow';

/** Options of an {@link SseWriter}. */
export interface SseWriterOptions {
  /** Silence, in milliseconds, after which a `: ping` comment is written; 0 for none. */
  pingIntervalMs: number;
  /** End the response after this many milliseconds (the caller's run is not touched). */
  maxDurationMs?: number | undefined;
  /** Last text written when `maxDurationMs` is reached (an SSE comment telling the client how to resume). */
  maxDurationNotice?: string;
  /** The stream's own headers, set over the caller's in `open()`. Default {@link SSE_HEADERS}. */
  streamHeaders?: Readonly<Record<string, string>>;
  /** Counts this response's writes and bytes, and holds it as an open reader and connection while open. */
  meter?: WireMeter | undefined;
  /**
   * Longest a write may wait for the socket to drain; then the response is dropped (close reason
   * `too-slow`) after queuing `stallNotice`. Default {@link DEFAULT_STALL_TIMEOUT_MS}; 0 for no limit.
   */
  stallTimeoutMs?: number | undefined;
  /** Last text queued when `stallTimeoutMs` is reached. Default {@link TOO_SLOW_FRAME}. */
  stallNotice?: string;
}

/** Default `stallTimeoutMs`: a reader that takes nothing for 30 s is dropped. */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * The frame a stalled reader is dropped with: an `error` event without an `id` (it is not one of
 * the run's events, so `Last-Event-ID` still points at the last event read and a resume works).
 */
export const TOO_SLOW_FRAME =
  'event: error\ndata: {"type":"error","code":"resource_exhausted","message":"Reader too slow: the connection accepted no data for too long; resume with Last-Event-ID"}\n\n';

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

/** Ticks per ping interval: the writers sharing an interval are spread over this many slots. */
const PING_SLOTS = 16;

/**
 * One timer for every writer with the same ping interval: the writers are spread over
 * {@link PING_SLOTS} slots and one slot is visited per tick, so each writer is visited once per
 * interval and the pings of many idle streams do not all leave in the same tick.
 */
interface PingWheel {
  readonly slots: Set<SseWriter>[];
  /** The slot the next tick visits. */
  cursor: number;
  size: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Writes an SSE stream to a `ServerResponse`.
 *
 * Frames go straight to the socket as HTTP/1.1 chunks (`<size>\r\n<frames>\r\n`, exactly what
 * `res.write` would send), one `socket.write` per burst: `res.write` corks the socket, queues four
 * pieces and uncorks on the next tick, which costs more than the frame. When the response does not
 * own its socket in chunked mode (HTTP/1.0, a pipelined response still queued) `res.write` is used.
 *
 * @example
 * const writer = new SseWriter(res, { pingIntervalMs: 15_000 });
 * writer.onclose = (reason) => { if (reason === 'disconnected') run.cancel(); };
 * writer.open({ 'x-sluice-run-id': run.id });
 * const wait = writer.write(formatSseEvent(event));
 * if (wait !== undefined) await wait;
 */
export class SseWriter {
  static readonly #wheels = new Map<number, PingWheel>();
  /** Writers with text pending, flushed together on the next tick. */
  static readonly #flushQueue: SseWriter[] = [];

  readonly res: ServerResponse;
  /** Called once, when the response closes for any reason (after `closeReason` is set). */
  onclose: ((reason: SseCloseReason) => void) | null = null;

  #options: SseWriterOptions;
  #closeReason: SseCloseReason | null = null;
  /** A write happened since the ping wheel last visited this writer. */
  #wrote = false;
  /** Frames written since the last flush. */
  #pending = '';
  /** The socket frames are written to as chunks, or null to write through `res`. */
  #socket: Socket | null = null;
  /** The ping-wheel slot this writer is in, while open. */
  #slot: Set<SseWriter> | null = null;
  #maxTimer: NodeJS.Timeout | null = null;
  #drain: Promise<void> | null = null;
  #resolveDrain: (() => void) | null = null;
  /** The meter this open response is counted in (released once, on close). */
  #counted: WireMeter | null = null;
  #stallTimer: NodeJS.Timeout | null = null;
  /** The `drain` listener, made on the first wait only. */
  #onDrain: (() => void) | null = null;
  #onClose = (): void => {
    if (this.#closeReason === null) this.#closed('disconnected');
    else this.#releaseDrain();
  };

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
   * Sends status 200 with the stream's headers over `headers` and flushes them at once, so the
   * client (and any proxy) sees the stream open before the first event. Joins the ping wheel and
   * starts the max-duration timer.
   */
  open(headers: OutgoingHttpHeaders = {}): void {
    if (this.#closeReason !== null) return;
    const res = this.res;
    // A pipelined response waits for the ones before it without a socket of its own (`res.socket`
    // is null until its turn; what it writes is queued in `res`): the request's socket tells
    // whether the client is still there.
    const socket = res.socket ?? res.req?.socket ?? null;
    // The client may have left before the stream opened (while its body was read): its `close` is past.
    if (res.destroyed || socket === null || socket.destroyed) {
      this.#closed('disconnected');
      return;
    }
    const streamHeaders: OutgoingHttpHeaders = { ...headers, ...(this.#options.streamHeaders ?? SSE_HEADERS) };
    // A client that sent `Connection: close` (or speaks HTTP/1.0) gets its socket closed after the
    // stream: Node does that itself unless the response says keep-alive, as SSE_HEADERS does.
    if (!res.shouldKeepAlive) streamHeaders.connection = 'close';
    res.writeHead(200, streamHeaders);
    res.flushHeaders();
    const meter = this.#options.meter;
    if (meter !== undefined) {
      meter.readers++;
      meter.connections++;
      this.#counted = meter;
    }
    // Straight to the socket only while this response is the one it serves (`_httpMessage`), in
    // chunked mode (not HTTP/1.0, not HEAD), with nothing of it still queued in `res`.
    if (
      res.socket === socket &&
      res.chunkedEncoding &&
      (socket as { _httpMessage?: unknown })._httpMessage === res &&
      res.writableLength === 0
    ) {
      this.#socket = socket;
    }
    if (this.#options.pingIntervalMs > 0) SseWriter.#join(this, this.#options.pingIntervalMs);
    if (this.#options.maxDurationMs !== undefined) {
      this.#maxTimer = setTimeout(() => this.end('max-duration', this.#options.maxDurationNotice), this.#options.maxDurationMs);
      this.#maxTimer.unref();
    }
  }

  /**
   * Writes text (one or more whole frames). Returns `undefined` when the caller may write again at
   * once, or a promise that settles when it may: on `drain` after the socket's buffer filled up, or
   * when the response closed (check {@link SseWriter.closed} after awaiting). Writes after close
   * are dropped. Text is sent once the current burst of promise callbacks is over, or at 16 KiB.
   */
  write(text: string): Promise<void> | undefined {
    if (this.#closeReason !== null) return undefined;
    this.#wrote = true;
    // Frames written in one burst of promise callbacks (a fast producer, a reader catching up)
    // leave in one write: the flush runs once the microtask queue is empty, so no timer delays a
    // frame. (Corking would batch too, but a corked stream whose socket never fills never emits
    // `drain`, and the stream would hang.)
    if (this.#pending === '') {
      this.#pending = text;
      SseWriter.#flushQueue.push(this);
      if (SseWriter.#flushQueue.length === 1) process.nextTick(SseWriter.#flushAll);
    } else this.#pending += text;
    if (this.#pending.length >= FLUSH_AT) this.#flush();
    return (this.#socket ?? this.res).writableNeedDrain ? this.#waitDrain() : undefined;
  }

  /** Ends the response (optionally with a last text). Does nothing when already closed. */
  end(reason: SseCloseReason = 'ended', text?: string): void {
    if (this.#closeReason !== null) return;
    const last = this.#pending + (text ?? '');
    this.#pending = '';
    this.#closed(reason);
    if (this.#options.meter !== undefined && last !== '') this.#options.meter.bytes += Buffer.byteLength(last);
    if (last === '') this.res.end();
    else this.res.end(last);
  }

  /** Flushes every writer that has text pending; one `process.nextTick` serves them all. */
  static #flushAll(): void {
    const queue = SseWriter.#flushQueue;
    // A flush never writes to another writer, so the queue cannot grow while it is emptied.
    for (let i = 0; i < queue.length; i++) queue[i]!.#flush();
    queue.length = 0;
  }

  #flush(): void {
    const pending = this.#pending;
    if (pending === '') return;
    this.#pending = '';
    if (this.#closeReason !== null) return;
    this.#send(pending);
  }

  #send(text: string): void {
    const socket = this.#socket;
    const meter = this.#options.meter;
    if (socket === null) {
      this.res.write(text);
      if (meter !== undefined) {
        meter.writes++;
        meter.bytes += Buffer.byteLength(text);
      }
      // A socket that is closing says so with `close` (then `onclose`); nothing more may go to it.
    } else if (socket.writable) {
      const bytes = Buffer.byteLength(text);
      socket.write(`${bytes.toString(16)}\r\n${text}\r\n`);
      if (meter !== undefined) {
        meter.writes++;
        meter.bytes += bytes;
      }
    }
  }

  #waitDrain(): Promise<void> {
    if (this.#drain === null) {
      this.#drain = new Promise<void>((resolve) => {
        this.#resolveDrain = resolve;
      });
      this.#onDrain ??= () => this.#releaseDrain();
      (this.#socket ?? this.res).once('drain', this.#onDrain);
      const stall = this.#options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
      if (stall > 0) {
        this.#stallTimer = setTimeout(() => this.#dropStalled(), stall);
        this.#stallTimer.unref();
      }
    }
    return this.#drain;
  }

  /**
   * The client read nothing for `stallTimeoutMs`: queue the notice and end the response (which
   * releases the run at once), close the connection once the client has read it all, and destroy
   * it if it has not after one more stall period (a peer that never reads would hold the socket
   * until the kernel gives up).
   */
  #dropStalled(): void {
    this.#stallTimer = null;
    if (this.#closeReason !== null) return;
    const socket = this.res.socket;
    this.end('too-slow', this.#options.stallNotice ?? TOO_SLOW_FRAME);
    if (socket === null) return;
    this.res.once('finish', () => socket.end());
    setTimeout(() => socket.destroy(), Math.max(1_000, this.#options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS)).unref();
  }

  #releaseDrain(): void {
    const resolve = this.#resolveDrain;
    if (resolve === null) return;
    this.#drain = null;
    this.#resolveDrain = null;
    if (this.#stallTimer !== null) {
      clearTimeout(this.#stallTimer);
      this.#stallTimer = null;
    }
    if (this.#onDrain !== null) (this.#socket ?? this.res).off('drain', this.#onDrain);
    resolve();
  }

  /** Visited by the ping wheel once per interval. */
  #tick(): void {
    if (this.#wrote) {
      this.#wrote = false;
      return;
    }
    // A backed-up socket is not idle: a ping would only add to the queue.
    if (this.#closeReason !== null || (this.#socket ?? this.res).writableNeedDrain) return;
    this.#send(PING);
  }

  #closed(reason: SseCloseReason): void {
    this.#closeReason = reason;
    if (this.#counted !== null) {
      this.#counted.readers--;
      this.#counted.connections--;
      this.#counted = null;
    }
    SseWriter.#leave(this);
    if (this.#maxTimer !== null) clearTimeout(this.#maxTimer);
    this.#maxTimer = null;
    this.#releaseDrain();
    const onclose = this.onclose;
    this.onclose = null;
    if (onclose !== null) onclose(reason);
  }

  /**
   * Puts a writer in the slot the wheel visited last, so its first visit comes one interval later
   * (within one tick): a ping goes out once a whole visit-to-visit interval passed without a write,
   * and silence never exceeds twice the interval.
   */
  static #join(writer: SseWriter, interval: number): void {
    let wheel = SseWriter.#wheels.get(interval);
    if (wheel === undefined) {
      const slots: Set<SseWriter>[] = [];
      for (let i = 0; i < PING_SLOTS; i++) slots.push(new Set());
      wheel = { slots, cursor: 0, size: 0, timer: null };
      wheel.timer = setInterval(SseWriter.#turn, interval / PING_SLOTS, wheel);
      wheel.timer.unref();
      SseWriter.#wheels.set(interval, wheel);
    }
    const slot = wheel.slots[(wheel.cursor + PING_SLOTS - 1) % PING_SLOTS]!;
    slot.add(writer);
    wheel.size++;
    writer.#slot = slot;
  }

  static #leave(writer: SseWriter): void {
    const slot = writer.#slot;
    if (slot === null) return;
    writer.#slot = null;
    slot.delete(writer);
    const interval = writer.#options.pingIntervalMs;
    const wheel = SseWriter.#wheels.get(interval);
    if (wheel !== undefined && --wheel.size === 0) {
      if (wheel.timer !== null) clearInterval(wheel.timer);
      SseWriter.#wheels.delete(interval);
    }
  }

  static #turn(wheel: PingWheel): void {
    const slot = wheel.slots[wheel.cursor]!;
    wheel.cursor = (wheel.cursor + 1) % PING_SLOTS;
    for (const writer of slot) writer.#tick();
  }
}
