/**
 * The AI SDK chat endpoints, as a Fastify plugin: what `useChat` with the default
 * `DefaultChatTransport` talks to, answered by a Sluice action.
 *
 * | route | does |
 * |---|---|
 * | `POST /api/chat` | `{ id, messages }` → runs the chat action, answers with the UI message stream |
 * | `GET /api/chat/:id/stream` | resumes the chat's answer in progress (replay, then live); 204 when none |
 * | `POST /api/chat/:id/stop` | stops the answer in progress and saves it as it stands; 404 for an unknown chat |
 * | `GET /api/chat/:id/messages` | `{ id, messages, activeRunId }`: the saved messages, plus the answer in progress |
 *
 * Decisions:
 * - **Stop vs disconnect.** `POST /api/chat/:id/stop` always cancels. A client that drops the
 *   POST's connection (the AI SDK's `stop()` aborts its fetch; a tab closes) cancels too by default
 *   (`cancelOnDisconnect: true`), so a stock `useChat` stop button stops the model. In `resumable`
 *   mode the default flips: a dropped connection is only a disconnect, the run goes on and
 *   `GET /api/chat/:id/stream` picks it up (`useChat({ resume: true })`); stop with the endpoint.
 * - **One answer per chat.** A POST for a chat whose answer is still running supersedes it: the old
 *   run is cancelled (its stream ends with `abort`, reason `superseded`) and the new one starts, since
 *   the user moved on (e.g. after a local `stop()` in resumable mode). `onBusy: 'reject'` answers
 *   409 instead.
 * - **Saving.** The request's messages are saved when it arrives; the assistant message is built on
 *   the server from the run's events (not taken from the client) and saved when the run ends, or
 *   at once on stop, with whatever it had (so a reload shows the partial answer). A superseded
 *   run's answer is not saved: the newer request's messages are the history.
 * - **Ownership.** With authentication on, chats belong to their principal: a chat id is looked up
 *   among the principal's own chats (the store's key is `<principal>:<chat id>`), so another
 *   principal's chat is never read, stopped, superseded or overwritten — its id is unknown (404).
 * - **Resume** replays the run from the log's first event (the AI SDK transport expects a replay:
 *   `resumeStreamIsReplay`), then follows live. Resuming readers never cancel the run.
 * @module
 */

import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { HTTP_STATUS, SluiceError } from '../../protocol/errors.ts';
import type { ErrorEvent } from '../../protocol/events.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { Run } from '../../runtime/run.ts';
import type { Subscription } from '../../runtime/subscription.ts';
import { pipeEvents } from '../pipe-events.ts';
import { ownerOf } from '../principal.ts';
import { carriedHeaders, dropEmptyBodyType, requestErrorHandler } from '../request-hooks.ts';
import { assembleMessage } from './assembler.ts';
import type { CloseReason } from './encoder.ts';
import { UiMessageEncoder } from './encoder.ts';
import { DONE_FRAME, UI_MESSAGE_STREAM_HEADERS, type UiMessage } from './parts.ts';
import { MAX_CHAT_ID_LENGTH, buildActionCall, parseChatRequest, type ChatRequest } from './request.ts';
import { SseWriter } from '../sse-writer.ts';
import { MemoryChatStore, type ChatStore } from './store.ts';
import { traceHeadersOf } from '../../runtime/observer.ts';

/** Options of {@link uiMessageRoutes}. */
export interface UiMessageRoutesOptions {
  /** Runs the chat action. The plugin never closes it. */
  executor: ActionExecutor;
  /** The action that answers a chat. Default `action_assistant`. */
  action?: string;
  /** Where messages are saved. Default a `new MemoryChatStore()`. */
  store?: ChatStore;
  /**
   * Resumable mode: a dropped POST connection does not cancel the answer, which can be resumed
   * with `GET /api/chat/:id/stream`; stop it with `POST /api/chat/:id/stop`. Default false.
   */
  resumable?: boolean;
  /** Cancel the run when the client of `POST /api/chat` goes away. Default `!resumable`. */
  cancelOnDisconnect?: boolean;
  /** A POST for a chat with an answer in progress: `cancel` it (default) or `reject` with 409. */
  onBusy?: 'cancel' | 'reject';
  /** Silence (ms) after which a `: ping` comment keeps the stream alive; 0 for none. Default 15,000. */
  pingIntervalMs?: number;
  /** End a stream after this many ms (the run goes on and can be resumed). Default: no limit. */
  maxDurationMs?: number;
  /** Drop a reader that takes no data for this many ms (see `SseWriterOptions.stallTimeoutMs`). Default 30,000. */
  stallTimeoutMs?: number;
  /** Most messages a request may carry. Default 1,000. */
  maxMessages?: number;
  /** The text of `error` parts. Default: `'An error occurred.'` for internal errors, else the event's message. */
  errorText?: (event: ErrorEvent) => string;
  /** Default the executor's logger. */
  logger?: Logger;
}

/** Response header carrying the run id (also the assistant message id of the stream). */
export const RUN_ID_HEADER = 'x-sluice-run-id';

/** Headers a hijacked response must not inherit from the reply: they describe a body we do not send. */

interface ActiveChat {
  chatId: string;
  run: Run;
  /** The messages of the request that started the run. */
  history: UiMessage[];
  /** Saved (or given up) already: later ends of the run change nothing. */
  closed: boolean;
}

function invalidOption(name: string, problem: string): SluiceError {
  return new SluiceError('invalid_argument', `uiMessageRoutes: option '${name}' ${problem}`);
}

function nonNegativeInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw invalidOption(name, `must be a non-negative integer (got ${String(value)})`);
  return value;
}

/** The public reason of a cancel, for the `abort` part: `stop`, `disconnect`, `superseded`, `barge_in`, … */
function abortReasonOf(run: Run): string | undefined {
  const reason = run.cancelReason;
  if (reason === null) return undefined;
  return typeof reason.details.reason === 'string' ? reason.details.reason : reason.code;
}

/** Serves the chat endpoints for one plugin registration. */
class ChatEndpoints {
  readonly #executor: ActionExecutor;
  readonly #action: string;
  readonly #store: ChatStore;
  readonly #cancelOnDisconnect: boolean;
  readonly #onBusy: 'cancel' | 'reject';
  readonly #pingIntervalMs: number;
  readonly #stallTimeoutMs: number | undefined;
  readonly #maxDurationMs: number | undefined;
  readonly #maxMessages: number;
  readonly #errorText: ((event: ErrorEvent) => string) | undefined;
  readonly #logger: Logger;
  readonly #active = new Map<string, ActiveChat>();
  /** The last pending save of each chat: saves of one chat run in order. */
  readonly #saving = new Map<string, Promise<void>>();
  readonly writers = new Set<SseWriter>();

  constructor(options: UiMessageRoutesOptions) {
    if (typeof options?.executor?.start !== 'function') throw invalidOption('executor', 'must be an ActionExecutor');
    this.#executor = options.executor;
    this.#action = options.action ?? 'action_assistant';
    if (typeof this.#action !== 'string' || this.#action === '') throw invalidOption('action', 'must be a non-empty action name');
    this.#store = options.store ?? new MemoryChatStore();
    if (typeof this.#store.get !== 'function' || typeof this.#store.save !== 'function') throw invalidOption('store', 'must have get() and save()');
    const resumable = options.resumable ?? false;
    this.#cancelOnDisconnect = options.cancelOnDisconnect ?? !resumable;
    this.#onBusy = options.onBusy ?? 'cancel';
    if (this.#onBusy !== 'cancel' && this.#onBusy !== 'reject') throw invalidOption('onBusy', "must be 'cancel' or 'reject'");
    this.#pingIntervalMs = nonNegativeInt('pingIntervalMs', options.pingIntervalMs, 15_000);
    if (options.maxDurationMs !== undefined && !(Number.isInteger(options.maxDurationMs) && options.maxDurationMs > 0)) {
      throw invalidOption('maxDurationMs', `must be a positive integer (got ${String(options.maxDurationMs)})`);
    }
    this.#maxDurationMs = options.maxDurationMs;
    if (options.stallTimeoutMs !== undefined && !(Number.isFinite(options.stallTimeoutMs) && options.stallTimeoutMs > 0)) {
      throw invalidOption('stallTimeoutMs', `must be a number > 0 (got ${String(options.stallTimeoutMs)})`);
    }
    this.#stallTimeoutMs = options.stallTimeoutMs;
    this.#maxMessages = nonNegativeInt('maxMessages', options.maxMessages, 1_000) || 1_000;
    this.#errorText = options.errorText;
    this.#logger = options.logger ?? options.executor.logger;
  }

  /** `POST /api/chat`. */
  async post(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    let chat: ChatRequest;
    try {
      chat = parseChatRequest(request.body, this.#maxMessages);
    } catch (error) {
      sendError(reply, SluiceError.from(error, 'invalid_argument', 'Invalid chat request'));
      return;
    }
    const key = chatKey(request, chat.id);
    const current = this.#active.get(key);
    if (current !== undefined) {
      if (this.#onBusy === 'reject') {
        reply.code(409).send({
          error: `Chat '${chat.id}' already has an answer in progress: stop it with POST /api/chat/${encodeURIComponent(chat.id)}/stop first`,
          code: 'already_exists',
          runId: current.run.id,
        });
        return;
      }
      current.closed = true;
      this.#active.delete(key);
      current.run.cancel(new SluiceError('cancelled', 'Superseded by a newer message', { details: { reason: 'superseded' } }));
    }
    else if (this.#store.getActive !== undefined) {
      // Another instance may be answering this chat: the same rule applies to its run.
      const elsewhere = await this.#activeElsewhere(key);
      if (elsewhere !== undefined) {
        if (this.#onBusy === 'reject') {
          reply.code(409).send({
            error: `Chat '${chat.id}' already has an answer in progress: stop it with POST /api/chat/${encodeURIComponent(chat.id)}/stop first`,
            code: 'already_exists',
            runId: elsewhere.id,
          });
          return;
        }
        elsewhere.cancel(new SluiceError('cancelled', 'Superseded by a newer message', { details: { reason: 'superseded' } }));
      }
    }
    if (this.#executor.getAction(this.#action) === undefined) {
      this.#logger.error({ action: this.#action }, `uiMessageRoutes: the chat action '${this.#action}' is not registered`);
      reply.code(500).send({ error: 'The chat action is not available', code: 'internal' });
      return;
    }
    const run = this.#executor.start(buildActionCall(chat.id, chat.messages, { action: this.#action }), { streaming: true, owner: ownerOf(request), transport: 'ui-message', traceHeaders: traceHeadersOf(request.headers) });
    const entry: ActiveChat = { chatId: key, run, history: chat.messages, closed: false };
    this.#active.set(key, entry);
    const sub = run.subscribe();
    run.done.then(
      () => this.#close(entry, 'completed'),
      () => {},
    );
    void this.#save(key, chat.messages);
    if (this.#store.setActive !== undefined) {
      await this.#store.setActive(key, run.id).catch((error: unknown) => this.#logger.error({ err: error, chatId: chat.id }, 'uiMessageRoutes: recording the answer in progress failed'));
    }
    await this.#pipe(reply, run, sub, this.#cancelOnDisconnect);
  }

  /** `GET /api/chat/:id/stream`. */
  async resume(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const chatId = chatIdParam(request, reply);
    if (chatId === null) return;
    const run = this.#active.get(chatKey(request, chatId))?.run ?? (await this.#activeElsewhere(chatKey(request, chatId)));
    if (run === undefined || run.state === 'ended') {
      reply.code(204).send();
      return;
    }
    let sub: Subscription;
    try {
      // From the oldest event still held: normally the first (a replay, as the AI SDK expects).
      sub = run.subscribe({ after: run.base });
    } catch {
      reply.code(204).send();
      return;
    }
    await this.#pipe(reply, run, sub, false);
  }

  /** `POST /api/chat/:id/stop`: body `{ activeStreamId? }` (the run id) guards against stale stops. */
  async stop(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const chatId = chatIdParam(request, reply);
    if (chatId === null) return;
    const body = request.body;
    if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
      sendError(reply, new SluiceError('invalid_argument', 'Invalid stop request: the body must be a JSON object like { activeStreamId }'));
      return;
    }
    const expected = (body as { activeStreamId?: unknown } | null | undefined)?.activeStreamId;
    if (expected !== undefined && expected !== null && typeof expected !== 'string') {
      sendError(reply, new SluiceError('invalid_argument', 'Invalid stop request: activeStreamId: expected a string'));
      return;
    }
    const key = chatKey(request, chatId);
    const entry = this.#active.get(key);
    const elsewhere = entry === undefined ? await this.#activeElsewhere(key) : undefined;
    if (elsewhere !== undefined) {
      if (typeof expected === 'string' && expected !== elsewhere.id) {
        reply.send({ success: true, stopped: false, runId: elsewhere.id });
        return;
      }
      // The owning instance saves the answer when its run ends; this one answers with what it has seen.
      const stopped = this.#executor.cancel(elsewhere.id, 'Stopped by the user');
      const partial = assembleMessage(elsewhere.events(), { messageId: elsewhere.id, close: stopped ? 'cancelled' : 'completed' });
      reply.send({ success: true, stopped, runId: elsewhere.id, message: partial.parts.length > 0 ? partial : null });
      return;
    }
    if (entry === undefined) {
      if ((await this.#load(key)) === undefined) {
        reply.code(404).send({ error: `No chat found with id '${chatId}'`, code: 'not_found' });
        return;
      }
      reply.send({ success: true, stopped: false, runId: null });
      return;
    }
    if (typeof expected === 'string' && expected !== entry.run.id) {
      // A stop for an answer that was already replaced by a newer one.
      reply.send({ success: true, stopped: false, runId: entry.run.id });
      return;
    }
    const stopped = this.#executor.cancel(entry.run.id, 'Stopped by the user');
    // Not stopped: its result is in, so the log already holds everything it will say.
    const message = await this.#close(entry, stopped ? 'cancelled' : 'completed');
    reply.send({ success: true, stopped, runId: entry.run.id, message: message ?? null });
  }

  /** `GET /api/chat/:id/messages`. */
  async messages(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const chatId = chatIdParam(request, reply);
    if (chatId === null) return;
    const key = chatKey(request, chatId);
    const entry = this.#active.get(key);
    const saved = entry === undefined ? await this.#load(key) : entry.history;
    if (saved === undefined) {
      reply.code(404).send({ error: `No chat found with id '${chatId}'`, code: 'not_found' });
      return;
    }
    const messages = saved.slice();
    if (entry !== undefined) {
      const partial = assembleMessage(entry.run.events(), { messageId: entry.run.id });
      if (partial.parts.length > 0) messages.push(partial);
    }
    reply.send({ id: chatId, messages, activeRunId: entry?.run.id ?? null });
  }

  /** Ends the open streams (the runs go on: their clients may resume elsewhere). */
  endStreams(): void {
    for (const writer of this.writers) writer.end();
  }

  /** The live run answering `chatId` on another instance (with a store that shares it), if any. */
  async #activeElsewhere(chatId: string): Promise<Run | undefined> {
    if (this.#store.getActive === undefined) return undefined;
    try {
      const runId = await this.#store.getActive(chatId);
      if (runId === null) return undefined;
      const run = await this.#executor.findRun(runId);
      return run !== undefined && run.state !== 'ended' ? run : undefined;
    } catch (error) {
      this.#logger.warn({ err: error, chatId }, 'uiMessageRoutes: the answer in progress could not be looked up');
      return undefined;
    }
  }

  /** Saves the run's answer once: when it ends, or at once on stop. */
  async #close(entry: ActiveChat, reason: CloseReason): Promise<UiMessage | undefined> {
    if (entry.closed) return undefined;
    entry.closed = true;
    if (this.#active.get(entry.chatId) === entry) this.#active.delete(entry.chatId);
    void this.#store.clearActive?.(entry.chatId, entry.run.id).catch(() => {});
    const message = assembleMessage(entry.run.events(), { messageId: entry.run.id, close: reason });
    if (message.parts.length === 0) return undefined;
    await this.#save(entry.chatId, [...entry.history, message]);
    return message;
  }

  #save(chatId: string, messages: UiMessage[]): Promise<void> {
    const previous = this.#saving.get(chatId) ?? Promise.resolve();
    const next = previous
      .then(() => this.#store.save(chatId, messages))
      .catch((error: unknown) => this.#logger.error({ err: error, chatId }, 'uiMessageRoutes: saving the chat failed'));
    this.#saving.set(chatId, next);
    void next.then(() => {
      if (this.#saving.get(chatId) === next) this.#saving.delete(chatId);
    });
    return next;
  }

  /** The saved messages, after the chat's pending saves (read your own writes). */
  async #load(chatId: string): Promise<UiMessage[] | undefined> {
    await this.#saving.get(chatId);
    return this.#store.get(chatId);
  }

  /**
   * Streams a run as UI message parts until its end, a disconnect or the maximum duration. Events
   * already waiting go out in one write; a full socket stops the reading, which makes the producer
   * wait (backpressure end to end).
   */
  async #pipe(reply: FastifyReply, run: Run, sub: Subscription, cancelOnDisconnect: boolean): Promise<void> {
    reply.hijack();
    const writer = new SseWriter(reply.raw, {
      pingIntervalMs: this.#pingIntervalMs,
      maxDurationMs: this.#maxDurationMs,
      streamHeaders: UI_MESSAGE_STREAM_HEADERS,
      meter: this.#executor.wire.of('ui-message'),
      stallNotice: TOO_SLOW_PART,
      stallTimeoutMs: this.#stallTimeoutMs,
    });
    this.writers.add(writer);
    writer.onclose = (reason) => {
      this.writers.delete(writer);
      sub.unsubscribe(); // wakes the loop if it waits for an event
      if ((reason === 'disconnected' || reason === 'too-slow') && cancelOnDisconnect) {
        run.cancel(new SluiceError('cancelled', 'The client disconnected', { details: { reason: 'disconnect' } }));
      }
    };
    writer.open(streamHeaders(reply, run.id));
    const encoder = new UiMessageEncoder({
      messageId: run.id,
      errorText: this.#errorText,
      abortReason: () => abortReasonOf(run),
      onEncodingError: (error, part) =>
        this.#logger.warn({ err: error, runId: run.id, part: part.type }, 'uiMessageRoutes: a part could not be encoded as JSON and was skipped'),
    });
    try {
      await pipeEvents(run, sub, (event) => encoder.encode(event), writer);
    } catch (error) {
      this.#logger.error({ err: error, runId: run.id }, 'uiMessageRoutes: the stream failed');
    } finally {
      sub.unsubscribe();
      writer.end('ended', encoder.ended ? DONE_FRAME : '');
    }
  }
}

function streamHeaders(reply: FastifyReply, runId: string): OutgoingHttpHeaders {
  const headers = carriedHeaders(reply);
  headers[RUN_ID_HEADER] = runId;
  return headers;
}

function sendError(reply: FastifyReply, error: SluiceError): void {
  reply.code(HTTP_STATUS[error.code]).send({ error: error.message, code: error.code });
}

/**
 * Where a chat lives: its id, prefixed with its principal when authentication is on. Chat ids are
 * chosen by clients, so each principal has its own: someone else's chat id names another chat,
 * which this principal can neither read, stop, resume nor overwrite (404 while it has none).
 */
function chatKey(request: FastifyRequest, chatId: string): string {
  const owner = ownerOf(request);
  return owner === undefined ? chatId : `${encodeURIComponent(owner)}:${chatId}`;
}
/** The UI message part a reader that took nothing for the writer's stall timeout is dropped with. */
const TOO_SLOW_PART = 'data: {"type":"error","errorText":"Reader too slow: the connection accepted no data for too long"}\n\n';

function chatIdParam(request: FastifyRequest, reply: FastifyReply): string | null {
  const id = (request.params as { id?: unknown }).id;
  if (typeof id !== 'string' || id === '' || id.length > MAX_CHAT_ID_LENGTH) {
    reply.code(400).send({ error: `Invalid chat id: expected 1 to ${MAX_CHAT_ID_LENGTH} characters`, code: 'invalid_argument' });
    return null;
  }
  return id;
}

/**
 * Registers the AI SDK chat endpoints (see the module comment). Throws `invalid_argument` for an
 * invalid option. Open streams end when the server closes; their runs go on (close the executor
 * to cancel them).
 *
 * @example
 * const executor = new ActionExecutor({ actions: [assistant] });
 * const app = Fastify();
 * await app.register(uiMessageRoutes, { executor, resumable: true });
 * await app.listen({ port: 3000 });
 * // client: useChat({ transport: new DefaultChatTransport({ api: 'http://localhost:3000/api/chat' }), resume: true })
 */
export const uiMessageRoutes: FastifyPluginAsync<UiMessageRoutesOptions> = async (app: FastifyInstance, options: UiMessageRoutesOptions) => {
  const endpoints = new ChatEndpoints(options);
  app.setErrorHandler(requestErrorHandler(options.logger ?? options.executor.logger, 'uiMessageRoutes'));
  app.addHook('preClose', async () => endpoints.endStreams());
  app.post('/api/chat', (request, reply) => endpoints.post(request, reply));
  // No automatic HEAD route: it would hold a bodiless stream open.
  app.get('/api/chat/:id/stream', { exposeHeadRoute: false }, (request, reply) => endpoints.resume(request, reply));
  // A stop needs no body: let an empty one through whatever its content type says.
  app.post('/api/chat/:id/stop', { onRequest: dropEmptyBodyType }, (request, reply) => endpoints.stop(request, reply));
  app.get('/api/chat/:id/messages', (request, reply) => endpoints.messages(request, reply));
};

export default uiMessageRoutes;
