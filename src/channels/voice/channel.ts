/**
 * `VoiceChannel`: the voice side of Sluice, independent of any HTTP framework. It holds what every
 * voice connection shares (the executor, the TTS engine, the history store, rails and defaults)
 * and serves one `ws` WebSocket per {@link VoiceSession}. `ws-routes.ts` mounts it on Fastify.
 * @module
 */

import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import { SluiceError, clipped } from '../../protocol/errors.ts';
import { parseActionCall } from '../../protocol/schemas.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';
import type { Logger } from '../../runtime/logger.ts';
import { silentLogger } from '../../runtime/logger.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import { SentenceStream } from '../../text/sentence-stream.ts';
import { FliteTts } from './flite.ts';
import { FLITE_VOICES, type FliteVoice } from './flite-wasi.ts';
import { VoiceHistoryStore } from './history.ts';
import type { OutputRailsOptions } from './rails.ts';
import { resolveRailOptions } from './rails.ts';
import { VoiceSession } from './session.ts';
import type { TtsEngine } from './tts.ts';
import { speakableText } from './tts.ts';
import { booleanOption, checkOptionsObject, enumOption, functionOption, invalidOption, numberOption } from './validate.ts';

/** Options of a {@link VoiceChannel}. */
export interface VoiceChannelOptions {
  /** Runs the `start` calls (required). */
  executor: ActionExecutor;
  /** Default: the embedded {@link FliteTts} (voice `fliteVoice`), warmed up at construction and closed with the channel. */
  tts?: TtsEngine;
  /** The voice of the default engine (not with `tts`). Default `kal16`. */
  fliteVoice?: FliteVoice;
  /** Where turn histories go. Default: a new store of 1,000 entries. */
  history?: VoiceHistoryStore;
  /** Segmenter options for the sentences sent to TTS (e.g. `minFirstLength`, `maxLength`, `stallFlushMs`). */
  segmenter?: SentenceStreamOptions;
  /** Output rails on every turn (check-first recommended for voice: nothing unchecked is spoken). */
  rails?: Omit<OutputRailsOptions, 'cancel'>;
  /** Default for turns that do not say: may the user interrupt? Default true. */
  allowInterruptions?: boolean;
  /**
   * Most audio sent ahead of the (estimated) playback position, in ms; the rest waits on the
   * server, where an interrupt drops it. Default 1,500 (ACE buffers 400 ms before playing).
   * `Infinity` sends audio as fast as it is synthesized.
   */
  audioLeadMs?: number;
  /**
   * Text sent to TTS for a sentence (history and the `sentence` frames keep the original).
   * Default {@link speakableText} (drops markdown marks and `[1]` citation markers); `null` for none.
   */
  textFilter?: ((text: string) => string) | null;
  /** Longest `say` text, in characters. Default 10,000. */
  maxSayLength?: number;
  /** Socket send buffer above which audio waits, in bytes. Default 1 MiB. */
  highWaterMark?: number;
  /** A socket that stays above the high-water mark this long is closed, in ms. Default 30,000. */
  stallTimeoutMs?: number;
  /** A late interrupt (after `turn-end`, while the client may still play) is accepted this long after the estimated end of playback, in ms. Default 2,000. */
  lateInterruptGraceMs?: number;
  /**
   * A `pause` followed by neither `resume` nor `interrupt` within this many ms resumes by itself
   * (a false interruption: a cough, "mm-hm", noise). Default 2,000; `Infinity`: never.
   */
  falseInterruptionTimeoutMs?: number;
  logger?: Logger;
}

const KEYS = [
  'executor',
  'tts',
  'fliteVoice',
  'history',
  'segmenter',
  'rails',
  'allowInterruptions',
  'audioLeadMs',
  'textFilter',
  'maxSayLength',
  'highWaterMark',
  'stallTimeoutMs',
  'lateInterruptGraceMs',
  'falseInterruptionTimeoutMs',
  'logger',
] as const;

/** @internal Resolved channel settings, read by sessions. */
export interface VoiceSettings {
  executor: ActionExecutor;
  tts: TtsEngine;
  history: VoiceHistoryStore;
  segmenter: SentenceStreamOptions;
  rails: Omit<OutputRailsOptions, 'cancel'> | undefined;
  allowInterruptions: boolean;
  audioLeadMs: number;
  textFilter: (text: string) => string;
  maxSayLength: number;
  highWaterMark: number;
  stallTimeoutMs: number;
  lateInterruptGraceMs: number;
  falseInterruptionTimeoutMs: number;
  logger: Logger;
}

/** Serves voice WebSockets. */
export class VoiceChannel {
  /** Turn histories of every session. */
  readonly history: VoiceHistoryStore;
  readonly tts: TtsEngine;
  /** @internal */
  readonly settings: VoiceSettings;
  readonly #sessions = new Map<string, VoiceSession>();
  readonly #ownsTts: boolean;

  /** @throws {SluiceError} `invalid_argument` naming a bad option. */
  constructor(options: VoiceChannelOptions) {
    const who = 'VoiceChannel';
    const o = checkOptionsObject(who, options, KEYS);
    const executor = o.executor as ActionExecutor | undefined;
    if (typeof executor !== 'object' || executor === null || typeof executor.start !== 'function' || typeof executor.ack !== 'function') {
      throw invalidOption(who, 'executor', 'an ActionExecutor', executor);
    }
    const tts = o.tts as TtsEngine | undefined;
    if (tts !== undefined && (typeof tts !== 'object' || tts === null || typeof tts.synthesize !== 'function')) {
      throw invalidOption(who, 'tts', 'a TtsEngine (an object with synthesize(text, { signal }))', tts);
    }
    const history = o.history;
    if (history !== undefined && !(history instanceof VoiceHistoryStore)) throw invalidOption(who, 'history', 'a VoiceHistoryStore', history);
    const segmenter = (o.segmenter ?? {}) as SentenceStreamOptions;
    try {
      new SentenceStream(segmenter);
    } catch (error) {
      throw new SluiceError('invalid_argument', `${who}: option 'segmenter': ${(error as Error).message}`);
    }
    const rails = o.rails as VoiceChannelOptions['rails'];
    if (rails !== undefined) {
      if (typeof rails === 'object' && rails !== null && 'cancel' in rails) {
        throw new SluiceError('invalid_argument', `${who}: option 'rails.cancel' is not accepted: the channel cancels the turn's run itself`);
      }
      resolveRailOptions(`${who}: option 'rails'`, rails);
    }
    const textFilter = o.textFilter === null ? (t: string) => t : (functionOption<(t: string) => string>(who, 'textFilter', o.textFilter) ?? speakableText);
    const logger = (o.logger ?? silentLogger) as Logger;
    if (typeof logger !== 'object' || logger === null || typeof logger.warn !== 'function') throw invalidOption(who, 'logger', 'a logger', logger);
    if (o.fliteVoice !== undefined && tts !== undefined) throw invalidOption(who, 'fliteVoice', 'absent when a tts engine is given', o.fliteVoice);
    const fliteVoice = o.fliteVoice === undefined ? undefined : enumOption(who, 'fliteVoice', o.fliteVoice, FLITE_VOICES, 'kal16');
    this.#ownsTts = tts === undefined;
    this.tts = tts ?? new FliteTts(fliteVoice === undefined ? {} : { voice: fliteVoice });
    this.history = (history as VoiceHistoryStore | undefined) ?? new VoiceHistoryStore();
    this.settings = {
      executor,
      tts: this.tts,
      history: this.history,
      segmenter,
      rails,
      allowInterruptions: booleanOption(who, 'allowInterruptions', o.allowInterruptions, true),
      audioLeadMs: numberOption(who, 'audioLeadMs', o.audioLeadMs, 1500, { min: 0, infinity: true, integer: false }),
      textFilter,
      maxSayLength: numberOption(who, 'maxSayLength', o.maxSayLength, 10_000, { min: 1 }),
      highWaterMark: numberOption(who, 'highWaterMark', o.highWaterMark, 1024 * 1024, { min: 1024 }),
      stallTimeoutMs: numberOption(who, 'stallTimeoutMs', o.stallTimeoutMs, 30_000, { min: 1 }),
      lateInterruptGraceMs: numberOption(who, 'lateInterruptGraceMs', o.lateInterruptGraceMs, 2000, { min: 0 }),
      falseInterruptionTimeoutMs: numberOption(who, 'falseInterruptionTimeoutMs', o.falseInterruptionTimeoutMs, 2000, { min: 1, infinity: true }),
      logger,
    };
    if (this.#ownsTts && this.tts instanceof FliteTts) {
      this.tts.warmup().catch((error: unknown) => logger.warn({ err: error }, 'The embedded TTS engine could not be warmed up'));
    }
  }

  /** Sessions open now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Serves a connected socket until it closes. */
  accept(socket: WebSocket, owner?: string, traceHeaders?: Readonly<Record<string, string>>): VoiceSession {
    const session = new VoiceSession(socket, this.settings, randomUUID(), owner, traceHeaders);
    this.#sessions.set(session.id, session);
    socket.once('close', () => this.#sessions.delete(session.id));
    return session;
  }

  /** An open session by id (the `sessionId` of its `turn-start` frames), for the HTTP and gRPC voice controls. */
  session(id: string): VoiceSession | undefined {
    return this.#sessions.get(id);
  }

  /** Closes every session (their turns are cancelled) and, if the channel made it, the TTS engine. */
  async close(): Promise<void> {
    for (const session of this.#sessions.values()) session.socket.close(1001, 'Server shutting down');
    this.#sessions.clear();
    if (this.#ownsTts) await this.tts.close?.();
  }
}

/** Checks an action call the way the executor will, so a bad one gets a clear error before a turn starts. */
export function checkCall(executor: ActionExecutor, call: unknown): void {
  if (typeof call !== 'object' || call === null || Array.isArray(call)) {
    throw new SluiceError('invalid_argument', "start: 'call' must be a Rasa action call (a JSON object)", { details: { reason: 'invalid_body' } });
  }
  const next = (call as Record<string, unknown>).next_action;
  if (typeof next !== 'string' || next === '') {
    throw new SluiceError('invalid_argument', "start: 'call.next_action' must name an action", { details: { reason: 'invalid_body' } });
  }
  if (executor.getAction(next) === undefined) {
    throw new SluiceError('not_found', `start: no registered action found for name '${clipped(next)}'`, { details: { reason: 'action_not_found', actionName: next } });
  }
  parseActionCall(call);
}
