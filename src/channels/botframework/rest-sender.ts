/**
 * A sender over the Bot Connector REST API:
 * `POST {serviceUrl}/v3/conversations/{conversationId}/activities[/{replyToId}]` with a bearer
 * token, and `PUT …/activities/{id}` to update. The first POST of a stream answers `201 { id }`.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { Activity } from './activity.ts';
import { channelError, classifyConnectorResponse } from './errors.ts';
import type { ActivitySender, SendResult } from './sender.ts';

/** A bearer token, or a function that returns a current one (called for every request). */
export type TokenSource = string | (() => string | Promise<string>);

/** Options of a {@link BotConnectorSender}. */
export interface BotConnectorSenderOptions {
  /** The `serviceUrl` of the incoming activity, e.g. `https://smba.trafficmanager.net/amer/`. */
  serviceUrl: string;
  conversationId: string;
  /** `personal`, `groupChat` or `channel` (from `activity.conversation.conversationType`). */
  conversationType?: string;
  /** The bot's access token (the caller obtains and caches it). */
  token: TokenSource;
  /** Reply to this activity: posts to `…/activities/{replyToId}` and sets `replyToId`. */
  replyToId?: string;
  /** Per-request timeout in ms. Default 15,000. */
  timeoutMs?: number;
  /** Fields merged into every activity (e.g. `from`, `recipient`, `channelId`); the activity wins. */
  defaults?: Partial<Activity>;
  /** False to never stream in this conversation. */
  streamingAllowed?: boolean;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** Default per-request timeout. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

/** Sends activities to one conversation through the Bot Connector REST API. */
export class BotConnectorSender implements ActivitySender {
  readonly conversationType: string | undefined;
  readonly streamingAllowed: boolean | undefined;
  readonly timeoutMs: number;
  #base: string;
  #conversationId: string;
  #replyToId: string | undefined;
  #token: TokenSource;
  #defaults: Partial<Activity>;
  #fetch: typeof fetch;

  constructor(options: BotConnectorSenderOptions) {
    if (typeof options.serviceUrl !== 'string' || !/^https?:\/\//i.test(options.serviceUrl)) {
      throw new TypeError(`BotConnectorSender: serviceUrl must be an http(s) URL (got ${String(options.serviceUrl)})`);
    }
    if (typeof options.conversationId !== 'string' || options.conversationId === '') {
      throw new TypeError('BotConnectorSender: conversationId is required');
    }
    this.#base = `${options.serviceUrl.replace(/\/+$/, '')}/v3/conversations/${encodeURIComponent(options.conversationId)}/activities`;
    this.#conversationId = options.conversationId;
    this.#replyToId = options.replyToId;
    this.#token = options.token;
    this.#defaults = options.defaults ?? {};
    this.#fetch = options.fetch ?? fetch;
    this.conversationType = options.conversationType;
    this.streamingAllowed = options.streamingAllowed;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }

  /** POSTs an activity; resolves with the id the service returned, if any. */
  async send(activity: Activity): Promise<SendResult> {
    const url = this.#replyToId === undefined ? this.#base : `${this.#base}/${encodeURIComponent(this.#replyToId)}`;
    const text = await this.#request('POST', url, this.#body(activity));
    return parseId(text);
  }

  /** PUTs a new version of an activity already sent. */
  async update(activity: Activity & { id: string }): Promise<void> {
    await this.#request('PUT', `${this.#base}/${encodeURIComponent(activity.id)}`, this.#body(activity));
  }

  #body(activity: Activity): string {
    const conversation = { ...(this.#defaults.conversation as object | undefined), id: this.#conversationId };
    const body: Record<string, unknown> = { ...this.#defaults, ...activity, conversation };
    if (this.#replyToId !== undefined && body.replyToId === undefined) body.replyToId = this.#replyToId;
    return JSON.stringify(body);
  }

  async #request(method: string, url: string, body: string): Promise<string> {
    let token: string;
    try {
      token = typeof this.#token === 'function' ? await this.#token() : this.#token;
    } catch (error) {
      throw channelError('token_unavailable', {}, error);
    }
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const response = await this.#fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json; charset=utf-8',
          accept: 'application/json',
        },
        body,
        signal,
      });
      const text = await response.text();
      if (!response.ok) throw classifyConnectorResponse(response.status, text, response.headers.get('retry-after'));
      return text;
    } catch (error) {
      if (SluiceError.isInstance(error)) throw error;
      if (signal.aborted) throw channelError('connector_timeout', {}, error);
      throw channelError('connector_unreachable', {}, error);
    }
  }
}

function parseId(text: string): SendResult {
  if (text === '' || text[0] !== '{') return {};
  try {
    const value = JSON.parse(text) as { id?: unknown };
    return typeof value.id === 'string' && value.id !== '' ? { id: value.id } : {};
  } catch {
    return {};
  }
}
