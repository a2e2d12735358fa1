/**
 * Where a {@link BotFrameworkStream} sends its activities: the Bot Connector REST API
 * (`BotConnectorSender`) or a botbuilder `TurnContext` (`turnContextSender`), or anything else
 * with the same shape.
 * @module
 */

import type { Activity } from './activity.ts';

/** What a send returns: the activity id the channel gave it (the first one is the stream id). */
export type SendResult = { id?: string } | undefined | void;

/**
 * Sends activities to one conversation. A failed send should throw a SluiceError made by
 * `classifyConnectorResponse` / `channelError`; anything else thrown is classified with
 * `classifySendError` (botbuilder's `RestError` is understood).
 */
export interface ActivitySender {
  /** Sends (POSTs) an activity. */
  send(activity: Activity): Promise<SendResult>;
  /**
   * Replaces an activity already sent (`activity.id`). Optional; used to finish in place a stream
   * the service ended at its time limit.
   */
  update?(activity: Activity & { id: string }): Promise<void>;
  /** `personal`, `groupChat` or `channel`. Teams streams in `personal` conversations only. */
  readonly conversationType?: string | undefined;
  /** False when this turn cannot stream at all (e.g. `deliveryMode: 'expectReplies'`). */
  readonly streamingAllowed?: boolean | undefined;
}

/** True when a sender's conversation can show a streamed reply (1:1 chats; unknown counts as yes). */
export function canStream(sender: ActivitySender): boolean {
  if (sender.streamingAllowed === false) return false;
  const type = sender.conversationType;
  return type === undefined || type === '' || type === 'personal';
}
