/**
 * The limits every WebSocket endpoint applies to its sockets (`/ws` and `/voice/ws`), in one
 * place: a ping/pong heartbeat where only a pong proves the peer alive (a client that floods
 * messages but never reads is not "alive"), a cap on the bytes queued towards a socket (replies
 * to commands included: a client that sends and never reads is closed, 1008, instead of growing
 * the heap), and a per-socket rate limit on incoming messages (token bucket; closed with 1008).
 *
 * Register the guard's `watch(socket)` before the session's own `message` listener: the guard
 * then closes an offending socket before the session acts on the message (sessions skip messages
 * on a socket that is no longer open).
 * @module
 */

import { WebSocket } from 'ws';
import { SluiceError } from '../protocol/errors.ts';
import type { Logger } from '../runtime/logger.ts';

/** Settings of a {@link WsGuard}. */
export interface WsGuardOptions {
  /** Interval of the ping/pong heartbeat; a socket that has not answered the previous ping is terminated. Default 30,000 ms. */
  heartbeatMs?: number;
  /**
   * Most bytes that may wait in a socket's send queue (`bufferedAmount`) when a new message
   * arrives from it; above it the socket is closed with 1008 "send queue full". Streams wait for
   * room long before that (their own high-water mark), so this catches the replies to a client
   * that keeps sending and never reads. Default 8 MiB.
   */
  maxQueuedBytes?: number;
  /** Incoming messages per second a socket may send on average. Default 100. */
  messageRate?: number;
  /** Messages a socket may send in one burst above the rate. Default 200. */
  messageBurst?: number;
}

/** Resolved {@link WsGuardOptions}. */
export interface ResolvedWsGuardOptions {
  heartbeatMs: number;
  maxQueuedBytes: number;
  messageRate: number;
  messageBurst: number;
}

/** WebSocket close code for a socket closed by a limit (RFC 6455 "policy violation"). */
export const WS_POLICY_VIOLATION = 1008;

function positive(who: string, name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new SluiceError('invalid_argument', `${who}: '${name}' must be a finite number > 0 (got ${String(value)})`);
  }
  return value;
}

/** Validates and completes guard settings (`who` names the caller in errors). */
export function resolveWsGuardOptions(who: string, options: WsGuardOptions = {}): ResolvedWsGuardOptions {
  return {
    heartbeatMs: positive(who, 'heartbeatMs', options.heartbeatMs, 30_000),
    maxQueuedBytes: positive(who, 'maxQueuedBytes', options.maxQueuedBytes, 8 * 1024 * 1024),
    messageRate: positive(who, 'messageRate', options.messageRate, 100),
    messageBurst: positive(who, 'messageBurst', options.messageBurst, 200),
  };
}

/** Per-socket state. */
interface Watched {
  alive: boolean;
  tokens: number;
  refilledAt: number;
}

/** Applies {@link WsGuardOptions} to the sockets it watches; one heartbeat timer for all of them. */
export class WsGuard {
  readonly options: ResolvedWsGuardOptions;
  #sockets = new Map<WebSocket, Watched>();
  #timer: NodeJS.Timeout;
  #logger: Logger | undefined;

  constructor(options: ResolvedWsGuardOptions, logger?: Logger) {
    this.options = options;
    this.#logger = logger;
    this.#timer = setInterval(() => this.#beat(), options.heartbeatMs);
    this.#timer.unref();
  }

  /** Sockets watched now. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Starts watching a socket (until it closes). */
  watch(socket: WebSocket): void {
    const state: Watched = { alive: true, tokens: this.options.messageBurst, refilledAt: performance.now() };
    this.#sockets.set(socket, state);
    socket.on('pong', () => {
      state.alive = true;
    });
    socket.on('message', () => this.#onMessage(socket, state));
    socket.on('close', () => this.#sockets.delete(socket));
  }

  /** Stops the heartbeat (the sockets are closed by their server). */
  close(): void {
    clearInterval(this.#timer);
    this.#sockets.clear();
  }

  #onMessage(socket: WebSocket, state: Watched): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    const { maxQueuedBytes, messageRate, messageBurst } = this.options;
    if (socket.bufferedAmount > maxQueuedBytes) {
      return this.#drop(socket, `send queue full: more than ${maxQueuedBytes} bytes are waiting for the client to read`);
    }
    const now = performance.now();
    state.tokens = Math.min(messageBurst, state.tokens + ((now - state.refilledAt) / 1000) * messageRate);
    state.refilledAt = now;
    if (state.tokens < 1) return this.#drop(socket, `message rate limit exceeded: at most ${messageRate} messages/s (burst ${messageBurst})`);
    state.tokens -= 1;
  }

  /**
   * Closes with 1008 and the reason, then terminates shortly after: a peer that does not read
   * would never take the close frame off the queue.
   */
  #drop(socket: WebSocket, reason: string): void {
    this.#logger?.warn({ bufferedAmount: socket.bufferedAmount }, `WebSocket closed: ${reason}`);
    // A close reason is at most 123 bytes.
    socket.close(WS_POLICY_VIOLATION, reason.slice(0, 120));
    setTimeout(() => socket.terminate(), 1_000).unref();
  }

  #beat(): void {
    for (const [socket, state] of this.#sockets) {
      if (!state.alive) {
        socket.terminate();
        continue;
      }
      state.alive = false;
      socket.ping();
    }
  }
}
