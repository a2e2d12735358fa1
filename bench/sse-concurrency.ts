/**
 * Many concurrent SSE streams against one Sluice server (this process); the clients run in a
 * child process so the server's memory and CPU are measured alone.
 *
 * 1. Memory: opens N idle streams (the action waits for its signal), then reports the server's
 *    RSS and heap growth per stream (after a forced GC), and closes them (cancel on disconnect).
 * 2. Latency: opens N streams whose action emits 20 chunks/s, each carrying its emit time; the
 *    client records receive time − emit time and reports p50 / p99 / max.
 *
 *   N=2000 DURATION_S=8 node bench/sse-concurrency.ts
 *
 * Each side holds one file descriptor per stream: N is bounded by `ulimit -n` (checked below).
 */

import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { defineAction } from '../src/runtime/action.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { createHttpServer } from '../src/transports/http/index.ts';
import { envInt, percentile } from './http-lib.ts';

const RATE = 20;
/** Streams opened at once while ramping up (the listen backlog is 511). */
const OPEN_BATCH = 250;

interface OpenCommand {
  type: 'open';
  url: string;
  action: string;
  n: number;
  /** Chunks to wait for per stream (0: wait only for the first event). */
  chunks: number;
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function callFor(action: string, sender: string, count: number): string {
  return JSON.stringify({
    next_action: action,
    sender_id: sender,
    tracker: { sender_id: sender, slots: { count }, latest_message: {}, events: [] },
    domain: { version: '3.1' },
  });
}

if (process.argv[2] === 'client') {
  // ---- client process ----
  const open: http.ClientRequest[] = [];
  process.on('message', async (message: OpenCommand | { type: 'close' }) => {
    if (message.type === 'close') {
      for (const req of open.splice(0)) req.destroy();
      process.send!({ type: 'closed' });
      return;
    }
    const { url, action, n, chunks } = message;
    const latencies = new Float64Array(n * Math.max(chunks, 1));
    let samples = 0;
    let firstAt = 0;
    let lastAt = 0;
    let ready = 0;
    let finished = 0;
    let failed = 0;
    const openOne = (i: number): Promise<void> =>
      new Promise((resolve) => {
        const body = callFor(action, `s${i}`, chunks);
        const req = http.request(url, {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        });
        open.push(req);
        req.on('error', () => {
          failed++;
          resolve();
        });
        req.on('response', (res) => {
          res.setEncoding('utf8');
          let tail = '';
          let first = true;
          res.on('data', (text: string) => {
            const received = now();
            if (first) {
              first = false;
              ready++;
              resolve();
            }
            tail += text;
            let end = tail.indexOf('\n\n');
            let start = 0;
            while (end !== -1) {
              // "id: …\nevent: chunk\ndata: {…"text":"<emit time>"…}"
              if (tail.startsWith('event: chunk', tail.indexOf('\n', start) + 1)) {
                const at = tail.indexOf('"text":"', start) + 8;
                const emitted = Number(tail.slice(at, tail.indexOf('"', at)));
                if (samples < latencies.length) latencies[samples++] = received - emitted;
                if (firstAt === 0) firstAt = received;
                lastAt = received;
              }
              start = end + 2;
              end = tail.indexOf('\n\n', start);
            }
            tail = tail.slice(start);
          });
          res.on('end', () => {
            finished++;
          });
        });
        req.end(body);
      });
    for (let i = 0; i < n; i += OPEN_BATCH) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(n, i + OPEN_BATCH); j++) batch.push(openOne(j));
      await Promise.all(batch);
    }
    process.send!({ type: 'ready', ready, failed });
    if (chunks === 0) return;
    while (finished + failed < n) await sleep(50);
    const sorted = latencies.subarray(0, samples).sort();
    process.send!({
      type: 'latency',
      samples,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted[samples - 1],
      rate: samples / ((lastAt - firstAt) / 1000),
    });
    open.length = 0;
  });
} else {
  // ---- server process ----
  const N = envInt('N', 2000);
  const DURATION_S = envInt('DURATION_S', 8);
  const fdLimit = await fdLimitOf();
  if (fdLimit !== undefined && N + 100 > fdLimit) {
    console.log(`N=${N} needs more file descriptors than ulimit -n allows (${fdLimit}); use N ≤ ${fdLimit - 100}`);
    process.exit(1);
  }
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;

  const executor = new ActionExecutor({
    logger: silentLogger,
    actions: [
      defineAction({
        name: 'bench_idle',
        async run(_dispatcher, _tracker, _domain, { signal }) {
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          return [];
        },
      }),
      defineAction({
        name: 'bench_ticker',
        async *stream({ tracker, signal }) {
          const count = tracker.getSlot('count') as number;
          // Spread the streams over the tick so they do not all fire together.
          await sleep(Math.random() * (1000 / RATE), undefined, { signal });
          for (let i = 0; i < count; i++) {
            yield String(now());
            await sleep(1000 / RATE, undefined, { signal });
          }
        },
      }),
    ],
  });
  const app = createHttpServer({ executor });
  const base = await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
  const url = `${base}/webhook/stream`;
  const client = fork(fileURLToPath(import.meta.url), ['client'], { serialization: 'advanced' });
  const reply = (type: string): Promise<any> =>
    new Promise((resolve) => {
      const on = (message: { type: string }): void => {
        if (message.type !== type) return;
        client.off('message', on);
        resolve(message);
      };
      client.on('message', on);
    });

  console.log(`SSE concurrency, N=${N} streams (Node ${process.version}, ulimit -n ${fdLimit ?? '?'})`);

  // 1. Memory of idle streams.
  await settle(gc);
  const before = process.memoryUsage();
  let t0 = performance.now();
  client.send({ type: 'open', url, action: 'bench_idle', n: N, chunks: 0 } satisfies OpenCommand);
  const opened = await reply('ready');
  const openMs = performance.now() - t0;
  await settle(gc);
  const after = process.memoryUsage();
  console.log(`  idle streams open: ${opened.ready} (failed ${opened.failed}) in ${openMs.toFixed(0)} ms; live runs ${executor.activeRuns}`);
  console.log(
    `  memory per idle stream: RSS ${kib((after.rss - before.rss) / N)} KiB, heap ${kib((after.heapUsed - before.heapUsed) / N)} KiB` +
      `  (RSS ${mib(before.rss)} → ${mib(after.rss)} MiB)`,
  );
  client.send({ type: 'close' });
  await reply('closed');
  await waitIdle(executor);

  // 2. Latency at 20 chunks/s per stream.
  const chunks = RATE * DURATION_S;
  const elu0 = performance.eventLoopUtilization();
  t0 = performance.now();
  client.send({ type: 'open', url, action: 'bench_ticker', n: N, chunks } satisfies OpenCommand);
  const ready = await reply('ready');
  const latency = await reply('latency');
  const elu = performance.eventLoopUtilization(elu0);
  const seconds = (performance.now() - t0) / 1000;
  console.log(`  ticking streams: ${ready.ready} (failed ${ready.failed}), ${chunks} chunks each at ${RATE}/s → ${(N * RATE).toLocaleString('en-US')} chunks/s offered`);
  console.log(
    `  added latency (receive − emit): p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms, max ${latency.max.toFixed(1)} ms over ${latency.samples.toLocaleString('en-US')} chunks`,
  );
  console.log(
    `  delivered ${Math.round(latency.rate).toLocaleString('en-US')} chunks/s (${((latency.rate / (N * RATE)) * 100).toFixed(0)}% of offered; ` +
      'an overloaded server emits late, which shows here rather than in the latency)',
  );
  console.log(`  server event-loop utilisation ${(elu.utilization * 100).toFixed(0)}% over ${seconds.toFixed(1)} s`);

  await waitIdle(executor);
  client.kill();
  await app.close();
  await executor.close();
}

function kib(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}

async function settle(gc: () => void): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(100);
  }
}

async function waitIdle(executor: ActionExecutor): Promise<void> {
  for (let i = 0; i < 600 && executor.activeRuns > 0; i++) await sleep(50);
}

async function fdLimitOf(): Promise<number | undefined> {
  try {
    const { readFile } = await import('node:fs/promises');
    const limits = await readFile('/proc/self/limits', 'utf8');
    const match = /Max open files\s+(\d+)/.exec(limits);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export type { ChildProcess };
