/**
 * Bot Framework activity shapes used by streaming (`reference/teams-ai.md` §1): the `streaminfo`
 * entity and its channelData mirror, the schema.org Message entity that carries the AI label,
 * citations and the sensitivity label, and the feedback-loop flags of the final message.
 * @module
 */

/** A Bot Framework attachment (a card, an image, a file link). */
export interface Attachment {
  contentType: string;
  content?: unknown;
  contentUrl?: string;
  name?: string;
  thumbnailUrl?: string;
  [key: string]: unknown;
}

/** An activity entity. Extra fields must survive serialization (see `reference/teams-ai.md` §5 #2). */
export interface Entity {
  type: string;
  [key: string]: unknown;
}

/** The part of a Bot Framework activity that streaming writes; other fields pass through. */
export interface Activity {
  type: string;
  id?: string;
  text?: string;
  attachments?: Attachment[];
  entities?: Entity[];
  channelData?: Record<string, unknown>;
  replyToId?: string;
  [key: string]: unknown;
}

/** Phase of a streamed reply, lowercase as the service wants it. */
export type StreamType = 'informative' | 'streaming' | 'final';

/** The stream metadata of one activity (channelData mirror and `streaminfo` entity). */
export interface StreamInfo {
  streamType: StreamType;
  /** 1, 2, 3… over the typing activities of a stream; absent on the final message. */
  streamSequence?: number;
  /** The stream id (the first activity's id); absent on the first activity. */
  streamId?: string;
}

/** Feedback buttons on the final message: the default thumbs or a custom form. */
export type FeedbackLoopType = 'default' | 'custom';

/** One citation as Teams renders it (`@type: 'Claim'`), referenced in the text as `[position]`. */
export interface ClientCitation {
  '@type': 'Claim';
  position: number;
  appearance: {
    '@type': 'DigitalDocument';
    /** Title, at most 80 characters. */
    name: string;
    /** Excerpt, at most 160 characters. */
    abstract?: string;
    url?: string;
    /** A stringified Adaptive Card shown in a modal. */
    text?: string;
    encodingFormat?: 'application/vnd.microsoft.card.adaptive';
    image?: { '@type': 'ImageObject'; name: string };
    keywords?: string[];
    usageInfo?: SensitivityUsageInfo;
  };
}

/** A sensitivity label ("Confidential"…) shown on the message. */
export interface SensitivityUsageInfo {
  type: 'https://schema.org/Message';
  '@type': 'CreativeWork';
  /** The label title. */
  name: string;
  /** Hover text. */
  description?: string;
  position?: number;
  pattern?: { '@type': 'DefinedTerm'; inDefinedTermSet: string; name: string; termCode: string };
  '@id'?: string;
}

/** The schema.org Message entity (at most one per activity: the service rejects more with 400). */
export interface MessageEntity extends Entity {
  type: 'https://schema.org/Message';
  '@type': 'Message';
  '@context': 'https://schema.org';
  '@id': string;
  additionalType?: string[];
  citation?: ClientCitation[];
  usageInfo?: SensitivityUsageInfo;
}

/** Value of `additionalType` that shows the "AI generated" label. */
export const AI_GENERATED_CONTENT = 'AIGeneratedContent';

/** The channelData mirror of the stream metadata (Teams AI writes both places). */
export function streamChannelData(info: StreamInfo): Record<string, unknown> {
  const data: Record<string, unknown> = { streamType: info.streamType };
  if (info.streamSequence !== undefined) data.streamSequence = info.streamSequence;
  if (info.streamId !== undefined) data.streamId = info.streamId;
  return data;
}

/** The `streaminfo` entity: lowercase type, same fields as the channelData mirror. */
export function streamInfoEntity(info: StreamInfo): Entity {
  return { type: 'streaminfo', ...streamChannelData(info) };
}

/**
 * The schema.org Message entity, or undefined when there is nothing to carry. With the AI label
 * it is always present (with `citation: []` when there are none, as Teams AI sends it).
 */
export function messageEntity(options: {
  aiLabel: boolean;
  citations: ClientCitation[];
  usageInfo?: SensitivityUsageInfo | undefined;
}): MessageEntity | undefined {
  const { aiLabel, citations, usageInfo } = options;
  if (!aiLabel && citations.length === 0 && usageInfo === undefined) return undefined;
  const entity: MessageEntity = {
    type: 'https://schema.org/Message',
    '@type': 'Message',
    '@context': 'https://schema.org',
    '@id': '',
  };
  if (aiLabel) entity.additionalType = [AI_GENERATED_CONTENT];
  if (aiLabel || citations.length > 0) entity.citation = citations;
  if (usageInfo !== undefined) entity.usageInfo = usageInfo;
  return entity;
}

/**
 * Feedback flags of a final message: `feedbackLoop: { type }` when enabled with a type, else
 * `feedbackLoopEnabled: <boolean>` (always present, `false` by default).
 */
export function feedbackChannelData(enabled: boolean, type: FeedbackLoopType | undefined): Record<string, unknown> {
  return enabled && type !== undefined ? { feedbackLoop: { type } } : { feedbackLoopEnabled: enabled };
}

/** The `streaminfo` entity of an activity, if it has one. */
export function getStreamInfo(activity: { entities?: unknown }): StreamInfo | undefined {
  if (!Array.isArray(activity.entities)) return undefined;
  const entity = activity.entities.find((e: unknown) => (e as Entity | null)?.type === 'streaminfo') as Entity | undefined;
  if (entity === undefined) return undefined;
  const info: StreamInfo = { streamType: entity.streamType as StreamType };
  if (typeof entity.streamSequence === 'number') info.streamSequence = entity.streamSequence;
  if (typeof entity.streamId === 'string') info.streamId = entity.streamId;
  return info;
}
