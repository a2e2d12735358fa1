/**
 * Character classes used by the segmenter, as bit flags.
 *
 * Classes are computed lazily per UTF-16 code unit and cached, because Unicode property regexes are
 * far too slow to run once per character on the hot path.
 */

export const WS = 1;
/** Paragraph separators (UAX #29 `Sep`, CR, LF): always a hard break. */
export const NL = 2;
/** UAX #29 `STerm` ∪ `ATerm`: characters after which a sentence may end. */
export const STERM = 4;
/** ASCII `. ! ?` (and `‼ ⁇ ⁈ ⁉`): these need whitespace after them to end a sentence. */
export const LATIN = 8;
/** UAX #29 `Close` (brackets, quotes) plus markdown emphasis/code marks that trail a sentence. */
export const CLOSE = 16;
export const LETTER = 32;
export const UPPER = 64;
export const LOWER = 128;
export const NUMBER = 256;
/** `…` is not a terminator for ICU, so the segmenter handles it itself. */
export const ELLIPSIS = 512;
/** Soft punctuation where an over-long chunk may be split (`, ; :` and full-width forms). */
export const SOFT = 1024;
/** Full-width soft punctuation, which needs no following space to be a split point. */
export const SOFT_WIDE = 2048;
/** Combining marks and joiners: never split right before one. */
export const JOINER = 4096;

/** A character that can start a boundary decision. */
export const CANDIDATE = STERM | NL | ELLIPSIS;
/** A character a TTS engine can say: a chunk without one must never be emitted on its own. */
export const SPEAKABLE = LETTER | NUMBER;

const COMPUTED = 0x8000;
const cache = new Uint16Array(0x10000);
const astralCache = new Map<number, number>();

const reSTerm = /\p{STerm}/u;
const reClose = /[\p{Ps}\p{Pe}\p{Pi}\p{Pf}"'*_`~]/u;
const reLetter = /\p{L}/u;
const reUpper = /[\p{Lu}\p{Lt}]/u;
const reLower = /\p{Ll}/u;
const reNumber = /\p{N}/u;
const reWs = /\s/u;
const reJoiner = /[\p{M}\u200c\u200d]/u;

function compute(cp: number): number {
  const ch = String.fromCodePoint(cp);
  let v = 0;
  if (reWs.test(ch)) v |= WS;
  if (cp === 0x0a || cp === 0x0d || cp === 0x85 || cp === 0x2028 || cp === 0x2029) v |= NL | WS;
  // ATerm members are in STerm except the dot leaders, which UAX #29 lists separately.
  if (reSTerm.test(ch) || cp === 0x2024 || cp === 0xfe52) v |= STERM;
  if (cp === 0x2e || cp === 0x21 || cp === 0x3f || cp === 0x203c || (cp >= 0x2047 && cp <= 0x2049)) v |= LATIN;
  if ((v & STERM) === 0 && reClose.test(ch)) v |= CLOSE;
  if (reLetter.test(ch)) v |= LETTER;
  if (reUpper.test(ch)) v |= UPPER;
  if (reLower.test(ch)) v |= LOWER;
  if (reNumber.test(ch)) v |= NUMBER;
  if (cp === 0x2026) v |= ELLIPSIS;
  if (cp === 0x2c || cp === 0x3b || cp === 0x3a || cp === 0x60c || cp === 0x61b) v |= SOFT;
  if (cp === 0x3001 || cp === 0xff0c || cp === 0xff1b || cp === 0xff1a) v |= SOFT | SOFT_WIDE;
  if (reJoiner.test(ch)) v |= JOINER;
  return v;
}

/** Class of one UTF-16 code unit. Surrogates get 0; use {@link classOfPair} for astral characters. */
export function classOf(code: number): number {
  let v = cache[code]!;
  if (v === 0) {
    v = (code >= 0xd800 && code <= 0xdfff ? 0 : compute(code)) | COMPUTED;
    cache[code] = v;
  }
  return v & ~COMPUTED;
}

/** Class of an astral character given as a surrogate pair. */
export function classOfPair(hi: number, lo: number): number {
  const cp = ((hi - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
  let v = astralCache.get(cp);
  if (v === undefined) {
    v = compute(cp);
    astralCache.set(cp, v);
  }
  return v;
}

export function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

export function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

// Warm the ASCII range so the common path never takes the slow branch.
for (let c = 0; c < 128; c++) classOf(c);
