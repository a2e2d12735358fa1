import { SluiceError } from '../protocol/errors.ts';

/** Options shared by `segmentText` and `SentenceStream`. */
export interface SegmentOptions {
  /**
   * How boundaries are found:
   * - `'default'`: ICU `Intl.Segmenter` sentence breaks plus merge rules (abbreviations, initials, decimals,
   *   URLs/e-mails/file names, list markers, ellipses, quotes), hard breaks at newlines, CJK and other
   *   full-width terminators;
   * - `'ace'`: NVIDIA ACE Agent's default regex, for comparison or compatibility;
   * - a RegExp: split after each match (the match and the whitespace after it stay with the sentence before).
   *   It must not be able to match the empty string. Its `g`/`y` flags are ignored; the caller's object is not
   *   used or mutated. Lookahead beyond one character, lookbehind beyond 64 characters and `^`/`$` anchors may
   *   make streaming split differently from the whole text.
   */
  mode?: 'default' | 'ace' | RegExp;
  /** Locale for `Intl.Segmenter` in the default mode. Default `'en'`. */
  locale?: string;
  /**
   * Minimum length of the first chunk, ignoring trailing whitespace: shorter sentences at the start are joined
   * with the following ones (a latency/prosody trade-off; LiveKit uses 20). Default 0.
   */
  minFirstLength?: number;
  /**
   * Maximum chunk length. A longer sentence is split at the last `, ; :` (in its second half) or else the last
   * space, or else hard at the limit, never leaving a side without a letter or digit (if no such split exists
   * the chunk grows past the limit). Default: no limit. Must be ≥ `minFirstLength`.
   */
  maxLength?: number;
}

/** Options of `SentenceStream`. */
export interface SentenceStreamOptions extends SegmentOptions {
  /**
   * Stall flush: when no text has arrived for this many milliseconds, {@link SentenceStream.poll} emits what is
   * pending (except a trailing partial word) so that speech does not wait for a stalled model. Default: off.
   */
  stallFlushMs?: number;
  /** Clock for the stall flush, in milliseconds. Default `performance.now`. Inject a fake one in tests. */
  now?: () => number;
}

/** Validated options with defaults filled in. */
export interface ResolvedOptions {
  mode: 'default' | 'ace' | RegExp;
  /** Private global copy of a custom pattern. */
  pattern: RegExp | undefined;
  locale: string;
  minFirstLength: number;
  maxLength: number;
  stallFlushMs: number;
  now: () => number;
}

const SEGMENT_KEYS = new Set(['mode', 'locale', 'minFirstLength', 'maxLength']);
const STREAM_KEYS = new Set([...SEGMENT_KEYS, 'stallFlushMs', 'now']);

/** Strings that any sensible sentence pattern has a match in, to catch patterns that match empty text. */
const PROBES = ['', ' ', 'a', 'Hello. World! Ok? Yes.\n\nNext line, then; more: end', '你好。再见！', 'a.b 1. x'];

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'function') return 'a function';
  if (v instanceof RegExp) return String(v);
  try {
    return String(JSON.stringify(v) ?? v);
  } catch {
    return typeof v;
  }
}

function lengthOption(who: string, name: string, v: unknown, min: number, allowInfinity: boolean): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || Number.isNaN(v)) {
    throw new SluiceError('invalid_argument', `${who}: option '${name}' must be a number (got ${show(v)})`);
  }
  if (v === Infinity && allowInfinity) return v;
  if (!Number.isInteger(v) || v < min) {
    throw new SluiceError('invalid_argument', `${who}: option '${name}' must be an integer ≥ ${min} (got ${show(v)})`);
  }
  return v;
}

/** Checks that a custom pattern is usable and returns a private global copy of it. */
export function compilePattern(who: string, re: RegExp): RegExp {
  const flags = re.flags.replace(/[gy]/g, '') + 'g';
  const own = new RegExp(re.source, flags);
  for (const probe of PROBES) {
    own.lastIndex = 0;
    for (let m = own.exec(probe); m !== null; m = own.exec(probe)) {
      if (m[0].length === 0) {
        const where = `at index ${m.index} of ${JSON.stringify(probe)}`;
        throw new SluiceError('invalid_argument', `${who}: option 'mode' must not match the empty string (${String(re)} matches "" ${where})`);
      }
    }
  }
  return own;
}

/** Validates options; throws a `TypeError`/`RangeError` whose message names the offending option. */
export function resolveOptions(who: string, options: unknown, stream: boolean): ResolvedOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new SluiceError('invalid_argument', `${who}: options must be an object (got ${show(options)})`);
  }
  const o = options as Record<string, unknown>;
  const known = stream ? STREAM_KEYS : SEGMENT_KEYS;
  for (const key of Object.keys(o)) {
    if (!known.has(key)) {
      throw new SluiceError('invalid_argument', `${who}: unknown option '${key}' (known: ${[...known].join(', ')})`);
    }
  }

  const mode = o['mode'] ?? 'default';
  if (mode !== 'default' && mode !== 'ace' && !(mode instanceof RegExp)) {
    throw new SluiceError('invalid_argument', `${who}: option 'mode' must be 'default', 'ace' or a RegExp (got ${show(mode)})`);
  }
  const pattern = mode instanceof RegExp ? compilePattern(who, mode) : undefined;

  const locale = o['locale'] ?? 'en';
  if (typeof locale !== 'string') throw new SluiceError('invalid_argument', `${who}: option 'locale' must be a string (got ${show(locale)})`);
  try {
    Intl.Segmenter.supportedLocalesOf([locale]);
  } catch {
    throw new SluiceError('invalid_argument', `${who}: option 'locale' must be a BCP 47 language tag (got ${show(locale)})`);
  }

  const minFirstLength = lengthOption(who, 'minFirstLength', o['minFirstLength'], 0, false) ?? 0;
  const maxLength = lengthOption(who, 'maxLength', o['maxLength'], 1, true) ?? Infinity;
  if (maxLength < minFirstLength) {
    throw new SluiceError('invalid_argument', `${who}: option 'maxLength' must be ≥ minFirstLength (got ${maxLength} < ${minFirstLength})`);
  }

  let stallFlushMs = Infinity;
  let now: () => number = () => performance.now();
  if (stream) {
    const s = o['stallFlushMs'];
    if (s !== undefined) {
      if (typeof s !== 'number' || Number.isNaN(s)) {
        throw new SluiceError('invalid_argument', `${who}: option 'stallFlushMs' must be a number (got ${show(s)})`);
      }
      if (!(s > 0)) throw new SluiceError('invalid_argument', `${who}: option 'stallFlushMs' must be > 0 (got ${show(s)})`);
      stallFlushMs = s;
    }
    const n = o['now'];
    if (n !== undefined) {
      if (typeof n !== 'function') throw new SluiceError('invalid_argument', `${who}: option 'now' must be a function (got ${show(n)})`);
      now = n as () => number;
    }
  }
  return { mode, pattern, locale, minFirstLength, maxLength, stallFlushMs, now };
}
