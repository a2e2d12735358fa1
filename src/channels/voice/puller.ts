/**
 * The ACE-style pull API: ask for the next sentence when ready for it (ACE's
 * `StreamingResponseChatAction` loop: `bot say $response`, fetch the next, stop on `None`).
 * @module
 */

import type { EventSourceLike, SentenceEvent, SentencesOptions } from './sentences.ts';
import { sentencesOf } from './sentences.ts';

/**
 * Pulls a run's sentences one at a time. Unlike ACE's consumer there is no 100 ms polling: a call
 * resolves as soon as the segmenter releases a sentence.
 *
 * @example
 * const puller = new SentencePuller(run);
 * for (let s = await puller.nextSentence(); s !== null; s = await puller.nextSentence()) await say(s.text);
 */
export class SentencePuller {
  readonly #reader: AsyncIterator<SentenceEvent, undefined>;
  #ended = false;
  #busy: Promise<unknown> = Promise.resolve();

  /** @throws {SluiceError} `invalid_argument` naming a bad option. */
  constructor(source: EventSourceLike, options: SentencesOptions = {}) {
    this.#reader = sentencesOf(source, options);
  }

  /** True once `nextSentence()` has returned null (or `close()` was called). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * The next sentence, or `null` once the run's output is over (or the puller was closed).
   * Concurrent calls are served in call order.
   */
  nextSentence(): Promise<SentenceEvent | null> {
    const result = this.#busy.then(async () => {
      if (this.#ended) return null;
      const step = await this.#reader.next();
      if (step.done === true) {
        this.#ended = true;
        return null;
      }
      return step.value;
    });
    this.#busy = result.catch(() => {});
    return result;
  }

  /** Stops reading; the run is not cancelled. Pending and later calls resolve to `null`. */
  close(): void {
    this.#ended = true;
    void this.#reader.return?.();
  }
}
