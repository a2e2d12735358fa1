/**
 * Rasa's action-server HTTP protocol (`reference/rasa-sdk.md` §1b), byte for byte where Rasa
 * defines it: `GET /health`, `GET /actions`, `POST /webhook`. A `POST /webhook` whose `Accept`
 * asks for `text/event-stream` is answered as SSE instead (see `sse-routes.ts`).
 * @module
 */

import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../protocol/errors.ts';
import { traceHeadersOf } from '../../runtime/observer.ts';
import type { HttpContext } from './context.ts';
import { INVALID_BODY, rasaErrorReply } from './errors.ts';
import { SHUTTING_DOWN } from '../../runtime/lifecycle.ts';
import { streamCall, wantsEventStream } from './sse-routes.ts';

/** Registers the Rasa routes. */
export function registerRasaRoutes(app: FastifyInstance, ctx: HttpContext): void {
  // 503 once a drain began, so a load balancer stops sending before the listener closes.
  app.get('/health', async (_request, reply) =>
    ctx.executor.lifecycle.accepting ? { status: 'ok' } : reply.code(503).send({ status: 'draining', error: SHUTTING_DOWN, code: 'unavailable' }),
  );

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
      const result = await ctx.executor.run(body, { signal: controller.signal, transport: 'http-webhook', traceHeaders: traceHeadersOf(request.headers) });
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
