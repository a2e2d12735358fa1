/**
 * Conversions between Rasa's gRPC messages and Sluice: the request → the action call dict Rasa SDK
 * builds with `MessageToDict(request, preserving_proto_field_name=True)`, Sluice events →
 * `WebhookStreamEvent`s, and Sluice errors → gRPC statuses (reference/rasa-sdk.md §1a, §1d).
 * @module
 */

import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { ErrorCode } from '../../protocol/errors.ts';
import type { ChunkEvent, ErrorEvent, RasaEvent, RasaResponse } from '../../protocol/events.ts';
import type {
  Action,
  Domain,
  Entity,
  Intent,
  Tracker,
  WebhookRequest,
  WebhookResponse,
  WebhookStreamEvent,
} from './gen/action_webhook_pb.ts';

type Dict = Record<string, unknown>;

/**
 * The action call as Rasa SDK sees it: proto field names; implicit-presence fields left at their
 * default (`""`, `false`, empty list or map) are absent; set messages and set `optional` fields
 * are present even when empty. Struct values arrive as JSON (numbers stay numbers).
 */
export function requestToActionCall(request: WebhookRequest): Dict {
  const call: Dict = {};
  if (request.nextAction !== '') call.next_action = request.nextAction;
  if (request.senderId !== '') call.sender_id = request.senderId;
  if (request.tracker !== undefined) call.tracker = trackerToDict(request.tracker);
  if (request.domain !== undefined) call.domain = domainToDict(request.domain);
  if (request.version !== '') call.version = request.version;
  if (request.domainDigest !== undefined) call.domain_digest = request.domainDigest;
  return call;
}

function trackerToDict(tracker: Tracker): Dict {
  const out: Dict = {};
  if (tracker.senderId !== '') out.sender_id = tracker.senderId;
  if (tracker.slots !== undefined) out.slots = tracker.slots;
  if (tracker.latestMessage !== undefined) out.latest_message = tracker.latestMessage;
  if (tracker.events.length > 0) out.events = tracker.events;
  if (tracker.paused) out.paused = true;
  if (tracker.followupAction !== undefined) out.followup_action = tracker.followupAction;
  if (Object.keys(tracker.activeLoop).length > 0) out.active_loop = { ...tracker.activeLoop };
  if (tracker.latestActionName !== undefined) out.latest_action_name = tracker.latestActionName;
  if (tracker.stack.length > 0) out.stack = tracker.stack;
  if (tracker.userId !== undefined) out.user_id = tracker.userId;
  return out;
}

function domainToDict(domain: Domain): Dict {
  const out: Dict = {};
  if (domain.config !== undefined) out.config = domain.config;
  if (domain.sessionConfig !== undefined) out.session_config = domain.sessionConfig;
  if (domain.intents.length > 0) out.intents = domain.intents.map(namedToDict);
  if (domain.entities.length > 0) out.entities = domain.entities.map(namedToDict);
  if (domain.slots !== undefined) out.slots = domain.slots;
  if (domain.responses !== undefined) out.responses = domain.responses;
  if (domain.actions.length > 0) out.actions = domain.actions.map(namedToDict);
  if (domain.forms !== undefined) out.forms = domain.forms;
  if (domain.e2eActions.length > 0) out.e2e_actions = domain.e2eActions;
  return out;
}

/** `Intent`, `Entity` and `Action` share one shape: `{ string_value?, dict_value? }`. */
function namedToDict(item: Intent | Entity | Action): Dict {
  const out: Dict = {};
  if (item.stringValue !== '') out.string_value = item.stringValue;
  if (item.dictValue !== undefined) out.dict_value = item.dictValue;
  return out;
}

// Messages are built as plain objects with `$typeName` (what `create()` returns, minus its copying
// and default filling); the empty lists are shared because serialization only reads them.
const EVENT = 'action_server_webhook.WebhookStreamEvent' as const;
const NO_STRUCTS: JsonObject[] = Object.freeze([]) as unknown as JsonObject[];

/** `chunk_start{response_id}`. */
export function chunkStartMessage(responseId: string): WebhookStreamEvent {
  return {
    $typeName: EVENT,
    event: { case: 'chunkStart', value: { $typeName: 'action_server_webhook.ChunkStart', responseId } },
  };
}

/** `chunk_end{response_id}`. */
export function chunkEndMessage(responseId: string): WebhookStreamEvent {
  return {
    $typeName: EVENT,
    event: { case: 'chunkEnd', value: { $typeName: 'action_server_webhook.ChunkEnd', responseId } },
  };
}

/**
 * A `chunk` carrying only the fields Rasa's `Chunk` has: text, image, custom, attachment, buttons,
 * elements. Other keys (extra kwargs, citations) have no place on this wire and are dropped.
 */
export function chunkMessage(event: ChunkEvent): WebhookStreamEvent {
  const { text, image, attachment, custom, buttons, elements } = event;
  return {
    $typeName: EVENT,
    event: {
      case: 'chunk',
      value: {
        $typeName: 'action_server_webhook.Chunk',
        responseId: event.responseId,
        text: typeof text === 'string' ? text : '',
        image: typeof image === 'string' ? image : '',
        custom: custom === undefined || custom === null ? undefined : toJsonObject(custom),
        attachment: typeof attachment === 'string' ? attachment : '',
        buttons: buttons === undefined || buttons === null ? NO_STRUCTS : toJsonObjects(buttons),
        elements: elements === undefined || elements === null ? NO_STRUCTS : toJsonObjects(elements),
      },
    },
  };
}

/** The `WebhookResponse` of a result: its events and its whole (non-streamed) messages. */
export function webhookResponse(events: readonly RasaEvent[], responses: readonly RasaResponse[]): WebhookResponse {
  return {
    $typeName: 'action_server_webhook.WebhookResponse',
    events: events.length === 0 ? [] : toJsonObjects(events),
    responses: responses.length === 0 ? [] : toJsonObjects(responses),
  };
}

/** `final_result{events, responses}`. */
export function finalResultMessage(events: readonly RasaEvent[], responses: readonly RasaResponse[]): WebhookStreamEvent {
  return { $typeName: EVENT, event: { case: 'finalResult', value: webhookResponse(events, responses) } };
}

/** `error{action_name, message}`. */
export function streamErrorMessage(actionName: string, message: string): WebhookStreamEvent {
  return {
    $typeName: EVENT,
    event: { case: 'error', value: { $typeName: 'action_server_webhook.StreamError', actionName, message } },
  };
}

/**
 * A value as JSON sees it (what `JSON.stringify` would keep): `toJSON` is honoured, `undefined`,
 * functions and symbols are dropped from objects and become `null` in lists, non-finite numbers
 * become `null`, bigints become numbers. Struct conversion would otherwise fail or send a Value
 * without a kind, which Python's `MessageToDict` rejects.
 */
export function toJsonValue(value: unknown, depth = 0): JsonValue | undefined {
  if (depth > 100) throw new TypeError('toJsonValue: value is nested too deeply (cycle?)');
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return Number(value);
    case 'object': {
      if (value === null) return null;
      const withToJson = value as { toJSON?: unknown };
      if (typeof withToJson.toJSON === 'function') return toJsonValue((withToJson.toJSON as () => unknown)(), depth + 1);
      if (Array.isArray(value)) return value.map((item) => toJsonValue(item, depth + 1) ?? null);
      const out: JsonObject = {};
      for (const key of Object.keys(value)) {
        const item = toJsonValue((value as Dict)[key], depth + 1);
        if (item === undefined) continue;
        // An own "__proto__" key (JSON.parse makes those) must stay data, not become the prototype.
        if (key === '__proto__') Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
        else out[key] = item;
      }
      return out;
    }
    default:
      return undefined;
  }
}

function toJsonObject(value: unknown): JsonObject {
  const json = toJsonValue(value);
  return typeof json === 'object' && json !== null && !Array.isArray(json) ? json : {};
}

/** A list of objects as Structs; an item that is not an object becomes an empty Struct. */
function toJsonObjects(values: readonly unknown[]): JsonObject[] {
  return values.map(toJsonObject);
}

/** gRPC's code for each Sluice error code (the codes mirror gRPC's). */
const GRPC_CODE: Readonly<Record<ErrorCode, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  out_of_range: Code.OutOfRange,
  resource_exhausted: Code.ResourceExhausted,
  permission_denied: Code.PermissionDenied,
  cancelled: Code.Canceled,
  timeout: Code.DeadlineExceeded,
  unavailable: Code.Unavailable,
  unimplemented: Code.Unimplemented,
  internal: Code.Internal,
};

/** What a failed call ends with: a gRPC code and the status details (`grpc-message`). */
export interface GrpcStatus {
  code: Code;
  details: string;
}

/**
 * Rasa's status for a failed action call. The three Rasa errors get Rasa's codes and pydantic's
 * compact JSON details (keys in model order); a malformed request gets INVALID_ARGUMENT naming the
 * field (Rasa: INTERNAL with a bare `KeyError` text); an action's own failure gets INTERNAL with
 * its message; any other Sluice code maps to its gRPC twin.
 */
export function statusForError(error: Pick<ErrorEvent, 'code' | 'message' | 'reason' | 'actionName'>, requestAction: string): GrpcStatus {
  const actionName = error.actionName ?? requestAction;
  switch (error.reason) {
    case 'action_not_found':
      return { code: Code.NotFound, details: JSON.stringify({ action_name: actionName, message: error.message, resource_type: 'ACTION' }) };
    case 'domain_missing':
      return { code: Code.NotFound, details: JSON.stringify({ action_name: actionName, message: error.message, resource_type: 'DOMAIN' }) };
    case 'action_rejected':
      return { code: Code.Internal, details: JSON.stringify({ action_name: actionName, message: error.message }) };
    case 'invalid_body':
      return { code: Code.InvalidArgument, details: error.message };
    default:
      return { code: GRPC_CODE[error.code] ?? Code.Internal, details: error.message };
  }
}

/** The error a handler throws to end its call with `status` (Connect sends `details` verbatim as `grpc-message`). */
export function statusError(status: GrpcStatus): ConnectError {
  return new ConnectError(status.details, status.code);
}
