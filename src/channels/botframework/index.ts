/**
 * The Bot Framework / Teams streaming channel: `BotFrameworkStream` (Teams AI's
 * `StreamingResponse` wire behaviour, paced and failure-aware), senders for the Bot Connector REST
 * API and for botbuilder's `TurnContext`, and `streamRunToBotFramework` to send a run's output.
 * @module
 */

export { BotFrameworkStream, DEFAULT_MAX_STREAM_DURATION_MS, STREAM_ENDED_MESSAGE } from './stream.ts';
export type { BotFrameworkStreamOptions, StreamEndResult, StreamOutcome } from './stream.ts';
export { streamRunToBotFramework, defaultErrorNote } from './bridge.ts';
export type { BridgeOptions, BridgeResult, RunLike } from './bridge.ts';
export { BotConnectorSender, DEFAULT_REQUEST_TIMEOUT_MS } from './rest-sender.ts';
export type { BotConnectorSenderOptions, TokenSource } from './rest-sender.ts';
export { turnContextSender } from './turn-context.ts';
export type { TurnContextLike } from './turn-context.ts';
export { canStream } from './sender.ts';
export type { ActivitySender, SendResult } from './sender.ts';
export { DEFAULT_INTERVAL_MS, Pacer, backoffDelay } from './pacer.ts';
export type { PacedJob, PacerOptions } from './pacer.ts';
export { ManualClock, systemClock } from './clock.ts';
export type { Clock } from './clock.ts';
export {
  channelError,
  classifyConnectorResponse,
  classifySendError,
  failureReason,
  parseConnectorError,
  parseRetryAfter,
} from './errors.ts';
export type { ChannelFailureDetails, ChannelFailureReason } from './errors.ts';
export {
  AI_GENERATED_CONTENT,
  feedbackChannelData,
  getStreamInfo,
  messageEntity,
  streamChannelData,
  streamInfoEntity,
} from './activity.ts';
export type {
  Activity,
  Attachment,
  ClientCitation,
  Entity,
  FeedbackLoopType,
  MessageEntity,
  SensitivityUsageInfo,
  StreamInfo,
  StreamType,
} from './activity.ts';
export {
  MAX_CITATIONS,
  citationsFor,
  clip,
  formatCitationMarkers,
  partialMarkerLength,
  referencedPositions,
  toClientCitation,
} from './citations.ts';
export type { CitationInput } from './citations.ts';
export { ADAPTIVE_CARD, HERO_CARD, adaptiveCard, attachmentsFromContent, heroCard, imageAttachment, toCardAction } from './cards.ts';
export type { CardAction, MappedContent } from './cards.ts';
