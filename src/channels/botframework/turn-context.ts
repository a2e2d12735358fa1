/**
 * A sender over botbuilder's `TurnContext`, without depending on botbuilder: the minimal shape
 * below is what a real `TurnContext` has.
 * @module
 */

import type { Activity } from './activity.ts';
import { classifySendError } from './errors.ts';
import type { ActivitySender, SendResult } from './sender.ts';

/** The part of botbuilder's `TurnContext` the channel uses. */
export interface TurnContextLike {
  sendActivity(activity: Activity): Promise<{ id?: string } | undefined>;
  updateActivity?(activity: Activity): Promise<unknown>;
  activity: {
    conversation: { conversationType?: string };
    deliveryMode?: string;
  };
}

/**
 * Sends through a `TurnContext`. Streaming is off for non-personal conversations and for
 * `deliveryMode: 'expectReplies'` (replies are collected, so there is no stream id to continue).
 * Errors (botbuilder's `RestError`) are classified like Bot Connector answers.
 */
export function turnContextSender(context: TurnContextLike): ActivitySender {
  const sender: ActivitySender = {
    conversationType: context.activity.conversation?.conversationType,
    streamingAllowed: context.activity.deliveryMode !== 'expectReplies',
    async send(activity: Activity): Promise<SendResult> {
      try {
        return await context.sendActivity(activity);
      } catch (error) {
        throw classifySendError(error);
      }
    },
  };
  if (typeof context.updateActivity === 'function') {
    const update = context.updateActivity.bind(context);
    sender.update = async (activity) => {
      try {
        await update(activity);
      } catch (error) {
        throw classifySendError(error);
      }
    };
  }
  return sender;
}
