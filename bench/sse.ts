/**
 * SSE throughput: chunks/s from one action (a generator yielding N small text chunks) to one
 * client through Sluice's HTTP transport, beside a raw `node:http` SSE writer that writes the same
 * `id/event/data` JSON frames (one JSON.stringify and one write per event, honouring `drain`),
 * measured in the same run. The client runs in a worker thread and counts `\n\n` (http-lib.ts).
 *
 *   node bench/sse.ts            (N=200000 RUNS=7 WARMUP=2 by default)
 */

import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { SSE_HEADERS, createHttpServer } from '../src/transports/http/index.ts';
import { benchCall, chunksAction, envInt, frameClient, interleavedRuns, printComparison, rawSseServer } from './http-lib.ts';

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
const raw = await rawSseServer(N, SSE_HEADERS, (seq) => {
  const event = { type: 'chunk', responseId, text: 'tok ', runId, seq };
  return `id: ${seq}\nevent: chunk\ndata: ${JSON.stringify(event)}\n\n`;
});

const client = frameClient();
const times = await interleavedRuns(
  {
    raw: () => ({ url: raw.url, frames: N }),
    batched: () => ({ url: `${raw.url}batched`, frames: N }),
    sluice: () => ({ url: sluiceUrl, body: JSON.stringify(benchCall), frames: N + 5 }),
  },
  client.measure,
  WARMUP,
  RUNS,
);
printComparison(
  `SSE, ${N.toLocaleString('en-US')} chunks to one client, median of ${RUNS} runs after ${WARMUP} warm-up (Node ${process.version})`,
  N,
  [
    { key: 'raw', label: 'raw SSE, 1 write/event', target: '≤ 2×' },
    { key: 'batched', label: 'raw SSE, 256 events/write' },
    { key: 'sluice', label: 'sluice SSE /webhook/stream' },
  ],
  times,
);

await client.close();
raw.close();
await app.close();
await executor.close();
