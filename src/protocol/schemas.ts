/**
 * zod schemas for the wire forms Sluice reads: Rasa's action call (tracker, domain) and Sluice
 * events as a client receives them. Objects are loose: unknown fields pass through, so newer
 * peers stay compatible. Only inbound data is validated; the hot path never parses its own output.
 * @module
 */

import { z } from 'zod';
import { ERROR_CODES, SluiceError } from './errors.ts';
import type { SluiceEvent } from './events.ts';

const optionalString = z.string().nullish();
const jsonObject = z.looseObject({});

/** A Rasa tracker as sent in an action call. Only `sender_id` is required. */
export const trackerSchema = z.looseObject({
  sender_id: z.string(),
  slots: z.record(z.string(), z.unknown()).nullish(),
  latest_message: jsonObject.nullish(),
  events: z.array(jsonObject).nullish(),
  paused: z.boolean().nullish(),
  followup_action: optionalString,
  active_loop: jsonObject.nullish(),
  active_form: jsonObject.nullish(),
  latest_action_name: optionalString,
  latest_action: jsonObject.nullish(),
  latest_input_channel: optionalString,
  stack: z.array(z.unknown()).nullish(),
  user_id: optionalString,
});

/** A Rasa domain (its content is passed to actions as is). */
export const domainSchema = jsonObject;

/** A Rasa action call: the body of `POST /webhook` and the `WebhookRequest` message. */
export const actionCallSchema = z.looseObject({
  next_action: optionalString,
  sender_id: optionalString,
  tracker: trackerSchema,
  domain: domainSchema.nullish(),
  version: optionalString,
  domain_digest: optionalString,
});

/** A Rasa tracker as the wire carries it. */
export type TrackerJson = z.infer<typeof trackerSchema>;
/** A Rasa domain as the wire carries it. */
export type DomainJson = z.infer<typeof domainSchema>;
/** A validated Rasa action call. */
export type ActionCall = z.infer<typeof actionCallSchema>;

/** Joins zod's issues into one message that names each offending path. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join('.') : 'body';
      const missing = issue.code === 'invalid_type' && issue.message.endsWith('received undefined');
      return `${path}: ${missing ? 'is required' : issue.message}`;
    })
    .join('; ');
}

/**
 * Validates an action call. Throws `SluiceError('invalid_argument')` whose message names every
 * offending field (e.g. `tracker.sender_id: is required`).
 */
export function parseActionCall(input: unknown): ActionCall {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new SluiceError('invalid_argument', 'Invalid action call: the body must be a JSON object', {
      details: { reason: 'invalid_body' },
    });
  }
  const parsed = actionCallSchema.safeParse(input);
  if (!parsed.success) {
    throw new SluiceError('invalid_argument', `Invalid action call: ${describeIssues(parsed.error)}`, {
      details: { reason: 'invalid_body' },
    });
  }
  return parsed.data;
}

const base = { runId: z.string(), seq: z.number().int().positive() };
const rasaEvent = z.looseObject({ event: z.string() });

/** Sluice events as a client receives them (SSE `data:` / WebSocket frames). */
export const sluiceEventSchema = z.discriminatedUnion('type', [
  z.looseObject({ ...base, type: z.literal('run-start'), action: z.string(), at: z.number() }),
  z.looseObject({ ...base, type: z.literal('status'), text: z.string() }),
  z.looseObject({ ...base, type: z.literal('stream-start'), responseId: z.string() }),
  z.looseObject({ ...base, type: z.literal('chunk'), responseId: z.string() }),
  z.looseObject({
    ...base,
    type: z.literal('stream-end'),
    responseId: z.string(),
    reason: z.enum(['completed', 'auto-closed', 'cancelled', 'superseded', 'error']),
  }),
  z.looseObject({ ...base, type: z.literal('message'), message: jsonObject }),
  z.looseObject({ ...base, type: z.literal('tool-start'), toolCallId: z.string(), name: z.string() }),
  z.looseObject({ ...base, type: z.literal('tool-delta'), toolCallId: z.string(), argsDelta: z.string() }),
  z.looseObject({ ...base, type: z.literal('tool-call'), toolCallId: z.string(), name: z.string(), args: z.unknown() }),
  z.looseObject({ ...base, type: z.literal('tool-result'), toolCallId: z.string(), name: z.string() }),
  z.looseObject({
    ...base,
    type: z.literal('result'),
    events: z.array(rasaEvent),
    responses: z.array(jsonObject),
    skipped: z.boolean().optional(),
  }),
  z.looseObject({ ...base, type: z.literal('error'), code: z.enum(ERROR_CODES), message: z.string() }),
  z.looseObject({ ...base, type: z.literal('run-end'), reason: z.enum(['completed', 'cancelled', 'timeout', 'error']) }),
]);

/** Parses one event received from the wire; throws `invalid_argument` naming the problem. */
export function parseEvent(input: unknown): SluiceEvent {
  const parsed = sluiceEventSchema.safeParse(input);
  if (!parsed.success) {
    throw new SluiceError('invalid_argument', `Invalid event: ${describeIssues(parsed.error)}`);
  }
  return parsed.data as SluiceEvent;
}
