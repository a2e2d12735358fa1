/**
 * SSE throughput: chunks/s from one action (a generator yielding N small text chunks) to one
 * client through Sluice's HTTP transport, beside a raw `node:http` SSE writer that writes the same
 * `id/event/data` JSON frames (one JSON.stringify and one write per event, honouring `drain`),
 * measured in the same run. The client runs in a worker thread and counts `\n\n`.
 *
 *   node bench/sse.ts            (N=200000 RUNS=7 WARMUP=2 by default)
 */

import http from 'node:http';
import { once } from 'node:events';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { SSE_HEADERS, createHttpServer } from '../src/transports/http/index.ts';
import { benchCall, chunksAction, envInt, line, median } from './http-lib.ts';

interface Job {
  url: string;
  body?: string;
  frames: number;
}

if (!isMainThread) {
  // Client: read everything, count frames.
  parentPort!.on('message', (job: Job) => {
    const started = performance.now();
    let frames = 0;
    let bytes = 0;
    let lastWasLf = false;
    const req = http.request(job.url, {
      method: job.body === undefined ? 'GET' : 'POST',
      agent: false,
      headers: job.body === undefined ? {} : { 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (lastWasLf && chunk[0] === 10) frames++;
        for (let i = chunk.indexOf('\n\n'); i !== -1; i = chunk.indexOf('\n\n', i + 2)) frames++;
        lastWasLf = chunk[chunk.length - 1] === 10;
      });
      res.on('end', () => parentPort!.postMessage({ ms: performance.now() - started, frames, bytes }));
    });
    req.end(job.body);
  });
} else {
  const N = envInt('N', 200_000);
  const RUNS = envInt('RUNS', 7);
  const WARMUP = envInt('WARMUP', 2);

  const executor = new ActionExecutor({ logger: silentLogger, actions: [chunksAction(N)] });
  const app = createHttpServer({ executor });
  const sluiceUrl = `${await app.listen({ port: 0, host: '127.0.0.1' })}/webhook/stream`;

  const runId = '5f0c1d9e-2a43-4c1b-9f5e-1a2b3c4d5e6f';
  const responseId = '0123456789abcdef0123456789abcdef';
  // `/`: one write per event (the plain raw writer). `/batched`: 256 events per write, the best a
  // raw writer can do; Sluice batches only the events already waiting when the reader is behind.
  const raw = http.createServer(async (req, res) => {
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    const batch = req.url === '/batched' ? 256 : 1;
    let text = '';
    for (let seq = 1; seq <= N; seq++) {
      const event = { type: 'chunk', responseId, text: 'tok ', runId, seq };
      text += `id: ${seq}\nevent: chunk\ndata: ${JSON.stringify(event)}\n\n`;
      if (seq % batch !== 0 && seq !== N) continue;
      const ok = res.write(text);
      text = '';
      if (!ok) await once(res, 'drain');
    }
    res.end();
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  const rawUrl = `http://127.0.0.1:${(raw.address() as { port: number }).port}/`;

  const worker = new Worker(new URL(import.meta.url));
  const measure = (job: Job): Promise<number> =>
    new Promise((resolve, reject) => {
      worker.once('message', (result: { ms: number; frames: number }) =>
        result.frames === job.frames ? resolve(result.ms) : reject(new Error(`expected ${job.frames} frames, got ${result.frames}`)),
      );
      worker.postMessage(job);
    });

  const sluiceJob: Job = { url: sluiceUrl, body: JSON.stringify(benchCall), frames: N + 5 };
  const rawJob: Job = { url: rawUrl, frames: N };
  const batchedJob: Job = { url: `${rawUrl}batched`, frames: N };
  const times = { raw: [] as number[], batched: [] as number[], sluice: [] as number[] };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    // Interleaved so all three see the same machine conditions.
    const r = await measure(rawJob);
    const b = await measure(batchedJob);
    const s = await measure(sluiceJob);
    if (i >= WARMUP) {
      times.raw.push(r);
      times.batched.push(b);
      times.sluice.push(s);
    }
  }
  const rawMs = median(times.raw);
  const batchedMs = median(times.batched);
  const sluiceMs = median(times.sluice);
  console.log(`SSE, ${N.toLocaleString('en-US')} chunks to one client, median of ${RUNS} runs after ${WARMUP} warm-up (Node ${process.version})`);
  console.log(line('raw SSE, 1 write/event', rawMs, N));
  console.log(line('raw SSE, 256 events/write', batchedMs, N));
  console.log(line('sluice SSE /webhook/stream', sluiceMs, N));
  console.log(`  ratio sluice / raw          ${(sluiceMs / rawMs).toFixed(2)}×  (target ≤ 2×)`);
  console.log(`  ratio sluice / raw batched  ${(sluiceMs / batchedMs).toFixed(2)}×`);
  for (const [name, list] of Object.entries(times)) console.log(`  runs (ms) ${name.padEnd(8)} ${list.map((t) => t.toFixed(0)).join(' ')}`);

  await worker.terminate();
  raw.close();
  await app.close();
  await executor.close();
}
