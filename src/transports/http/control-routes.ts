/**
 * Control routes: stop a run, and barge in on a streamed message. Both act on the producer; a
 * reader that merely goes away uses neither (see `sse-routes.ts` for disconnects).
 * @module
 */

import type { FastifyInstance } from 'fastify';
import { ackOwned, ownerOf, ownedRun } from '../../channels/principal.ts';
import type { HttpContext } from './context.ts';

/**
 * Registers:
 * - `POST /runs/:runId/cancel` (stop button): 202 `{ cancelled: true, runId }`; 404 for an unknown
 *   run; 409 when it has already ended or is already being cancelled.
 * - `POST /streams/:responseId/ack` (barge-in, Rasa's `AckStreamChunks`): always 200,
 *   `{ acknowledged }` says whether a live stream was found and its run cancelled. As in Rasa, an
 *   ack that arrives after the stream's end was delivered finds nothing and is not an error.
 * Someone else's run or stream is answered exactly like an unknown one (404, `acknowledged: false`).
 */
export function registerControlRoutes(app: FastifyInstance, ctx: HttpContext): void {
  app.post('/runs/:runId/cancel', async (request, reply) => {
    const { runId } = request.params as { runId: string };
    const run = await ownedRun(ctx.executor, ownerOf(request), runId);
    if (run === undefined) {
      return reply.code(404).send({ error: `No run found with id '${runId}': it never existed or is no longer retained`, code: 'not_found' });
    }
    if (!ctx.executor.cancel(runId)) {
      const state = run.state === 'ended' ? `has already ended (${run.endReason ?? 'ended'})` : 'is already being cancelled';
      return reply.code(409).send({ error: `Run '${runId}' ${state}`, code: 'failed_precondition' });
    }
    return reply.code(202).send({ cancelled: true, runId });
  });

  app.post('/streams/:responseId/ack', async (request) => {
    const { responseId } = request.params as { responseId: string };
    return { acknowledged: await ackOwned(ctx.executor, ownerOf(request), responseId), responseId };
  });
}
