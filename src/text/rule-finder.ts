import {
  CANDIDATE,
  CLOSE,
  ELLIPSIS,
  JOINER,
  LATIN,
  LETTER,
  LOWER,
  NL,
  STERM,
  UPPER,
  WS,
  classOf,
  isDigit,
} from './char-class.ts';
import type { SplitFinder } from './split-finder.ts';
import type { TextBuffer } from './text-buffer.ts';
import {
  GERMAN_DATE_LEAD_WORDS,
  GERMAN_MONTHS,
  GERMAN_MONTHS_SPELLED_AS_ENGLISH,
  MONTH_NAMES,
  NAME_LEAD_WORDS,
  SENTENCE_STARTERS,
  abbreviationKind,
} from './word-lists.ts';

const WAIT = 0;
const MERGE = 1;
const SPLIT = 2;
const END = 3;
type Verdict = typeof WAIT | typeof MERGE | typeof SPLIT | typeof END;

// Flags collected over a candidate's terminator cluster and the whitespace after it.
const HAS_STERM = 1;
const HAS_LATIN = 2;
const HAS_NL = 4;

/** How far rules and ICU windows look back from a terminator; bounds what the buffer must keep. */
const LOOKBACK = 64;

const INITIALS = /^\p{Lu}(?:\.\p{Lu})*$/u;
const LIST_NUMBER = /^\d{1,3}$/;
const DAY_NUMBER = /^(?:[1-9]|[12]\d|3[01])$/;

const MEMO_MAX_WINDOW = 24;
const MEMO_MAX_ENTRIES = 4096;
/** ASCII letters and digits map to one representative per class; other characters stand for themselves. */
const ASCII_SHAPE: (number | undefined)[] = [];
for (let c = 0; c < 128; c++) {
  if (c >= 0x61 && c <= 0x7a) ASCII_SHAPE[c] = 0x61;
  else if (c >= 0x41 && c <= 0x5a) ASCII_SHAPE[c] = 0x41;
  else if (c >= 0x30 && c <= 0x39) ASCII_SHAPE[c] = 0x30;
}

/** A character that may end a sentence: `. ! ?` and newlines on the ASCII fast path, else by class. */
function isCandidate(c: number): boolean {
  return c < 128 ? c === 46 || c === 33 || c === 63 || c === 10 || c === 13 : (classOf(c) & CANDIDATE) !== 0;
}

/** CJK ideographs, kana and Hangul syllables: all UAX #29 `OLetter`, so interchangeable in a window shape. */
function isIdeographic(c: number): boolean {
  return (
    (c >= 0x4e00 && c <= 0x9fff) ||
    (c >= 0x3041 && c <= 0x3096) ||
    (c >= 0x30a1 && c <= 0x30fa) ||
    (c >= 0xac00 && c <= 0xd7a3)
  );
}

const segmenters = new Map<string, Intl.Segmenter>();
const memos = new Map<string, Map<string, boolean>>();

/** A shared sentence segmenter per locale (creating one is expensive). */
export function sentenceSegmenter(locale: string): Intl.Segmenter {
  let s = segmenters.get(locale);
  if (s === undefined) {
    s = new Intl.Segmenter(locale, { granularity: 'sentence' });
    segmenters.set(locale, s);
  }
  return s;
}

/**
 * The default boundary detector: ICU sentence breaks (`Intl.Segmenter`) plus merge rules, hard breaks at
 * newlines, and its own handling of `…`.
 *
 * Each candidate terminator is decided once the text after it is long enough to be sure: the first
 * non-space character for most rules (one character of lookahead, as the reference found), the first letter
 * for ICU, and the whole next word for the few rules that compare it against a list. ICU is only asked about a
 * candidate, on a window from the character before it to that first letter, so the verdict depends on the
 * text alone; verdicts are memoised by window shape.
 */
export class RuleFinder implements SplitFinder {
  readonly #buf: TextBuffer;
  readonly #seg: Intl.Segmenter;
  readonly #memo: Map<string, boolean>;
  #pos = 0;
  #lastSplit = 0;
  // The candidate being decided (#ci < 0: none). Later stages are -1 until known.
  #ci = -1;
  #ce = -1;
  #b = -1;
  #sig = -1;
  #scan = 0;
  #flags = 0;
  #icu = -1;

  constructor(buf: TextBuffer, locale: string) {
    this.#buf = buf;
    this.#seg = sentenceSegmenter(locale);
    let memo = memos.get(locale);
    if (memo === undefined) memos.set(locale, (memo = new Map()));
    this.#memo = memo;
  }

  reset(): void {
    this.#pos = this.#lastSplit = 0;
    this.#ci = -1;
  }

  keepFrom(): number {
    return Math.max(this.#lastSplit, (this.#ci >= 0 ? this.#ci : this.#pos) - LOOKBACK);
  }

  skip(delta: string): boolean {
    if (this.#ci >= 0 || this.#pos !== this.#buf.end - delta.length) return false;
    for (let k = 0; k < delta.length; k++) {
      if (isCandidate(delta.charCodeAt(k))) return false;
    }
    this.#pos = this.#buf.end;
    return true;
  }

  scan(final: boolean, out: number[]): number {
    const buf = this.#buf;
    const end = buf.end;
    for (;;) {
      if (this.#ci < 0) {
        let p = this.#pos;
        for (; p < end; p++) {
          if (isCandidate(buf.code(p))) break;
        }
        if (p >= end) {
          this.#pos = end;
          return end;
        }
        this.#begin(p);
      }
      const v = this.#decide(final);
      if (v === WAIT) return this.#ci;
      if (v === SPLIT) {
        out.push(this.#b);
        this.#lastSplit = this.#b;
      }
      this.#pos = this.#b;
      this.#ci = -1;
    }
  }

  #begin(i: number): void {
    this.#ci = i;
    this.#ce = this.#b = this.#sig = this.#icu = -1;
    const k = classOf(this.#buf.code(i));
    if (k & NL) {
      this.#ce = i;
      this.#scan = i;
      this.#flags = 0;
    } else {
      this.#scan = i + 1;
      this.#flags = (k & STERM ? HAS_STERM : 0) | (k & LATIN ? HAS_LATIN : 0);
    }
  }

  #decide(final: boolean): Verdict {
    const buf = this.#buf;
    const end = buf.end;
    if (this.#ce < 0) {
      // The terminator cluster: ".", "?!", "...", '."', "!)", "**" after the period, and so on.
      let p = this.#scan;
      let f = this.#flags;
      for (; p < end; p++) {
        const k = classOf(buf.code(p));
        if ((k & (STERM | CLOSE | ELLIPSIS)) === 0) break;
        if (k & STERM) f |= HAS_STERM;
        if (k & LATIN) f |= HAS_LATIN;
      }
      this.#flags = f;
      this.#scan = p;
      if (p >= end && !final) return WAIT;
      this.#ce = p;
    }
    if (this.#b < 0) {
      let p = this.#scan;
      let f = this.#flags;
      for (; p < end; p++) {
        const k = classOf(buf.code(p));
        if ((k & WS) === 0) break;
        if (k & NL) f |= HAS_NL;
      }
      this.#flags = f;
      this.#scan = p;
      if (p >= end) {
        if (!final) return WAIT;
        this.#b = end;
        return END;
      }
      this.#b = p;
    }
    const f = this.#flags;
    // Speech treats every line as its own unit (list items, headings).
    if (f & HAS_NL) return SPLIT;
    // "docs?page=2", "v2.0", "a.b(c)", "e.g.,": Latin punctuation ends a sentence only before whitespace.
    // Full-width (CJK) terminators need no space and go on to ICU.
    if (this.#ce === this.#b && ((f & HAS_STERM) === 0 || (f & HAS_LATIN) !== 0)) return MERGE;
    if (this.#sig < 0) {
      let p = Math.max(this.#scan, this.#b);
      for (; p < end; p++) {
        if (classOf(buf.code(p)) & (LETTER | STERM | NL)) break;
      }
      this.#scan = p;
      if (p >= end && !final) return WAIT;
      this.#sig = p;
    }
    let lead = this.#b;
    while (lead < this.#sig && classOf(buf.code(lead)) & CLOSE) lead++;
    const leadClass = lead < end ? classOf(buf.code(lead)) : 0;
    if ((f & HAS_STERM) === 0) {
      // A lone "…": a sentence ends only if a capitalised word follows.
      return leadClass & UPPER ? SPLIT : MERGE;
    }
    if (this.#icu < 0) this.#icu = this.#icuBreaks() ? 1 : 0;
    if (this.#icu === 0) return MERGE;
    return this.#mergeRules(final, lead, leadClass);
  }

  /**
   * Whether ICU puts a sentence break between the candidate terminator and the next sentence start.
   *
   * UAX #29 sentence rules look back at most one character before a terminator cluster (the letter in
   * "(Upper|Lower) ATerm × Upper") and forward to the first letter, terminator or paragraph separator, so ICU
   * only needs that window; checks against whole-text ICU over thousands of random texts agree. A call still
   * costs about 1.5 µs, so verdicts are memoised per window shape, in which ASCII letters and digits, and CJK
   * ideographs, kana and Hangul, stand for their UAX #29 class (every ASCII lowercase letter breaks alike, and
   * so on) and every other character is kept as is.
   */
  #icuBreaks(): boolean {
    const buf = this.#buf;
    const ci = this.#ci;
    const w0 = ci > this.#lastSplit ? ci - 1 : ci;
    const w1 = this.#sig < buf.end ? this.#sig + 1 : buf.end;
    const memo = this.#memo;
    let key: string | undefined;
    if (w1 - w0 <= MEMO_MAX_WINDOW) {
      key = ci === w0 ? '^' : '';
      for (let p = w0; p < w1; p++) {
        const c = buf.code(p);
        key += String.fromCharCode(c < 128 ? (ASCII_SHAPE[c] ?? c) : isIdeographic(c) ? 0x4e00 : c);
      }
      const known = memo.get(key);
      if (known !== undefined) return known;
    }
    const s = this.#seg.segment(buf.slice(w0, w1)).containing(ci - w0);
    const v = s !== undefined && s.index + s.segment.length <= this.#b - w0;
    if (key !== undefined) {
      if (memo.size >= MEMO_MAX_ENTRIES) memo.clear();
      memo.set(key, v);
    }
    return v;
  }

  #mergeRules(final: boolean, lead: number, leadClass: number): Verdict {
    const buf = this.#buf;
    const ci = this.#ci;
    const b = this.#b;
    // (a) The next sentence would start in lowercase: "e.g. a hammer", '"Really?" she asked'.
    if (leadClass & LOWER) return MERGE;
    // The remaining rules are about a word ending in a single period.
    if (this.#ce !== ci + 1 || buf.code(ci) !== 0x2e) return SPLIT;
    const lo = Math.max(this.#lastSplit, ci - LOOKBACK);
    let ts = ci;
    while (ts > lo && (classOf(buf.code(ts - 1)) & WS) === 0) ts--;
    let ws = ts;
    while (ws < ci && classOf(buf.code(ws)) & CLOSE) ws++;
    const word = buf.slice(ws, ci);
    if (word.length === 0) return SPLIT;

    // (d) A list marker at the start of a line or after a colon: "Steps: 1. Open", "\n2. Click".
    if (LIST_NUMBER.test(word) && ws === ts && this.#markerPosition(ts, lo)) return MERGE;

    // (c) Abbreviations.
    const kind = abbreviationKind(word);
    if (kind !== undefined) {
      if (isDigit(buf.code(b))) return MERGE;
      if (kind === 'numeric' || kind === 'month') return SPLIT;
      const next = this.#nextWord(lead, leadClass, final);
      if (next === undefined) return WAIT;
      if (kind === 'day') return MONTH_NAMES.has(next) ? MERGE : SPLIT;
      return SENTENCE_STARTERS.has(next) ? SPLIT : MERGE;
    }

    // (e) Initials before a name: "J. R. R. Tolkien", "John F. Kennedy", but not "option A. Is".
    if (word !== 'I' && INITIALS.test(word)) {
      if ((leadClass & UPPER) === 0) return SPLIT;
      if (lead === b) {
        if (lead + 1 >= buf.end) {
          if (!final) return WAIT;
        } else if (buf.code(lead + 1) === 0x2e) {
          return MERGE;
        }
      }
      const next = this.#nextWord(lead, leadClass, final);
      if (next === undefined) return WAIT;
      if (SENTENCE_STARTERS.has(next)) return SPLIT;
      const prev = this.#prevWord(ts, lo);
      const ok = prev === '' || (classOf(prev.charCodeAt(0)) & UPPER) !== 0 || NAME_LEAD_WORDS.has(prev);
      return ok ? MERGE : SPLIT;
    }

    // (f) A German ordinal day before a month name: "der 3. Juli".
    if (DAY_NUMBER.test(word) && ws === ts && leadClass & UPPER) {
      const next = this.#nextWord(lead, leadClass, final);
      if (next === undefined) return WAIT;
      if (GERMAN_MONTHS.has(next)) {
        if (!GERMAN_MONTHS_SPELLED_AS_ENGLISH.has(next)) return MERGE;
        if (GERMAN_DATE_LEAD_WORDS.has(this.#prevWord(ts, lo).toLowerCase())) return MERGE;
      }
    }
    return SPLIT;
  }

  /** The word starting at `lead`, or `undefined` while it may still grow. Empty if no letter is there. */
  #nextWord(lead: number, leadClass: number, final: boolean): string | undefined {
    const buf = this.#buf;
    if ((leadClass & LETTER) === 0) return '';
    let p = lead + 1;
    while (p < buf.end && classOf(buf.code(p)) & (LETTER | JOINER)) p++;
    if (p >= buf.end && !final) return undefined;
    return buf.slice(lead, p);
  }

  /** The word before the token starting at `ts` ("" at a line or sentence start), without punctuation. */
  #prevWord(ts: number, lo: number): string {
    const buf = this.#buf;
    let q = ts;
    while (q > lo) {
      const k = classOf(buf.code(q - 1));
      if ((k & WS) === 0) break;
      if (k & NL) return '';
      q--;
    }
    let a = q;
    while (a > lo && (classOf(buf.code(a - 1)) & WS) === 0) a--;
    while (a < q && (classOf(buf.code(a)) & LETTER) === 0) a++;
    let z = a;
    while (z < q && classOf(buf.code(z)) & (LETTER | JOINER)) z++;
    return buf.slice(a, z);
  }

  /** Whether a number at `ts` sits where a list marker would: a line or sentence start, or after a colon. */
  #markerPosition(ts: number, lo: number): boolean {
    const buf = this.#buf;
    let q = ts;
    while (q > lo) {
      const k = classOf(buf.code(q - 1));
      if ((k & WS) === 0) break;
      if (k & NL) return true;
      q--;
    }
    if (q === this.#lastSplit) return true;
    return q > lo && buf.code(q - 1) === 0x3a;
  }
}
