/**
 * How run events are stored in a Redis stream. One entry holds one or more consecutive events of a
 * run (the writer coalesces text chunks); the entry id is `<seq of its last event>-0`, so the seq is
 * the stream position: `XREAD … <after>-0` returns the entries holding the events after `after`,
 * and an id that is not past the stream's top is refused (a stale writer cannot append).
 *
 * Field `d`: a JSON array, one element per event, without `runId` and `seq` (the key and the entry
 * id give them). A chunk that carries only text is stored as its text string, with the stream's
 * response id once in field `r` (≈ 10 bytes per token instead of ≈ 80).
 * @module
 */

import type { SluiceEvent } from '../protocol/events.ts';

/** A stream entry as the writer sends it. */
export interface EncodedEntry {
  /** `<last seq>-0`. */
  id: string;
  /** Field/value pairs after the id in `XADD`. */
  fields: string[];
}

/** True for a chunk with text and nothing else besides its type, response id, run id and seq. */
function isTextChunk(event: SluiceEvent): boolean {
  if (event.type !== 'chunk' || typeof event.text !== 'string') return false;
  let keys = 0;
  for (const key in event) if ((event as unknown as Record<string, unknown>)[key] !== undefined) keys++;
  return keys === 5;
}

/** Encodes consecutive events of one run (at least one) as one entry. */
export function encodeEntry(events: readonly SluiceEvent[]): EncodedEntry {
  let responseId: string | undefined;
  let json = '[';
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    if (i > 0) json += ',';
    if (isTextChunk(event) && (responseId === undefined || responseId === (event as { responseId: string }).responseId)) {
      responseId = (event as { responseId: string }).responseId;
      json += JSON.stringify((event as { text: string }).text);
      continue;
    }
    const { runId: _runId, seq: _seq, ...rest } = event;
    json += JSON.stringify(rest);
  }
  json += ']';
  const fields = responseId === undefined ? ['d', json] : ['d', json, 'r', responseId];
  return { id: `${events[events.length - 1]!.seq}-0`, fields };
}

/**
 * Decodes an entry (its id and its flat field list) into events of `runId`. Throws on an entry
 * this codec did not write.
 */
export function decodeEntry(runId: string, id: string, fields: readonly string[]): SluiceEvent[] {
  let data: string | undefined;
  let responseId: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'd') data = fields[i + 1];
    else if (fields[i] === 'r') responseId = fields[i + 1];
  }
  const dash = id.indexOf('-');
  const last = Number(dash < 0 ? id : id.slice(0, dash));
  if (data === undefined || !Number.isSafeInteger(last)) throw new Error(`Not a Sluice run entry: ${id}`);
  const items = JSON.parse(data) as unknown[];
  const events: SluiceEvent[] = new Array(items.length);
  let seq = last - items.length;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    seq++;
    events[i] =
      typeof item === 'string'
        ? ({ type: 'chunk', responseId, text: item, runId, seq } as SluiceEvent)
        : ({ ...(item as object), runId, seq } as SluiceEvent);
  }
  return events;
}
