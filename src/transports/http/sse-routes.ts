/**
 * Server-Sent Events routes (Rasa has none): an action call answered as a stream of Sluice events
 * (`POST /webhook/stream`, or `POST /webhook` with `Accept: text/event-stream`), and
 * `GET /runs/:runId/events` to follow or resume a run.
 *
 * Why `reply.hijack()` and `reply.raw`: the audited {@link SseWriter} needs the `ServerResponse`
 * itself (its `write()` result, `drain` and `close`), and a hijacked reply cannot be touched by
 * `onSend` hooks such as compression, which would buffer the stream. Hijacking also skips the hooks
 * that set headers on send, so headers already set on the reply (e.g. by a CORS `onRequest` hook)
 * are copied onto the raw response.
 *
 * Disconnect vs cancel: a stream opened by an action call cancels its run when the client goes
 * away, by default, as Rasa's gRPC `WebhookStream` does: a plain streaming client that left is
 * gone, and its action should stop spending. `?detach=true` (or `X-Sluice-Detach: true`) starts a
 * detached run instead, which keeps going and can be resumed. Reaching `maxDurationMs` is not a
 * disconnect (the client is told how to resume), and a reader of `GET /runs/:runId/events` never
 * cancels the run it reads.
 * @module
 */

import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../protocol/errors.ts';
import { traceHeadersOf } from '../../runtime/observer.ts';
import type { Run } from '../../runtime/run.ts';
import type { Subscription } from '../../runtime/subscription.ts';
import { pipeEvents } from '../../channels/pipe-events.ts';
import { ownerOf, ownedRun } from '../../channels/principal.ts';
import { carriedHeaders } from '../../channels/request-hooks.ts';
import { checkActionCall } from './call-check.ts';
import type { HttpContext } from './context.ts';
import { INVALID_BODY, errorReply, rasaErrorReply } from './errors.ts';
import { SseWriter, formatSseEvent } from '../../channels/sse-writer.ts';

/** The response header that carries the run id of a stream. */
export const RUN_ID_HEADER = 'x-sluice-run-id';
/** The request header that asks for a detached run. */
export const DETACH_HEADER = 'x-sluice-detach';

const DONE: Promise<void> = Promise.resolve();

/** True when an `Accept` header lists `text/event-stream` (with a non-zero q). */
export function wantsEventStream(accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes('text/event-stream')) return false;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';');
    if (type?.trim().toLowerCase() !== 'text/event-stream') continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

/** Reads `?detach=` / `X-Sluice-Detach:`; throws `invalid_argument` for anything but true/false/1/0. */
export function detachRequested(request: FastifyRequest): boolean {
  const query = (request.query ?? {}) as Record<string, unknown>;
  const values: [string, unknown][] = [
    ['detach', query.detach],
    [DETACH_HEADER, request.headers[DETACH_HEADER]],
  ];
  let detach = false;
  for (const [name, raw] of values) {
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    const text = String(value).trim().toLowerCase();
    if (text === 'true' || text === '1' || text === '') detach = true;
    else if (text !== 'false' && text !== '0') {
      throw new SluiceError('invalid_argument', `Invalid '${name}' value '${String(value)}': expected true or false`);
    }
  }
  return detach;
}

/**
 * The seq to resume after: the `Last-Event-ID` header (what a reconnecting `EventSource` sends, so
 * it wins over a URL that still carries the first `?after=`), else `?after=`, else 0.
 */
export function resumePoint(request: FastifyRequest): number {
  const header = request.headers['last-event-id'];
  const query = ((request.query ?? {}) as Record<string, unknown>).after;
  const [name, raw] =
    typeof header === 'string' && header.trim() !== '' ? ['Last-Event-ID', header] : ['after', Array.isArray(query) ? query[0] : query];
  if (raw === undefined || raw === '') return 0;
  const text = String(raw).trim();
  const seq = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new SluiceError('invalid_argument', `Invalid ${name} '${text}': expected the seq (a non-negative integer) of the last event received`);
  }
  return seq;
}

/**
 * Answers an action call as SSE. The call is checked first, so a malformed call, an unknown action
 * or a bad option gets a JSON 4xx (Rasa's shapes) instead of a stream; failures after that point
 * are the run's own `error` and `run-end` events.
 */
export function streamCall(ctx: HttpContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const body = request.body;
  if (body === undefined || body === null) {
    reply.code(400).send({ error: INVALID_BODY });
    return DONE;
  }
  let detach: boolean;
  try {
    detach = detachRequested(request);
  } catch (thrown) {
    const { status, body: payload } = errorReply(SluiceError.from(thrown));
    reply.code(status).send(payload);
    return DONE;
  }
  try {
    checkActionCall(ctx.executor, body);
  } catch (thrown) {
    const { status, body: payload } = rasaErrorReply(SluiceError.from(thrown), body, ctx.executor.exposeActionErrors);
    reply.code(status).send(payload);
    return DONE;
  }
  const run = ctx.executor.start(body, { streaming: true, owner: ownerOf(request), transport: 'http-sse', traceHeaders: traceHeadersOf(request.headers) });
  // Returned, not awaited: an open stream holds one suspended function (the loop), not two.
  return pipeRunToSse(ctx, reply, run, run.subscribe(), !detach);
}

/** `GET /runs/:runId/events`: replay from the run's log after the resume point, then live events. */
export async function streamRunEvents(ctx: HttpContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { runId } = request.params as { runId: string };
  // Someone else's run is answered exactly like an unknown one.
  let run: Run | undefined;
  try {
    run = await ownedRun(ctx.executor, ownerOf(request), runId);
  } catch (thrown) {
    const { status, body } = errorReply(SluiceError.from(thrown));
    reply.code(status).send(body);
    return DONE;
  }
  if (run === undefined) {
    reply.code(404).send({ error: `No run found with id '${runId}': it never existed or is no longer retained`, code: 'not_found' });
    return DONE;
  }
  let sub: Subscription;
  try {
    sub = run.subscribe({ after: resumePoint(request) });
  } catch (thrown) {
    // out_of_range (the log no longer holds those events) maps to 410 Gone.
    const { status, body } = errorReply(SluiceError.from(thrown));
    reply.code(status).send(body);
    return DONE;
  }
  return pipeRunToSse(ctx, reply, run, sub, false);
}

/**
 * Streams a subscription to the client until `run-end`, a disconnect, or the maximum duration.
 * Events already waiting (the client is behind) go out in one write; the loop awaits the socket
 * when it is full, which stops reading the run, which in turn makes the producer wait.
 */
async function pipeRunToSse(ctx: HttpContext, reply: FastifyReply, run: Run, sub: Subscription, cancelOnDisconnect: boolean): Promise<void> {
  reply.hijack();
  const writer = new SseWriter(reply.raw, {
    pingIntervalMs: ctx.sse.pingIntervalMs,
    maxDurationMs: ctx.sse.maxDurationMs,
    maxDurationNotice: `: max duration reached; resume with GET /runs/${run.id}/events and Last-Event-ID\n\n`,
    meter: ctx.executor.wire.of('http-sse'),
    stallTimeoutMs: ctx.sse.stallTimeoutMs,
  });
  ctx.writers.add(writer);
  writer.onclose = (reason) => {
    ctx.writers.delete(writer);
    // Wakes the loop below if it waits for an event.
    sub.unsubscribe();
    // A reader dropped as too slow is gone too: the run it started stops.
    if ((reason === 'disconnected' || reason === 'too-slow') && cancelOnDisconnect) {
      run.cancel(new SluiceError('cancelled', 'The client disconnected', { details: { reason: 'disconnect' } }));
    }
  };
  writer.open(streamHeaders(reply, run.id));
  try {
    await pipeEvents(run, sub, formatSseEvent, writer);
  } catch (error) {
    ctx.logger.error({ err: error, runId: run.id }, 'SSE stream failed');
  } finally {
    sub.unsubscribe();
    writer.end();
  }
}

function streamHeaders(reply: FastifyReply, runId: string): OutgoingHttpHeaders {
  const headers = carriedHeaders(reply);
  headers[RUN_ID_HEADER] = runId;
  return headers;
}

/** Registers `POST /webhook/stream` and `GET /runs/:runId/events`. */
export function registerSseRoutes(app: FastifyInstance, ctx: HttpContext): void {
  app.post('/webhook/stream', (request, reply) => streamCall(ctx, request, reply));
  // No automatic HEAD route: a HEAD would otherwise hold a bodiless stream open until the run ends.
  app.get('/runs/:runId/events', { exposeHeadRoute: false }, (request, reply) => streamRunEvents(ctx, request, reply));
}
