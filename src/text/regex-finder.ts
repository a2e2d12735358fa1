import { WS, classOf } from './char-class.ts';
import type { SplitFinder } from './split-finder.ts';
import type { TextBuffer } from './text-buffer.ts';

/** Context kept before the scan start so that lookbehinds in a pattern still see the text before. */
const LOOKBEHIND = 64;
/** Longest match assumed when rescanning a stream, so that a push costs O(delta), not O(sentence). */
const MAX_MATCH = 256;

/**
 * Splits after every match of a pattern; the matched text and any whitespace after it stay with the sentence
 * before, as in the default mode. A match is accepted once a non-space character follows it, so a greedy `\s+`
 * or a pattern with one character of lookahead decides the same way whether streamed or not.
 *
 * Limits: matches longer than 256 characters, lookahead beyond one character, lookbehind beyond 64 characters,
 * and `^`/`$` anchors see a different string when streamed, so such patterns may split differently in streaming.
 */
export class RegexFinder implements SplitFinder {
  readonly #buf: TextBuffer;
  readonly #re: RegExp;
  readonly #resumeAtEnd: boolean;
  #lastSplit = 0;
  #scanned = 0;

  /**
   * @param re a global regex owned by this finder.
   * @param resumeAtEnd the pattern matches one whitespace character and is decided by what precedes it
   *   (lookbehind only, like ACE's), so a new scan can start where the previous one stopped instead of at the
   *   last split, and a delta without whitespace needs no scan.
   */
  constructor(buf: TextBuffer, re: RegExp, resumeAtEnd: boolean) {
    this.#buf = buf;
    this.#re = re;
    this.#resumeAtEnd = resumeAtEnd;
  }

  reset(): void {
    this.#lastSplit = this.#scanned = 0;
  }

  keepFrom(): number {
    return Math.max(0, this.#scanStart() - LOOKBEHIND);
  }

  #scanStart(): number {
    return this.#resumeAtEnd
      ? Math.max(this.#lastSplit, this.#scanned)
      : Math.max(this.#lastSplit, this.#scanned - MAX_MATCH);
  }

  skip(delta: string): boolean {
    // Only a lookbehind-only pattern that matches whitespace (ACE's) can be skipped safely on a delta without any.
    if (!this.#resumeAtEnd || this.#scanned !== this.#buf.end - delta.length || /\s/.test(delta)) return false;
    this.#scanned = this.#buf.end;
    return true;
  }

  scan(final: boolean, out: number[]): number {
    const buf = this.#buf;
    const end = buf.end;
    const re = this.#re;
    const text = buf.text;
    const base = buf.base;
    re.lastIndex = this.#scanStart() - base;
    for (;;) {
      const m = re.exec(text);
      if (m === null) {
        this.#scanned = end;
        return end;
      }
      const len = m[0].length;
      if (len === 0) {
        // Rejected at construction, but a pattern may still find an empty match on some text: skip it.
        re.lastIndex = m.index + 1;
        if (re.lastIndex > text.length) {
          this.#scanned = end;
          return end;
        }
        continue;
      }
      const at = base + m.index;
      let e = at + len;
      // Whitespace after the match also stays with the sentence before, as in the default mode.
      while (e < end && classOf(buf.code(e)) & WS) e++;
      if (e >= end) {
        if (final) return end;
        this.#scanned = at;
        return at;
      }
      out.push(e);
      this.#lastSplit = e;
      re.lastIndex = e - base;
    }
  }
}
