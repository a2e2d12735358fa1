/**
 * Prometheus metrics of a Sluice server (`prom-client`), fed by the executor's run observer seam
 * (`src/runtime/observer.ts`) and the transports' {@link WireMeter}s.
 *
 * Cheap by construction: per chunk a run's watch only counts (one increment, and a time stamp for
 * the first); histograms and labelled counters are touched once per run, at its end; bytes,
 * readers and connections are plain fields the transports bump, read when scraped.
 * @module
 */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import type { ActionExecutor } from '../runtime/executor.ts';
import type { RunMark, RunObserver, RunStartInfo, RunWatch } from '../runtime/observer.ts';
import type { Run } from '../runtime/run.ts';
import { pacerLoad } from '../channels/botframework/pacer.ts';

/** Options of {@link SluiceMetrics}. */
export interface MetricsOptions {
  /** Registry to register in (default: a new one, so two servers in a process do not collide). */
  registry?: Registry;
  /** Also export Node's process metrics (CPU, memory, event-loop lag). Default true. */
  processMetrics?: boolean;
}

/** Latency buckets in seconds: 1 ms to 60 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Run duration buckets in seconds: 5 ms to 10 min. */
const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

const UNKNOWN = 'unknown';

/**
 * The metrics of one or more executors (see {@link SluiceMetrics.attach}). Names: `sluice_*`;
 * `GET /metrics` (see `metricsRoute`) answers with {@link SluiceMetrics.expose}.
 *
 * @example
 * const metrics = new SluiceMetrics();
 * const executor = new ActionExecutor({ actions, observers: [metrics] });
 * metrics.attach(executor);
 */
export class SluiceMetrics implements RunObserver {
  readonly registry: Registry;
  /** @internal */ readonly timeToFirstStatus: Histogram<'transport'>;
  /** @internal */ readonly timeToFirstChunk: Histogram<'transport'>;
  /** @internal */ readonly timeToFirstSentence: Histogram<'transport'>;
  /** @internal */ readonly timeToFirstAudio: Histogram<'transport'>;
  /** @internal */ readonly bargeInToStreamEnd: Histogram<'transport'>;
  /** @internal */ readonly runDuration: Histogram<'action' | 'outcome'>;
  /** @internal */ readonly runsStarted: Counter<'transport' | 'action'>;
  /** @internal */ readonly runsEnded: Counter<'reason'>;
  /** @internal */ readonly chunks: Counter<'transport'>;
  /** @internal */ readonly dropped: Counter;
  /** @internal */ readonly cancelled: Counter<'reason'>;
  /** @internal */ readonly timedOut: Counter;
  /** @internal */ readonly errors: Counter<'code'>;
  readonly #executors = new Set<ActionExecutor>();

  constructor(options: MetricsOptions = {}) {
    const registry = (this.registry = options.registry ?? new Registry());
    const registers = [registry];
    const latency = (name: string, help: string): Histogram<'transport'> =>
      new Histogram({ name, help, labelNames: ['transport'], buckets: LATENCY_BUCKETS, registers });
    this.timeToFirstStatus = latency('sluice_time_to_first_status_seconds', 'Run start to its first status event');
    this.timeToFirstChunk = latency('sluice_time_to_first_chunk_seconds', 'Run start to its first streamed chunk');
    this.timeToFirstSentence = latency('sluice_time_to_first_sentence_seconds', 'Run start to its first complete sentence (voice consumers)');
    this.timeToFirstAudio = latency('sluice_time_to_first_audio_seconds', 'Run start to its first audio frame (voice socket)');
    this.bargeInToStreamEnd = latency('sluice_barge_in_to_stream_end_seconds', 'Barge-in ack to the end of the stream it stopped');
    this.runDuration = new Histogram({
      name: 'sluice_run_duration_seconds',
      help: 'Run start to run-end, by action and outcome (completed, cancelled, timeout, error)',
      labelNames: ['action', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.runsStarted = new Counter({ name: 'sluice_runs_started_total', help: 'Runs started, by transport and action', labelNames: ['transport', 'action'], registers });
    this.runsEnded = new Counter({ name: 'sluice_runs_ended_total', help: 'Runs ended, by run-end reason', labelNames: ['reason'], registers });
    this.chunks = new Counter({ name: 'sluice_chunks_total', help: 'Chunks streamed by runs, by the transport that started them', labelNames: ['transport'], registers });
    this.dropped = new Counter({ name: 'sluice_events_dropped_total', help: 'Unread events discarded by cancels (barge-in, stop, disconnect)', registers });
    this.cancelled = new Counter({ name: 'sluice_runs_cancelled_total', help: 'Cancels, by reason (barge_in, stop, disconnect, …)', labelNames: ['reason'], registers });
    this.timedOut = new Counter({ name: 'sluice_runs_timed_out_total', help: 'Runs abandoned after the barge-in timeout', registers });
    this.errors = new Counter({ name: 'sluice_errors_total', help: 'Runs that ended with an error event, by code', labelNames: ['code'], registers });

    const executors = this.#executors;
    const sum = (read: (executor: ActionExecutor) => number): number => {
      let total = 0;
      for (const executor of executors) total += read(executor);
      return total;
    };
    const byTransport = (read: (meter: { writes: number; bytes: number; readers: number; connections: number }) => number): Map<string, number> => {
      const out = new Map<string, number>();
      for (const executor of executors) {
        for (const [transport, meter] of executor.wire.entries()) out.set(transport, (out.get(transport) ?? 0) + read(meter));
      }
      return out;
    };
    new Gauge({
      name: 'sluice_active_runs',
      help: 'Runs that have not ended',
      registers,
      collect() {
        this.set(sum((e) => e.activeRuns));
      },
    });
    new Gauge({
      name: 'sluice_active_streams',
      help: 'Streamed messages open (an ack could still find them)',
      registers,
      collect() {
        this.set(sum((e) => e.activeStreams));
      },
    });
    const perTransport = (metric: Gauge<'transport'> | Counter<'transport'>, values: Map<string, number>): void => {
      metric.reset();
      for (const [transport, value] of values) {
        if (metric instanceof Gauge) metric.set({ transport }, value);
        else metric.inc({ transport }, value);
      }
    };
    new Gauge({
      name: 'sluice_readers',
      help: 'Readers of runs open, by transport (SSE responses, sockets reading a run, RPCs)',
      labelNames: ['transport'],
      registers,
      collect() {
        perTransport(this, byTransport((m) => m.readers));
      },
    });
    new Gauge({
      name: 'sluice_connections',
      help: 'Open connections, by transport (WebSocket, SSE)',
      labelNames: ['transport'],
      registers,
      collect() {
        perTransport(this, byTransport((m) => m.connections));
      },
    });
    new Counter({
      name: 'sluice_bytes_out_total',
      help: 'Bytes written to clients, by transport',
      labelNames: ['transport'],
      registers,
      collect() {
        perTransport(this, byTransport((m) => m.bytes));
      },
    });
    new Counter({
      name: 'sluice_writes_total',
      help: 'Writes to clients (SSE bursts, WebSocket messages, gRPC messages), by transport',
      labelNames: ['transport'],
      registers,
      collect() {
        perTransport(this, byTransport((m) => m.writes));
      },
    });
    new Gauge({
      name: 'sluice_botframework_sends_queued',
      help: 'Bot Framework streams with a send waiting for its slot or in flight',
      registers,
      collect() {
        this.set(pacerLoad.queued);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  }

  /** Reports the gauges of `executor` (active runs, streams, its transports' wire meters). */
  attach(executor: ActionExecutor): this {
    this.#executors.add(executor);
    return this;
  }

  /** The Prometheus text exposition of every metric. */
  expose(): Promise<string> {
    return this.registry.metrics();
  }

  /** Content type of {@link SluiceMetrics.expose}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** @internal */
  runStarted(run: Run, info: RunStartInfo): RunWatch {
    const transport = info.transport ?? UNKNOWN;
    this.runsStarted.inc({ transport, action: run.action === '' ? UNKNOWN : run.action });
    return new RunMetricsWatch(this, run, transport);
  }
}

/** One run's counts and first times; published at run-end. */
class RunMetricsWatch implements RunWatch {
  readonly #m: SluiceMetrics;
  readonly #run: Run;
  readonly #transport: string;
  readonly #t0 = performance.now();
  #status = false;
  #sentence = false;
  #audio = false;
  #bargeAt = -1;

  constructor(metrics: SluiceMetrics, run: Run, transport: string) {
    this.#m = metrics;
    this.#run = run;
    this.#transport = transport;
  }

  firstChunk(): void {
    this.#first(this.#m.timeToFirstChunk);
  }

  event(event: SluiceEvent): void {
    switch (event.type) {
      case 'status':
        if (!this.#status) {
          this.#status = true;
          this.#first(this.#m.timeToFirstStatus);
        }
        return;
      case 'stream-end':
        this.#bargeEnded();
        return;
      case 'error':
        this.#m.errors.inc({ code: event.code });
        return;
      case 'run-end': {
        this.#bargeEnded();
        const m = this.#m;
        m.runDuration.observe({ action: this.#run.action === '' ? UNKNOWN : this.#run.action, outcome: event.reason }, (performance.now() - this.#t0) / 1000);
        m.runsEnded.inc({ reason: event.reason });
        const chunks = this.#run.chunks;
        if (chunks > 0) m.chunks.inc({ transport: this.#transport }, chunks);
        if (event.reason === 'timeout') m.timedOut.inc();
        return;
      }
      default:
        return;
    }
  }

  cancelled(reason: SluiceError, dropped: number): void {
    const why = typeof reason.details.reason === 'string' ? reason.details.reason : reason.code;
    this.#m.cancelled.inc({ reason: why });
    if (dropped > 0) this.#m.dropped.inc(dropped);
    if (why === 'barge_in') {
      this.#bargeAt = performance.now();
      // A late barge-in (the result was in) ends the stream at once, with no event of its own.
      if (this.#run.hasTerminal) this.#bargeEnded();
    }
  }

  mark(mark: RunMark): void {
    if (mark === 'sentence' && !this.#sentence) {
      this.#sentence = true;
      this.#first(this.#m.timeToFirstSentence);
    } else if (mark === 'audio' && !this.#audio) {
      this.#audio = true;
      this.#first(this.#m.timeToFirstAudio);
    }
  }

  #first(histogram: Histogram<'transport'>): void {
    histogram.observe({ transport: this.#transport }, (performance.now() - this.#t0) / 1000);
  }

  #bargeEnded(): void {
    if (this.#bargeAt < 0) return;
    this.#m.bargeInToStreamEnd.observe({ transport: this.#transport }, (performance.now() - this.#bargeAt) / 1000);
    this.#bargeAt = -1;
  }
}
