/**
 * `BotFrameworkStream`: Teams AI's `StreamingResponse` (`reference/teams-ai.md` §1–3) with the
 * service's failure modes handled. One instance is one reply: informative updates, then
 * cumulative text updates, then one final `message` carrying attachments, citations, the AI
 * label, the sensitivity label and the feedback loop.
 *
 * Beyond Teams AI: sends are paced by an injectable clock with coalescing (≤ 1 pending update,
 * no lost text, no trailing sleep after the final); a 429 is retried after `Retry-After` with the
 * latest text; the Stop button (403 "cancelled by user") aborts {@link BotFrameworkStream.signal}
 * and silences the stream; near the 2-minute cap the stream is closed with a final message and
 * the rest of the reply follows as a plain message; where streaming is not possible (group chats,
 * `streamingAllowed: false`, "not allowed" answers) the reply is sent as one plain message; a
 * failing Bot Connector stops the updates and `endStream()` rejects with a clear error.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { Logger } from '../../runtime/logger.ts';
import { silentLogger } from '../../runtime/logger.ts';
import type { Activity, Attachment, ClientCitation, FeedbackLoopType, SensitivityUsageInfo, StreamInfo } from './activity.ts';
import { feedbackChannelData, messageEntity, streamChannelData, streamInfoEntity } from './activity.ts';
import type { CitationInput } from './citations.ts';
import { citationsFor, formatCitationMarkers, partialMarkerLength, toClientCitation } from './citations.ts';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { classifySendError, failureReason } from './errors.ts';
import type { PacedJob } from './pacer.ts';
import { DEFAULT_INTERVAL_MS, Pacer, backoffDelay } from './pacer.ts';
import type { ActivitySender } from './sender.ts';
import { canStream } from './sender.ts';

/** Options of a {@link BotFrameworkStream}. */
export interface BotFrameworkStreamOptions {
  /** Least time between two sends, in ms. Default 1000 (about 1 request/s, the Teams limit). */
  intervalMs?: number;
  /** Time source for pacing, back-off and the time limit. Default: real time. */
  clock?: Clock;
  logger?: Logger;
  /**
   * Stream the reply. Default: the sender's verdict (Teams streams in 1:1 chats only). When false
   * nothing is sent until `endStream()`, which sends one plain message.
   */
  streamingAllowed?: boolean;
  /**
   * Close the stream with a final message once it has been open this long (ms); later text
   * follows as a plain message. Teams ends streams at 2 minutes. Default 100,000.
   */
  maxStreamDurationMs?: number;
  /** Retries of one send answered 429. Default 5. */
  maxRetries?: number;
  /** First back-off after a 429 without `Retry-After`, doubling per retry (ms). Default 1000. */
  retryBaseMs?: number;
  /** Longest wait before a retry; a longer `Retry-After` is capped (ms). Default 30,000. */
  maxRetryDelayMs?: number;
  /** Initial value of `setFeedbackLoop`. */
  feedbackLoop?: boolean;
  /** Initial value of `setFeedbackLoopType`. */
  feedbackLoopType?: FeedbackLoopType;
  /** Initial value of `setGeneratedByAILabel`. */
  generatedByAILabel?: boolean;
  /** Initial value of `setSensitivityLabel`. */
  sensitivityLabel?: SensitivityUsageInfo;
}

/**
 * How a reply ended: `completed` (closed by its final message, possibly followed by a plain
 * continuation near the time limit), `fallback` (sent as a plain message: no streaming here, or
 * the service cut the stream), `stopped` (the user pressed Stop: nothing more was sent), `empty`
 * (not streaming and nothing to say: nothing was sent).
 */
export type StreamOutcome = 'completed' | 'fallback' | 'stopped' | 'empty';

/** What `endStream()` resolves to. */
export interface StreamEndResult {
  outcome: StreamOutcome;
  streamId: string | undefined;
  /** Typing activities sent (informative + streaming). */
  updatesSent: number;
  /** Message activities sent or updated (final, fallback, continuation). */
  messagesSent: number;
}

/** The message of the error every call after `endStream()` throws (Teams AI's wording). */
export const STREAM_ENDED_MESSAGE = 'The stream has already ended.';

/** Default time after which an open stream is closed with a final message. */
export const DEFAULT_MAX_STREAM_DURATION_MS = 100_000;

type Mode = 'stream' | 'message';
type JobKind = 'update' | 'final' | 'early-final' | 'message';

interface Deferred {
  promise: Promise<StreamEndResult>;
  resolve: (result: StreamEndResult) => void;
  reject: (error: SluiceError) => void;
}

/** Reasons after which nothing can be delivered any more. */
const FATAL = new Set(['message_too_large', 'bad_request', 'unauthorized', 'conversation_not_found', 'token_unavailable', 'stream_already_completed', 'stream_time_exceeded', 'streaming_not_allowed']);

/**
 * A streamed reply to one Bot Framework conversation. Queue calls never block and never throw
 * because of the channel; channel trouble is handled inside or reported by `endStream()`.
 *
 * @example
 * const stream = new BotFrameworkStream(new BotConnectorSender({ serviceUrl, conversationId, token }));
 * stream.queueInformativeUpdate('Searching documents…');
 * for await (const delta of model) stream.queueTextChunk(delta);
 * stream.setGeneratedByAILabel(true);
 * await stream.endStream();
 */
export class BotFrameworkStream {
  readonly #sender: ActivitySender;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #pacer: Pacer;
  readonly #maxDurationMs: number;
  readonly #maxRetries: number;
  readonly #retryBaseMs: number;
  readonly #maxRetryDelayMs: number;

  #mode: Mode;
  #text = '';
  #version = 0;
  #sentVersion = 0;
  #formatted = '';
  #formattedVersion = 0;
  #lastUpdateText = '';
  #informative: string | undefined;
  #sequence = 0;
  #streamId: string | undefined;
  #ending = false;
  #done = false;
  #stopped = false;
  #timedOut = false;
  #deadlineHit = false;
  #closedEarly = false;
  #continuationFrom = 0;
  #degraded = false;
  #fatal: SluiceError | undefined;
  #lastError: SluiceError | undefined;
  #attempts = 0;
  #messagesSent = 0;
  #end: Deferred | undefined;
  #stop = new AbortController();
  #deadline = new AbortController();

  #attachments: Attachment[] = [];
  #citations: ClientCitation[] = [];
  #feedbackLoop: boolean;
  #feedbackLoopType: FeedbackLoopType | undefined;
  #aiLabel: boolean;
  #sensitivity: SensitivityUsageInfo | undefined;

  constructor(sender: ActivitySender, options: BotFrameworkStreamOptions = {}) {
    this.#sender = sender;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#mode = (options.streamingAllowed ?? canStream(sender)) ? 'stream' : 'message';
    this.#maxDurationMs = options.maxStreamDurationMs ?? DEFAULT_MAX_STREAM_DURATION_MS;
    this.#maxRetries = options.maxRetries ?? 5;
    this.#retryBaseMs = options.retryBaseMs ?? 1000;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.#feedbackLoop = options.feedbackLoop ?? false;
    this.#feedbackLoopType = options.feedbackLoopType;
    this.#aiLabel = options.generatedByAILabel ?? false;
    this.#sensitivity = options.sensitivityLabel;
    this.#pacer = new Pacer(() => this.#produce(), {
      intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS,
      clock: this.#clock,
      onError: (error) => this.#logger.error({ err: error }, 'Bot Framework stream: a send job failed unexpectedly'),
    });
  }

  /** The stream id (the first activity's id), once the first send has returned. */
  get streamId(): string | undefined {
    return this.#streamId;
  }

  /** Typing activities sent so far (informative and streaming; the final message is not counted). */
  get updatesSent(): number {
    return this.#sequence;
  }

  /** The citations set so far, as Teams renders them. */
  get citations(): ClientCitation[] {
    return this.#citations.slice();
  }

  /** True once `endStream()` was called. */
  get ended(): boolean {
    return this.#ending;
  }

  /** True when the reply is streamed; false when it will be sent as a plain message. */
  get streaming(): boolean {
    return this.#mode === 'stream';
  }

  /** True once the user pressed Stop (403 "cancelled by user"). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** True when the service ended the stream at its time limit. */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** The last channel failure (also one handled by a retry or a fallback). */
  get error(): SluiceError | undefined {
    return this.#lastError;
  }

  /**
   * Aborts, with a `cancelled` SluiceError (`details.reason: 'stopped_by_user'`), when the user
   * presses Stop. Link it to the run that produces the reply: that is the barge-in path.
   */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /**
   * Shows a status such as "Searching documents…" before the answer starts. A newer update
   * replaces one not yet sent; once answer text exists, updates are dropped (Teams shows the text).
   */
  queueInformativeUpdate(text: string): void {
    this.#checkOpen();
    if (typeof text !== 'string') throw new SluiceError('invalid_argument', 'queueInformativeUpdate: text must be a string');
    if (this.#silenced() || this.#mode !== 'stream' || this.#text !== '' || text === '') return;
    this.#informative = text;
    this.#pacer.request();
  }

  /**
   * Appends text to the reply. Each update carries all the text so far; chunks that arrive while
   * a send waits or is in flight go out together in the next update. `citations` are added as
   * with `setCitations`.
   */
  queueTextChunk(text: string, citations?: readonly (CitationInput | ClientCitation)[]): void {
    this.#checkOpen();
    if (typeof text !== 'string') throw new SluiceError('invalid_argument', 'queueTextChunk: text must be a string');
    if (citations !== undefined && citations.length > 0) this.setCitations(citations);
    if (text === '') return;
    this.#text += text;
    this.#version++;
    if (!this.#silenced() && this.#mode === 'stream') this.#pacer.request();
  }

  /**
   * Sends the final message (after the pacing interval) and resolves once it is delivered.
   * Rejects with the channel's error when the reply could not be delivered. Calling it twice
   * throws.
   */
  endStream(): Promise<StreamEndResult> {
    this.#checkOpen();
    this.#ending = true;
    let resolve!: (result: StreamEndResult) => void;
    let reject!: (error: SluiceError) => void;
    const promise = new Promise<StreamEndResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that fires and forgets must not crash the process with an unhandled rejection.
    promise.catch(() => {});
    this.#end = { promise, resolve, reject };
    if (this.#stopped) this.#finish('stopped');
    else if (this.#fatal !== undefined) this.#fail(this.#fatal);
    else this.#pacer.request();
    return promise;
  }

  /** Attachments for the final message (replaces earlier ones). */
  setAttachments(attachments: readonly Attachment[]): void {
    this.#checkOpen();
    this.#attachments = [...attachments];
  }

  /** Adds one attachment to the final message. */
  addAttachment(attachment: Attachment): void {
    this.#checkOpen();
    if (typeof attachment !== 'object' || attachment === null || typeof attachment.contentType !== 'string') {
      throw new SluiceError('invalid_argument', 'addAttachment: expected an attachment with a contentType');
    }
    this.#attachments.push(attachment);
  }

  /**
   * Adds citations. Each keeps its own `position` if it has one; otherwise it gets the next
   * number (1, 2, 3… across calls, as in Teams AI). A position already used keeps its first citation.
   */
  setCitations(citations: readonly (CitationInput | ClientCitation)[]): void {
    this.#checkOpen();
    for (const input of citations) {
      const citation = toClientCitation(input, this.#citations.length + 1);
      if (this.#citations.some((c) => c.position === citation.position)) continue;
      this.#citations.push(citation);
    }
  }

  /** The sensitivity label of the final message. */
  setSensitivityLabel(label: SensitivityUsageInfo): void {
    this.#checkOpen();
    this.#sensitivity = label;
  }

  /** Shows feedback buttons on the final message. */
  setFeedbackLoop(enabled: boolean): void {
    this.#checkOpen();
    this.#feedbackLoop = enabled;
  }

  /** The kind of feedback: the default thumbs, or a custom form (`message/fetchTask`). */
  setFeedbackLoopType(type: FeedbackLoopType): void {
    this.#checkOpen();
    this.#feedbackLoopType = type;
  }

  /** Shows the "AI generated" label on the final message. */
  setGeneratedByAILabel(enabled: boolean): void {
    this.#checkOpen();
    this.#aiLabel = enabled;
  }

  /** The whole text so far, with `[docN]` markers rewritten to `[N]`. */
  getMessage(): string {
    return this.#formattedText();
  }

  /** Resolves when nothing is waiting to be sent or in flight. Never rejects. */
  waitForQueue(): Promise<void> {
    return this.#pacer.idle();
  }

  #checkOpen(): void {
    if (this.#ending) throw new SluiceError('failed_precondition', STREAM_ENDED_MESSAGE, { details: { reason: 'stream_ended' } });
  }

  /** Nothing more will be sent before the end (stopped, or a failure we can't get past). */
  #silenced(): boolean {
    return this.#stopped || this.#done || this.#fatal !== undefined;
  }

  #formattedText(): string {
    if (this.#formattedVersion !== this.#version) {
      this.#formatted = formatCitationMarkers(this.#text);
      this.#formattedVersion = this.#version;
    }
    return this.#formatted;
  }

  /** Called by the pacer when a slot is free: what to send now, from the state of now. */
  #produce(): PacedJob | undefined {
    if (this.#silenced()) return undefined;
    if (this.#mode === 'stream') {
      if (this.#ending) return this.#finalJob('final');
      if (this.#deadlineHit && this.#streamId !== undefined) return this.#finalJob('early-final');
      if (this.#degraded) return undefined;
      if (this.#informative !== undefined) {
        const text = this.#informative;
        this.#informative = undefined;
        if (this.#text === '') return this.#updateJob('informative', text);
      }
      if (this.#version !== this.#sentVersion) {
        const full = this.#formattedText();
        const visible = full.slice(0, full.length - partialMarkerLength(full));
        if (visible === '' || visible === this.#lastUpdateText) return undefined;
        return this.#updateJob('streaming', visible);
      }
      return undefined;
    }
    return this.#ending ? this.#messageJob() : undefined;
  }

  #updateJob(streamType: 'informative' | 'streaming', text: string): PacedJob {
    const sequence = this.#sequence + 1;
    const info: StreamInfo = { streamType, streamSequence: sequence };
    if (this.#streamId !== undefined) info.streamId = this.#streamId;
    const entities = [streamInfoEntity(info)];
    if (streamType === 'streaming') {
      const cited = citationsFor(this.#citations, text);
      if (cited.length > 0) entities.push(messageEntity({ aiLabel: false, citations: cited })!);
    }
    const activity: Activity = { type: 'typing', text, channelData: streamChannelData(info), entities };
    if (this.#streamId !== undefined) activity.id = this.#streamId;
    const version = this.#version;
    const startedAt = this.#clock.now();
    return async () => {
      try {
        const result = await this.#sender.send(activity);
        this.#attempts = 0;
        this.#sequence = sequence;
        if (streamType === 'streaming') {
          this.#sentVersion = version;
          this.#lastUpdateText = text;
        }
        if (this.#streamId === undefined) this.#started(result?.id, startedAt);
      } catch (error) {
        if (streamType === 'informative') this.#informative ??= text;
        this.#failed(error, 'update');
      }
    };
  }

  /** The first send returned: its id is the stream id, and the time limit starts. */
  #started(id: string | undefined, startedAt: number): void {
    if (id === undefined || id === '') {
      this.#logger.warn({}, 'Bot Framework stream: the first send returned no id; the reply will be sent as one message');
      this.#toMessageMode(0);
      return;
    }
    this.#streamId = id;
    if (!Number.isFinite(this.#maxDurationMs)) return;
    const signal = this.#deadline.signal;
    void this.#clock.sleep(this.#maxDurationMs - (this.#clock.now() - startedAt), signal).then(() => {
      if (signal.aborted || this.#mode !== 'stream') return;
      this.#deadlineHit = true;
      this.#logger.info({ streamId: id }, 'Bot Framework stream: closing the stream before the channel time limit');
      this.#pacer.request();
    });
  }

  #finalJob(kind: 'final' | 'early-final'): PacedJob {
    const rawLength = this.#text.length;
    const text = this.#formattedText();
    const info: StreamInfo = { streamType: 'final' };
    if (this.#streamId !== undefined) info.streamId = this.#streamId;
    const activity = this.#message(text, kind === 'final', true);
    activity.channelData = { ...streamChannelData(info), ...activity.channelData };
    activity.entities = [streamInfoEntity(info), ...(activity.entities ?? [])];
    if (this.#streamId !== undefined) activity.id = this.#streamId;
    return async () => {
      try {
        await this.#sender.send(activity);
        this.#attempts = 0;
        this.#messagesSent++;
        if (kind === 'final') {
          this.#finish('completed');
          return;
        }
        this.#closedEarly = true;
        this.#continuationFrom = rawLength;
        this.#mode = 'message';
        this.#deadline.abort();
        if (this.#ending) this.#pacer.request();
      } catch (error) {
        this.#failed(error, kind);
      }
    };
  }

  /** The closing send when not streaming: a plain message, or the timed-out stream updated in place. */
  #messageJob(): PacedJob {
    const inPlace = this.#timedOut && !this.#closedEarly && this.#streamId !== undefined && this.#sender.update !== undefined;
    const text = formatCitationMarkers(this.#text.slice(this.#continuationFrom));
    if (!inPlace && text === '' && this.#attachments.length === 0) {
      return async () => this.#finish(this.#closedEarly ? 'completed' : 'empty');
    }
    const activity = this.#message(text, true, this.#continuationFrom === 0);
    return async () => {
      try {
        if (inPlace) await this.#sender.update!({ ...activity, id: this.#streamId! });
        else await this.#sender.send(activity);
        this.#attempts = 0;
        this.#messagesSent++;
        this.#finish(this.#closedEarly ? 'completed' : 'fallback');
      } catch (error) {
        this.#failed(error, 'message');
      }
    };
  }

  /** A message activity with the reply's metadata (no stream fields). */
  #message(text: string, withAttachments: boolean, allCitationsIfNone: boolean): Activity {
    const activity: Activity = { type: 'message', text };
    if (withAttachments && this.#attachments.length > 0) activity.attachments = this.#attachments.slice();
    const entity = messageEntity({
      aiLabel: this.#aiLabel,
      citations: citationsFor(this.#citations, text, allCitationsIfNone),
      usageInfo: this.#sensitivity,
    });
    activity.entities = entity === undefined ? [] : [entity];
    activity.channelData = feedbackChannelData(this.#feedbackLoop, this.#feedbackLoopType);
    return activity;
  }

  #failed(thrown: unknown, kind: JobKind): void {
    const error = classifySendError(thrown);
    this.#lastError = error;
    const reason = failureReason(error);
    const log = { err: error, reason, status: error.details.status, connectorCode: error.details.connectorCode, kind, streamId: this.#streamId };
    if (reason === 'rate_limited') {
      this.#attempts++;
      if (this.#attempts <= this.#maxRetries) {
        const hinted = typeof error.details.retryAfterMs === 'number' ? error.details.retryAfterMs : undefined;
        const delay = Math.min(this.#maxRetryDelayMs, hinted ?? backoffDelay(this.#attempts, this.#retryBaseMs, this.#maxRetryDelayMs));
        this.#logger.warn({ ...log, attempt: this.#attempts, delayMs: delay }, 'Bot Framework stream: rate limited (429); retrying');
        // The retry is rebuilt at its slot, so it carries the newest text.
        this.#pacer.deferUntil(this.#clock.now() + delay);
        this.#pacer.request();
        return;
      }
      this.#attempts = 0;
    }
    if (reason === 'stopped_by_user') {
      this.#logger.info(log, 'Bot Framework stream: the user stopped the response');
      this.#stopped = true;
      this.#deadline.abort();
      this.#stop.abort(error);
      if (this.#end !== undefined) this.#finish('stopped');
      else this.#pacer.close();
      return;
    }
    if (kind !== 'message' && reason === 'stream_time_exceeded') {
      this.#logger.warn(log, 'Bot Framework stream: the channel ended the stream at its time limit; finishing as a message');
      this.#timedOut = true;
      this.#toMessageMode(0);
      return;
    }
    if (kind !== 'message' && reason === 'streaming_not_allowed') {
      this.#logger.info(log, 'Bot Framework stream: streaming is not allowed here; sending one message instead');
      this.#toMessageMode(0);
      return;
    }
    if ((kind === 'update' || kind === 'early-final') && reason === 'bad_request') {
      // E.g. a serializer that dropped the streaminfo fields ("Only start streaming and continue
      // streaming types are allowed…"): a plain message has no stream fields to lose.
      this.#logger.error(log, 'Bot Framework stream: the channel rejected a stream update; sending one message instead');
      this.#toMessageMode(0);
      return;
    }
    if (kind === 'final' && reason === 'stream_already_completed') {
      // A final the service had already applied (e.g. its answer was lost on the way back).
      this.#messagesSent++;
      this.#finish('completed');
      return;
    }
    const transient = reason === undefined || !FATAL.has(reason);
    if (transient && kind === 'update') {
      // Stop updating, but still try to deliver the whole reply at the end.
      this.#logger.warn(log, 'Bot Framework stream: an update failed; no more updates, the final message will be tried');
      if (this.#streamId === undefined) this.#toMessageMode(0);
      else this.#degraded = true;
      return;
    }
    if (transient && kind === 'early-final') {
      this.#logger.warn(log, 'Bot Framework stream: closing the stream failed; the reply will be sent as one message');
      this.#toMessageMode(0);
      return;
    }
    this.#logger.error(log, 'Bot Framework stream: the reply could not be delivered');
    this.#fail(error);
  }

  #toMessageMode(from: number): void {
    this.#mode = 'message';
    this.#continuationFrom = from;
    this.#informative = undefined;
    this.#deadline.abort();
    if (this.#ending) this.#pacer.request();
  }

  #fail(error: SluiceError): void {
    this.#fatal = error;
    this.#deadline.abort();
    if (this.#end === undefined) return;
    this.#done = true;
    this.#pacer.close();
    this.#end.reject(error);
  }

  #finish(outcome: StreamOutcome): void {
    this.#done = true;
    this.#deadline.abort();
    this.#pacer.close();
    this.#end?.resolve({ outcome, streamId: this.#streamId, updatesSent: this.#sequence, messagesSent: this.#messagesSent });
  }
}
