/**
 * The seam observability plugs into: an executor tells its {@link RunObserver}s about every run it
 * starts, and a run tells the {@link RunWatch} it got back about its events. Metrics and traces
 * (`src/obs/`) are observers; the runtime itself knows neither Prometheus nor OpenTelemetry.
 *
 * Cost: a run without a watch pays one null check per event. A watch is called once per event
 * (once per chunk, with the chunk's text only): keep that call to counting, and do the rest at
 * `run-end`.
 * @module
 */

import type { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import type { Run } from './run.ts';

/** What an observer is told about a run as it starts. */
export interface RunStartInfo {
  /** The transport that started the run (`StartOptions.transport`), e.g. `http-sse`, `grpc`. */
  transport: string | undefined;
  /**
   * Trace-context headers of the request that started the run (W3C `traceparent`, `tracestate`),
   * lower-case names; undefined when the transport has none.
   */
  traceHeaders: Readonly<Record<string, string>> | undefined;
}

/** Something a consumer of a run reports back, which only it can see. */
export type RunMark = 'sentence' | 'audio';

/** Follows one run; every method is optional. */
export interface RunWatch {
  /**
   * Every event the run emits but its text chunks, once it has its `seq` (`run-start` first,
   * `run-end` last). Chunks go to {@link RunWatch.firstChunk} and {@link RunWatch.chunk}, so a watch
   * that only counts them pays nothing per chunk (the run counts them: `Run.chunks`).
   */
  event?(event: SluiceEvent): void;
  /** The run's first chunk was emitted (once). */
  firstChunk?(): void;
  /** Every chunk's text (a tracer sums bytes): only for watches that need each one. */
  chunk?(text: string): void;
  /** The run was cancelled (stop, barge-in, disconnect…); `dropped` unread events were discarded. */
  cancelled?(reason: SluiceError, dropped: number): void;
  /** A consumer produced the run's first sentence / first audio (voice), see {@link Run.mark}. */
  mark?(mark: RunMark): void;
  /** Runs the action body: a tracer makes its span the active context for it. */
  invoke?<T>(body: () => Promise<T>): Promise<T>;
}

/** Told about every run an executor starts. */
export interface RunObserver {
  /** Returns what follows the run, or undefined to ignore it. Must not throw. */
  runStarted(run: Run, info: RunStartInfo): RunWatch | undefined;
}

/**
 * Output of one transport, counted by its writers in plain fields (no call per write): frames
 * written, bytes written, readers open. Metrics read them when scraped.
 */
export class WireMeter {
  /** Writes to the wire (an SSE burst, a WebSocket message, a gRPC message). */
  writes = 0;
  /** Bytes written. */
  bytes = 0;
  /** Readers of runs currently open on this transport (SSE responses, sockets, RPCs). */
  readers = 0;
  /** Connections currently open (a WebSocket; an SSE response is one too). */
  connections = 0;
}

/** One {@link WireMeter} per transport name, made on first use. */
export class WireMeters {
  readonly #meters = new Map<string, WireMeter>();

  /** The meter of `transport` (kept for the process: call once per writer, not per write). */
  of(transport: string): WireMeter {
    let meter = this.#meters.get(transport);
    if (meter === undefined) {
      meter = new WireMeter();
      this.#meters.set(transport, meter);
    }
    return meter;
  }

  /** Every meter by transport. */
  entries(): IterableIterator<[string, WireMeter]> {
    return this.#meters.entries();
  }
}

/** Joins the watches several observers returned into one. */
export function watchOf(run: Run, info: RunStartInfo, observers: readonly RunObserver[]): RunWatch | null {
  if (observers.length === 0) return null;
  const watches: RunWatch[] = [];
  for (const observer of observers) {
    const watch = observer.runStarted(run, info);
    if (watch !== undefined) watches.push(watch);
  }
  if (watches.length === 0) return null;
  if (watches.length === 1) return watches[0]!;
  const invokers = watches.filter((w) => w.invoke !== undefined);
  const chunkers = watches.filter((w) => w.chunk !== undefined);
  return {
    event: (event) => {
      for (const w of watches) w.event?.(event);
    },
    firstChunk: () => {
      for (const w of watches) w.firstChunk?.();
    },
    ...(chunkers.length === 0
      ? {}
      : {
          chunk: (text: string) => {
            for (const w of chunkers) w.chunk!(text);
          },
        }),
    cancelled: (reason, dropped) => {
      for (const w of watches) w.cancelled?.(reason, dropped);
    },
    mark: (mark) => {
      for (const w of watches) w.mark?.(mark);
    },
    invoke: <T>(body: () => Promise<T>): Promise<T> =>
      invokers.reduceRight<() => Promise<T>>((inner, w) => () => w.invoke!(inner), body)(),
  };
}

/** Picks the W3C trace-context headers out of request headers (Node's, or a `Headers` object). */
export function traceHeadersOf(
  headers: Record<string, string | string[] | undefined> | { get(name: string): string | null } | undefined,
): Record<string, string> | undefined {
  if (headers === undefined) return undefined;
  let out: Record<string, string> | undefined;
  for (const name of ['traceparent', 'tracestate', 'baggage']) {
    const raw = typeof (headers as { get?: unknown }).get === 'function'
      ? (headers as { get(name: string): string | null }).get(name)
      : (headers as Record<string, string | string[] | undefined>)[name];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (typeof value === 'string' && value !== '') (out ??= {})[name] = value;
  }
  return out;
}
