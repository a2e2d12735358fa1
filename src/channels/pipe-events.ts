/**
 * The read loop of a streamed HTTP answer: a run's events, encoded, into a writer that pushes
 * back. Shared by the UI message routes here and the transports' routes above.
 * @module
 */

import type { SluiceEvent } from '../protocol/events.ts';
import type { Run } from '../runtime/run.ts';
import type { Subscription } from '../runtime/subscription.ts';

/** Where {@link pipeEvents} writes: a promise back means the socket is full. */
export interface BackpressuredWriter {
  write(text: string): Promise<void> | undefined;
}

/**
 * Reads `sub` (a subscription of `run`) until it ends, encoding each event with `encode` and
 * writing the text to `writer`. Events that are already waiting when the reader wakes go out in
 * one write, so a reader catching up does not pay a write per event; a full socket stops the
 * reading, which holds back the run's producer. Empty text is not written. What `encode` or
 * `writer` throws is the caller's to handle, as is unsubscribing and ending the writer.
 */
export async function pipeEvents(run: Run, sub: Subscription, encode: (event: SluiceEvent) => string, writer: BackpressuredWriter): Promise<void> {
  for (;;) {
    const next = await sub.next();
    if (next.done === true) return;
    let text = encode(next.value);
    // Compared first so that the common case (nothing waiting) does not allocate an empty batch.
    if (run.lastSeq > sub.cursor) {
      const batch = sub.drain();
      for (let i = 0; i < batch.length; i++) text += encode(batch[i]!);
    }
    if (text !== '') {
      const wait = writer.write(text);
      if (wait !== undefined) await wait;
    }
  }
}
