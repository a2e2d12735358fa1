/**
 * The sentence view of a run, for transports that serve voice gateways (the WebSocket `/ws` with
 * `view: 'sentences'`, gRPC `sluice.v1.VoiceService`): the run's sentences, then how it ended.
 *
 * A gateway needs more than the sentences: it must know that the action finished and get its
 * events. So the view passes through exactly three run events, unchanged and in order after the
 * sentences: `result` (the action's events and whole messages) or `error` (the public failure),
 * then `run-end` (why the run ended), which is always last. Every other event (`status`, tool
 * events, the chunks themselves) stays on the token-level view.
 *
 * Segmenter options from a client arrive as JSON or protobuf, so {@link parseSegmenterOptions}
 * accepts only what such a wire can carry: `mode` is `'default'` or `'ace'` (no RegExp), there is
 * no clock, and resume points come from the transport's own field.
 * @module
 */

import type { ErrorEvent, ResultEvent, RunEndEvent } from '../../protocol/events.ts';
import type { Run } from '../../runtime/run.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import { resolveOptions } from '../../text/options.ts';
import type { EventSourceLike, SentenceEvent, SentencesOptions } from './sentences.ts';
import { SentenceReader, iterableOf, resolveSentencesOptions } from './sentences.ts';
import { checkOptionsObject, enumOption } from './validate.ts';

/** The run events a sentence view passes through. */
export type SentenceViewEvent = ResultEvent | ErrorEvent | RunEndEvent;

/** What a sentence view yields: sentences, then the run's `result` or `error`, then `run-end`. */
export type SentenceViewItem = SentenceEvent | SentenceViewEvent;

/**
 * A run's sentence view as an async iterable (iterate once): what `sentencesOf` yields,
 * with the run's `result` / `error` and `run-end` events in their place among the sentences
 * (see the module notes). Takes the same options; `afterIndex` skips sentences only, never the
 * end events. Leaving early detaches from the run without cancelling it.
 *
 * @throws {SluiceError} `invalid_argument` naming a bad option.
 */
export function sentenceViewOf(source: EventSourceLike, options: SentencesOptions = {}): AsyncIterableIterator<SentenceViewItem, undefined> {
  const resolved = resolveSentencesOptions('sentenceViewOf', options);
  return new SentenceReader<SentenceViewItem>(iterableOf(source, resolved.signal), resolved, true);
}

/**
 * The barge-in rule of a sentence reader, checked right before each sentence is sent: false once
 * `run` was cancelled (an ack, a stop, a closed owner) after the reader began, so not even a
 * sentence already cut is spoken; a reader that began after the cancel still gets what was said.
 */
export function sentenceGate(run: Run): () => boolean {
  const cancelledBefore = run.isCancelled;
  return () => cancelledBefore || !run.isCancelled;
}

/** Segmenter options a client may send over a wire (JSON or protobuf); see `SentenceStreamOptions`. */
export interface WireSegmenterOptions {
  /** `'default'` (ICU plus merge rules, the default) or `'ace'` (ACE Agent's regex). */
  mode?: 'default' | 'ace';
  /** BCP 47 locale of the default mode. Default `'en'`. */
  locale?: string;
  /** Shorter sentences at the start are joined with the next ones. Default 0. */
  minFirstLength?: number;
  /** Longer sentences are split (≥ 1 and ≥ `minFirstLength`). Default: no limit. */
  maxLength?: number;
  /** Pending text is released after this pause of the model, in ms (resume by index may then shift). Default: off. */
  stallFlushMs?: number;
}

const WIRE_KEYS = ['mode', 'locale', 'minFirstLength', 'maxLength', 'stallFlushMs'] as const;

/**
 * Checks segmenter options a client sent (`undefined` means the defaults) and returns them as
 * {@link SentenceStreamOptions}. `who` prefixes the error, e.g. `"start: segmenter"`.
 *
 * @throws {SluiceError} `invalid_argument` whose message names the option and what it must be.
 */
export function parseSegmenterOptions(who: string, value: unknown): SentenceStreamOptions {
  const o = checkOptionsObject(who, value, WIRE_KEYS);
  // A pattern cannot cross the wire; resolveOptions would accept a RegExp built in-process.
  enumOption(who, 'mode', o.mode, ['default', 'ace'] as const, 'default');
  const options: Record<string, unknown> = {};
  for (const key of WIRE_KEYS) if (o[key] !== undefined) options[key] = o[key];
  resolveOptions(who, options, true);
  return options as SentenceStreamOptions;
}
