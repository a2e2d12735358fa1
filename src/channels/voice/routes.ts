/**
 * `GET /runs/:runId/sentences`: a run's sentences as Server-Sent Events, for TTS clients that
 * speak for themselves (a Fastify plugin; the integrator mounts it beside the SSE routes).
 *
 * Frames: `id: <index>`, `event: sentence`, `data: <SentenceEvent JSON>`; then one
 * `event: end` with `data: {"runId","reason"}` (the run's end reason). Resume with
 * `Last-Event-ID` (or `?after=`) set to the last index received: the sentences are derived again
 * from the run's log and the ones already sent are skipped. Reading never cancels the run.
 * @module
 */

import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { SluiceError } from '../../protocol/errors.ts';
import { ownerOf, ownedRun } from '../principal.ts';
import { SseWriter } from '../sse-writer.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';
import type { Run } from '../../runtime/run.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import { SentenceStream } from '../../text/sentence-stream.ts';
import type { OutputRailsOptions } from './rails.ts';
import { resolveRailOptions, withOutputRails } from './rails.ts';
import { encodeSentenceSse, sentencesOf } from './sentences.ts';
import { checkOptionsObject, numberOption } from './validate.ts';

/** Options of {@link sentenceRoutes}. */
export interface SentenceRoutesOptions {
  executor: ActionExecutor;
  /** Segmenter options. */
  segmenter?: SentenceStreamOptions;
  /**
   * Output rails applied to what this route streams. A block cancels the run for every reader:
   * set this only where this route is the run's voice.
   */
  rails?: Omit<OutputRailsOptions, 'cancel'>;
  /** Silence after which a `: ping` comment is written, in ms. Default 15,000. */
  pingIntervalMs?: number;
  /** Drop a reader that takes no data for this many ms (see `SseWriterOptions.stallTimeoutMs`). Default 30,000. */
  stallTimeoutMs?: number;
}

function afterIndex(request: FastifyRequest): number {
  const header = request.headers['last-event-id'];
  const query = ((request.query ?? {}) as Record<string, unknown>).after;
  const raw = typeof header === 'string' && header.trim() !== '' ? header : query;
  if (raw === undefined || raw === '') return -1;
  const text = String(raw).trim();
  if (!/^\d+$/.test(text)) throw new SluiceError('invalid_argument', `Invalid resume point '${text}': expected the index of the last sentence received`);
  return Number(text);
}

/** Mounts `GET /runs/:runId/sentences`. */
export const sentenceRoutes: FastifyPluginAsync<SentenceRoutesOptions> = async (app: FastifyInstance, options: SentenceRoutesOptions) => {
  const o = checkOptionsObject('sentenceRoutes', options, ['executor', 'segmenter', 'rails', 'pingIntervalMs', 'prefix', 'logLevel', 'logSerializers']);
  const executor = o.executor as ActionExecutor;
  if (typeof executor !== 'object' || executor === null || typeof executor.getRun !== 'function') {
    throw new SluiceError('invalid_argument', "sentenceRoutes: option 'executor' must be an ActionExecutor");
  }
  const segmenter = (o.segmenter ?? {}) as SentenceStreamOptions;
  new SentenceStream(segmenter);
  const rails = o.rails as SentenceRoutesOptions['rails'];
  if (rails !== undefined) resolveRailOptions("sentenceRoutes: option 'rails'", rails);
  const pingMs = numberOption('sentenceRoutes', 'pingIntervalMs', o.pingIntervalMs, 15_000, { min: 1 });
  const stallMs = o.stallTimeoutMs === undefined ? undefined : numberOption('sentenceRoutes', 'stallTimeoutMs', o.stallTimeoutMs, 30_000, { min: 1 });

  app.get('/runs/:runId/sentences', { exposeHeadRoute: false }, async (request, reply) => {
    const { runId } = request.params as { runId: string };
    // Someone else's run is answered exactly like an unknown one.
    let run: Run | undefined;
    try {
      run = await ownedRun(executor, ownerOf(request), runId);
    } catch (error) {
      return reply.code(503).send({ code: 'unavailable', error: (error as Error).message });
    }
    if (run === undefined) return reply.code(404).send({ code: 'not_found', error: `No run found with id '${runId}'` });
    let after: number;
    try {
      after = afterIndex(request);
    } catch (error) {
      return reply.code(400).send({ code: 'invalid_argument', error: (error as Error).message });
    }
    reply.hijack();
    const writer = new SseWriter(reply.raw, { pingIntervalMs: pingMs, stallTimeoutMs: stallMs, meter: executor.wire.of('http-sse') });
    const stop = new AbortController();
    writer.onclose = () => stop.abort();
    writer.open({ 'x-sluice-run-id': run.id });
    try {
      const events = rails === undefined ? run.subscribe({ signal: stop.signal }) : withOutputRails(run.subscribe({ signal: stop.signal }), { ...rails, cancel: (r) => run.cancel(r) });
      // The subscription ends with the client: no signal for the reader, which would race every read.
      for await (const sentence of sentencesOf(events, { ...segmenter, afterIndex: after })) {
        if (sentence.index === 0) run.mark('sentence');
        const wait = writer.write(encodeSentenceSse(sentence));
        if (wait !== undefined) await wait;
        if (stop.signal.aborted) break;
      }
      if (!stop.signal.aborted) {
        const end = await run.done;
        writer.write(`event: end\ndata: ${JSON.stringify({ runId: run.id, reason: end.reason })}\n\n`);
      }
    } catch (error) {
      request.log.error({ err: error, runId }, 'Sentence stream failed');
    } finally {
      writer.end();
    }
  });
};
