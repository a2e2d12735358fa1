/**
 * Sluice events out of a Server-Sent Events body, parsed by `eventsource-parser`.
 * @module
 */

import { createParser, type EventSourceParser } from 'eventsource-parser';
import { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';

/**
 * Checks that a frame's data is a Sluice event: an object with a string `type` and `runId` and a
 * positive integer `seq`. Deliberately shallow (the browser build stays small, and the hot path
 * cheap); pass a stricter parser to {@link readSseEvents} where that matters.
 */
export function toEvent(value: unknown): SluiceEvent {
  const event = value as Partial<SluiceEvent> | null;
  if (
    typeof event !== 'object' ||
    event === null ||
    typeof event.type !== 'string' ||
    typeof event.runId !== 'string' ||
    !Number.isSafeInteger(event.seq) ||
    (event.seq as number) < 1
  ) {
    throw new SluiceError('invalid_argument', 'Malformed event: expected an object with type, runId and seq');
  }
  return event as SluiceEvent;
}

/**
 * Turns the bytes of a Sluice SSE body into events, one network read at a time: `feed` returns
 * the events completed by those bytes (`: ping` comments and partial frames give none).
 */
export class SseEventDecoder {
  readonly #decoder = new TextDecoder();
  readonly #parser: EventSourceParser;
  readonly #parse: (value: unknown) => SluiceEvent;
  #events: SluiceEvent[] = [];
  #failure: SluiceError | null = null;

  /** @param parse checks one frame's JSON (default {@link toEvent}) */
  constructor(parse: (value: unknown) => SluiceEvent = toEvent) {
    this.#parse = parse;
    this.#parser = createParser({
      onEvent: (message) => {
        if (this.#failure !== null) return;
        try {
          this.#events.push(this.#parse(JSON.parse(message.data)));
        } catch (error) {
          this.#failure = SluiceError.isInstance(error)
            ? error
            : new SluiceError('invalid_argument', `Malformed SSE frame: ${(error as Error).message}`, { cause: error });
        }
      },
    });
  }

  /** The events the bytes complete; throws `invalid_argument` for a frame that is not an event. */
  feed(bytes: Uint8Array): SluiceEvent[] {
    this.#parser.feed(this.#decoder.decode(bytes, { stream: true }));
    if (this.#failure !== null) throw this.#failure;
    const events = this.#events;
    if (events.length > 0) this.#events = [];
    return events;
  }
}

/** Options of {@link readSseEvents}. */
export interface ReadSseOptions {
  /** Stops reading (and hangs up) when it aborts. */
  signal?: AbortSignal;
  /** Checks one frame's JSON (default {@link toEvent}); e.g. `parseEvent` of `sluice/protocol` validates fully. */
  parse?: (value: unknown) => SluiceEvent;
}

/**
 * Yields the Sluice events of one SSE body as they arrive, without reconnecting (use
 * `SluiceClient` for that). Throws `invalid_argument` for a frame that is not a Sluice event.
 */
export async function* readSseEvents(body: ReadableStream<Uint8Array>, options: ReadSseOptions = {}): AsyncGenerator<SluiceEvent> {
  const { signal } = options;
  const decoder = new SseEventDecoder(options.parse);
  const reader = body.getReader();
  const onAbort = (): void => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  let done = false;
  try {
    for (;;) {
      const step = await reader.read();
      if (step.done) {
        done = true;
        return;
      }
      for (const event of decoder.feed(step.value)) yield event;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // A reader that stops early hangs up.
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
