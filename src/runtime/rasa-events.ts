/**
 * Helpers that build Rasa's event dicts, with the exact keys `rasa_sdk.events` produces.
 * @module
 */

import type { RasaEvent } from '../protocol/events.ts';

type Timestamp = number | null;

/** Sets a slot: `{ event: 'slot', timestamp, name, value }`. */
export function slotSet(name: string, value: unknown = null, timestamp: Timestamp = null): RasaEvent {
  return { event: 'slot', timestamp, name, value };
}

/** Resets all slots. */
export function allSlotsReset(timestamp: Timestamp = null): RasaEvent {
  return { event: 'reset_slots', timestamp };
}

/** Runs another action next. */
export function followupAction(name: string, timestamp: Timestamp = null): RasaEvent {
  return { event: 'followup', timestamp, name };
}

/** Restarts the conversation. */
export function restarted(timestamp: Timestamp = null): RasaEvent {
  return { event: 'restart', timestamp };
}

/** Starts a new session. */
export function sessionStarted(timestamp: Timestamp = null): RasaEvent {
  return { event: 'session_started', timestamp };
}

/** Undoes the latest user message. */
export function userUtteranceReverted(timestamp: Timestamp = null): RasaEvent {
  return { event: 'rewind', timestamp };
}

/** Undoes the latest action. */
export function actionReverted(timestamp: Timestamp = null): RasaEvent {
  return { event: 'undo', timestamp };
}

/** Pauses the conversation. */
export function conversationPaused(timestamp: Timestamp = null): RasaEvent {
  return { event: 'pause', timestamp };
}

/** Resumes the conversation. */
export function conversationResumed(timestamp: Timestamp = null): RasaEvent {
  return { event: 'resume', timestamp };
}

/** Activates a loop (form), or deactivates it with `null`. */
export function activeLoop(name: string | null, timestamp: Timestamp = null): RasaEvent {
  return { event: 'active_loop', timestamp, name };
}

/** Marks the active loop interrupted or not. */
export function loopInterrupted(isInterrupted: boolean, timestamp: Timestamp = null): RasaEvent {
  return { event: 'loop_interrupted', timestamp, is_interrupted: isInterrupted };
}

/** Records a user message. */
export function userUttered(
  text: string | null,
  parseData: Record<string, unknown> | null = null,
  inputChannel: string | null = null,
  timestamp: Timestamp = null,
): RasaEvent {
  return { event: 'user', timestamp, text, parse_data: parseData, input_channel: inputChannel };
}

/** Records a bot message. */
export function botUttered(
  text: string | null = null,
  data: Record<string, unknown> | null = null,
  metadata: Record<string, unknown> | null = null,
  timestamp: Timestamp = null,
): RasaEvent {
  return { event: 'bot', timestamp, text, data, metadata };
}

/** Records an executed action. */
export function actionExecuted(
  actionName: string,
  policy: string | null = null,
  confidence: number | null = null,
  timestamp: Timestamp = null,
): RasaEvent {
  return { event: 'action', name: actionName, policy, confidence, timestamp };
}

/** Records an action that rejected its execution. */
export function actionExecutionRejected(
  actionName: string,
  policy: string | null = null,
  confidence: number | null = null,
  timestamp: Timestamp = null,
): RasaEvent {
  return { event: 'action_execution_rejected', name: actionName, policy, confidence, timestamp };
}

/** Schedules an intent to be triggered at a time. */
export function reminderScheduled(
  intentName: string,
  triggerDateTime: Date,
  options: { entities?: unknown; name?: string | null; killOnUserMessage?: boolean; timestamp?: Timestamp } = {},
): RasaEvent {
  return {
    event: 'reminder',
    timestamp: options.timestamp ?? null,
    intent: intentName,
    entities: options.entities ?? null,
    date_time: triggerDateTime.toISOString(),
    name: options.name ?? null,
    kill_on_user_msg: options.killOnUserMessage ?? true,
  };
}

/** Cancels reminders by name or intent. */
export function reminderCancelled(
  options: { name?: string | null; intentName?: string | null; entities?: unknown; timestamp?: Timestamp } = {},
): RasaEvent {
  return {
    event: 'cancel_reminder',
    timestamp: options.timestamp ?? null,
    intent: options.intentName ?? null,
    entities: options.entities ?? null,
    name: options.name ?? null,
  };
}
