/**
 * The voice WebSocket endpoint as a Fastify plugin. It needs `@fastify/websocket` registered on
 * the app first (the HTTP transport's server does that); register with
 * `app.register(voiceWsRoutes, { channel })` or with the {@link VoiceChannelOptions} themselves.
 *
 * Routes: `GET <path>` (default `/voice/ws`): the voice protocol (see `session.ts`);
 * `GET <historyPath>/:turnId` and `GET <historyPath>?runId=&sessionId=&limit=` (default
 * `/voice/history`): turn histories from the channel's store.
 * @module
 */

import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { SluiceError } from '../../protocol/errors.ts';
import { VoiceChannel } from './channel.ts';
import type { VoiceChannelOptions } from './channel.ts';
import { WsGuard, resolveWsGuardOptions, type WsGuardOptions } from '../ws-guard.ts';

/** Options of {@link voiceWsRoutes}. */
export type VoiceWsRoutesOptions = ({ channel: VoiceChannel } | VoiceChannelOptions) & {
  /** Path of the socket. Default `/voice/ws`. */
  path?: string;
  /** Path of the history routes. Default `/voice/history`. */
  historyPath?: string;
  /** Heartbeat, send-queue cap and message rate of the sockets (see {@link WsGuardOptions}). */
  limits?: WsGuardOptions;
};

function checkPath(name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw new SluiceError('invalid_argument', `voiceWsRoutes: option '${name}' must be a path starting with '/' (got ${JSON.stringify(value)})`);
  }
  return value;
}

/**
 * Mounts a voice channel. A channel made here from options is closed with the app; a channel
 * passed in belongs to the caller.
 */
export const voiceWsRoutes: FastifyPluginAsync<VoiceWsRoutesOptions> = async (app: FastifyInstance, options: VoiceWsRoutesOptions) => {
  const { path, historyPath, limits, ...rest } = options as VoiceWsRoutesOptions & Record<string, unknown>;
  const guard = new WsGuard(resolveWsGuardOptions('voiceWsRoutes: limits', limits as WsGuardOptions | undefined));
  app.addHook('onClose', async () => guard.close());
  const socketPath = checkPath('path', path, '/voice/ws');
  const historyRoot = checkPath('historyPath', historyPath, '/voice/history');
  const given = (rest as { channel?: unknown }).channel;
  let channel: VoiceChannel;
  if (given !== undefined) {
    if (!(given instanceof VoiceChannel)) throw new SluiceError('invalid_argument', "voiceWsRoutes: option 'channel' must be a VoiceChannel");
    channel = given;
  } else {
    // Fastify passes its own plugin keys along; the channel validates only its own.
    const own = { ...rest } as Record<string, unknown>;
    for (const key of ['prefix', 'logLevel', 'logSerializers']) delete own[key];
    channel = new VoiceChannel(own as unknown as VoiceChannelOptions);
    app.addHook('onClose', async () => channel.close());
  }
  if (!app.hasDecorator('websocketServer')) {
    throw new SluiceError('failed_precondition', 'voiceWsRoutes: register @fastify/websocket before the voice routes');
  }
  app.get(socketPath, { websocket: true }, (socket) => {
    guard.watch(socket);
    channel.accept(socket);
  });
  app.get(`${historyRoot}/:turnId`, async (request, reply) => {
    const { turnId } = request.params as { turnId: string };
    const entry = channel.history.get(turnId);
    if (entry === undefined) return reply.code(404).send({ code: 'not_found', error: `No history for turn '${turnId}'` });
    return entry;
  });
  app.get(historyRoot, async (request, reply) => {
    const q = (request.query ?? {}) as Record<string, string | undefined>;
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1) return reply.code(400).send({ code: 'invalid_argument', error: "'limit' must be a positive integer" });
    const filter: { runId?: string; sessionId?: string; limit: number } = { limit };
    if (q.runId !== undefined) filter.runId = q.runId;
    if (q.sessionId !== undefined) filter.sessionId = q.sessionId;
    return { entries: channel.history.list(filter) };
  });
};
