/**
 * `sluice/client` cost per event: reading one run's SSE stream with `SluiceClient` (resume
 * bookkeeping, seq checks, typed events through an async iterator) beside a bare reader — `fetch`
 * plus `eventsource-parser` plus `JSON.parse`, no client logic — measured in the same run against
 * the same stream, interleaved round by round.
 *
 * Two streams: (1) replayed — the bytes of a real Sluice run, recorded once, served by a plain
 * `node:http` server in a worker thread, so the readers' own cost dominates; (2) live — a Sluice
 * server running the action each time (the server's cost is in both figures).
 *
 * Each read is timed twice: wall clock, and the CPU time of the reading thread
 * (`process.threadCpuUsage`). On the replayed stream the server has its own thread, so the reading
 * thread's CPU time is the readers' cost alone, and it holds steady on a busy machine where the
 * wall clock does not; the ≤ 1.5× target is read from it.
 *
 *   node bench/client.ts         (N=100000 RUNS=9 WARMUP=2 by default)
 */

import { once } from 'node:events';
import http from 'node:http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createParser } from 'eventsource-parser';
import { SluiceClient } from '../src/client/index.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { createHttpServer } from '../src/transports/http/index.ts';
import { benchCall, chunksAction, envInt, line, median } from './http-lib.ts';

/** Worker: serves the recorded stream to every POST /webhook/stream and GET /runs/:id/events. */
function serveRecording(): void {
  const { body, runId } = workerData as { body: Uint8Array; runId: string };
  const server = http.createServer(async (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-sluice-run-id': runId });
    for (let offset = 0; offset < body.length; offset += 65_536) {
      if (!res.write(body.subarray(offset, offset + 65_536))) await once(res, 'drain');
    }
    res.end();
  });
  server.listen(0, '127.0.0.1', () => parentPort?.postMessage((server.address() as { port: number }).port));
}

/** Bare reader: fetch + eventsource-parser + JSON.parse; returns the events read. */
async function bare(url: string): Promise<number> {
  const response = await fetch(`${url}/webhook/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(benchCall),
  });
  let count = 0;
  const parser = createParser({
    onEvent(message) {
      JSON.parse(message.data);
      count++;
    },
  });
  const decoder = new TextDecoder();
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  return count;
}

/** The client: returns the events read. */
async function viaClient(url: string): Promise<number> {
  let count = 0;
  for await (const event of new SluiceClient({ baseUrl: url }).start(benchCall)) if (event.seq > 0) count++;
  return count;
}

async function main(): Promise<void> {
  const N = envInt('N', 100_000);
  const RUNS = envInt('RUNS', 9);
  const WARMUP = envInt('WARMUP', 2);

  const executor = new ActionExecutor({ logger: silentLogger, actions: [chunksAction(N)] });
  const app = createHttpServer({ executor });
  const live = await app.listen({ port: 0, host: '127.0.0.1' });

  // Record one real run's bytes.
  const recorded = await fetch(`${live}/webhook/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(benchCall) });
  const body = new Uint8Array(await recorded.arrayBuffer());
  const runId = recorded.headers.get('x-sluice-run-id') as string;
  const worker = new Worker(new URL(import.meta.url), { workerData: { body, runId } });
  const [port] = (await once(worker, 'message')) as [number];
  const replay = `http://127.0.0.1:${port}`;
  // Every frame of the recording is one event (run-start, stream-start, the chunks, stream-end, result, run-end).
  const expected = new TextDecoder().decode(body).split('\n\n').filter((frame) => frame.split('\n').some((l) => l.startsWith('data:'))).length;

  const readers = { bare, client: viaClient } as const;
  const streams = { replayed: replay, live } as const;
  const times: Record<string, number[]> = {};
  /** CPU milliseconds of the reading thread. */
  const cpuTimes: Record<string, number[]> = {};
  for (let round = 0; round < WARMUP + RUNS; round++) {
    for (const [streamName, url] of Object.entries(streams)) {
      for (const [readerName, read] of Object.entries(readers)) {
        const cpuBefore = process.threadCpuUsage();
        const started = performance.now();
        const count = await read(url);
        const ms = performance.now() - started;
        const cpu = process.threadCpuUsage(cpuBefore);
        if (count !== expected) throw new Error(`${readerName} on ${streamName}: read ${count} events, expected ${expected}`);
        if (round < WARMUP) continue;
        (times[`${streamName} ${readerName}`] ??= []).push(ms);
        (cpuTimes[`${streamName} ${readerName}`] ??= []).push((cpu.user + cpu.system) / 1000);
      }
    }
  }

  console.log(`sluice/client vs a bare fetch + eventsource-parser reader, one run of ${expected.toLocaleString('en-US')} events (${(body.length / 1e6).toFixed(1)} MB of SSE), median of ${RUNS} rounds after ${WARMUP} warm-up (Node ${process.version})`);
  for (const stream of Object.keys(streams)) {
    const replayed = stream === 'replayed';
    console.log(replayed ? "replayed stream (recorded bytes from a plain server in its own thread: the readers' own cost)" : 'live stream (a Sluice server running the action, in the reading thread)');
    for (const [what, table] of [['wall clock', times], ['reading thread CPU', cpuTimes]] as const) {
      const b = median(table[`${stream} bare`] ?? []);
      const c = median(table[`${stream} client`] ?? []);
      console.log(`  ${what}`);
      console.log(line('bare fetch + parser', b, expected, 'event'));
      console.log(line('sluice/client', c, expected, 'event'));
      console.log(`    ratio client / bare      ${(c / b).toFixed(2)}×${replayed && table === cpuTimes ? '  (target ≤ 1.5×)' : ''}`);
    }
  }
  for (const [label, table] of [['wall', times], ['cpu', cpuTimes]] as const) {
    for (const [name, list] of Object.entries(table)) console.log(`  runs (${label} ms) ${name.padEnd(16)} ${list.map((t) => t.toFixed(0)).join(' ')}`);
  }

  await worker.terminate();
  await app.close();
  await executor.close();
}

if (isMainThread) await main();
else serveRecording();
