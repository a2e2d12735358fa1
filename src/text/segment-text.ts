import { SluiceError } from '../protocol/errors.ts';
import { resolveOptions } from './options.ts';
import type { SegmentOptions } from './options.ts';
import { SentenceStream } from './sentence-stream.ts';

/**
 * Splits a whole text into sentences (chunks for text-to-speech).
 *
 * Same rules and whitespace policy as {@link SentenceStream}: each chunk keeps the whitespace that follows it,
 * so `segmentText(t).join('') === t` whenever `t` contains a letter or digit (otherwise the result is `[]`), and
 * no chunk consists only of punctuation or whitespace. Streaming the same text in any deltas gives the same
 * chunks.
 *
 * @throws {TypeError | RangeError} naming the option, if an option is invalid.
 */
export function segmentText(text: string, options?: SegmentOptions): string[] {
  if (typeof text !== 'string') {
    throw new SluiceError('invalid_argument', `segmentText: text must be a string (got ${text === null ? 'null' : typeof text})`);
  }
  resolveOptions('segmentText', options, false);
  const stream = new SentenceStream(options);
  const out = stream.push(text);
  for (const chunk of stream.flush()) out.push(chunk);
  return out;
}
