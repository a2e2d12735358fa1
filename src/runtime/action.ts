/**
 * Action definitions: the Rasa style (`run(dispatcher, tracker, domain)` returning events) and the
 * generator style (`async *stream(ctx)` yielding output, returning events or a state update).
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { RasaEvent } from '../protocol/events.ts';
import type { DomainJson } from '../protocol/schemas.ts';
import type { ChunkInput, Dispatcher, MessageInput } from './dispatcher.ts';
import type { Tracker } from './tracker.ts';

/** What an action gets besides its dispatcher. */
export interface ActionContext {
  dispatcher: Dispatcher;
  tracker: Tracker;
  /** The domain Rasa sent (or the cached one), or null. */
  domain: DomainJson | null;
  /** Aborts on barge-in, stop or timeout: pass it to model and tool calls. */
  signal: AbortSignal;
  runId: string;
}

/** What an action returns: Rasa events, or events plus a state update; nothing means no events. */
export type ActionOutput = RasaEvent[] | { events?: RasaEvent[]; state?: unknown } | undefined | void;

/** An item a generator action yields. A string is a text chunk; an object without `type` is a chunk. */
export type StreamItem = string | ChunkInput | TypedStreamItem;

/** A yielded item that says what it is. */
export type TypedStreamItem =
  | { type: 'chunk'; chunk: ChunkInput }
  | { type: 'status'; text: string }
  | { type: 'message'; message: MessageInput }
  | { type: 'stream-end' }
  | { type: 'tool-start'; toolCallId: string; name: string }
  | { type: 'tool-delta'; toolCallId: string; argsDelta: string }
  | { type: 'tool-call'; toolCallId: string; name: string; args: unknown }
  | { type: 'tool-result'; toolCallId: string; name: string; output?: unknown; error?: string };

/** The generator a streaming action returns. */
export type ActionStream =
  | AsyncGenerator<StreamItem, ActionOutput, undefined>
  | Generator<StreamItem, ActionOutput, undefined>;

/** A Rasa-style action. */
export interface RunActionSpec {
  name: string;
  run(dispatcher: Dispatcher, tracker: Tracker, domain: DomainJson | null, context: ActionContext): ActionOutput | Promise<ActionOutput>;
}

/** A generator-style streaming action. */
export interface StreamActionSpec {
  name: string;
  stream(context: ActionContext): ActionStream;
}

/** A registered action. */
export type ActionDefinition =
  | (RunActionSpec & { readonly kind: 'run' })
  | (StreamActionSpec & { readonly kind: 'stream' });

/**
 * Defines an action, Rasa style or generator style.
 *
 * @example
 * export const weather = defineAction({
 *   name: 'action_weather',
 *   async *stream({ tracker }) {
 *     yield status('Looking up the forecast…');
 *     yield `It is sunny in ${tracker.getSlot('city')}.`;
 *     return [slotSet('forecast', 'sunny')];
 *   },
 * });
 */
export function defineAction(spec: RunActionSpec | StreamActionSpec): ActionDefinition {
  if (typeof spec !== 'object' || spec === null) throw new SluiceError('invalid_argument', 'defineAction: expected an object');
  if (typeof spec.name !== 'string' || spec.name.trim() === '') {
    throw new SluiceError('invalid_argument', "defineAction: 'name' must be a non-empty string");
  }
  const hasRun = typeof (spec as RunActionSpec).run === 'function';
  const hasStream = typeof (spec as StreamActionSpec).stream === 'function';
  if (hasRun === hasStream) {
    throw new SluiceError(
      'invalid_argument',
      `defineAction('${spec.name}'): give exactly one of 'run(dispatcher, tracker, domain)' or 'stream(context)'`,
    );
  }
  return Object.freeze({ ...spec, kind: hasRun ? 'run' : 'stream' }) as ActionDefinition;
}

/** True for a value made by {@link defineAction}. */
export function isActionDefinition(value: unknown): value is ActionDefinition {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === 'string' && (v.kind === 'run' || v.kind === 'stream');
}

/** An informative update to yield from a generator action. */
export function status(text: string): StreamItem {
  return { type: 'status', text };
}

/** A rich chunk to yield (use a plain string for text). */
export function chunk(content: ChunkInput): StreamItem {
  return { type: 'chunk', chunk: content };
}

/** A whole message to yield (Rasa `utter_message` shape). */
export function message(content: MessageInput): StreamItem {
  return { type: 'message', message: content };
}

/** Ends the streamed message so far; the next chunk opens a new one. */
export function endStream(): StreamItem {
  return { type: 'stream-end' };
}

/** The error an action throws to reject its execution (Rasa's `ActionExecutionRejection`: HTTP 400). */
export function actionRejected(actionName: string, message?: string): SluiceError {
  return new SluiceError('failed_precondition', message ?? `Custom action '${actionName}' rejected execution.`, {
    details: { reason: 'action_rejected', actionName },
  });
}
