/**
 * UI message stream throughput: chunks/s from one action (a generator yielding N small text
 * chunks) through `POST /api/chat` (the AI SDK endpoint: run → encoder → SSE, plus saving the
 * assistant message at the end), beside a raw `node:http` SSE writer of the same
 * `data: {"type":"text-delta",…}` lines (one JSON.stringify per part, honouring `drain`),
 * measured in the same run. The client runs in a worker thread and counts `\n\n`-terminated frames.
 *
 *   node bench/ui-message.ts            (N=100000 RUNS=7 WARMUP=2 by default)
 */

import http from 'node:http';
import { once } from 'node:events';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import Fastify from 'fastify';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { UI_MESSAGE_STREAM_HEADERS, uiMessageRoutes } from '../src/channels/ui-message/index.ts';
import { chunksAction, envInt, line, median } from './http-lib.ts';

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
    let lastWasLf = false;
    const req = http.request(job.url, {
      method: job.body === undefined ? 'GET' : 'POST',
      agent: false,
      headers: job.body === undefined ? {} : { 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      res.on('data', (chunk: Buffer) => {
        if (lastWasLf && chunk[0] === 10) frames++;
        for (let i = chunk.indexOf('\n\n'); i !== -1; i = chunk.indexOf('\n\n', i + 2)) frames++;
        lastWasLf = chunk[chunk.length - 1] === 10;
      });
      res.on('end', () => parentPort!.postMessage({ ms: performance.now() - started, frames }));
    });
    req.end(job.body);
  });
} else {
  const N = envInt('N', 100_000);
  const RUNS = envInt('RUNS', 7);
  const WARMUP = envInt('WARMUP', 2);

  const executor = new ActionExecutor({ logger: silentLogger, actions: [chunksAction(N)] });
  const app = Fastify();
  await app.register(uiMessageRoutes, { executor, action: 'bench_chunks', logger: silentLogger });
  const sluiceUrl = `${await app.listen({ port: 0, host: '127.0.0.1' })}/api/chat`;

  const id = '0123456789abcdef0123456789abcdef';
  // `/`: one write per part. `/batched`: 256 parts per write, the best a raw writer can do.
  const raw = http.createServer(async (req, res) => {
    res.writeHead(200, UI_MESSAGE_STREAM_HEADERS);
    res.flushHeaders();
    const batch = req.url === '/batched' ? 256 : 1;
    let text = '';
    for (let i = 1; i <= N; i++) {
      text += `data: ${JSON.stringify({ type: 'text-delta', id, delta: 'tok ' })}\n\n`;
      if (i % batch !== 0 && i !== N) continue;
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

  let chat = 0;
  // start, text-start, N text-delta, text-end, finish, [DONE]
  const sluiceJob = (): Job => ({
    url: sluiceUrl,
    body: JSON.stringify({ id: `bench-${++chat}`, messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'go' }] }] }),
    frames: N + 5,
  });
  const rawJob: Job = { url: rawUrl, frames: N };
  const batchedJob: Job = { url: `${rawUrl}batched`, frames: N };
  const times = { raw: [] as number[], batched: [] as number[], sluice: [] as number[] };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    // Interleaved so all three see the same machine conditions.
    const r = await measure(rawJob);
    const b = await measure(batchedJob);
    const s = await measure(sluiceJob());
    if (i >= WARMUP) {
      times.raw.push(r);
      times.batched.push(b);
      times.sluice.push(s);
    }
  }
  const rawMs = median(times.raw);
  const batchedMs = median(times.batched);
  const sluiceMs = median(times.sluice);
  console.log(`UI message stream, ${N.toLocaleString('en-US')} chunks to one client, median of ${RUNS} runs after ${WARMUP} warm-up (Node ${process.version})`);
  console.log(line('raw SSE, 1 write/part', rawMs, N));
  console.log(line('raw SSE, 256 parts/write', batchedMs, N));
  console.log(line('sluice POST /api/chat', sluiceMs, N));
  console.log(`  sluice µs/chunk ${((sluiceMs * 1000) / N).toFixed(3)}  (target ≤ 3 µs)`);
  console.log(`  ratio sluice / raw batched  ${(sluiceMs / batchedMs).toFixed(2)}×`);
  console.log(`  ratio sluice / raw          ${(sluiceMs / rawMs).toFixed(2)}×`);
  for (const [name, list] of Object.entries(times)) console.log(`  runs (ms) ${name.padEnd(8)} ${list.map((t) => t.toFixed(0)).join(' ')}`);

  await worker.terminate();
  raw.close();
  await app.close();
  await executor.close();
}
