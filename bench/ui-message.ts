/**
 * UI message stream throughput: chunks/s from one action (a generator yielding N small text
 * chunks) through `POST /api/chat` (the AI SDK endpoint: run → encoder → SSE, plus saving the
 * assistant message at the end), beside a raw `node:http` SSE writer of the same
 * `data: {"type":"text-delta",…}` lines (one JSON.stringify per part, honouring `drain`),
 * measured in the same run. The client runs in a worker thread and counts `\n\n`-terminated frames.
 *
 *   node bench/ui-message.ts            (N=100000 RUNS=7 WARMUP=2 by default)
 */

import Fastify from 'fastify';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { UI_MESSAGE_STREAM_HEADERS, uiMessageRoutes } from '../src/channels/ui-message/index.ts';
import { chunksAction, envInt, frameClient, interleavedRuns, median, printComparison, rawSseServer } from './http-lib.ts';

const N = envInt('N', 100_000);
const RUNS = envInt('RUNS', 7);
const WARMUP = envInt('WARMUP', 2);

const executor = new ActionExecutor({ logger: silentLogger, actions: [chunksAction(N)] });
const app = Fastify();
await app.register(uiMessageRoutes, { executor, action: 'bench_chunks', logger: silentLogger });
const sluiceUrl = `${await app.listen({ port: 0, host: '127.0.0.1' })}/api/chat`;

const id = '0123456789abcdef0123456789abcdef';
// `/`: one write per part. `/batched`: 256 parts per write, the best a raw writer can do.
const raw = await rawSseServer(N, UI_MESSAGE_STREAM_HEADERS, () => `data: ${JSON.stringify({ type: 'text-delta', id, delta: 'tok ' })}\n\n`);

const client = frameClient();
let chat = 0;
const times = await interleavedRuns(
  {
    raw: () => ({ url: raw.url, frames: N }),
    batched: () => ({ url: `${raw.url}batched`, frames: N }),
    // start, text-start, N text-delta, text-end, finish, [DONE]
    sluice: () => ({
      url: sluiceUrl,
      body: JSON.stringify({ id: `bench-${++chat}`, messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'go' }] }] }),
      frames: N + 5,
    }),
  },
  client.measure,
  WARMUP,
  RUNS,
);
printComparison(
  `UI message stream, ${N.toLocaleString('en-US')} chunks to one client, median of ${RUNS} runs after ${WARMUP} warm-up (Node ${process.version})`,
  N,
  [
    { key: 'raw', label: 'raw SSE, 1 write/part' },
    { key: 'batched', label: 'raw SSE, 256 parts/write' },
    { key: 'sluice', label: 'sluice POST /api/chat' },
  ],
  times,
  [`sluice µs/chunk ${((median(times.sluice) * 1000) / N).toFixed(3)}  (target ≤ 3 µs)`],
);

await client.close();
raw.close();
await app.close();
await executor.close();
