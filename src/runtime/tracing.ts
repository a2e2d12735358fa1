/**
 * OpenTelemetry spans of runs, through `@opentelemetry/api` only: with no SDK registered every call
 * is a no-op and a run gets no watch at all (one non-recording span made and dropped per run).
 * With an SDK (`sluice serve` starts one when `OTEL_*` variables ask for it, see `src/obs/otel.ts`)
 * each run is a `SERVER` span, parented to the caller's W3C `traceparent` when the transport had
 * one, with a child span for the action body; model and tool calls made inside the body
 * (`streamModel`) are children of that (`src/models/telemetry.ts`).
 *
 * Per chunk the watch only counts chunks and their bytes; attributes are set once, at run-end.
 * @module
 */

import {
  type Attributes,
  type Context,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  context,
  isSpanContextValid,
  propagation,
  trace,
} from '@opentelemetry/api';
import type { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import type { RunMark, RunObserver, RunStartInfo, RunWatch } from './observer.ts';
import type { Run } from './run.ts';

/** The instrumentation scope name of every Sluice span. */
export const TRACER_NAME = 'sluice';

/** Span and attribute names (OpenTelemetry style, `sluice.` namespace). */
export const SPAN_ATTRIBUTES = {
  runId: 'sluice.run.id',
  action: 'sluice.action',
  transport: 'sluice.transport',
  outcome: 'sluice.run.outcome',
  chunks: 'sluice.run.chunks',
  bytes: 'sluice.run.chunk_bytes',
  events: 'sluice.run.events',
  errorCode: 'sluice.error.code',
  cancelReason: 'sluice.cancel.reason',
} as const;

/** Options of {@link RunTracer}. */
export interface RunTracerOptions {
  /** Tracer to use (default: the global provider's `sluice` tracer, looked up per run so a later registered SDK counts). */
  tracer?: Tracer;
}

/**
 * A {@link RunObserver} making a span per run. Span events: `stream-start`, `stream-end` (with the
 * response id and end reason), `first-chunk`, `barge-in` or `cancel` (with the reason). Status:
 * `ERROR` for a run ending in `error` or `timeout` (the barge-in timeout abandoned the action);
 * a cancelled run is not an error (status unset, `sluice.run.outcome = cancelled` and its event).
 */
export class RunTracer implements RunObserver {
  readonly #tracer: Tracer | undefined;

  constructor(options: RunTracerOptions = {}) {
    this.#tracer = options.tracer;
  }

  runStarted(run: Run, info: RunStartInfo): RunWatch | undefined {
    const tracer = this.#tracer ?? trace.getTracer(TRACER_NAME);
    const parent = info.traceHeaders === undefined ? context.active() : propagation.extract(context.active(), info.traceHeaders);
    const attributes: Attributes = { [SPAN_ATTRIBUTES.runId]: run.id, [SPAN_ATTRIBUTES.action]: run.action };
    if (info.transport !== undefined) attributes[SPAN_ATTRIBUTES.transport] = info.transport;
    const span = tracer.startSpan(`sluice.run ${run.action}`, { kind: SpanKind.SERVER, attributes }, parent);
    if (!span.isRecording()) {
      // No SDK: nothing to follow. Sampled out: children must still see this context (and be sampled out with it).
      if (!isSpanContextValid(span.spanContext())) return undefined;
      const sampledOut = trace.setSpan(parent, span);
      return { invoke: (body) => context.with(sampledOut, body) };
    }
    return new RunSpanWatch(tracer, run, span, trace.setSpan(parent, span));
  }
}

class RunSpanWatch implements RunWatch {
  readonly #tracer: Tracer;
  readonly #run: Run;
  readonly #span: Span;
  readonly #context: Context;
  #chunks = 0;
  #bytes = 0;
  #events = 0;

  constructor(tracer: Tracer, run: Run, span: Span, runContext: Context) {
    this.#tracer = tracer;
    this.#run = run;
    this.#span = span;
    this.#context = runContext;
  }

  firstChunk(): void {
    this.#span.addEvent('first-chunk');
  }

  chunk(text: string): void {
    this.#events++;
    this.#chunks++;
    this.#bytes += Buffer.byteLength(text);
  }

  event(event: SluiceEvent): void {
    this.#events++;
    const span = this.#span;
    switch (event.type) {
      case 'status':
        return;
      case 'stream-start':
        span.addEvent('stream-start', { 'sluice.response_id': event.responseId });
        return;
      case 'stream-end':
        span.addEvent('stream-end', { 'sluice.response_id': event.responseId, 'sluice.stream.end_reason': event.reason });
        return;
      case 'error':
        span.setAttribute(SPAN_ATTRIBUTES.errorCode, event.code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: event.message });
        return;
      case 'run-end':
        span.setAttributes({
          [SPAN_ATTRIBUTES.outcome]: event.reason,
          [SPAN_ATTRIBUTES.chunks]: this.#chunks,
          [SPAN_ATTRIBUTES.bytes]: this.#bytes,
          [SPAN_ATTRIBUTES.events]: this.#events,
        });
        if (event.reason === 'timeout') span.setStatus({ code: SpanStatusCode.ERROR, message: 'The action did not finish within the barge-in timeout' });
        span.end();
        return;
      default:
        return;
    }
  }

  cancelled(reason: SluiceError, dropped: number): void {
    const why = typeof reason.details.reason === 'string' ? reason.details.reason : reason.code;
    this.#span.addEvent(why === 'barge_in' ? 'barge-in' : 'cancel', { [SPAN_ATTRIBUTES.cancelReason]: why, 'sluice.events_dropped': dropped });
  }

  mark(mark: RunMark): void {
    this.#span.addEvent(mark === 'sentence' ? 'first-sentence' : 'first-audio');
  }

  invoke<T>(body: () => Promise<T>): Promise<T> {
    const span = this.#tracer.startSpan(`sluice.action ${this.#run.action}`, { attributes: { [SPAN_ATTRIBUTES.action]: this.#run.action } }, this.#context);
    return context.with(trace.setSpan(this.#context, span), body).then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        if (this.#run.isCancelled) span.setAttribute(SPAN_ATTRIBUTES.outcome, 'cancelled');
        else {
          span.recordException(error instanceof Error ? error : String(error));
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        }
        span.end();
        throw error;
      },
    );
  }
}
