/**
 * One voice WebSocket: the client's commands, the turns it starts, their sentences and audio.
 *
 * Client → server (JSON text frames):
 * - `{ type: 'start', call, id?, allowInterruptions?, segmenter? }`: run a Rasa action call and
 *   speak its output; `segmenter` (`mode`, `locale`, `minFirstLength`, `maxLength`,
 *   `stallFlushMs`) overrides the channel's segmenter options for this turn;
 * - `{ type: 'say', text, id?, allowInterruptions?, segmenter? }`: speak a fixed text (a static response);
 * - `{ type: 'pause', played? }`: a possible interruption (the user made a sound): audio stops at
 *   once and nothing more is sent, while the run goes on into its buffer; the history marks what
 *   was heard. Then either `resume`, `interrupt`, or — after the channel's
 *   `falseInterruptionTimeoutMs` without either — an automatic resume;
 * - `{ type: 'resume' }`: the interruption was false: audio goes on from the exact byte where it
 *   stopped (a client keeps what it buffered while paused, plays it, then what follows);
 * - `{ type: 'interrupt', played? }`: barge-in; `played` is `{ chars }`, `{ ms }` or `{ sentence }`
 *   (see `PlayedReport`); without it the server's playback estimate is used (after a pause: where
 *   playback stood at the pause);
 * - `{ type: 'history', limit? }`: this session's turn histories, newest first.
 *
 * Server → client, JSON text frames (each names its `turnId`):
 * - `turn-start { id, turnId, turn, runId, sessionId, kind, allowInterruptions }` (`sessionId`
 *   addresses this socket from the HTTP and gRPC voice controls);
 * - `sentence { index, text, responseId }` as soon as a sentence is complete (before its audio);
 * - `audio-end { index, durationMs }` after a sentence's last audio frame;
 * - `tts-error { index, message }` when the engine failed on a sentence (its text was still sent);
 * - `status { text }`, `run-error { code, message, reason? }` (the run's `status` / `error` events);
 * - `interrupted { history }` at once when an interrupt is accepted;
 * - `paused { played, spoken }` and `resumed { auto }` when a pause / resume is accepted (after
 *   `paused`, no audio frame arrives until `resumed`);
 * - `turn-end { reason, history, result? }` once the run has ended and its audio is sent;
 * - `history { entries }`; `error { code, message }` for a command that was refused (the socket and
 *   any turn in progress carry on untouched).
 *
 * Server → client, binary frames: audio, one chunk per frame, a 20-byte little-endian header then
 * the samples: `u8 version (1)`, `u8 encoding (1 = PCM16LE)`, `u16 channels`, `u32 turn` (the
 * `turn` number of `turn-start`), `u32 sentence index`, `u32 sample rate`, `u32 chunk number`
 * within the sentence. Frames of one turn are in order. After sending `interrupt`, a client drops
 * audio until `interrupted` arrives (frames already in flight belong to the interrupted turn).
 *
 * One turn speaks at a time: `start`/`say` while a turn is speaking is refused (interrupt first).
 * `pause`, `resume` and `interrupt` are also {@link VoiceSession} methods, which the HTTP and gRPC
 * voice controls call.
 * @module
 */

import { DEFAULT_MAX_DEPTH, checkDepth } from '../../protocol/depth.ts';
import { randomUUID } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import { SluiceError } from '../../protocol/errors.ts';
import type { ErrorCode } from '../../protocol/errors.ts';
import type { ErrorEvent, RasaEvent, ResultEvent, SluiceEvent } from '../../protocol/events.ts';
import { buildMessage } from '../../runtime/dispatcher.ts';
import { Run } from '../../runtime/run.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import type { WireMeter } from '../../runtime/observer.ts';
import type { VoiceSettings } from './channel.ts';
import { checkCall } from './channel.ts';
import type { HistorySentence, PlayedReport, TurnEndReason, VoiceHistoryEntry, VoiceTurnMark } from './history.ts';
import { parsePlayed, spokenText } from './history.ts';
import { withOutputRails } from './rails.ts';
import { parseSegmenterOptions } from './sentence-view.ts';
import type { SentenceEvent } from './sentences.ts';
import { sentencesOf } from './sentences.ts';
import type { AudioChunk } from './tts.ts';
import { pause } from './validate.ts';

/** Size of the binary audio frame header. */
export const AUDIO_HEADER_BYTES = 20;
/** Version byte of the audio frame header. */
export const AUDIO_FRAME_VERSION = 1;

/** A decoded binary audio frame (for clients and tests). */
export interface AudioFrame {
  version: number;
  encoding: number;
  channels: number;
  turn: number;
  index: number;
  sampleRate: number;
  chunk: number;
  /** PCM16LE samples. */
  pcm: Uint8Array;
}

/** Encodes one audio chunk as a binary frame. */
export function encodeAudioFrame(turn: number, index: number, chunkNo: number, chunk: AudioChunk): Buffer {
  const frame = Buffer.allocUnsafe(AUDIO_HEADER_BYTES + chunk.data.length);
  frame.writeUInt8(AUDIO_FRAME_VERSION, 0);
  frame.writeUInt8(1, 1);
  frame.writeUInt16LE(chunk.format.channels, 2);
  frame.writeUInt32LE(turn, 4);
  frame.writeUInt32LE(index, 8);
  frame.writeUInt32LE(chunk.format.sampleRate, 12);
  frame.writeUInt32LE(chunkNo, 16);
  frame.set(chunk.data, AUDIO_HEADER_BYTES);
  return frame;
}

/** Decodes a binary audio frame. */
export function decodeAudioFrame(data: Uint8Array): AudioFrame {
  if (data.length < AUDIO_HEADER_BYTES) throw new SluiceError('invalid_argument', 'Audio frame shorter than its header');
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return {
    version: b.readUInt8(0),
    encoding: b.readUInt8(1),
    channels: b.readUInt16LE(2),
    turn: b.readUInt32LE(4),
    index: b.readUInt32LE(8),
    sampleRate: b.readUInt32LE(12),
    chunk: b.readUInt32LE(16),
    pcm: data.subarray(AUDIO_HEADER_BYTES),
  };
}

type Message = Record<string, unknown>;

interface Turn {
  id: string;
  number: number;
  kind: 'start' | 'say';
  run: Run;
  allowInterruptions: boolean;
  abort: AbortController;
  records: Map<number, HistorySentence>;
  queue: SentenceEvent[];
  wake: (() => void) | null;
  sentencesDone: boolean;
  generated: string;
  /** The responseId of the run's open stream (the barge-in target). */
  openStream: string | null;
  playStart: number;
  sentMs: number;
  interrupted: boolean;
  disconnected: boolean;
  blocked: boolean;
  played: PlayedReport | undefined;
  createdAt: number;
  entry: VoiceHistoryEntry | null;
  finished: boolean;
  /** Segmenter options of this turn (the channel's, with the turn's own over them). */
  segmenter: SentenceStreamOptions;
  /** Set while paused: when, where playback stood, the auto-resume timer. */
  paused: { at: number; played: PlayedReport; timer: NodeJS.Timeout | undefined } | null;
  /** Woken on resume (and on abort). */
  resumeWaiters: (() => void)[];
  marks: VoiceTurnMark[];
}

/** What {@link VoiceSession.pause} reports. */
export interface PauseResult {
  turnId: string;
  runId: string;
  /** Where playback stood (the client's report, or the server's estimate). */
  played: PlayedReport;
  /** What had been heard by then. */
  spoken: string;
}

/** What {@link VoiceSession.resume} reports. */
export interface ResumeResult {
  turnId: string;
  runId: string;
  auto: boolean;
}

/** What {@link VoiceSession.interrupt} reports. */
export interface InterruptResult {
  turnId: string;
  runId: string;
  history: VoiceHistoryEntry;
}

/** Serves one voice socket (see the module notes for the protocol). */
export class VoiceSession {
  readonly socket: WebSocket;
  readonly id: string;
  #s: VoiceSettings;
  #active: Turn | null = null;
  /** The last turn that ended without interruption: a late interrupt may still correct its history. */
  #last: Turn | null = null;
  #turns = 0;
  #closed = false;
  #running = new Set<Promise<void>>();
  readonly #meter: WireMeter;

  /** The principal of the socket's upgrade request: it owns the session's runs and history. */
  readonly owner: string | undefined;

  /** The upgrade request's W3C trace context: the session's runs join that trace. */
  readonly #traceHeaders: Readonly<Record<string, string>> | undefined;

  constructor(socket: WebSocket, settings: VoiceSettings, id: string, owner?: string, traceHeaders?: Readonly<Record<string, string>>) {
    this.socket = socket;
    this.#s = settings;
    this.id = id;
    this.owner = owner;
    this.#traceHeaders = traceHeaders;
    const meter = (this.#meter = settings.executor.wire.of('voice-ws'));
    meter.connections++;
    socket.once('close', () => meter.connections--);
    socket.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    socket.on('close', () => this.#shutdown());
    socket.on('error', () => this.#shutdown());
  }

  /** Settles when every turn started on this socket has finished (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running]);
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    // Closed by a limit (the guard's listener runs first): the message is not acted on.
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (isBinary) return this.#reject('invalid_argument', 'Binary frames are not accepted: send JSON text commands');
    let message: unknown;
    try {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      message = JSON.parse(bytes.toString('utf8'));
    } catch {
      return this.#reject('invalid_argument', 'Invalid message: not valid JSON');
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return this.#reject('invalid_argument', "Invalid message: expected a JSON object with a 'type'");
    }
    const msg = message as Message;
    try {
      checkDepth(msg, DEFAULT_MAX_DEPTH, 'Invalid message: it');
      switch (msg.type) {
        case 'start':
          return this.#start(msg);
        case 'say':
          return this.#say(msg);
        case 'interrupt':
          this.interrupt(msg.played);
          return;
        case 'pause':
          this.pause(msg.played);
          return;
        case 'resume':
          this.resume();
          return;
        case 'history':
          return this.#history(msg);
        default:
          return this.#reject(
            'invalid_argument',
            msg.type === undefined
              ? "Invalid message: 'type' is required (start, say, pause, resume, interrupt or history)"
              : `Invalid message: unknown type ${typeof msg.type === 'string' ? JSON.stringify(msg.type.slice(0, 256)) : typeof msg.type}; expected start, say, pause, resume, interrupt or history`,
          );
      }
    } catch (thrown) {
      const error = SluiceError.from(thrown);
      if (error.code === 'internal') this.#s.logger.error({ err: thrown, sessionId: this.id }, 'Voice command failed');
      const turnId = error.details.turnId;
      this.#reject(error.code, error.message, typeof turnId === 'string' ? { turnId } : {});
    }
  }

  #common(msg: Message, command: string): { id: string | null; allowInterruptions: boolean; segmenter: SentenceStreamOptions } | null {
    const { id, allowInterruptions } = msg;
    if (id !== undefined && typeof id !== 'string') {
      this.#reject('invalid_argument', `${command}: 'id' must be a string`);
      return null;
    }
    if (allowInterruptions !== undefined && typeof allowInterruptions !== 'boolean') {
      this.#reject('invalid_argument', `${command}: 'allowInterruptions' must be a boolean`);
      return null;
    }
    let segmenter = this.#s.segmenter;
    if (msg.segmenter !== undefined) {
      try {
        segmenter = { ...segmenter, ...parseSegmenterOptions(`${command}: segmenter`, msg.segmenter) };
      } catch (thrown) {
        const error = SluiceError.from(thrown);
        this.#reject(error.code, error.message);
        return null;
      }
    }
    if (this.#active !== null) {
      this.#reject('failed_precondition', `${command}: turn ${this.#active.id} is still speaking; interrupt it first`);
      return null;
    }
    return { id: id ?? null, allowInterruptions: allowInterruptions ?? this.#s.allowInterruptions, segmenter };
  }

  #start(msg: Message): void {
    const common = this.#common(msg, 'start');
    if (common === null) return;
    if (msg.call === undefined) return this.#reject('invalid_argument', "start: 'call' is required (a Rasa action call)");
    try {
      checkCall(this.#s.executor, msg.call);
    } catch (thrown) {
      const error = SluiceError.from(thrown);
      return this.#reject(error.code, error.message);
    }
    const run = this.#s.executor.start(msg.call, { streaming: true, owner: this.owner, transport: 'voice-ws', traceHeaders: this.#traceHeaders });
    this.#begin('start', run, common.id, common.allowInterruptions, common.segmenter);
  }

  #say(msg: Message): void {
    const common = this.#common(msg, 'say');
    if (common === null) return;
    const text = msg.text;
    if (typeof text !== 'string' || text.trim() === '') return this.#reject('invalid_argument', "say: 'text' must be a non-empty string");
    if (text.length > this.#s.maxSayLength) return this.#reject('invalid_argument', `say: 'text' is longer than ${this.#s.maxSayLength} characters`);
    this.#begin('say', sayRun(text, this.owner), common.id, common.allowInterruptions, common.segmenter);
  }

  #begin(kind: 'start' | 'say', run: Run, id: string | null, allowInterruptions: boolean, segmenter: SentenceStreamOptions): void {
    const turn: Turn = {
      id: randomUUID(),
      number: ++this.#turns,
      kind,
      run,
      allowInterruptions,
      abort: new AbortController(),
      records: new Map(),
      queue: [],
      wake: null,
      sentencesDone: false,
      generated: '',
      openStream: null,
      playStart: -1,
      sentMs: 0,
      interrupted: false,
      disconnected: false,
      blocked: false,
      played: undefined,
      createdAt: Date.now(),
      entry: null,
      finished: false,
      segmenter,
      paused: null,
      resumeWaiters: [],
      marks: [],
    };
    this.#active = turn;
    this.#last = null;
    this.#send({ type: 'turn-start', id, turnId: turn.id, turn: turn.number, runId: run.id, sessionId: this.id, kind, allowInterruptions });
    const done = this.#runTurn(turn).catch((error: unknown) => {
      this.#s.logger.error({ err: error, runId: run.id, sessionId: this.id }, 'Voice turn failed');
    });
    this.#running.add(done);
    void done.finally(() => this.#running.delete(done));
  }

  async #runTurn(turn: Turn): Promise<void> {
    const s = this.#s;
    let events: AsyncIterable<SluiceEvent> = this.#tapRun(turn, turn.run.subscribe());
    if (s.rails !== undefined) {
      events = withOutputRails(events, { ...s.rails, cancel: (reason) => this.#cancelRun(turn, reason) });
    }
    events = this.#tapView(turn, events);
    const sentences = sentencesOf(events, { ...turn.segmenter, signal: turn.abort.signal });
    const tts = this.#speak(turn);
    try {
      for await (const sentence of sentences) {
        // Paused: nothing more goes out; the run goes on into its buffer meanwhile.
        if (turn.paused !== null) await this.#whilePaused(turn);
        if (turn.abort.signal.aborted) break;
        if (sentence.index === 0) turn.run.mark('sentence');
        turn.records.set(sentence.index, { index: sentence.index, text: sentence.text, audio: 'none', audioStartMs: 0, audioMs: 0 });
        this.#send({ type: 'sentence', turnId: turn.id, index: sentence.index, text: sentence.text, responseId: sentence.responseId });
        turn.queue.push(sentence);
        turn.wake?.();
      }
    } finally {
      turn.sentencesDone = true;
      turn.wake?.();
    }
    await tts;
    if (this.#active === turn) this.#active = null;
    await turn.run.done;
    this.#finish(turn);
  }

  /** Watches the run itself: its open stream (the barge-in target). */
  async *#tapRun(turn: Turn, source: AsyncIterable<SluiceEvent>): AsyncGenerator<SluiceEvent> {
    for await (const event of source) {
      if (event.type === 'stream-start') turn.openStream = event.responseId;
      else if (event.type === 'stream-end' && turn.openStream === event.responseId) turn.openStream = null;
      yield event;
    }
  }

  /** Watches what users get (after the rails): the generated text, status and errors. */
  async *#tapView(turn: Turn, source: AsyncIterable<SluiceEvent>): AsyncGenerator<SluiceEvent> {
    for await (const event of source) {
      switch (event.type) {
        case 'chunk':
          if (typeof event.text === 'string') turn.generated += event.text;
          break;
        case 'message': {
          const text = event.message.text;
          if (typeof text === 'string' && text !== '') turn.generated += (turn.generated === '' || /\s$/.test(turn.generated) ? '' : ' ') + text;
          break;
        }
        case 'status':
          this.#send({ type: 'status', turnId: turn.id, text: event.text });
          break;
        case 'error':
          if (event.reason === 'output_rail_blocked') turn.blocked = true;
          this.#send({ type: 'run-error', turnId: turn.id, code: event.code, message: event.message, ...(event.reason === undefined ? {} : { reason: event.reason }) });
          break;
        default:
          break;
      }
      yield event;
    }
  }

  /** Synthesizes the queued sentences in order and sends their audio, paced to the playback clock. */
  async #speak(turn: Turn): Promise<void> {
    const s = this.#s;
    const signal = turn.abort.signal;
    for (;;) {
      if (signal.aborted) return;
      const sentence = turn.queue.shift();
      if (sentence === undefined) {
        if (turn.sentencesDone) return;
        await new Promise<void>((resolve) => {
          turn.wake = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        turn.wake = null;
        continue;
      }
      const record = turn.records.get(sentence.index) as HistorySentence;
      const text = s.textFilter(sentence.text);
      if (!/[\p{L}\p{N}]/u.test(text)) continue;
      let chunkNo = 0;
      try {
        for await (const chunk of s.tts.synthesize(text, { signal })) {
          if (signal.aborted) return;
          if (chunk.data.length === 0) continue;
          await this.#pace(turn);
          if (signal.aborted) return;
          if (!(await this.#writable())) return this.#shutdown();
          // A pause holds this very chunk: resume sends it, so the audio joins exactly.
          while (turn.paused !== null && !signal.aborted) {
            await this.#whilePaused(turn);
            await this.#pace(turn);
          }
          if (signal.aborted) return;
          if (this.socket.readyState !== WebSocket.OPEN) return this.#shutdown();
          if (turn.playStart < 0) {
            turn.playStart = performance.now();
            turn.run.mark('audio');
          }
          if (record.audio === 'none') {
            record.audio = 'started';
            record.audioStartMs = turn.sentMs;
          }
          const frame = encodeAudioFrame(turn.number, sentence.index, chunkNo++, chunk);
          this.socket.send(frame, { binary: true });
          this.#meter.writes++;
          this.#meter.bytes += frame.byteLength;
          record.audioMs += chunk.durationMs;
          turn.sentMs += chunk.durationMs;
        }
        if (signal.aborted) return;
        if (record.audio === 'started') {
          record.audio = 'complete';
          this.#send({ type: 'audio-end', turnId: turn.id, index: sentence.index, durationMs: Math.round(record.audioMs) });
        }
      } catch (thrown) {
        if (signal.aborted) return;
        const error = SluiceError.from(thrown, 'internal', 'Speech synthesis failed');
        s.logger.warn({ err: thrown, runId: turn.run.id, index: sentence.index, engine: s.tts.name }, 'TTS failed for a sentence');
        record.audio = 'failed';
        this.#send({ type: 'tts-error', turnId: turn.id, index: sentence.index, message: error.message });
      }
    }
  }

  /** Waits while more than `audioLeadMs` of audio is ahead of the estimated playback position. */
  async #pace(turn: Turn): Promise<void> {
    const lead = this.#s.audioLeadMs;
    if (lead === Infinity || turn.playStart < 0) return;
    const ahead = turn.sentMs - (performance.now() - turn.playStart);
    if (ahead > lead) await pause(ahead - lead, turn.abort.signal);
  }

  /** True once the socket can take more (false: it closed or stayed full too long). */
  async #writable(): Promise<boolean> {
    const socket = this.socket;
    const deadline = Date.now() + this.#s.stallTimeoutMs;
    while (socket.readyState === WebSocket.OPEN && socket.bufferedAmount > this.#s.highWaterMark) {
      if (Date.now() > deadline) {
        this.#s.logger.warn({ sessionId: this.id }, 'Voice socket closed: its send buffer stayed full');
        socket.terminate();
        return false;
      }
      await pause(10);
    }
    return socket.readyState === WebSocket.OPEN;
  }

  /**
   * Pause (a possible interruption): audio stops at once, the run goes on into its buffer, the
   * history marks what was heard. Resumes by itself after `falseInterruptionTimeoutMs`.
   *
   * @param played where playback stands (`{ chars }`, `{ ms }` or `{ sentence }`); default: the
   *   server's estimate.
   * @throws {SluiceError} `failed_precondition` when no turn is speaking, it is already paused or
   *   it does not allow interruptions; `invalid_argument` for a bad `played`.
   */
  pause(played?: unknown): PauseResult {
    const report = played === undefined ? undefined : parsePlayed(played, 'pause');
    const turn = this.#controlled('pause');
    if (turn.paused !== null) throw new SluiceError('failed_precondition', `pause: turn ${turn.id} is already paused`, { details: { turnId: turn.id } });
    const at = performance.now();
    const where = report ?? this.#estimate(turn, at);
    const timeout = this.#s.falseInterruptionTimeoutMs;
    const timer =
      timeout === Infinity
        ? undefined
        : setTimeout(() => {
            if (turn.paused !== null && !turn.interrupted) this.#resume(turn, true);
          }, timeout);
    turn.paused = { at, played: where, timer };
    const spoken = spokenText([...turn.records.values()], where);
    turn.marks.push({ type: 'pause', at: Date.now(), played: where, spoken });
    this.#recordMarks(turn);
    this.#send({ type: 'paused', turnId: turn.id, runId: turn.run.id, played: where, spoken });
    return { turnId: turn.id, runId: turn.run.id, played: where, spoken };
  }

  /**
   * Resume after a pause (the interruption was false): audio goes on from where it stopped.
   * @throws {SluiceError} `failed_precondition` when no turn is paused.
   */
  resume(): ResumeResult {
    const turn = this.#active ?? this.#lateTurn();
    if (turn === null || turn.paused === null) throw new SluiceError('failed_precondition', 'resume: no turn is paused');
    return this.#resume(turn, false);
  }

  /**
   * Barge-in: the user took the turn. Stops the audio and the run, and records what was heard
   * (after a pause: what had been heard at the pause, unless `played` says otherwise).
   * @throws {SluiceError} `failed_precondition` when no turn is speaking or it does not allow
   *   interruptions; `invalid_argument` for a bad `played`.
   */
  interrupt(played?: unknown): InterruptResult {
    let report = played === undefined ? undefined : parsePlayed(played);
    const turn = this.#controlled('interrupt');
    if (turn.paused !== null) {
      report ??= turn.paused.played;
      this.#endPause(turn);
    }
    this.#stopTurn(turn, report, false);
    const history = turn.entry as VoiceHistoryEntry;
    this.#send({ type: 'interrupted', turnId: turn.id, runId: turn.run.id, history });
    return { turnId: turn.id, runId: turn.run.id, history };
  }

  /** The turn a pause or interrupt applies to. */
  #controlled(command: string): Turn {
    const turn = this.#active ?? this.#lateTurn();
    if (turn === null) throw new SluiceError('failed_precondition', `${command}: no turn is speaking`);
    if (!turn.allowInterruptions) {
      throw new SluiceError('failed_precondition', `${command}: interruptions are disabled for turn ${turn.id}; it goes on`, { details: { turnId: turn.id } });
    }
    return turn;
  }

  #resume(turn: Turn, auto: boolean): ResumeResult {
    const pausedAt = turn.paused?.at ?? performance.now();
    this.#endPause(turn);
    // The playback clock stood still while paused.
    if (turn.playStart >= 0) turn.playStart += performance.now() - pausedAt;
    turn.marks.push({ type: 'resume', at: Date.now(), auto });
    this.#recordMarks(turn);
    this.#send({ type: 'resumed', turnId: turn.id, runId: turn.run.id, auto });
    return { turnId: turn.id, runId: turn.run.id, auto };
  }

  #endPause(turn: Turn): void {
    if (turn.paused === null) return;
    clearTimeout(turn.paused.timer);
    turn.paused = null;
    for (const wake of turn.resumeWaiters.splice(0)) wake();
  }

  /** Waits until the turn is resumed or stopped. */
  #whilePaused(turn: Turn): Promise<void> {
    if (turn.paused === null || turn.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const onAbort = (): void => resolve();
      turn.abort.signal.addEventListener('abort', onAbort, { once: true });
      turn.resumeWaiters.push(() => {
        turn.abort.signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** A turn that already ended keeps its history entry up to date with later marks. */
  #recordMarks(turn: Turn): void {
    if (turn.entry === null) return;
    turn.entry = { ...turn.entry, marks: [...turn.marks] };
    this.#s.history.put(turn.entry);
  }

  /** The last finished turn, while its audio may still be playing on the client. */
  #lateTurn(): Turn | null {
    const turn = this.#last;
    if (turn === null || turn.playStart < 0 || turn.interrupted) return null;
    if (turn.paused !== null) return turn;
    return performance.now() <= turn.playStart + turn.sentMs + this.#s.lateInterruptGraceMs ? turn : null;
  }

  /** Barge-in: stop TTS and queued audio, cancel the run through its stream's ack, record what was heard. */
  #stopTurn(turn: Turn, played: PlayedReport | undefined, disconnected: boolean): void {
    turn.interrupted = true;
    turn.disconnected = disconnected;
    turn.played = played ?? this.#estimate(turn);
    turn.abort.abort();
    turn.queue.length = 0;
    if (this.#active === turn) this.#active = null;
    if (this.#last === turn) this.#last = null;
    if (turn.run.state === 'running') {
      const reason = new SluiceError('cancelled', 'Barge-in: the user interrupted the response', { details: { reason: 'barge_in' } });
      const acked = turn.kind === 'start' && turn.openStream !== null && this.#s.executor.ack(turn.openStream);
      if (!acked) this.#cancelRun(turn, reason);
    }
    turn.entry = this.#entry(turn, disconnected ? 'disconnected' : 'interrupted');
    this.#s.history.put(turn.entry);
  }

  #cancelRun(turn: Turn, reason: SluiceError): void {
    if (turn.kind === 'start' && this.#s.executor.getRun(turn.run.id) === turn.run) {
      this.#s.executor.cancel(turn.run.id, reason);
    } else turn.run.cancel(reason);
  }

  /** Where playback should be now (or at a pause), from the time the first audio frame went out. */
  #estimate(turn: Turn, now = turn.paused?.at ?? performance.now()): PlayedReport {
    if (turn.playStart < 0) return { ms: 0 };
    return { ms: Math.min(turn.sentMs, now - turn.playStart) };
  }

  #finish(turn: Turn): void {
    if (turn.finished) return;
    turn.finished = true;
    const terminal = terminalOf(turn.run);
    let reason: TurnEndReason;
    if (turn.interrupted) reason = turn.disconnected ? 'disconnected' : 'interrupted';
    else if (turn.blocked) reason = 'blocked';
    else if (turn.run.endReason === 'error') reason = 'error';
    else if (turn.run.endReason === 'completed') reason = 'completed';
    else reason = 'cancelled';
    // The generated text may have grown while the run wound down; what was heard is fixed.
    const entry = { ...this.#entry(turn, reason), ...(turn.entry === null ? {} : { spoken: turn.entry.spoken, played: turn.entry.played }) } as VoiceHistoryEntry;
    if (entry.played === undefined) delete entry.played;
    turn.entry = entry;
    this.#s.history.put(entry);
    if (!turn.interrupted && this.#active === null) this.#last = turn;
    const result: { events: RasaEvent[] } | undefined = terminal?.type === 'result' ? { events: terminal.events } : undefined;
    const error = terminal?.type === 'error' ? { code: terminal.code, message: terminal.message } : undefined;
    this.#send({ type: 'turn-end', turnId: turn.id, runId: turn.run.id, reason, history: entry, ...(result === undefined ? {} : { result }), ...(error === undefined ? {} : { error }) });
  }

  #entry(turn: Turn, reason: TurnEndReason): VoiceHistoryEntry {
    const sentences = [...turn.records.values()].map((r) => ({ ...r, audioMs: Math.round(r.audioMs), audioStartMs: Math.round(r.audioStartMs) }));
    const played = turn.interrupted ? turn.played : undefined;
    const entry: VoiceHistoryEntry = {
      id: turn.id,
      sessionId: this.id,
      ...(this.owner === undefined ? {} : { owner: this.owner }),
      runId: turn.run.id,
      kind: turn.kind,
      createdAt: turn.createdAt,
      generated: turn.generated,
      spoken: spokenText([...turn.records.values()], played),
      interrupted: turn.interrupted,
      reason,
      sentences,
    };
    if (played !== undefined) entry.played = played;
    if (turn.marks.length > 0) entry.marks = [...turn.marks];
    return entry;
  }

  #history(msg: Message): void {
    const limit = msg.limit;
    if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)) {
      return this.#reject('invalid_argument', "history: 'limit' must be a positive integer");
    }
    this.#send({ type: 'history', entries: this.#s.history.list({ sessionId: this.id, limit: limit ?? 50 }) });
  }

  #send(message: Message): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    const text = JSON.stringify(message);
    this.socket.send(text);
    this.#meter.writes++;
    this.#meter.bytes += Buffer.byteLength(text);
  }

  #reject(code: ErrorCode, message: string, extra: Message = {}): void {
    this.#send({ type: 'error', code, message, ...extra });
  }

  /** The socket is gone: the speaking turn is cancelled and recorded as `disconnected`. */
  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    const turn = this.#active;
    if (turn !== null) {
      const played = turn.paused?.played;
      this.#endPause(turn);
      this.#stopTurn(turn, played, true);
    }
    const late = this.#last;
    if (late !== null) this.#endPause(late);
  }
}

/** A finished run holding one whole message: what `say` speaks. */
function sayRun(text: string, owner: string | undefined): Run {
  const run = new Run({ action: 'voice_say', owner });
  run.emit({ type: 'run-start', action: 'voice_say', at: Date.now() });
  const message = buildMessage({ text });
  run.emit({ type: 'message', message });
  run.emit({ type: 'result', events: [], responses: [message] });
  run.emit({ type: 'run-end', reason: 'completed' });
  return run;
}

function terminalOf(run: Run): ResultEvent | ErrorEvent | undefined {
  const events = run.events();
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.type === 'result' || e.type === 'error') return e;
  }
  return undefined;
}
