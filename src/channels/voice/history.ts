/**
 * Barge-in history: what a voice turn generated, what the user actually heard, and whether it was
 * interrupted (`reference/ace-and-voice.md` §4.4). The rule every computation here keeps: **text
 * whose audio never started is never written as spoken** (pipecat #2791, livekit #1994, agents-js
 * #1269 are all violations of it).
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import { checkOptionsObject, numberOption } from './validate.ts';

/** How much of a turn's audio the client played before an interrupt. */
export type PlayedReport =
  /** Characters of the played sentences' text (their texts joined in order) that were heard. */
  | { chars: number }
  /** Milliseconds of the turn's audio that were played (the audio timeline starts at the turn's first frame). */
  | { ms: number }
  /** Index of the sentence that was playing: it and the ones before count in full (ACE's sentence granularity). */
  | { sentence: number };

/** One sentence of a turn, as the history keeps it. */
export interface HistorySentence {
  index: number;
  text: string;
  /** `none`: no audio was sent; `started`: some; `complete`: all; `failed`: the engine failed on it. */
  audio: 'none' | 'started' | 'complete' | 'failed';
  /** Where its audio starts on the turn's audio timeline, in ms (when it has audio). */
  audioStartMs: number;
  /** Audio sent for it, in ms. */
  audioMs: number;
}

/**
 * A pause or resume of a turn's speech (a possible false interruption, see `session.ts`).
 * `at` is epoch milliseconds.
 */
export type VoiceTurnMark =
  /** Audio stopped; `played` is where playback stood (the client's report or the server's estimate), `spoken` what had been heard by then. */
  | { type: 'pause'; at: number; played: PlayedReport; spoken: string }
  /** Audio went on from where it stopped: asked for (`auto: false`) or after the false-interruption timeout (`auto: true`). */
  | { type: 'resume'; at: number; auto: boolean };

/** Why a turn ended. */
export type TurnEndReason = 'completed' | 'interrupted' | 'blocked' | 'error' | 'cancelled' | 'disconnected';

/** One assistant turn of a voice session. */
export interface VoiceHistoryEntry {
  /** The turn id. */
  id: string;
  sessionId: string;
  runId: string;
  /** The principal whose session it was (absent when authentication is off). */
  owner?: string;
  kind: 'start' | 'say';
  /** Epoch milliseconds. */
  createdAt: number;
  /** Everything the turn produced, as text consumers received it (also what was never spoken). */
  generated: string;
  /** What the user heard (never text whose audio did not start). */
  spoken: string;
  interrupted: boolean;
  reason: TurnEndReason;
  /** The client's report at the interrupt, or the server's playback estimate. */
  played?: PlayedReport;
  sentences: HistorySentence[];
  /** Each pause and resume, in order (absent when the turn was never paused). */
  marks?: VoiceTurnMark[];
}

/** Checks a client's `played` report; throws `invalid_argument` naming the problem (and the command it came with). */
export function parsePlayed(value: unknown, command = 'interrupt'): PlayedReport {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SluiceError('invalid_argument', `${command}: 'played' must be an object: { chars }, { ms } or { sentence }`);
  }
  const keys = Object.keys(value);
  if (keys.length !== 1 || !['chars', 'ms', 'sentence'].includes(keys[0]!)) {
    throw new SluiceError('invalid_argument', `${command}: 'played' must have exactly one of 'chars', 'ms' or 'sentence'`);
  }
  const key = keys[0] as 'chars' | 'ms' | 'sentence';
  const n = (value as Record<string, unknown>)[key];
  const integer = key !== 'ms';
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
    throw new SluiceError('invalid_argument', `${command}: 'played.${key}' must be a non-negative ${integer ? 'integer' : 'number'}`);
  }
  return { [key]: n } as PlayedReport;
}

/** Speaking rate for estimates: about 14 characters per second (150 words a minute). */
const CHARS_PER_MS = 0.014;

function heard(s: HistorySentence): boolean {
  return s.audio === 'started' || s.audio === 'complete' || (s.audio === 'failed' && s.audioMs > 0);
}

/** Cuts `text` back to its last whole word within `chars` characters. */
function wholeWords(text: string, chars: number): string {
  if (chars >= text.length) return text;
  if (chars <= 0) return '';
  // The cut lands inside a word or right after one: keep only words that ended before it.
  if (/\s/.test(text[chars]!)) return text.slice(0, chars);
  const cut = text.slice(0, chars);
  const space = cut.search(/\s\S*$/);
  return space < 0 ? '' : text.slice(0, space + 1);
}

/**
 * What was heard of a turn. Without a report (the turn played to its end) every sentence whose
 * audio started counts. With `{ ms }` the sentence playing at that moment is cut at a word
 * boundary in proportion to its audio (a speaking-rate estimate; Flite gives no word timings).
 */
export function spokenText(sentences: readonly HistorySentence[], played?: PlayedReport): string {
  const audible = sentences.filter(heard).sort((a, b) => a.index - b.index);
  if (played === undefined) return audible.map((s) => s.text).join('');
  if ('sentence' in played) return audible.filter((s) => s.index <= played.sentence).map((s) => s.text).join('');
  if ('chars' in played) return audible.map((s) => s.text).join('').slice(0, played.chars);
  let out = '';
  for (const s of audible) {
    if (played.ms < s.audioStartMs) break;
    // A sentence whose audio was cut short (`started`): its full length is estimated from the text.
    const full = s.audio === 'started' ? Math.max(s.audioMs, s.text.length / CHARS_PER_MS) : Math.max(s.audioMs, 1);
    const elapsed = Math.min(played.ms - s.audioStartMs, s.audioMs);
    if (elapsed >= full) {
      out += s.text;
      continue;
    }
    out += wholeWords(s.text, Math.floor((elapsed / full) * s.text.length));
    break;
  }
  return out;
}

/** Options of {@link VoiceHistoryStore}. */
export interface VoiceHistoryStoreOptions {
  /** Most entries kept; the oldest go first. Default 1,000. */
  maxEntries?: number;
}

/** An in-memory, bounded store of turn histories, by turn id (insertion order = age). */
export class VoiceHistoryStore {
  readonly maxEntries: number;
  #entries = new Map<string, VoiceHistoryEntry>();

  /** @throws {SluiceError} `invalid_argument` naming a bad option. */
  constructor(options: VoiceHistoryStoreOptions = {}) {
    const o = checkOptionsObject('VoiceHistoryStore', options, ['maxEntries']);
    this.maxEntries = numberOption('VoiceHistoryStore', 'maxEntries', o.maxEntries, 1000, { min: 1 });
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Adds or replaces (same id) an entry; a replaced entry keeps its place. */
  put(entry: VoiceHistoryEntry): void {
    this.#entries.set(entry.id, entry);
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** The entry of a turn. */
  get(id: string): VoiceHistoryEntry | undefined {
    return this.#entries.get(id);
  }

  /** Entries, newest first, optionally of one session, run or owner (`null`: entries without one). */
  list(filter: { sessionId?: string; runId?: string; owner?: string | null; limit?: number } = {}): VoiceHistoryEntry[] {
    const out: VoiceHistoryEntry[] = [];
    const limit = filter.limit ?? Infinity;
    const all = [...this.#entries.values()];
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
      const e = all[i]!;
      if (filter.sessionId !== undefined && e.sessionId !== filter.sessionId) continue;
      if (filter.runId !== undefined && e.runId !== filter.runId) continue;
      if (filter.owner !== undefined && e.owner !== (filter.owner ?? undefined)) continue;
      out.push(e);
    }
    return out;
  }
}
