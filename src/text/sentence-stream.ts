import { SluiceError } from '../protocol/errors.ts';
import { acePattern } from './ace-pattern.ts';
import {
  CLOSE,
  ELLIPSIS,
  JOINER,
  SOFT,
  SOFT_WIDE,
  SPEAKABLE,
  STERM,
  WS,
  classOf,
  classOfPair,
  isHighSurrogate,
} from './char-class.ts';
import { resolveOptions } from './options.ts';
import type { SentenceStreamOptions } from './options.ts';
import { RegexFinder } from './regex-finder.ts';
import { RuleFinder } from './rule-finder.ts';
import type { SplitFinder } from './split-finder.ts';
import { TextBuffer } from './text-buffer.ts';

export type { SegmentOptions, SentenceStreamOptions } from './options.ts';

/** Unread text kept before trimming the read window; trimming copies, so it is batched. */
const TRIM_SLACK = 256;
/** Longest trailing partial word a stall flush holds back. */
const MAX_PARTIAL_WORD = 64;

/**
 * Streaming sentence segmenter for text-to-speech: feed model deltas with {@link push}, end with {@link flush}.
 *
 * **It never changes the text, it only picks split points.** Whitespace after a sentence belongs to that
 * sentence and leading whitespace to the first one, so `chunks.join('')` equals the input exactly, with one
 * exception: a chunk that would contain no letter or digit (only punctuation or whitespace) is never emitted.
 * Such text joins the sentence before it (or the next one at the start); it is dropped only when there is no
 * sentence to join, i.e. the whole input has no letter or digit, or it arrives after a stall flush and nothing
 * follows it.
 *
 * **The last sentence is held until its end is certain**, i.e. until enough text follows the boundary to
 * decide it (normally one non-space character; ICU wants the next letter, a few abbreviation rules the whole
 * next word, and a sentence is only released once the next one has a letter or digit), or until
 * {@link flush}. Boundary decisions depend only on the text, so any way of cutting the text into deltas
 * yields the same chunks as {@link segmentText} on the whole text; only a stall flush ({@link poll}) changes
 * that.
 *
 * Work per push is proportional to the delta: boundaries are only examined when a terminator or newline
 * arrives, and ICU only ever sees a few characters around it.
 */
export class SentenceStream {
  readonly #buf = new TextBuffer();
  readonly #finder: SplitFinder;
  readonly #splits: number[] = [];
  readonly #minFirst: number;
  readonly #maxLen: number;
  readonly #stallMs: number;
  readonly #now: () => number;

  // Sentences as found by the finder, checked for speakable content before they are released.
  /** A reported split not yet confirmed: released once a letter or digit follows it. */
  #tent = -1;
  /** Whether the text from #tent (or, with none, from the last released split) to #spkPos has a letter or digit. */
  #segSpk = false;
  #spkPos = 0;

  // Chunks actually emitted (sentences, joined for minFirstLength, cut for maxLength or a stall).
  #chunkStart = 0;
  #first = true;
  #noForceAt = -1;

  #lastInputAt = 0;
  #stallArmed = false;
  #ended = false;

  /** @throws {TypeError | RangeError} naming the option, if an option is invalid. */
  constructor(options?: SentenceStreamOptions) {
    const o = resolveOptions('SentenceStream', options, true);
    this.#minFirst = o.minFirstLength;
    this.#maxLen = o.maxLength;
    this.#stallMs = o.stallFlushMs;
    this.#now = o.now;
    if (o.pattern !== undefined) this.#finder = new RegexFinder(this.#buf, o.pattern, false);
    else if (o.mode === 'ace') this.#finder = new RegexFinder(this.#buf, acePattern(), true);
    else this.#finder = new RuleFinder(this.#buf, o.locale);
  }

  /** Adds text; returns the chunks that became complete (often none). */
  push(delta: string): string[] {
    if (typeof delta !== 'string') {
      const got = delta === null ? 'null' : typeof delta;
      throw new SluiceError('invalid_argument', `SentenceStream.push: delta must be a string (got ${got})`);
    }
    if (this.#ended) throw new Error('SentenceStream.push: the stream was already flushed; call reset() to reuse it');
    if (delta.length === 0) return [];
    this.#buf.append(delta);
    if (this.#stallMs !== Infinity) {
      this.#lastInputAt = this.#now();
      this.#stallArmed = true;
    }
    // Mid-sentence with no terminator in the delta (most pushes): nothing can be decided or emitted.
    if (
      this.#tent < 0 &&
      this.#segSpk &&
      this.#buf.end - this.#chunkStart <= this.#maxLen &&
      this.#finder.skip(delta)
    ) {
      if (this.#buf.end - this.#buf.base >= 2 * TRIM_SLACK) this.#discard();
      return [];
    }
    return this.#run(false);
  }

  /** Ends the stream and returns the remaining chunks. Later calls return `[]`; `push` then throws. */
  flush(): string[] {
    if (this.#ended) return [];
    const out = this.#run(true);
    this.#ended = true;
    return out;
  }

  /**
   * Releases all pending text now, as {@link flush} does, but keeps the stream open: a pause the
   * caller knows of (the model stopped for a tool call, a status update, a whole message) ends the
   * sentence in progress. The text after it starts a new sentence; `minFirstLength` still applies
   * only to the stream's first chunk. Pending text with no letter or digit is dropped. Splits made
   * here depend on when it is called, not on the text alone (like {@link poll}).
   */
  cut(): string[] {
    if (this.#ended || this.#chunkStart >= this.#buf.end) return [];
    const first = this.#first;
    const out = this.flush();
    this.reset();
    this.#first = first && out.length === 0;
    return out;
  }

  /**
   * Stall flush: if `stallFlushMs` is set and no text arrived for that long, returns the pending text as one
   * chunk (holding back a trailing partial word), at most once per pause. Call it from a timer; see
   * {@link msUntilStallFlush}. Splits made this way are not boundaries, so the result then differs from
   * {@link segmentText}.
   */
  poll(): string[] {
    if (this.#stallMs === Infinity || this.#ended || !this.#stallArmed) return [];
    if (this.#now() - this.#lastInputAt < this.#stallMs) return [];
    this.#stallArmed = false;
    const buf = this.#buf;
    const a = this.#chunkStart;
    const end = buf.end;
    if (a >= end) return [];
    let s = end;
    if ((classOf(buf.code(end - 1)) & (WS | STERM | CLOSE | ELLIPSIS)) === 0) {
      let q = end;
      while (q > a && q > end - MAX_PARTIAL_WORD && (classOf(buf.code(q - 1)) & WS) === 0) q--;
      if (q > a && classOf(buf.code(q - 1)) & WS && this.#hasSpeakable(a, q)) s = q;
    }
    if (!this.#hasSpeakable(a, s)) return [];
    const out = [buf.slice(a, s)];
    this.#chunkStart = s;
    this.#first = false;
    this.#discard();
    return out;
  }

  /**
   * Milliseconds until {@link poll} would flush (0: now), or `undefined` when no stall flush is due (option off,
   * nothing pending, already flushed for this pause, or stream ended).
   */
  msUntilStallFlush(): number | undefined {
    if (this.#stallMs === Infinity || this.#ended || !this.#stallArmed || this.#chunkStart >= this.#buf.end) {
      return undefined;
    }
    return Math.max(0, this.#lastInputAt + this.#stallMs - this.#now());
  }

  /** Forgets all text and state (e.g. on barge-in) so the stream can be reused. Options are kept. */
  reset(): void {
    this.#buf.clear();
    this.#finder.reset();
    this.#splits.length = 0;
    this.#spkPos = this.#chunkStart = 0;
    this.#tent = this.#noForceAt = -1;
    this.#segSpk = this.#stallArmed = this.#ended = false;
    this.#first = true;
  }

  /** Text received but not yet emitted. */
  get pending(): string {
    return this.#buf.slice(this.#chunkStart, this.#buf.end);
  }

  #run(final: boolean): string[] {
    const out: string[] = [];
    const splits = this.#splits;
    const decided = this.#finder.scan(final, splits);
    for (let k = 0; k < splits.length; k++) this.#onSplit(splits[k]!, out);
    splits.length = 0;
    this.#advanceSpeakable(final ? this.#buf.end : decided, final, out);
    if (final) this.#finish(out);
    else if (this.#maxLen !== Infinity) this.#forceUpTo(this.#tent >= 0 ? Math.min(this.#tent, decided) : decided, out);
    if (this.#buf.end - this.#buf.base >= 2 * TRIM_SLACK || out.length > 0) this.#discard();
    return out;
  }

  #onSplit(b: number, out: string[]): void {
    this.#advanceSpeakable(b, true, out);
    if (this.#tent >= 0) {
      // Nothing speakable between the previous split and this one: that text stays with the sentence before.
      this.#tent = b;
    } else if (this.#segSpk) {
      this.#tent = b;
    }
    // else: nothing speakable since the stream start; it joins the next sentence.
    this.#segSpk = false;
    this.#spkPos = b;
  }

  /** Looks for a letter or digit in [#spkPos, to); confirms the tentative split when one is found. */
  #advanceSpeakable(to: number, complete: boolean, out: string[]): void {
    if (this.#segSpk) {
      if (this.#spkPos < to) this.#spkPos = to;
      return;
    }
    const buf = this.#buf;
    let p = this.#spkPos;
    for (; p < to; p++) {
      const c = buf.code(p);
      let k: number;
      if (isHighSurrogate(c)) {
        // The low half may not have arrived yet.
        if (p + 1 >= buf.end && !complete) break;
        k = p + 1 < buf.end ? classOfPair(c, buf.code(p + 1)) : 0;
      } else {
        k = classOf(c);
      }
      if (k & SPEAKABLE) {
        this.#segSpk = true;
        if (this.#tent >= 0) {
          const e = this.#tent;
          this.#tent = -1;
          this.#boundary(e, out);
        }
        p = to;
        break;
      }
    }
    this.#spkPos = p;
  }

  /** A confirmed sentence end. */
  #boundary(e: number, out: string[]): void {
    if (this.#maxLen !== Infinity) this.#forceUpTo(e, out);
    if (e <= this.#chunkStart) return;
    if (this.#first && this.#trimmedLength(this.#chunkStart, e) < this.#minFirst) return;
    this.#emit(e, out);
  }

  #finish(out: string[]): void {
    // A split still unconfirmed here has nothing speakable after it: it stays with the sentence before.
    this.#tent = -1;
    const end = this.#buf.end;
    if (this.#maxLen !== Infinity) this.#forceUpTo(end, out);
    if (end > this.#chunkStart) this.#emit(end, out);
    this.#chunkStart = end;
  }

  /** Emits [#chunkStart, e) unless it has nothing speakable, in which case it waits to join the next chunk. */
  #emit(e: number, out: string[]): void {
    const a = this.#chunkStart;
    if (!this.#hasSpeakable(a, e)) return;
    out.push(this.#buf.slice(a, e));
    this.#chunkStart = e;
    this.#first = false;
  }

  /** Cuts the open chunk while the text known to belong to it is longer than maxLength. */
  #forceUpTo(limit: number, out: string[]): void {
    while (limit - this.#chunkStart > this.#maxLen) {
      const a = this.#chunkStart;
      if (this.#noForceAt === a) return;
      const s = this.#fallbackSplit(a);
      if (s < 0) {
        this.#noForceAt = a;
        return;
      }
      out.push(this.#buf.slice(a, s));
      this.#chunkStart = s;
      this.#first = false;
    }
  }

  /**
   * Where to cut an over-long chunk starting at `a`: the last `, ; :` + whitespace in the second half, else
   * the last whitespace, else any soft punctuation, else hard near the limit (not inside a character). Both
   * sides must keep a letter or digit. Looks only at [a, a + maxLength], so the cut depends on the text alone.
   * @returns the offset, or -1 if no cut is possible.
   */
  #fallbackSplit(a: number): number {
    const buf = this.#buf;
    const w = a + this.#maxLen;
    const lo = a + (this.#first ? Math.max(1, this.#minFirst) : 1);
    // Speakable extents within [a, w]. The character at w is always there but the one after it may not be,
    // so at w an astral character (a surrogate pair) does not count: the cut must not depend on w + 1.
    let fs = a;
    while (fs < w && !this.#speakableAt(fs)) fs++;
    let ls = w;
    if (isHighSurrogate(buf.code(w)) || (classOf(buf.code(w)) & SPEAKABLE) === 0) {
      ls = w - 1;
      while (ls > fs && !this.#speakableAt(ls)) ls--;
    }
    const min = Math.max(lo, fs + 1);
    const max = ls;
    if (min > max) return -1;
    const half = a + (this.#maxLen >> 1);
    let soft = -1;
    let space = -1;
    for (let s = max; s >= min; s--) {
      const cur = classOf(buf.code(s));
      if (cur & WS) continue;
      const prev = classOf(buf.code(s - 1));
      if (prev & WS) {
        if (space < 0) space = s;
        let r = s - 1;
        while (r > a && classOf(buf.code(r - 1)) & WS) r--;
        if (soft < 0 && r > a && classOf(buf.code(r - 1)) & SOFT) soft = s;
      } else if (soft < 0 && prev & SOFT_WIDE) {
        soft = s;
      }
      if (soft >= 0 && space >= 0) break;
      if (space >= 0 && s < half) break;
    }
    if (soft >= half) return soft;
    if (space >= 0) return space;
    if (soft >= 0) return soft;
    let s = max;
    while (s > min && ((buf.code(s) & 0xfc00) === 0xdc00 || classOf(buf.code(s)) & JOINER)) s--;
    return (buf.code(s) & 0xfc00) === 0xdc00 ? -1 : s;
  }

  #speakableAt(p: number): boolean {
    const buf = this.#buf;
    const c = buf.code(p);
    if (isHighSurrogate(c)) return p + 1 < buf.end && (classOfPair(c, buf.code(p + 1)) & SPEAKABLE) !== 0;
    return (classOf(c) & SPEAKABLE) !== 0;
  }

  #hasSpeakable(a: number, e: number): boolean {
    for (let p = a; p < e; p++) if (this.#speakableAt(p)) return true;
    return false;
  }

  #trimmedLength(a: number, e: number): number {
    const buf = this.#buf;
    let z = e;
    while (z > a && classOf(buf.code(z - 1)) & WS) z--;
    return z - a;
  }

  #discard(): void {
    const buf = this.#buf;
    // Forced cuts read the open chunk; otherwise it is only sliced when emitted.
    const readFrom = Math.min(
      this.#segSpk && this.#tent < 0 ? Infinity : this.#spkPos,
      this.#finder.keepFrom(),
      this.#tent >= 0 ? this.#tent : Infinity,
      this.#maxLen !== Infinity ? this.#chunkStart : Infinity,
    );
    if (readFrom - buf.base >= TRIM_SLACK || (readFrom === buf.end && readFrom > buf.base)) {
      buf.release(this.#chunkStart, readFrom);
    }
  }
}
