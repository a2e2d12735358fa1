/**
 * Benchmark of the runtime hot path: chunk → Run → subscriber, the full executor path (generator
 * and Rasa-style actions), and barge-in latency (ack → run-end). Every figure is the median of
 * REPS repetitions after a warm-up, and each chunk path is compared with a raw async generator
 * measured in the same process with the same N.
 *
 *   node bench/run.ts                 N = 100,000 and 1,000,000
 *   BENCH_BIG=1 node bench/run.ts     also N = 10,000,000
 *   BENCH_REPS=9 node bench/run.ts    more repetitions (default 5)
 */

import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { SluiceEvent } from '../src/protocol/events.ts';
import { newResponseId } from '../src/protocol/ids.ts';
import { defineAction } from '../src/runtime/action.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { slotSet } from '../src/runtime/rasa-events.ts';
import { Run } from '../src/runtime/run.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const REPS = Math.max(5, Number(process.env.BENCH_REPS ?? 5) || 5);
const SIZES = [100_000, 1_000_000, ...(process.env.BENCH_BIG === '1' ? [10_000_000] : [])];
const BARGE_IN_RUNS = 1_000;
const TARGET_US_PER_CHUNK = 0.5;
const TARGET_RATIO = 5;
const TARGET_FLAT = 1.5; // µs/chunk may grow at most this much when N grows 10×
const TARGET_BARGE_IN_MS = 1;

const CALL = (name: string): Record<string, unknown> => ({ next_action: name, tracker: { sender_id: 'bench' } });

// ---------------------------------------------------------------------------------------------
// Measurement helpers

interface Sample {
  ms: number;
  /** Peak process RSS sampled during the case, in bytes. */
  rss: number;
  /** Heap still held at the end of the case (after a full GC, with the run still referenced), in bytes. */
  retained: number;
}

/**
 * Samples RSS every 8 Ki events (a syscall of about 1 µs: below 0.001 µs/chunk). With `retained`
 * (an untimed pass: forced GCs reset the young generation and slow short cases), `done` also
 * measures the heap the case still holds; call it while the run and its log are still referenced.
 */
class MemoryProbe {
  readonly heapStart: number;
  readonly measure: boolean;
  rss = process.memoryUsage.rss();
  constructor(retained: boolean) {
    this.measure = retained;
    if (retained) gc();
    this.heapStart = process.memoryUsage().heapUsed;
  }
  tick(i: number): void {
    if ((i & 0x1fff) === 0) {
      const rss = process.memoryUsage.rss();
      if (rss > this.rss) this.rss = rss;
    }
  }
  done(ms: number, keepAlive?: unknown): Sample {
    this.tick(0);
    if (!this.measure) return { ms, rss: this.rss, retained: Number.NaN };
    gc();
    const retained = Math.max(0, process.memoryUsage().heapUsed - this.heapStart);
    if (keepAlive === null) console.log('unreachable'); // keeps `keepAlive` alive through the GC above
    return { ms, rss: this.rss, retained };
  }
}

type Case = (n: number, retained?: boolean) => Promise<Sample>;

/** Raw baseline: an async generator yielding the same chunk objects, consumed by `for await`. */
const rawGenerator: Case = async (n, retained = false) => {
  const responseId = newResponseId();
  async function* produce(): AsyncGenerator<{ type: 'chunk'; responseId: string; text: string }> {
    for (let i = 0; i < n; i++) yield { type: 'chunk', responseId, text: 'x' };
  }
  const probe = new MemoryProbe(retained);
  const start = performance.now();
  let count = 0;
  for await (const chunk of produce()) {
    if (chunk.text.length === 1) count++;
    probe.tick(count);
  }
  const ms = performance.now() - start;
  if (count !== n) throw new Error(`raw: read ${count} of ${n}`);
  return probe.done(ms);
};

/** A Run with one subscriber: `run.emit(chunk)` (awaiting when asked) → `for await` over `subscribe()`. */
const runOneSubscriber: Case = async (n, retained = false) => {
  const responseId = newResponseId();
  const run = new Run({ action: 'bench' });
  const probe = new MemoryProbe(retained);
  const start = performance.now();
  const consuming = (async () => {
    let count = 0;
    for await (const event of run.subscribe()) {
      if (event.type === 'chunk') count++;
      probe.tick(count);
    }
    return count;
  })();
  for (let i = 0; i < n; i++) {
    const wait = run.emit({ type: 'chunk', responseId, text: 'x' });
    if (wait !== undefined) await wait;
  }
  const wait = run.emit({ type: 'result', events: [], responses: [] });
  if (wait !== undefined) await wait;
  run.emit({ type: 'run-end', reason: 'completed' });
  const count = await consuming;
  const ms = performance.now() - start;
  if (count !== n) throw new Error(`run: read ${count} of ${n}`);
  return probe.done(ms, run);
};

function executorCase(style: 'stream' | 'run'): Case {
  return async (n, retained = false) => {
    const action =
      style === 'stream'
        ? defineAction({
            name: 'bench',
            async *stream() {
              for (let i = 0; i < n; i++) yield 'x';
              return [];
            },
          })
        : defineAction({
            name: 'bench',
            async run(dispatcher) {
              for (let i = 0; i < n; i++) await dispatcher.streamChunk({ text: 'x' });
              await dispatcher.streamEnd();
              return [];
            },
          });
    const executor = new ActionExecutor({ logger: silentLogger, actions: [action] });
    const probe = new MemoryProbe(retained);
    const start = performance.now();
    const run = executor.start(CALL('bench'));
    let count = 0;
    let last: SluiceEvent | undefined;
    for await (const event of run.subscribe()) {
      if (event.type === 'chunk') count++;
      last = event;
      probe.tick(count);
    }
    const ms = performance.now() - start;
    if (count !== n || last?.type !== 'run-end' || last.reason !== 'completed') {
      throw new Error(`executor/${style}: read ${count} of ${n}, ended ${JSON.stringify(last)}`);
    }
    return probe.done(ms, run);
  };
}

/** Ack → run-end latency (ms) over `runs` barge-ins. */
async function bargeIn(style: 'stream' | 'run', runs: number): Promise<number[]> {
  const interrupted = [slotSet('interrupted', true)];
  const action =
    style === 'stream'
      ? defineAction({
          name: 'talk',
          async *stream(ctx) {
            while (!ctx.signal.aborted) yield 'x';
            return interrupted;
          },
        })
      : defineAction({
          name: 'talk',
          async run(dispatcher, _tracker, _domain, ctx) {
            while (!ctx.signal.aborted) await dispatcher.streamChunk({ text: 'x' });
            return interrupted;
          },
        });
  const executor = new ActionExecutor({ logger: silentLogger, actions: [action] });
  const latencies: number[] = [];
  for (let r = 0; r < runs; r++) {
    const run = executor.start(CALL('talk'));
    let chunks = 0;
    let acked = 0;
    let result: SluiceEvent | undefined;
    for await (const event of run.subscribe()) {
      if (event.type === 'chunk' && ++chunks === 10) {
        acked = performance.now();
        if (!executor.ack(event.responseId)) throw new Error('barge-in: the ack found no stream');
      } else if (event.type === 'result') result = event;
      else if (event.type === 'run-end') {
        latencies.push(performance.now() - acked);
        if (event.reason !== 'cancelled' || result?.type !== 'result' || result.events.length !== 1) {
          throw new Error(`barge-in: ended ${event.reason} with ${JSON.stringify(result)}`);
        }
      }
    }
  }
  if (executor.activeRuns !== 0 || executor.activeStreams !== 0) throw new Error('barge-in: executor not idle');
  return latencies;
}

// ---------------------------------------------------------------------------------------------
// Statistics and printing

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function quantile(xs: number[], q: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
}

const fmt = (x: number, digits = 3): string => x.toFixed(digits);
const int = (x: number): string => Math.round(x).toLocaleString('en-US');
const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MB`;
const rate = (perSecond: number): string =>
  perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(2)} M/s` : `${(perSecond / 1e3).toFixed(1)} k/s`;
const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
const mark = (ok: boolean): string => (ok ? 'ok' : 'MISSED');

const CASES: { key: string; label: string; fn: Case }[] = [
  { key: 'raw', label: 'raw async generator (baseline)', fn: rawGenerator },
  { key: 'run', label: 'Run → 1 subscriber', fn: runOneSubscriber },
  { key: 'gen', label: 'executor: generator action', fn: executorCase('stream') },
  { key: 'rasa', label: 'executor: dispatcher.streamChunk', fn: executorCase('run') },
];

interface Row {
  key: string;
  label: string;
  n: number;
  usPerChunk: number;
  rss: number;
  retained: number;
}

async function main(): Promise<void> {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`Sluice runtime benchmark — Node ${process.version}, ${cpu}, ${cpus().length} CPUs`);
  console.log(`every figure is the median of ${REPS} repetitions after a warm-up; N = ${SIZES.map(int).join(', ')}\n`);

  const baseRss = process.memoryUsage.rss();
  // Warm-up: every path, twice, at the smallest size.
  for (let i = 0; i < 2; i++) for (const c of CASES) await c.fn(SIZES[0] as number);
  await bargeIn('stream', 100);
  await bargeIn('run', 100);

  const rows: Row[] = [];
  for (const n of SIZES) {
    const samples = new Map<string, Sample[]>(CASES.map((c) => [c.key, []]));
    // Interleave the cases in each repetition so drift (thermal, GC) hits them alike.
    for (let r = 0; r < REPS; r++) {
      for (const c of CASES) (samples.get(c.key) as Sample[]).push(await c.fn(n));
    }
    const retainedBy = new Map<string, number>();
    for (const c of CASES) retainedBy.set(c.key, (await c.fn(n, true)).retained);
    gc();
    for (const c of CASES) {
      const s = samples.get(c.key) as Sample[];
      rows.push({
        key: c.key,
        label: c.label,
        n,
        usPerChunk: (median(s.map((x) => x.ms)) * 1000) / n,
        rss: median(s.map((x) => x.rss)),
        retained: retainedBy.get(c.key) as number,
      });
    }
  }

  const rawOf = (n: number): number => (rows.find((r) => r.key === 'raw' && r.n === n) as Row).usPerChunk;
  console.log(`process RSS before the first case: ${mb(baseRss)} (Node + imports). Peak RSS is the process's, sampled during`);
  console.log(`the case (it never shrinks back); "retained" is the heap the finished run still holds (its event log).\n`);
  console.log(`${pad('path', 34)}${lpad('N', 12)}${lpad('µs/chunk', 10)}${lpad('chunks/s', 12)}${lpad('× raw', 8)}${lpad('peak RSS', 10)}${lpad('retained', 10)}`);
  for (const row of rows) {
    const ratio = row.usPerChunk / rawOf(row.n);
    console.log(
      `${pad(row.label, 34)}${lpad(int(row.n), 12)}${lpad(fmt(row.usPerChunk), 10)}${lpad(rate(1e6 / row.usPerChunk), 12)}${lpad(row.key === 'raw' ? '1.00' : fmt(ratio, 2), 8)}${lpad(mb(row.rss), 10)}${lpad(mb(row.retained), 10)}`,
    );
  }

  // Barge-in: REPS × 1,000 runs per style; median of the per-repetition medians and p99s.
  const barge: { style: string; med: number; p99: number }[] = [];
  for (const style of ['stream', 'run'] as const) {
    const meds: number[] = [];
    const p99s: number[] = [];
    for (let r = 0; r < REPS; r++) {
      gc();
      const latencies = await bargeIn(style, BARGE_IN_RUNS);
      meds.push(median(latencies));
      p99s.push(quantile(latencies, 0.99));
    }
    barge.push({ style: style === 'stream' ? 'generator action' : 'dispatcher action', med: median(meds), p99: median(p99s) });
  }
  console.log(`\nbarge-in: ack(responseId) after the 10th chunk → run-end received (${BARGE_IN_RUNS} runs × ${REPS})`);
  for (const b of barge) {
    console.log(`  ${pad(b.style, 20)} median ${lpad(fmt(b.med * 1000, 1), 7)} µs   p99 ${lpad(fmt(b.p99 * 1000, 1), 7)} µs`);
  }

  // Targets.
  console.log('\ntargets');
  const paths = rows.filter((r) => r.key !== 'raw');
  const worstUs = Math.max(...paths.map((r) => r.usPerChunk));
  const worstRatio = Math.max(...paths.map((r) => r.usPerChunk / rawOf(r.n)));
  console.log(`  ≤ ${TARGET_US_PER_CHUNK} µs/chunk (every path, every N)   worst ${fmt(worstUs)} µs           ${mark(worstUs <= TARGET_US_PER_CHUNK)}`);
  for (const key of ['run', 'gen', 'rasa']) {
    const mine = paths.filter((r) => r.key === key);
    const label = (mine[0] as Row).label;
    const worst = Math.max(...mine.map((r) => r.usPerChunk / rawOf(r.n)));
    console.log(`  ≤ ${TARGET_RATIO}× raw: ${pad(label, 34)} worst ${fmt(worst, 2)}×  ${mark(worst <= TARGET_RATIO)}`);
  }
  for (const key of ['raw', 'run', 'gen', 'rasa']) {
    const mine = rows.filter((r) => r.key === key);
    const growth = mine.slice(1).map((r, i) => r.usPerChunk / (mine[i] as Row).usPerChunk);
    const worst = Math.max(...growth);
    console.log(
      `  flat ×10 N (≤ ${TARGET_FLAT}×): ${pad((mine[0] as Row).label, 32)} ${growth.map((g) => `${fmt(g, 2)}×`).join(' ')}  ${key === 'raw' ? '(reference)' : mark(worst <= TARGET_FLAT)}`,
    );
  }
  for (const b of barge) {
    console.log(`  barge-in < ${TARGET_BARGE_IN_MS} ms (${b.style}): p99 ${fmt(b.p99, 3)} ms  ${mark(b.p99 < TARGET_BARGE_IN_MS)}`);
  }
}

await main();
