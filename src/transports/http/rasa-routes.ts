/**
 * Rasa's action-server HTTP protocol (`reference/rasa-sdk.md` §1b), byte for byte where Rasa
 * defines it: `GET /health`, `GET /actions`, `POST /webhook`. A `POST /webhook` whose `Accept`
 * asks for `text/event-stream` is answered as SSE instead (see `sse-routes.ts`).
 * @module
 */

import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../protocol/errors.ts';
import type { HttpContext } from './context.ts';
import { INVALID_BODY, rasaErrorReply } from './errors.ts';
import { streamCall, wantsEventStream } from './sse-routes.ts';

/** Registers the Rasa routes. */
export function registerRasaRoutes(app: FastifyInstance, ctx: HttpContext): void {
  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/actions', async () => ctx.executor.actions);

  app.post('/webhook', async (request, reply) => {
    // The answer depends on Accept (JSON or SSE): caches must not mix them up.
    reply.header('vary', 'Accept');
    if (wantsEventStream(request.headers.accept)) return streamCall(ctx, request, reply);
    const body = request.body;
    if (body === undefined || body === null) return reply.code(400).send({ error: INVALID_BODY });
    // A client that hangs up before its answer cancels the action (Sanic cancels the handler too).
    const controller = new AbortController();
    const raw = reply.raw;
    const onClose = (): void => {
      if (!raw.writableFinished) {
        controller.abort(new SluiceError('cancelled', 'The client disconnected', { details: { reason: 'disconnect' } }));
      }
    };
    raw.once('close', onClose);
    try {
      const result = await ctx.executor.run(body, { signal: controller.signal });
      // Rasa answers a call that names no action with a JSON `null` body.
      if (result === null) return reply.code(200).type('application/json; charset=utf-8').send('null');
      return reply.code(200).send(result);
    } catch (thrown) {
      const { status, body: payload, retryAfterSeconds } = rasaErrorReply(SluiceError.from(thrown), body, ctx.executor.exposeActionErrors);
      if (status >= 500) request.log.warn({ err: thrown }, 'Action call failed');
      if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
      return reply.code(status).send(payload);
    } finally {
      raw.off('close', onClose);
    }
  });
}
