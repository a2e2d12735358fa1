/**
 * The Sluice event model: one discriminated union (on `type`) that every action produces and
 * every transport consumes. Every event carries its run's `runId` and a `seq` (1, 2, 3… per run,
 * no gaps). A run's first event is `run-start`; its last is `run-end`; between them comes exactly
 * one terminal `result` or `error`.
 * @module
 */

import type { ErrorCode } from './errors.ts';

/** Why a run ended. */
export type RunEndReason = 'completed' | 'cancelled' | 'timeout' | 'error';

/**
 * Why a streamed message ended: `completed` (the author ended it), `auto-closed` (the author
 * forgot and the executor closed it), `cancelled` (barge-in / stop / `cancelStream()`),
 * `superseded` (the author started a new stream without ending this one), `error` (the action threw).
 */
export type StreamEndReason = 'completed' | 'auto-closed' | 'cancelled' | 'superseded' | 'error';

/** A Rasa event dict, e.g. `{ event: 'slot', timestamp: null, name: 'city', value: 'Paris' }`. */
export interface RasaEvent {
  event: string;
  timestamp?: number | null;
  [key: string]: unknown;
}

/** A Rasa response dict as built by `utter_message` (`text`, `buttons`, `custom`, … and extra keys). */
export type RasaResponse = Record<string, unknown>;

/** A button as Rasa sends it (`{ title, payload }`, other keys allowed). */
export type Button = Record<string, unknown>;

/** A citation attached to streamed text (a source the text refers to). */
export interface Citation {
  /** Position or marker of the citation in the text, e.g. `1` for `[1]`. */
  position?: number;
  title?: string;
  url?: string;
  snippet?: string;
  [key: string]: unknown;
}

/** The rich content a chunk or a message may carry. Extra keys are passed through. */
export interface RichContent {
  text?: string;
  image?: string;
  buttons?: Button[];
  elements?: Record<string, unknown>[];
  attachment?: string;
  /** Free-form JSON (Rasa's `json_message` / `custom`). */
  custom?: Record<string, unknown>;
  citations?: Citation[];
  [key: string]: unknown;
}

interface Base {
  runId: string;
  seq: number;
}

/** First event of every run. `at` is the start time in epoch milliseconds. */
export interface RunStartEvent extends Base {
  type: 'run-start';
  action: string;
  at: number;
}

/** An informative, transient update such as "Searching documents…". */
export interface StatusEvent extends Base {
  type: 'status';
  text: string;
}

/** Opens a streamed message. `responseId` is 32 lowercase hex characters (Rasa-compatible). */
export interface StreamStartEvent extends Base {
  type: 'stream-start';
  responseId: string;
}

/** One fragment of a streamed message. */
export interface ChunkEvent extends Base, RichContent {
  type: 'chunk';
  responseId: string;
}

/** Closes a streamed message. */
export interface StreamEndEvent extends Base {
  type: 'stream-end';
  responseId: string;
  reason: StreamEndReason;
}

/** A whole, non-streamed message (`utterMessage`), in Rasa's response shape. */
export interface MessageEvent extends Base {
  type: 'message';
  message: RasaResponse;
}

/** A tool call opened while streaming. */
export interface ToolStartEvent extends Base {
  type: 'tool-start';
  toolCallId: string;
  name: string;
}

/** A fragment of a tool call's JSON arguments. */
export interface ToolDeltaEvent extends Base {
  type: 'tool-delta';
  toolCallId: string;
  argsDelta: string;
}

/** A tool call whose arguments are complete. */
export interface ToolCallEvent extends Base {
  type: 'tool-call';
  toolCallId: string;
  name: string;
  args: unknown;
}

/** The outcome of a tool call: `output`, or `error` (a public message). */
export interface ToolResultEvent extends Base {
  type: 'tool-result';
  toolCallId: string;
  name: string;
  output?: unknown;
  error?: string;
}

/**
 * The action's outcome, exactly once per run that did not fail. `responses` are the whole
 * (non-streamed) messages; `state` is a state update for state-machine steps. `skipped` marks a
 * call that named no action (Rasa answers such a call with `null`).
 */
export interface ResultEvent extends Base {
  type: 'result';
  events: RasaEvent[];
  responses: RasaResponse[];
  state?: unknown;
  skipped?: boolean;
}

/** A failure, with a public code and a safe message (internals go to logs only). */
export interface ErrorEvent extends Base {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** Machine-readable reason, e.g. `action_not_found` (see `SluiceError.details.reason`). */
  reason?: string;
  actionName?: string;
}

/** Last event of every run. */
export interface RunEndEvent extends Base {
  type: 'run-end';
  reason: RunEndReason;
}

/** Every event a run can produce. */
export type SluiceEvent =
  | RunStartEvent
  | StatusEvent
  | StreamStartEvent
  | ChunkEvent
  | StreamEndEvent
  | MessageEvent
  | ToolStartEvent
  | ToolDeltaEvent
  | ToolCallEvent
  | ToolResultEvent
  | ResultEvent
  | ErrorEvent
  | RunEndEvent;

/** The `type` of an event. */
export type EventType = SluiceEvent['type'];

/** `Omit` per union member; key remapping keeps named fields beside an index signature. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown
  ? { [P in keyof T as P extends K ? never : P]: T[P] }
  : never;

/** An event before its run stamps `runId` and `seq` on it. */
export type EventInput = DistributiveOmit<SluiceEvent, 'runId' | 'seq'>;

/** The event of a given type. */
export type EventOf<T extends EventType> = Extract<SluiceEvent, { type: T }>;

/** Events that end something rather than produce output; they survive a cancel. */
export function isClosingEvent(type: EventType): boolean {
  return type === 'stream-end' || type === 'result' || type === 'error' || type === 'run-end';
}

/** Result of an action as Rasa returns it: the events and the whole messages. */
export interface ActionResult {
  events: RasaEvent[];
  responses: RasaResponse[];
}
