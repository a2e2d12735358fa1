/**
 * Reads a Sluice SSE response as events (used by `sluice chat` and tests).
 * @module
 */

import { createParser } from 'eventsource-parser';
import { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import { parseEvent } from '../protocol/schemas.ts';

/**
 * Yields the Sluice events of an SSE body (`id:` / `event:` / `data:` frames; `: ping` comments are
 * skipped). Throws `invalid_argument` for a frame whose data is not a Sluice event.
 */
export async function* readSseEvents(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SluiceEvent> {
  const queue: SluiceEvent[] = [];
  let failure: unknown = null;
  const parser = createParser({
    onEvent(message) {
      try {
        queue.push(parseEvent(JSON.parse(message.data)));
      } catch (error) {
        failure ??= SluiceError.isInstance(error)
          ? error
          : new SluiceError('invalid_argument', `Malformed SSE frame: ${(error as Error).message}`, { cause: error });
      }
    },
  });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  const onAbort = (): void => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (failure !== null) throw failure;
      while (queue.length > 0) yield queue.shift() as SluiceEvent;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    reader.releaseLock();
  }
}
