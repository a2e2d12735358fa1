/**
 * A read-only view of the conversation, built from the tracker JSON Rasa sends (same fields and
 * helpers as Rasa SDK's `Tracker`, with TypeScript names).
 * @module
 */

import type { RasaEvent } from '../protocol/events.ts';
import type { TrackerJson } from '../protocol/schemas.ts';

/** The latest user message as Rasa sends it (`text`, `intent`, `entities`, …). */
export interface LatestMessage {
  text?: string | null;
  intent?: { name?: string; confidence?: number; [key: string]: unknown } | null;
  entities?: Array<{ entity: string; value: unknown; role?: string; group?: string; [key: string]: unknown }>;
  [key: string]: unknown;
}

/** Conversation state handed to an action. */
export class Tracker {
  readonly senderId: string;
  readonly slots: Readonly<Record<string, unknown>>;
  readonly latestMessage: LatestMessage;
  readonly events: readonly RasaEvent[];
  readonly paused: boolean;
  readonly followupAction: string | null;
  /** The active loop (form): `{ name, … }`, or empty when none. */
  readonly activeLoop: Readonly<Record<string, unknown>>;
  readonly latestActionName: string | null;
  readonly stack: readonly unknown[];
  readonly userId: string | null;

  constructor(init: {
    senderId: string;
    slots?: Record<string, unknown>;
    latestMessage?: LatestMessage;
    events?: RasaEvent[];
    paused?: boolean;
    followupAction?: string | null;
    activeLoop?: Record<string, unknown>;
    latestActionName?: string | null;
    stack?: unknown[];
    userId?: string | null;
  }) {
    this.senderId = init.senderId;
    this.slots = init.slots ?? {};
    this.latestMessage = init.latestMessage ?? {};
    this.events = init.events ?? [];
    this.paused = init.paused ?? false;
    this.followupAction = init.followupAction ?? null;
    this.activeLoop = init.activeLoop ?? {};
    this.latestActionName = init.latestActionName ?? null;
    this.stack = init.stack ?? [];
    this.userId = init.userId ?? null;
  }

  /** Builds a tracker from Rasa's JSON (`active_form` is read as the legacy name of `active_loop`). */
  static fromJson(json: TrackerJson): Tracker {
    return new Tracker({
      senderId: json.sender_id,
      slots: json.slots ?? {},
      latestMessage: (json.latest_message ?? {}) as LatestMessage,
      events: (json.events ?? []) as RasaEvent[],
      paused: json.paused ?? false,
      followupAction: json.followup_action ?? null,
      activeLoop: json.active_loop ?? json.active_form ?? {},
      latestActionName: json.latest_action_name ?? null,
      stack: json.stack ?? [],
      userId: json.user_id ?? null,
    });
  }

  /** Value of a slot, or null when unset or unknown. */
  getSlot(name: string): unknown {
    return this.slots[name] ?? null;
  }

  /** Values of the latest message's entities of a type (optionally of a role and group). */
  getLatestEntityValues(entityType: string, entityRole?: string, entityGroup?: string): unknown[] {
    return (this.latestMessage.entities ?? [])
      .filter(
        (e) =>
          e.entity === entityType &&
          (entityRole === undefined || e.role === entityRole) &&
          (entityGroup === undefined || e.group === entityGroup),
      )
      .map((e) => e.value);
  }

  /** Intent name of the latest message, or null. */
  getIntentOfLatestMessage(): string | null {
    return this.latestMessage.intent?.name ?? null;
  }

  /** Input channel of the latest user event, or null. */
  getLatestInputChannel(): string | null {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i];
      if (e?.event === 'user') return (e.input_channel as string | undefined) ?? null;
    }
    return null;
  }

  /** Events after the latest `restart` (all events when there was none). */
  eventsAfterLatestRestart(): RasaEvent[] {
    for (let i = this.events.length - 1; i >= 0; i--) {
      if (this.events[i]?.event === 'restart') return this.events.slice(i + 1);
    }
    return this.events.slice();
  }

  /** True when the conversation is paused. */
  isPaused(): boolean {
    return this.paused;
  }

  /** Name of the active loop (form), or null. */
  get activeLoopName(): string | null {
    const name = this.activeLoop.name;
    return typeof name === 'string' && name !== '' ? name : null;
  }

  /** The tracker as Rasa's JSON again. */
  currentState(): TrackerJson {
    return {
      sender_id: this.senderId,
      slots: { ...this.slots },
      latest_message: this.latestMessage,
      events: this.events.slice(),
      paused: this.paused,
      followup_action: this.followupAction,
      active_loop: { ...this.activeLoop },
      latest_action_name: this.latestActionName,
      stack: this.stack.slice(),
      user_id: this.userId,
    };
  }
}
