/**
 * How each wire carries a scenario's abstract outcome. Every wire adapter (wires.ts) returns a
 * {@link Transcript}; this file says, per wire, which transcript the outcome must produce.
 *
 * The wire rules, in one place:
 * - Sluice-event wires (in-process `start`, SSE, WebSocket) carry the outcome as is. SSE and
 *   WebSocket check the call before opening a stream, so a malformed call or an unknown action is
 *   answered as a reply (Rasa's 4xx JSON on SSE, an `error` message on WebSocket), not a stream;
 *   a missing domain can only be told by running the call, so it arrives as an `error` event.
 * - Non-streaming wires (`executor.run` without a sink, HTTP `/webhook`, gRPC `Webhook`) take
 *   Rasa's replay path: each streamed chunk comes back as one `utter_message` response.
 *   `/webhook` answers 200 with the result (JSON `null` for a call naming no action), or
 *   400 / 404 / 449 / 500 with Rasa's bodies; gRPC `Webhook` answers the `WebhookResponse` (empty
 *   for no action), or NOT_FOUND / INTERNAL with Rasa's (pydantic-compact JSON) details.
 * - gRPC `WebhookStream` has room for chunk_start / chunk / chunk_end / final_result / error only:
 *   no status, message or tool events (whole messages arrive in final_result.responses); no
 *   chunk_end after a barge-in or an error; no final_result for a call naming no action; chunks
 *   keep only text, image, custom, attachment, buttons and elements; an error event is followed
 *   by the non-OK status.
 * - Barge-in: streaming wires ack the response id once the first chunk arrived (in process
 *   `executor.ack`, `POST /streams/:id/ack`, `{type:'ack'}`, `AckStreamChunks`). Unary wires have
 *   no response id to ack: their client's only interruption is to abandon the call, so there the
 *   barge-in is an abort once the action emitted its first chunk. `executor.run` still resolves
 *   (the action's events, or an empty result after the barge-in timeout); an HTTP or gRPC client
 *   that hung up gets nothing, but the action must still see the cancel.
 */

import type { AbstractOutcome, ChunkPayload, ResultShape, Scenario } from './scenarios.ts';

export type WireName = 'in-process start' | 'in-process run' | 'webhook' | 'sse' | 'websocket' | 'grpc unary' | 'grpc stream';

export const WIRE_NAMES: WireName[] = ['in-process start', 'in-process run', 'webhook', 'sse', 'websocket', 'grpc unary', 'grpc stream'];

/** What a client of a wire observed, normalized so that wires can be compared with one `deepEqual`. */
export interface Transcript {
  /** `stream`: a stream was read to its end; `reply`: one answer (success or error); `aborted`: the client hung up. */
  outcome: 'stream' | 'reply' | 'aborted';
  /** HTTP status, or gRPC status name (`OK`, `NOT_FOUND`…); absent in process. */
  status?: number | string;
  /** Received events as tokens (`type`, `type:reason`), runs of one token as `token*n`. */
  sequence?: string[];
  /** Chunk payloads received, in order. */
  chunks?: ChunkPayload[];
  /** Distinct streamed messages (response ids) received. */
  streams?: number;
  /** The result received; `null` for Rasa's answer to a call that names no action. */
  result?: ResultShape | null;
  /** The error as this wire carries it. */
  error?: Record<string, unknown>;
  /** Barge-in scenarios: whether the action saw its stream cancelled (reported by the action). */
  actionSawCancel?: boolean;
  /**
   * Cross-instance pairs (the call starts on instance A): what the client did on instance B.
   * `read`: the run's events were read on B (false when A refused the call before a run existed,
   * or when the wire has nothing to read elsewhere); `acked`: the barge-in ack went to B.
   */
  peer?: { read: boolean; acked: boolean };
}

/** Runs of one token become `token*n` (10,000 chunks stay readable in a failure diff). */
export function compress(tokens: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < tokens.length; ) {
    let j = i + 1;
    while (j < tokens.length && tokens[j] === tokens[i]) j++;
    out.push(j - i === 1 ? (tokens[i] as string) : `${tokens[i]}*${j - i}`);
    i = j;
  }
  return out;
}

/** Errors SSE and WebSocket detect before a run exists (call-check.ts). */
const PREFLIGHT_REASONS = new Set(['action_not_found', 'invalid_body']);

/** True when `wire` answers the scenario's call with a refusal before any run exists (SSE, WebSocket). */
function refusedBeforeRun(scenario: Scenario, wire: WireName): boolean {
  const error = scenario.expect.error;
  return (wire === 'sse' || wire === 'websocket') && error !== undefined && PREFLIGHT_REASONS.has(error.reason);
}

/** Rasa's HTTP status per failure reason (`reference/rasa-sdk.md` §1b). */
const HTTP_STATUS: Record<string, number> = {
  action_rejected: 400,
  invalid_body: 400,
  action_not_found: 404,
  domain_missing: 449,
  action_failed: 500,
};

/** Rasa's `/webhook` error body: `{error, action_name}`, or Sanic's `{error, request_body}` for a 500. */
function rasaErrorBody(outcome: AbstractOutcome, call: Record<string, unknown>): { status: number; body: Record<string, unknown> } {
  const error = outcome.error!;
  const status = HTTP_STATUS[error.reason];
  if (status === undefined) throw new Error(`no HTTP status for reason ${error.reason}`);
  if (status === 500) return { status, body: { error: error.message, request_body: call } };
  return { status, body: { error: error.message, action_name: error.actionName } };
}

/** gRPC status and details for a failure (Rasa's `_handle_stream_error_event` and `Webhook` mapping). */
function grpcStatus(outcome: AbstractOutcome): { code: string; details: string } {
  const { reason, message, actionName } = outcome.error!;
  switch (reason) {
    case 'action_not_found':
      return { code: 'NOT_FOUND', details: JSON.stringify({ action_name: actionName, message, resource_type: 'ACTION' }) };
    case 'domain_missing':
      return { code: 'NOT_FOUND', details: JSON.stringify({ action_name: actionName, message, resource_type: 'DOMAIN' }) };
    case 'action_rejected':
      return { code: 'INTERNAL', details: JSON.stringify({ action_name: actionName, message }) };
    case 'action_failed':
      return { code: 'INTERNAL', details: message };
    default:
      throw new Error(`no gRPC status for reason ${reason}`);
  }
}

const GRPC_CHUNK_FIELDS = ['text', 'image', 'custom', 'attachment', 'buttons', 'elements'];

/** A chunk as Rasa's `Chunk` message carries it: the six fields it has, proto3 defaults left out. */
export function grpcChunk(chunk: ChunkPayload): ChunkPayload {
  const out: ChunkPayload = {};
  for (const key of GRPC_CHUNK_FIELDS) {
    const value = chunk[key];
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value) && value.length === 0) continue;
    out[key] = value;
  }
  return out;
}

/** Sluice tokens → `WebhookStreamEvent` cases. */
function grpcSequence(sequence: string[]): string[] {
  const out: string[] = [];
  for (const token of sequence) {
    if (token === 'stream-start') out.push('chunk_start');
    else if (token === 'chunk') out.push('chunk');
    else if (token === 'stream-end:completed' || token === 'stream-end:auto-closed') out.push('chunk_end');
    else if (token === 'result') out.push('final_result');
    else if (token === 'error') out.push('error');
  }
  return out;
}

function withoutSkipped(result: ResultShape): ResultShape {
  return { events: result.events, responses: result.responses };
}

/** The transcript `scenario` must produce on `wire` (for the call made with `call`). */
export function expectedTranscript(scenario: Scenario, wire: WireName, call: Record<string, unknown>): Transcript {
  const o = scenario.expect;
  const saw = scenario.bargeIn === undefined ? {} : { actionSawCancel: true };
  const sluiceError = o.error === undefined ? {} : { error: { ...o.error } };
  const sluiceStream = (): Transcript => ({
    outcome: 'stream',
    sequence: compress(o.sequence),
    chunks: o.chunks,
    streams: o.streams,
    ...(o.result === undefined ? {} : { result: o.result }),
    ...sluiceError,
    ...saw,
  });
  const preflight = refusedBeforeRun(scenario, wire);

  switch (wire) {
    case 'in-process start':
      return sluiceStream();

    case 'in-process run':
      if (o.error !== undefined) {
        return { outcome: 'reply', error: { code: o.error.code, reason: o.error.reason, message: o.error.message } };
      }
      return { outcome: 'reply', result: o.unary as ResultShape | null, ...saw };

    case 'webhook': {
      if (scenario.bargeIn !== undefined) return { outcome: 'aborted', ...saw };
      if (o.error !== undefined) {
        const { status, body } = rasaErrorBody(o, call);
        return { outcome: 'reply', status, error: body };
      }
      return { outcome: 'reply', status: 200, result: o.unary as ResultShape | null };
    }

    case 'sse': {
      if (preflight) {
        const { status, body } = rasaErrorBody(o, call);
        return { outcome: 'reply', status, error: body };
      }
      return { ...sluiceStream(), status: 200 };
    }

    case 'websocket': {
      if (preflight) {
        const e = o.error!;
        return {
          outcome: 'reply',
          error: { type: 'error', id: 'conformance', code: e.code, message: `start: ${e.message}`, reason: e.reason, actionName: e.actionName },
        };
      }
      const stream = sluiceStream();
      return { ...stream, sequence: compress(['started', ...o.sequence]) };
    }

    case 'grpc unary': {
      if (scenario.bargeIn !== undefined) return { outcome: 'aborted', status: 'CANCELED', ...saw };
      if (o.error !== undefined) {
        const { code, details } = grpcStatus(o);
        return { outcome: 'reply', status: code, error: { details } };
      }
      // A call that names no action gets an empty WebhookResponse (protobuf has no null).
      return { outcome: 'reply', status: 'OK', result: o.unary ?? { events: [], responses: [] } };
    }

    case 'grpc stream': {
      const transcript: Transcript = {
        outcome: 'stream',
        status: 'OK',
        sequence: compress(grpcSequence(o.result?.skipped === true ? o.sequence.filter((t) => t !== 'result') : o.sequence)),
        chunks: o.chunks.map(grpcChunk),
        streams: o.streams,
        ...saw,
      };
      if (o.result !== undefined && o.result.skipped !== true) transcript.result = withoutSkipped(o.result);
      if (o.error !== undefined) {
        const { code, details } = grpcStatus(o);
        transcript.status = code;
        // The error event names the request's next_action and carries the message; the status follows.
        transcript.error = { action_name: call.next_action, message: o.error.message, details };
      }
      return transcript;
    }
  }
}

/**
 * The transcript of a cross-instance pair: the call starts on instance A and the client's other
 * half is on B (reading the run, acking its stream). The client sees exactly what `wire` shows on
 * one instance; `peer` says what it did on B. A call refused before a run exists is refused by A,
 * and then there is nothing to read on B. gRPC `WebhookStream` carries no run id, so the only half
 * of Rasa's flow that can go to B is `AckStreamChunks`.
 */
export function expectedPairTranscript(scenario: Scenario, wire: WireName, call: Record<string, unknown>): Transcript {
  const refused = refusedBeforeRun(scenario, wire);
  const read = !refused && wire !== 'grpc stream';
  const acked = !refused && scenario.bargeIn !== undefined;
  return { ...expectedTranscript(scenario, wire, call), peer: { read, acked } };
}
