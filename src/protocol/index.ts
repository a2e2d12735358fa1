/**
 * `sluice/protocol`: the event model, wire schemas and the error class. Imports nothing else of Sluice.
 * @module
 */

export type {
  ActionResult,
  Button,
  ChunkEvent,
  Citation,
  ErrorEvent,
  EventInput,
  EventOf,
  EventType,
  MessageEvent,
  RasaEvent,
  RasaResponse,
  ResultEvent,
  RichContent,
  RunEndEvent,
  RunEndReason,
  RunStartEvent,
  SluiceEvent,
  StatusEvent,
  StreamEndEvent,
  StreamEndReason,
  StreamStartEvent,
  ToolCallEvent,
  ToolDeltaEvent,
  ToolResultEvent,
  ToolStartEvent,
} from './events.ts';
export { isClosingEvent } from './events.ts';
export { ERROR_CODES, HTTP_STATUS, SluiceError, isErrorCode } from './errors.ts';
export type { ErrorCode, ErrorDetails } from './errors.ts';
export {
  actionCallSchema,
  describeIssues,
  domainSchema,
  parseActionCall,
  parseEvent,
  sluiceEventSchema,
  trackerSchema,
} from './schemas.ts';
export type { ActionCall, DomainJson, TrackerJson } from './schemas.ts';
export { isResponseId, newResponseId, newRunId } from './ids.ts';
export { DEFAULT_MAX_DEPTH, checkDepth, nestingDepth } from './depth.ts';
