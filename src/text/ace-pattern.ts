/**
 * NVIDIA ACE Agent's default sentence pattern (`StreamingResponseChatAction`), character for character.
 *
 * It matches one whitespace character after `.`, `?` or `!`, unless the text before looks like `e.g.`, a
 * capitalised two-letter word (`Mr.`, but also `No.`), a digit, or a single capital. ACE runs it with Python's
 * `re`, where `\w` also matches non-ASCII letters; JavaScript's `\w` is ASCII-only, which only matters for the
 * `\w\.\w.` guard on non-Latin text.
 */
export const ACE_SENTENCE_PATTERN_SOURCE = String.raw`(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<![0-9]\.)(?<![A-Z]\.)(?<=\.|\?|\!)\s`;

/** A fresh global RegExp for {@link ACE_SENTENCE_PATTERN_SOURCE} (no `u` flag: `\!` is invalid in unicode mode). */
export function acePattern(): RegExp {
  return new RegExp(ACE_SENTENCE_PATTERN_SOURCE, 'g');
}
