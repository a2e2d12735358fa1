/**
 * One WebSocket connection: the client's commands, and the runs it reads.
 *
 * Client → server (JSON text): `{ type: 'start', id?, call, detach?, view?, segmenter? }`,
 * `{ type: 'cancel', runId }`, `{ type: 'ack', responseId }`,
 * `{ type: 'resume', runId, after?, view?, segmenter? }`.
 * Server → client: `{ type: 'started', id, runId }` after a start; `{ type: 'cancelled', runId }`
 * after an accepted cancel; `{ type: 'acked', responseId, acknowledged }` after an ack;
 * `{ type: 'error', code, message }` for a message the server could not act on (it names the
 * problem; the socket and its runs carry on). Such an error has no `seq`, which tells it apart
 * from a run's `error` event. Then, per run read, what its view gives:
 *
 * - `view: 'events'` (the default): every Sluice event as JSON (it carries `runId` and `seq`);
 *   `resume` takes `after` = the seq of the last event received.
 * - `view: 'sentences'` (voice gateways): `{ type: 'sentence', runId, index, text, responseId }`
 *   for each sentence of the run's messages, streamed and whole (a whole message's responseId is
 *   `msg-<seq>`), cut by the streaming segmenter, then the run's `result` or `error` event and
 *   its `run-end` event, unchanged (with `seq`); no other event. `segmenter` holds the
 *   segmenter's options: `mode` (`'default'` | `'ace'`), `locale`, `minFirstLength`, `maxLength`,
 *   `stallFlushMs`. `resume` takes `after` = the index of the last sentence received (absent: from
 *   the first) and sends the end events again. Once the run is cancelled (an `ack` of one of its
 *   streams — barge-in —, a `cancel`, a closed owner socket) no further sentence is sent, not even
 *   one already cut or waiting for room; the end events still are, with the events of the action
 *   finishing. Only streamed messages can be acked: stop a whole message's sentences with `cancel`.
 *
 * A socket reads a run at most once per view: a repeated `resume` replaces that view's reader, so
 * one socket may read the same run's events and sentences side by side.
 * @module
 */

import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import { checkDepth } from '../../protocol/depth.ts';
import { SluiceError, clipped, type ErrorCode } from '../../protocol/errors.ts';
import { parseSegmenterOptions, sentenceGate, sentenceViewOf } from '../../channels/voice/sentence-view.ts';
import type { SentenceEvent } from '../../channels/voice/sentences.ts';
import type { SluiceEvent } from '../../protocol/events.ts';
import type { WireMeter } from '../../runtime/observer.ts';
import type { Run } from '../../runtime/run.ts';
import type { Subscription } from '../../runtime/subscription.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import { ackOwned, ownedRun } from '../../channels/principal.ts';
import { checkActionCall } from './call-check.ts';
import type { HttpContext } from './context.ts';
import { encodingFallback } from '../../channels/sse-writer.ts';

/** How often a socket above its high-water mark is re-checked when no `drain` comes. */
const POLL_MS = 10;
/** Longest client string echoed back in a reply (ids are far shorter): replies stay small. */
const MAX_ECHO = 256;

/** A client value quoted for an error message, cut to {@link MAX_ECHO} characters; never throws. */
function quote(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : String(value);
  return JSON.stringify(clipped(value, MAX_ECHO));
}

type Message = Record<string, unknown>;

/** Encodes an event for the wire (see `formatSseEvent` for the fallback). */
function encodeEvent(event: SluiceEvent): string {
  try {
    return JSON.stringify(event);
  } catch (error) {
    return encodingFallback(event, error);
  }
}

/** A sentence as `/ws` sends it in the `'sentences'` view. It has no `seq`: it is not a run event. */
export interface WsSentenceMessage {
  type: 'sentence';
  /** The run it belongs to. */
  runId: string;
  /** Position in the run, from 0, across all its messages: what `resume` takes as `after`. */
  index: number;
  /** The sentence exactly as produced (the whitespace after it included). */
  text: string;
  /** The streamed message it belongs to (ack it to barge in), or `msg-<seq>` for a whole message. */
  responseId: string;
}

function encodeSentence(sentence: SentenceEvent): string {
  const message: WsSentenceMessage = { type: 'sentence', runId: sentence.runId, index: sentence.index, text: sentence.text, responseId: sentence.responseId };
  return JSON.stringify(message);
}

/** What a `start` or `resume` asks to read. */
interface ViewRequest {
  view: 'events' | 'sentences';
  segmenter: SentenceStreamOptions;
}

/** One sentence-view reader; `stopped` once it was replaced or the socket went away. */
interface SentenceRead {
  sub: Subscription;
  stopped: boolean;
}

/**
 * Serves one socket. Several runs may stream over it at once. When it closes, every subscription
 * it holds is released and every run it started is cancelled, except those started with
 * `detach: true` (they keep going and can be resumed, here or elsewhere).
 */
export class WsSession {
  readonly socket: WebSocket;

  #ctx: HttpContext;
  /** The principal of the upgrade request: it owns the runs started here and may use only its own. */
  #owner: string | undefined;
  /** runId → the subscription this socket reads in the events view (a second resume replaces the first). */
  #subs = new Map<string, Subscription>();
  /** runId → this socket's reader of the run's sentence view (one per run, like `#subs`). */
  #sentenceReads = new Map<string, SentenceRead>();
  /** Runs started here without `detach`: they end with the socket. */
  #owned = new Set<Run>();
  #writable: Promise<boolean> | null = null;
  #corked = false;
  readonly #meter: WireMeter;

  /** The upgrade request's W3C trace context: the runs started on the socket join that trace. */
  readonly #traceHeaders: Readonly<Record<string, string>> | undefined;

  constructor(socket: WebSocket, ctx: HttpContext, owner?: string, traceHeaders?: Readonly<Record<string, string>>) {
    this.socket = socket;
    this.#ctx = ctx;
    this.#owner = owner;
    this.#traceHeaders = traceHeaders;
    const meter = (this.#meter = ctx.executor.wire.of('ws'));
    meter.connections++;
    socket.once('close', () => meter.connections--);
    socket.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    socket.on('close', () => this.#shutdown());
  }

  /** Number of run views this socket is reading. */
  get reading(): number {
    return this.#subs.size + this.#sentenceReads.size;
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    // Closed by a limit (the guard's listener runs first): the message is not acted on.
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (isBinary) {
      this.#reject('invalid_argument', 'Invalid message: binary frames are not supported; send JSON text');
      return;
    }
    let message: unknown;
    try {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      message = JSON.parse(bytes.toString('utf8'));
    } catch {
      this.#reject('invalid_argument', 'Invalid message: not valid JSON');
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.#reject('invalid_argument', "Invalid message: expected a JSON object with a 'type'");
      return;
    }
    const msg = message as Message;
    try {
      checkDepth(msg, this.#ctx.maxDepth, 'Invalid message: it');
      switch (msg.type) {
        case 'start':
          this.#start(msg);
          break;
        case 'cancel':
          this.#settle(this.#cancel(msg));
          break;
        case 'ack':
          this.#ack(msg);
          break;
        case 'resume':
          this.#settle(this.#resume(msg));
          break;
        default:
          this.#reject(
            'invalid_argument',
            msg.type === undefined
              ? "Invalid message: 'type' is required (start, cancel, ack or resume)"
              : `Invalid message: unknown type ${quote(msg.type)}; expected start, cancel, ack or resume`,
          );
      }
    } catch (thrown) {
      const error = SluiceError.from(thrown);
      if (error.code === 'internal') this.#ctx.logger.error({ err: thrown }, 'WebSocket message failed');
      this.#reject(error.code, error.message);
    }
  }

  /** The view a command asks for, or null once it was refused (with `extra` in the reply). */
  #viewOf(command: string, msg: Message, extra: Message = {}): ViewRequest | null {
    const { view = 'events', segmenter } = msg;
    if (view !== 'events' && view !== 'sentences') {
      this.#reject('invalid_argument', `${command}: 'view' must be 'events' or 'sentences' (got ${quote(view)})`, extra);
      return null;
    }
    if (view === 'events') {
      if (segmenter === undefined) return { view, segmenter: {} };
      this.#reject('invalid_argument', `${command}: 'segmenter' needs view 'sentences'`, extra);
      return null;
    }
    try {
      return { view, segmenter: parseSegmenterOptions(`${command}: segmenter`, segmenter) };
    } catch (thrown) {
      const error = SluiceError.from(thrown);
      this.#reject(error.code, error.message, extra);
      return null;
    }
  }

  #start(msg: Message): void {
    const { id, call, detach } = msg;
    if (id !== undefined && (typeof id !== 'string' || id.length > MAX_ECHO)) {
      return this.#reject('invalid_argument', `start: 'id' must be a string of at most ${MAX_ECHO} characters`);
    }
    const extra: Message = id === undefined ? {} : { id };
    if (detach !== undefined && typeof detach !== 'boolean') {
      return this.#reject('invalid_argument', "start: 'detach' must be a boolean", extra);
    }
    const view = this.#viewOf('start', msg, extra);
    if (view === null) return;
    if (call === undefined) return this.#reject('invalid_argument', "start: 'call' is required (a Rasa action call)", extra);
    try {
      checkActionCall(this.#ctx.executor, call);
    } catch (thrown) {
      const error = SluiceError.from(thrown);
      if (error.details.reason !== undefined) extra.reason = error.details.reason;
      if (typeof error.details.actionName === 'string') extra.actionName = error.details.actionName;
      return this.#reject(error.code, `start: ${error.message}`, extra);
    }
    const run = this.#ctx.executor.start(call, { streaming: true, owner: this.#owner, transport: 'ws', traceHeaders: this.#traceHeaders });
    const sub = run.subscribe();
    if (detach !== true) {
      this.#owned.add(run);
      void run.done.then(() => this.#owned.delete(run));
    }
    this.#control({ type: 'started', id: id ?? null, runId: run.id });
    if (view.view === 'events') this.#read(run, sub);
    else this.#readSentences(run, sub, view.segmenter, -1);
  }

  /** Reports what an asynchronous command threw, as the synchronous ones do. */
  #settle(command: Promise<void>): void {
    command.catch((thrown: unknown) => {
      const error = SluiceError.from(thrown);
      if (error.code === 'internal') this.#ctx.logger.error({ err: thrown }, 'WebSocket message failed');
      this.#reject(error.code, error.message);
    });
  }

  async #cancel(msg: Message): Promise<void> {
    const runId = msg.runId;
    if (typeof runId !== 'string') return this.#reject('invalid_argument', "cancel: 'runId' must be a string");
    const run = await ownedRun(this.#ctx.executor, this.#owner, runId);
    if (run === undefined) return this.#reject('not_found', `cancel: no run found with id '${clipped(runId, MAX_ECHO)}'`);
    if (!this.#ctx.executor.cancel(runId)) {
      return this.#reject('failed_precondition', `cancel: run '${clipped(runId, MAX_ECHO)}' ${run.state === 'ended' ? 'has already ended' : 'is already being cancelled'}`);
    }
    this.#control({ type: 'cancelled', runId });
  }

  #ack(msg: Message): void {
    const responseId = msg.responseId;
    if (typeof responseId !== 'string' || responseId.length > MAX_ECHO) {
      return this.#reject('invalid_argument', `ack: 'responseId' must be a string of at most ${MAX_ECHO} characters`);
    }
    // A stream of this instance is acknowledged at once, before anything still queued goes out.
    const acknowledged = ackOwned(this.#ctx.executor, this.#owner, responseId);
    if (typeof acknowledged === 'boolean') return this.#control({ type: 'acked', responseId, acknowledged });
    this.#settle(acknowledged.then((found) => this.#control({ type: 'acked', responseId, acknowledged: found })));
  }

  async #resume(msg: Message): Promise<void> {
    const { runId, after } = msg;
    if (typeof runId !== 'string') return this.#reject('invalid_argument', "resume: 'runId' must be a string");
    const view = this.#viewOf('resume', msg);
    if (view === null) return;
    const sentences = view.view === 'sentences';
    if (after !== undefined && (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0)) {
      return this.#reject(
        'invalid_argument',
        sentences
          ? "resume: 'after' must be the index (a non-negative integer) of the last sentence received"
          : "resume: 'after' must be the seq (a non-negative integer) of the last event received",
      );
    }
    const run = await ownedRun(this.#ctx.executor, this.#owner, runId);
    if (run === undefined) return this.#reject('not_found', `resume: no run found with id '${clipped(runId, MAX_ECHO)}'`);
    let sub: Subscription;
    try {
      // Sentences are cut again from the run's first event; the ones already sent are skipped.
      sub = run.subscribe({ after: sentences ? 0 : ((after as number | undefined) ?? 0) });
    } catch (thrown) {
      const error = SluiceError.from(thrown);
      return this.#reject(error.code, `resume: ${error.message}`);
    }
    if (sentences) this.#readSentences(run, sub, view.segmenter, (after as number | undefined) ?? -1);
    else this.#read(run, sub);
  }

  #read(run: Run, sub: Subscription): void {
    // One reader per run and socket: a repeated resume must not deliver events twice.
    this.#subs.get(run.id)?.unsubscribe();
    this.#subs.set(run.id, sub);
    this.#pump(run, sub).catch((error: unknown) => {
      this.#ctx.logger.error({ err: error, runId: run.id }, 'WebSocket stream failed');
    });
  }

  /** Sends a subscription's events until `run-end`, the socket closes, or the reader is replaced. */
  async #pump(run: Run, sub: Subscription): Promise<void> {
    this.#meter.readers++;
    try {
      for (;;) {
        const step = await sub.next();
        if (step.done === true) break;
        let ok = this.#send(step.value);
        if (ok !== true && !(await ok)) return this.#shutdown();
        if (run.lastSeq > sub.cursor) {
          const batch = sub.drain();
          for (let i = 0; i < batch.length; i++) {
            ok = this.#send(batch[i]!);
            if (ok !== true && !(await ok)) return this.#shutdown();
          }
        }
      }
    } finally {
      this.#meter.readers--;
      sub.unsubscribe();
      if (this.#subs.get(run.id) === sub) this.#subs.delete(run.id);
    }
  }

  #readSentences(run: Run, sub: Subscription, segmenter: SentenceStreamOptions, afterIndex: number): void {
    const previous = this.#sentenceReads.get(run.id);
    if (previous !== undefined) {
      previous.stopped = true;
      previous.sub.unsubscribe();
    }
    const read: SentenceRead = { sub, stopped: false };
    this.#sentenceReads.set(run.id, read);
    this.#pumpSentences(run, read, segmenter, afterIndex).catch((error: unknown) => {
      this.#ctx.logger.error({ err: error, runId: run.id }, 'WebSocket sentence stream failed');
    });
  }

  /** Sends a run's sentence view until `run-end`, the socket closes, or the reader is replaced. */
  async #pumpSentences(run: Run, read: SentenceRead, segmenter: SentenceStreamOptions, afterIndex: number): Promise<void> {
    const maySpeak = sentenceGate(run);
    const view = sentenceViewOf(read.sub, { ...segmenter, afterIndex });
    try {
      for (let step = await view.next(); step.done !== true && !read.stopped; step = await view.next()) {
        const item = step.value;
        // Wait for room before deciding: a barge-in during the wait must stop this sentence too.
        if (this.socket.bufferedAmount > this.#ctx.ws.highWaterMark && !(await this.#waitWritable())) return this.#shutdown();
        if (read.stopped) break;
        if (item.type === 'sentence' && !maySpeak()) continue;
        if (item.type === 'sentence' && item.index === 0) run.mark('sentence');
        const ok = this.#send(item.type === 'sentence' ? encodeSentence(item) : encodeEvent(item));
        if (ok !== true && !(await ok)) return this.#shutdown();
      }
    } finally {
      read.stopped = true;
      read.sub.unsubscribe();
      await view.return?.();
      if (this.#sentenceReads.get(run.id) === read) this.#sentenceReads.delete(run.id);
    }
  }

  /** Sends at once when the socket has room; otherwise waits (true: sent; false: the socket is gone). */
  #send(event: SluiceEvent | string): boolean | Promise<boolean> {
    const socket = this.socket;
    if (socket.readyState !== WebSocket.OPEN) return false;
    if (socket.bufferedAmount > this.#ctx.ws.highWaterMark) {
      return this.#waitWritable().then((ok) => ok && this.#send(event));
    }
    // `ws` writes each frame with its own syscall; corking the underlying socket for the current
    // burst of promise callbacks sends the burst in one write (measured: ~2.5× faster for a fast
    // producer). It is uncorked once the microtask queue is empty, so no frame waits for a timer,
    // and corked bytes count in `bufferedAmount`, so the high-water mark still holds.
    if (!this.#corked) {
      const raw = (socket as unknown as { _socket?: Duplex })._socket;
      if (raw !== undefined) {
        this.#corked = true;
        raw.cork();
        process.nextTick(this.#uncork, raw);
      }
    }
    const text = typeof event === 'string' ? event : encodeEvent(event);
    socket.send(text);
    this.#meter.writes++;
    this.#meter.bytes += Buffer.byteLength(text);
    return true;
  }

  #uncork = (raw: Duplex): void => {
    this.#corked = false;
    raw.uncork();
  };

  /**
   * Resolves true once `bufferedAmount` is down to half the high-water mark, false when the socket
   * closed or stayed full for `stallTimeoutMs` (it is then terminated: a close frame could not get
   * past the queue anyway). All senders share one wait. `ws` has no `drain` event of its own (and
   * the underlying socket's does not fire reliably once it has been corked), so the wait polls:
   * first on `setImmediate`, which runs after the burst is uncorked and handed to the kernel (the
   * common case: the kernel took it all), then every {@link POLL_MS} ms; the socket's `drain` and
   * `close` wake it early.
   */
  #waitWritable(): Promise<boolean> {
    if (this.#writable !== null) return this.#writable;
    const socket = this.socket;
    const raw = (socket as unknown as { _socket?: Duplex })._socket;
    const { highWaterMark, stallTimeoutMs } = this.#ctx.ws;
    const deadline = Date.now() + stallTimeoutMs;
    let resolve!: (ok: boolean) => void;
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    let immediateChecks = 0;
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      clearImmediate(immediate);
      raw?.off('drain', check);
      socket.off('close', check);
      if (this.#writable === promise) this.#writable = null;
      resolve(ok);
    };
    const check = (): void => {
      clearTimeout(timer);
      clearImmediate(immediate);
      if (socket.readyState !== WebSocket.OPEN) return finish(false);
      if (socket.bufferedAmount <= highWaterMark / 2) return finish(true);
      const left = deadline - Date.now();
      if (left <= 0) {
        // Cancel first: with this reader gone nothing would hold the producers back.
        this.#shutdown();
        this.#ctx.logger.warn(
          { bufferedAmount: socket.bufferedAmount, stallTimeoutMs },
          `WebSocket closed: its send buffer stayed above ${highWaterMark} bytes for ${stallTimeoutMs} ms`,
        );
        socket.terminate();
        return finish(false);
      }
      if (immediateChecks < 2) {
        immediateChecks++;
        immediate = setImmediate(check);
      } else timer = setTimeout(check, Math.min(POLL_MS, left));
    };
    const promise = new Promise<boolean>((r) => {
      resolve = r;
    });
    this.#writable = promise;
    raw?.on('drain', check);
    socket.on('close', check);
    immediateChecks = 1;
    immediate = setImmediate(check);
    return promise;
  }

  /** A small reply to a command; it does not wait for room (it is bounded by the commands received). */
  #control(message: Message): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  #reject(code: ErrorCode, message: string, extra: Message = {}): void {
    this.#control({ type: 'error', code, message, ...extra });
  }

  /** The socket is gone: cancel the runs it owns, then release every subscription. Idempotent. */
  #shutdown(): void {
    for (const run of this.#owned) {
      run.cancel(new SluiceError('cancelled', 'The WebSocket closed', { details: { reason: 'disconnect' } }));
    }
    this.#owned.clear();
    for (const sub of this.#subs.values()) sub.unsubscribe();
    this.#subs.clear();
    for (const read of this.#sentenceReads.values()) {
      read.stopped = true;
      read.sub.unsubscribe();
    }
    this.#sentenceReads.clear();
  }
}
