/**
 * `npm run soak` (not in CI): N minutes of mixed traffic over every transport — SSE (with random
 * disconnects), followers of detached runs, unary webhook, WebSocket (with cancels and barge-ins),
 * gRPC Webhook / WebhookStream (with AckStreamChunks barge-ins), the AI SDK chat (with stops) and
 * the voice socket (with interrupts) — against one in-process `sluice serve` stack. With
 * `--redis <url>`, two stacks share that Redis (a random key prefix, deleted at the end) and the
 * other half of each cross-instance flow goes to the second one: followers of detached runs, gRPC
 * AckStreamChunks barge-ins and AI SDK stops.
 *
 * Prints RSS and heap (after GC) over time, runs started/ended, events lost (a fully read stream
 * whose seq has a gap or that lacks its end: must be 0), and exits 1 when the heap after warm-up
 * grows (last samples > 1.25 × the first post-warm-up samples, and by more than 16 MiB), when an
 * event was lost, or when a run is left.
 *
 *   SOAK_MINUTES=2 SOAK_CLIENTS=16 npm run soak      (or: npm run soak -- --minutes 2 --clients 16 [--redis redis://127.0.0.1:6379])
 */

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { createClient as createRedisClient } from 'redis';
import { WebSocket } from 'ws';
import { startServer } from '../src/cli/serve.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { ActionService, WebhookRequestSchema } from '../src/transports/grpc/gen/action_webhook_pb.ts';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function option(name: string, env: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const raw = index >= 0 ? process.argv[index + 1] : process.env[env];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} / ${env} must be a number > 0 (got ${raw})`);
  return value;
}

if (process.argv.includes('--help')) {
  process.stdout.write('npm run soak -- [--minutes 2] [--clients 16] [--redis <url>]   (env SOAK_MINUTES, SOAK_CLIENTS, SOAK_REDIS_URL)\n');
  process.exit(0);
}
const minutes = option('minutes', 'SOAK_MINUTES', 2);
const clients = Math.round(option('clients', 'SOAK_CLIENTS', 16));
const durationMs = minutes * 60_000;
// Ended runs are kept 60 s for late readers: the heap only levels off after that.
const warmupMs = Math.min(durationMs / 2, Math.max(75_000, durationMs / 3));
const sampleMs = Math.max(2_000, Math.min(10_000, durationMs / 24));

const redisIndex = process.argv.indexOf('--redis');
const redisUrl = redisIndex >= 0 ? process.argv[redisIndex + 1] : process.env.SOAK_REDIS_URL;
const redis = redisUrl === undefined || redisUrl === '' ? undefined : { url: redisUrl, prefix: `sluicesoak${randomBytes(4).toString('hex')}` };
const serve = () =>
  startServer({
    actions: fileURLToPath(new URL('./soak-actions.ts', import.meta.url)),
    host: '127.0.0.1',
    port: 0,
    grpcPort: 0,
    logger: silentLogger,
    ...(redis !== undefined ? { redis } : {}),
  });
const server = await serve();
/** Where the other half of a cross-instance flow goes: a second instance with --redis, else the same one. */
const peer = redis === undefined ? server : await serve();
const servers = peer === server ? [server] : [server, peer];
const http = server.httpUrl;
const peerHttp = peer.httpUrl;
const wsUrl = http.replace('http', 'ws');
const grpc = createClient(ActionService, createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }));
const peerGrpc = createClient(ActionService, createGrpcTransport({ baseUrl: `http://${peer.grpcAddress}` }));
const liveRuns = (): number => servers.reduce((n, s) => n + s.executor.activeRuns, 0);

const stats = { started: 0, completed: 0, lost: 0, disconnects: 0, cancels: 0, bargeIns: 0, errors: 0, byKind: new Map<string, number>() };
const errorSamples: string[] = [];

function call(count = 10 + Math.floor(Math.random() * 40)): Record<string, unknown> {
  return { next_action: 'action_soak', sender_id: 'soak', tracker: { sender_id: 'soak', slots: { count, delay_ms: 2 + Math.floor(Math.random() * 6) } } };
}

function failed(kind: string, error: unknown): void {
  stats.errors++;
  if (errorSamples.length < 10) errorSamples.push(`${kind}: ${error instanceof Error ? error.message : String(error)}`);
}

/** Checks a fully read run's events: seq 1..n without a gap, ending with run-end. */
function checkSeqs(seqs: number[], types: string[], kind: string): void {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== (seqs[0] ?? 1) + i) {
      stats.lost++;
      failed(kind, `seq gap at ${i}: ${seqs.slice(Math.max(0, i - 2), i + 2).join(',')}`);
      return;
    }
  }
  if (types.at(-1) !== 'run-end') {
    stats.lost++;
    failed(kind, `no run-end (last ${types.at(-1)})`);
  }
}

/** Reads an SSE body into events (id, event, data). */
async function readSse(res: Response, onEvent?: (type: string, data: any) => boolean | void): Promise<{ seqs: number[]; types: string[]; aborted: boolean }> {
  const seqs: number[] = [];
  const types: string[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id: string | undefined;
      let type: string | undefined;
      let data: string | undefined;
      for (const line of frame.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data = line.slice(6);
      }
      if (type === undefined || data === undefined) continue;
      if (id !== undefined) seqs.push(Number(id));
      types.push(type);
      if (onEvent?.(type, JSON.parse(data)) === true) {
        await reader.cancel();
        return { seqs, types, aborted: true };
      }
    }
  }
  return { seqs, types, aborted: false };
}

const scenarios: Record<string, () => Promise<void>> = {
  async sse() {
    const disconnectAt = Math.random() < 0.3 ? 1 + Math.floor(Math.random() * 10) : Infinity;
    const res = await fetch(`${http}/webhook/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call()) });
    stats.started++;
    let chunks = 0;
    const read = await readSse(res, (type) => type === 'chunk' && ++chunks >= disconnectAt);
    if (read.aborted) stats.disconnects++;
    else checkSeqs(read.seqs, read.types, 'sse');
  },
  async follow() {
    const res = await fetch(`${http}/webhook/stream?detach=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call()) });
    stats.started++;
    const runId = res.headers.get('x-sluice-run-id')!;
    let seen = 0;
    const first = await readSse(res, () => ++seen >= 3);
    // Resume from where the first reader left off, as a reconnecting EventSource does.
    const follow = await fetch(`${peerHttp}/runs/${runId}/events`, { headers: { 'last-event-id': String(first.seqs.at(-1) ?? 0) } });
    const rest = await readSse(follow);
    checkSeqs([...first.seqs, ...rest.seqs], [...first.types, ...rest.types], 'follow');
  },
  async unary() {
    const res = await fetch(`${http}/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call(10)) });
    stats.started++;
    const body = (await res.json()) as { responses?: unknown[] };
    if (res.status !== 200 || !Array.isArray(body.responses)) failed('unary', `status ${res.status}`);
  },
  async ws() {
    const socket = new WebSocket(`${wsUrl}/ws`, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const mode = Math.random();
    const seqs: number[] = [];
    const types: string[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 30_000);
      socket.on('message', (data) => {
        const m = JSON.parse(String(data));
        if (m.type === 'started') stats.started++;
        if (typeof m.seq === 'number') {
          seqs.push(m.seq);
          types.push(m.type);
        }
        if (m.type === 'chunk' && seqs.length === 5) {
          if (mode < 0.2) {
            socket.send(JSON.stringify({ type: 'ack', responseId: m.responseId }));
            stats.bargeIns++;
          } else if (mode < 0.4) {
            socket.send(JSON.stringify({ type: 'cancel', runId: m.runId }));
            stats.cancels++;
          } else if (mode < 0.5) {
            stats.disconnects++;
            clearTimeout(timer);
            socket.terminate();
            resolve();
          }
        }
        if (m.type === 'run-end') {
          clearTimeout(timer);
          resolve();
        }
      });
      socket.send(JSON.stringify({ type: 'start', id: 'soak', call: call() }));
    });
    if (mode >= 0.4 && mode < 0.5) return;
    checkSeqs(seqs, types, 'ws');
    socket.close();
  },
  async grpcUnary() {
    stats.started++;
    await grpc.webhook(create(WebhookRequestSchema, { nextAction: 'action_soak', senderId: 'soak', tracker: { senderId: 'soak' } }));
  },
  async grpcStream() {
    stats.started++;
    const bargeIn = Math.random() < 0.3;
    let chunks = 0;
    let ended = false;
    for await (const event of grpc.webhookStream(create(WebhookRequestSchema, { nextAction: 'action_soak', senderId: 'soak', tracker: { senderId: 'soak' } }))) {
      if (event.event.case === 'chunk' && ++chunks === 3 && bargeIn) {
        stats.bargeIns++;
        const id = event.event.value.responseId;
        await peerGrpc.ackStreamChunks({ responseId: id });
      }
      if (event.event.case === 'finalResult') ended = true;
    }
    if (!ended) {
      stats.lost++;
      failed('grpc', 'no final_result');
    }
  },
  async chat() {
    const id = `soak-${Math.floor(Math.random() * 200)}`;
    const stop = Math.random() < 0.3;
    const res = await fetch(`${http}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, messages: [{ id: `${id}-u`, role: 'user', parts: [{ type: 'text', text: 'hello' }] }] }),
    });
    if (res.status === 409) {
      await res.text();
      return;
    }
    stats.started++;
    if (stop) {
      await sleep(20);
      await fetch(`${peerHttp}/api/chat/${id}/stop`, { method: 'POST' }).then((r) => r.text());
      stats.cancels++;
    }
    await res.text();
  },
  async voice() {
    const socket = new WebSocket(`${wsUrl}/voice/ws`, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const interrupt = Math.random() < 0.4;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 30_000);
      socket.on('message', (data, isBinary) => {
        if (isBinary) return;
        const m = JSON.parse(String(data));
        if (m.type === 'turn-start') stats.started++;
        if (m.type === 'sentence' && m.index === 1 && interrupt) {
          socket.send(JSON.stringify({ type: 'interrupt' }));
          stats.bargeIns++;
        }
        if (m.type === 'turn-end') {
          clearTimeout(timer);
          resolve();
        }
      });
      socket.send(JSON.stringify({ type: 'start', call: call(8) }));
    });
    socket.close();
  },
};

const kinds = Object.keys(scenarios);
// Voice synthesises audio (CPU heavy): one pick in 16.
const weights = kinds.map((kind) => (kind === 'voice' ? 1 : 3));
function pick(): string {
  let r = Math.random() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < kinds.length; i++) if ((r -= weights[i]!) < 0) return kinds[i]!;
  return kinds[0]!;
}

const started = Date.now();
const deadline = started + durationMs;
async function client(): Promise<void> {
  while (Date.now() < deadline) {
    const kind = pick();
    stats.byKind.set(kind, (stats.byKind.get(kind) ?? 0) + 1);
    try {
      await scenarios[kind]!();
      stats.completed++;
    } catch (error) {
      failed(kind, error);
    }
  }
}

interface Sample {
  t: number;
  rss: number;
  heap: number;
}
const samples: Sample[] = [];
const MB = 1024 * 1024;
function sample(): void {
  gc();
  const m = process.memoryUsage();
  const s = { t: (Date.now() - started) / 1000, rss: m.rss, heap: m.heapUsed };
  samples.push(s);
  process.stdout.write(
    `t=${s.t.toFixed(0).padStart(4)}s  rss ${(s.rss / MB).toFixed(1).padStart(6)} MiB  heap ${(s.heap / MB).toFixed(1).padStart(6)} MiB  runs started ${stats.started}  live ${liveRuns()}  errors ${stats.errors}  lost ${stats.lost}\n`,
  );
}

process.stdout.write(`soak: ${minutes} min, ${clients} clients, warm-up ${(warmupMs / 1000).toFixed(0)} s, transports: ${kinds.join(', ')}${redis !== undefined ? `, two instances sharing ${redis.url}` : ''}\n`);
const sampler = setInterval(sample, sampleMs);
sample();
await Promise.all(Array.from({ length: clients }, () => client()));
clearInterval(sampler);
// Let the last runs end, then count what is left.
const settle = Date.now() + 10_000;
while (liveRuns() > 0 && Date.now() < settle) await sleep(50);
sample();
const left = liveRuns();
for (const s of servers) await s.close();
if (redis !== undefined) {
  const admin = createRedisClient({ url: redis.url });
  await admin.connect();
  for await (const batch of admin.scanIterator({ MATCH: `${redis.prefix}:*`, COUNT: 1000 })) if (batch.length > 0) await admin.del(batch);
  await admin.close();
}

const after = samples.filter((s) => s.t * 1000 >= warmupMs);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;
const early = median(after.slice(0, 3).map((s) => s.heap));
const late = median(after.slice(-3).map((s) => s.heap));
const grew = after.length >= 4 && late > early * 1.25 && late - early > 16 * MB;

process.stdout.write('\n');
process.stdout.write(`scenarios: ${[...stats.byKind].map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
process.stdout.write(`runs started ${stats.started}, ended ${stats.started - left} (left live: ${left}); disconnects ${stats.disconnects}, cancels ${stats.cancels}, barge-ins ${stats.bargeIns}\n`);
process.stdout.write(`events lost: ${stats.lost}; client errors: ${stats.errors}${errorSamples.length > 0 ? `\n  ${errorSamples.join('\n  ')}` : ''}\n`);
process.stdout.write(`heap after warm-up: ${(early / MB).toFixed(1)} MiB → ${(late / MB).toFixed(1)} MiB at the end; peak rss ${(Math.max(...samples.map((s) => s.rss)) / MB).toFixed(1)} MiB\n`);
const ok = !grew && stats.lost === 0 && left === 0;
process.stdout.write(ok ? 'soak: OK\n' : `soak: FAILED (${[grew && 'memory grew after warm-up', stats.lost > 0 && 'events lost', left > 0 && 'runs left'].filter(Boolean).join(', ')})\n`);
process.exit(ok ? 0 : 1);
