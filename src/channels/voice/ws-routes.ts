/**
 * The voice WebSocket endpoint as a Fastify plugin. It needs `@fastify/websocket` registered on
 * the app first (the HTTP transport's server does that); register with
 * `app.register(voiceWsRoutes, { channel })` or with the {@link VoiceChannelOptions} themselves.
 *
 * Routes: `GET <path>` (default `/voice/ws`): the voice protocol (see `session.ts`);
 * `GET <historyPath>/:turnId` and `GET <historyPath>?runId=&sessionId=&limit=` (default
 * `/voice/history`): turn histories from the channel's store;
 * `POST <sessionsPath>/:sessionId/pause|resume|interrupt` (default `/voice/sessions`), body
 * optional `{ played }` (pause, interrupt): the voice controls (see `control.ts`). 200 with what
 * the command did; 404 for an unknown session; 409 when the command does not apply now (no turn
 * speaking, not paused, interruptions disabled); 400 for a bad body.
 * @module
 */

import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { HTTP_STATUS, SluiceError } from '../../protocol/errors.ts';
import { mayAccess, ownerOf } from '../principal.ts';
import { VoiceChannel } from './channel.ts';
import { VOICE_COMMANDS, controlVoiceSession, ownedSessions } from './control.ts';
import type { VoiceChannelOptions } from './channel.ts';
import { WsGuard, resolveWsGuardOptions, type WsGuardOptions } from '../ws-guard.ts';
import { traceHeadersOf } from '../../runtime/observer.ts';

/** Options of {@link voiceWsRoutes}. */
export type VoiceWsRoutesOptions = ({ channel: VoiceChannel } | VoiceChannelOptions) & {
  /** Path of the socket. Default `/voice/ws`. */
  path?: string;
  /** Path of the history routes. Default `/voice/history`. */
  historyPath?: string;
  /**
   * Without authentication, let `GET <historyPath>` list every session's turns. Default false: an
   * anonymous listing must name a `sessionId` or `runId` (random ids, so capabilities), since a
   * listing of everything would show every user's run ids and text. With authentication a
   * principal only ever lists its own sessions' turns.
   */
  listing?: boolean;
  /** Root of the control routes (`<sessionsPath>/:sessionId/pause|resume|interrupt`). Default `/voice/sessions`. */
  sessionsPath?: string;
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
  const { path, historyPath, sessionsPath, listing, limits, ...rest } = options as VoiceWsRoutesOptions & Record<string, unknown>;
  if (listing !== undefined && typeof listing !== 'boolean') throw new SluiceError('invalid_argument', "voiceWsRoutes: option 'listing' must be a boolean");
  const guard = new WsGuard(resolveWsGuardOptions('voiceWsRoutes: limits', limits as WsGuardOptions | undefined));
  app.addHook('onClose', async () => guard.close());
  const socketPath = checkPath('path', path, '/voice/ws');
  const historyRoot = checkPath('historyPath', historyPath, '/voice/history');
  const sessionsRoot = checkPath('sessionsPath', sessionsPath, '/voice/sessions');
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
  app.get(socketPath, { websocket: true }, (socket, request) => {
    guard.watch(socket);
    channel.accept(socket, ownerOf(request), traceHeadersOf(request.headers));
  });
  app.get(`${historyRoot}/:turnId`, async (request, reply) => {
    const { turnId } = request.params as { turnId: string };
    const found = channel.history.get(turnId);
    // Another principal's turn is answered exactly like an unknown one.
    const entry = found !== undefined && mayAccess(found.owner, ownerOf(request)) ? found : undefined;
    if (entry === undefined) return reply.code(404).send({ code: 'not_found', error: `No history for turn '${turnId}'` });
    return entry;
  });
  for (const command of VOICE_COMMANDS) {
    app.post(`${sessionsRoot}/:sessionId/${command}`, async (request, reply) => {
      const { sessionId } = request.params as { sessionId: string };
      const body = request.body ?? {};
      if (typeof body !== 'object' || Array.isArray(body)) {
        return reply.code(400).send({ code: 'invalid_argument', error: `${command}: the body must be a JSON object ({ played? })` });
      }
      const unknown = Object.keys(body).find((key) => key !== 'played');
      if (unknown !== undefined) {
        return reply.code(400).send({ code: 'invalid_argument', error: `${command}: unknown field '${unknown}' (known: played)` });
      }
      try {
        // Another principal's session is answered exactly like an unknown one.
        return controlVoiceSession(ownedSessions(channel, ownerOf(request)), sessionId, command, (body as { played?: unknown }).played);
      } catch (thrown) {
        const error = SluiceError.from(thrown);
        // A command that does not fit the session's state now: a conflict, not a malformed request.
        const status = error.code === 'failed_precondition' ? 409 : HTTP_STATUS[error.code];
        return reply.code(status).send({ code: error.code, error: error.message });
      }
    });
  }
  app.get(historyRoot, async (request, reply) => {
    const q = (request.query ?? {}) as Record<string, string | undefined>;
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1) return reply.code(400).send({ code: 'invalid_argument', error: "'limit' must be a positive integer" });
    const owner = ownerOf(request);
    if (owner === undefined && listing !== true && q.runId === undefined && q.sessionId === undefined) {
      return reply.code(404).send({
        code: 'not_found',
        error: `Listing every voice session's history is off: name a ?sessionId= or ?runId=, or enable listing (--enable-listing / voiceWsRoutes({ listing: true }))`,
      });
    }
    // A principal lists its own turns only; anonymous requests see only entries without an owner.
    const filter: { runId?: string; sessionId?: string; owner: string | null; limit: number } = { limit, owner: owner ?? null };
    if (q.runId !== undefined) filter.runId = q.runId;
    if (q.sessionId !== undefined) filter.sessionId = q.sessionId;
    return { entries: channel.history.list(filter) };
  });
};
