/**
 * What observability costs per chunk: the same action (N small text chunks) with metrics and
 * tracing off (`tracing: false`, no observer) and on (`SluiceMetrics` observing, `RunTracer` with
 * no SDK registered — what `sluice serve` runs without `OTEL_*`), interleaved in one process, on
 * two paths: in process (executor → one subscriber) and over SSE to a client in a worker thread
 * (beside the raw `node:http` SSE writer of bench/sse.ts). Medians; target: on ÷ off ≤ 1.05.
 *
 *   node bench/metrics.ts            (N=200000 RUNS=15 WARMUP=2 by default)
 *
 * Besides the ratio of the medians, the median of the paired ratios (on ÷ off of the same round)
 * is printed: on a busy machine it is the steadier figure.
 */

import { performance } from 'node:perf_hooks';
import { SluiceMetrics } from '../src/obs/metrics.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { SSE_HEADERS, createHttpServer } from '../src/transports/http/index.ts';
import { benchCall, chunksAction, envInt, frameClient, interleavedRuns, line, median, printComparison, rawSseServer } from './http-lib.ts';

const N = envInt('N', 200_000);
const RUNS = envInt('RUNS', 15);
const WARMUP = envInt('WARMUP', 2);

const off = new ActionExecutor({ logger: silentLogger, actions: [chunksAction(N)], tracing: false });
const metrics = new SluiceMetrics();
const on = new ActionExecutor({ logger: silentLogger, actions: [chunksAction(N)], observers: [metrics] });
metrics.attach(on);

// --- In process: executor → one subscriber.
async function inProcess(executor: ActionExecutor): Promise<number> {
  const start = performance.now();
  let chunks = 0;
  for await (const event of executor.start(benchCall, { transport: 'in-process' }).subscribe()) if (event.type === 'chunk') chunks++;
  const ms = performance.now() - start;
  if (chunks !== N) throw new Error(`expected ${N} chunks, got ${chunks}`);
  return ms;
}
const local: Record<'off' | 'on', number[]> = { off: [], on: [] };
for (let i = 0; i < WARMUP + RUNS; i++) {
  // Alternating which goes first, so neither always runs on a freshly collected heap.
  const order: ('off' | 'on')[] = i % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
  for (const name of order) {
    const ms = await inProcess(name === 'off' ? off : on);
    if (i >= WARMUP) local[name].push(ms);
  }
}
const localRatio = median(local.on) / median(local.off);
const paired = (on: number[], off: number[]): number => median(on.map((t, i) => t / off[i]!));
console.log(`In process, ${N.toLocaleString('en-US')} chunks to one subscriber, median of ${RUNS} runs after ${WARMUP} warm-up (Node ${process.version})`);
console.log(line('metrics + tracing off', median(local.off), N));
console.log(line('metrics + tracing on', median(local.on), N));
console.log(`  ratio on / off ${localRatio.toFixed(3)}× (medians), ${paired(local.on, local.off).toFixed(3)}× (median of paired rounds)  (target ≤ 1.05)`);
console.log(`  runs (ms) off ${local.off.map((t) => t.toFixed(0)).join(' ')}`);
console.log(`  runs (ms) on  ${local.on.map((t) => t.toFixed(0)).join(' ')}`);
console.log('');

// --- Over SSE.
const appOff = createHttpServer({ executor: off });
const appOn = createHttpServer({ executor: on });
const urlOff = `${await appOff.listen({ port: 0, host: '127.0.0.1' })}/webhook/stream`;
const urlOn = `${await appOn.listen({ port: 0, host: '127.0.0.1' })}/webhook/stream`;
const runId = '5f0c1d9e-2a43-4c1b-9f5e-1a2b3c4d5e6f';
const responseId = '0123456789abcdef0123456789abcdef';
const raw = await rawSseServer(N, SSE_HEADERS, (seq) => `id: ${seq}\nevent: chunk\ndata: ${JSON.stringify({ type: 'chunk', responseId, text: 'tok ', runId, seq })}\n\n`);
const client = frameClient();
const body = JSON.stringify(benchCall);
const jobs = {
  raw: () => ({ url: raw.url, frames: N }),
  off: () => ({ url: urlOff, body, frames: N + 5 }),
  on: () => ({ url: urlOn, body, frames: N + 5 }),
};
// Half the rounds with `off` first, half with `on` first: a run pays for the garbage of the one
// before it, and a fixed order would bill that to one side.
const first = await interleavedRuns(jobs, client.measure, WARMUP, Math.ceil(RUNS / 2));
const second = await interleavedRuns({ raw: jobs.raw, on: jobs.on, off: jobs.off }, client.measure, 0, Math.floor(RUNS / 2));
const times = { raw: [...first.raw, ...second.raw], off: [...first.off, ...second.off], on: [...first.on, ...second.on] };
printComparison(
  `SSE, ${N.toLocaleString('en-US')} chunks to one client, median of ${RUNS} runs after ${WARMUP} warm-up`,
  N,
  [
    { key: 'raw', label: 'raw SSE, 1 write/event' },
    { key: 'off', label: 'sluice SSE, obs off' },
    { key: 'on', label: 'sluice SSE, obs on' },
  ],
  times,
  [`ratio on / off ${(median(times.on) / median(times.off)).toFixed(3)}× (medians), ${paired(times.on, times.off).toFixed(3)}× (median of paired rounds)  (target ≤ 1.05)`],
);
const scraped = await metrics.expose();
const chunkLine = scraped.split('\n').find((l) => l.startsWith('sluice_chunks_total{transport="http-sse"}'));
console.log(`  scraped after the runs: ${chunkLine ?? '(no http-sse chunk counter)'}`);

await client.close();
raw.close();
await appOff.close();
await appOn.close();
await off.close();
await on.close();
