/**
 * WebSocket throughput: chunks/s from one action (a generator yielding N small text chunks) to one
 * client over Sluice's `/ws`, beside a raw `ws` server sending the same JSON messages (one
 * JSON.stringify and one `send` per event, waiting when `bufferedAmount` passes 1 MiB, as Sluice
 * does), measured in the same run. The client runs in a worker thread and counts messages.
 *
 *   node bench/ws.ts            (N=200000 RUNS=7 WARMUP=2 by default)
 */

import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { WebSocket, WebSocketServer } from 'ws';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { createHttpServer } from '../src/transports/http/index.ts';
import { benchCall, chunksAction, envInt, printComparison } from './http-lib.ts';

interface Job {
  url: string;
  start: string;
  messages: number;
}

const HWM = 1024 * 1024;

if (!isMainThread) {
  // Client: one socket per job; send the start message, count messages.
  parentPort!.on('message', (job: Job) => {
    const socket = new WebSocket(job.url, { perMessageDeflate: false });
    let count = 0;
    let started = 0;
    socket.on('open', () => {
      started = performance.now();
      socket.send(job.start);
    });
    socket.on('message', () => {
      if (++count !== job.messages) return;
      const ms = performance.now() - started;
      socket.close();
      parentPort!.postMessage({ ms, messages: count });
    });
  });
} else {
  const N = envInt('N', 200_000);
  const RUNS = envInt('RUNS', 7);
  const WARMUP = envInt('WARMUP', 2);

  const executor = new ActionExecutor({ logger: silentLogger, actions: [chunksAction(N)] });
  const app = createHttpServer({ executor, ws: { highWaterMark: HWM } });
  const sluiceUrl = `${(await app.listen({ port: 0, host: '127.0.0.1' })).replace(/^http/, 'ws')}/ws`;

  const runId = '5f0c1d9e-2a43-4c1b-9f5e-1a2b3c4d5e6f';
  const responseId = '0123456789abcdef0123456789abcdef';
  const raw = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await once(raw, 'listening');
  raw.on('connection', (socket) => {
    socket.once('message', async (data) => {
      // 'go': one send per event. 'go-corked': the socket is corked until the loop has to wait,
      // so frames leave in large writes (the best a raw sender can do; Sluice corks per burst).
      const corked = String(data) === 'go-corked';
      const underlying = (socket as unknown as { _socket: Duplex })._socket;
      if (corked) underlying.cork();
      for (let seq = 1; seq <= N; seq++) {
        if (socket.bufferedAmount > HWM) {
          if (corked) underlying.uncork();
          await once(underlying, 'drain');
          if (corked) underlying.cork();
        }
        socket.send(JSON.stringify({ type: 'chunk', responseId, text: 'tok ', runId, seq }));
      }
      if (corked) underlying.uncork();
    });
  });
  const rawUrl = `ws://127.0.0.1:${(raw.address() as { port: number }).port}`;

  const worker = new Worker(new URL(import.meta.url));
  const measure = (job: Job): Promise<number> =>
    new Promise((resolve, reject) => {
      worker.once('message', (result: { ms: number; messages: number }) =>
        result.messages === job.messages ? resolve(result.ms) : reject(new Error(`expected ${job.messages} messages, got ${result.messages}`)),
      );
      worker.postMessage(job);
    });

  // started + run-start + stream-start + N chunks + stream-end + result + run-end
  const sluiceJob: Job = { url: sluiceUrl, start: JSON.stringify({ type: 'start', id: 'bench', call: benchCall }), messages: N + 6 };
  const rawJob: Job = { url: rawUrl, start: 'go', messages: N };
  const corkedJob: Job = { url: rawUrl, start: 'go-corked', messages: N };
  const times = { raw: [] as number[], corked: [] as number[], sluice: [] as number[] };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    // Interleaved so all three see the same machine conditions.
    const r = await measure(rawJob);
    const c = await measure(corkedJob);
    const s = await measure(sluiceJob);
    if (i >= WARMUP) {
      times.raw.push(r);
      times.corked.push(c);
      times.sluice.push(s);
    }
  }
  printComparison(
    `WebSocket, ${N.toLocaleString('en-US')} chunks to one client, median of ${RUNS} runs after ${WARMUP} warm-up (Node ${process.version})`,
    N,
    [
      { key: 'raw', label: 'raw ws, 1 send/event' },
      { key: 'corked', label: 'raw ws, corked sends' },
      { key: 'sluice', label: 'sluice /ws' },
    ],
    times,
  );

  await worker.terminate();
  raw.close();
  await app.close();
  await executor.close();
}
