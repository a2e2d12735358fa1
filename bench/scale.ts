/**
 * Scale-out over Redis (`--redis`): what sharing runs costs, against the in-memory mode measured in
 * the same run. Two instances in one process (each its own executor, Redis connections, instance id
 * and HTTP server), a random key prefix, deleted at the end. Figures (medians unless said):
 *
 * 1. added latency emit-on-A → SSE socket on B, p50 / p99, against emit → socket on one in-memory
 *    instance; without coalescing and with the default window;
 * 2. chunks/s of one instance writing 1,000 concurrent runs, and Redis commands per chunk;
 * 3. wall overhead of a 1,000-token paced run read on B, against one in-memory instance;
 * 4. cross-instance barge-in: ack on B → the producer's signal aborts on A, p50 / p99;
 * 5. Redis bytes per event for a 76-byte chunk event (MEMORY USAGE of the stream), and keys left
 *    after the ended-run TTL;
 * 6. the chat store: a save + load of a 10-message chat in Redis vs PostgreSQL (`DATABASE_URL`);
 * 7. an application step over HTTP (POST → run-end, PostgreSQL persister) with the step locks of
 *    two instances against one instance without them, and the lock's own cost per step.
 *
 *   node bench/scale.ts        (REDIS_URL, DATABASE_URL; RUNS=5 CONCURRENT=1000 PER_RUN=100; ONLY=1,7 for some sections)
 */

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createClient } from 'redis';
import { readSseEvents } from '../src/client/sse.ts';
import type { SluiceEvent } from '../src/protocol/events.ts';
import { defineAction } from '../src/runtime/action.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { ApplicationBuilder, CachedAppRegistry, streamingAction } from '../src/app/index.ts';
import type { StepLocks } from '../src/app/step-locks.ts';
import { PostgresPersister } from '../src/stores/postgres-persister.ts';
import { RedisChatStore } from '../src/stores/redis-chat-store.ts';
import { RedisStepLocks } from '../src/stores/redis-step-locks.ts';
import { connectRedisRuns, type RedisRuns } from '../src/stores/redis-runs.ts';
import { createHttpServer } from '../src/transports/http/index.ts';
import { envInt, median, percentile } from './http-lib.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const RUNS = envInt('RUNS', 5);
const CONCURRENT = envInt('CONCURRENT', 1_000);
const PER_RUN = envInt('PER_RUN', 100);
const prefix = `sluicebench${randomBytes(4).toString('hex')}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Chunks whose text is the emit time; `pace` ms apart (0: as fast as backpressure allows). */
const timed = defineAction({
  name: 'timed',
  async *stream({ tracker, signal }) {
    const count = Number(tracker.getSlot('count'));
    const pace = Number(tracker.getSlot('pace'));
    for (let i = 0; i < count && !signal.aborted; i++) {
      yield `${performance.now()}`;
      if (pace > 0) await sleep(pace);
    }
    return [];
  },
});
/** A 76-byte chunk event: {"type":"chunk","responseId":"<32 hex>","text":"word ","runId":…,"seq":…} minus ids ≈ 76 B. */
const fixed = defineAction({
  name: 'fixed',
  async *stream({ tracker }) {
    const count = Number(tracker.getSlot('count'));
    for (let i = 0; i < count; i++) yield 'tok ';
    return [];
  },
});
const call = (action: string, slots: Record<string, unknown>) => ({ next_action: action, tracker: { sender_id: 'bench', slots } });
const actions = [timed, fixed];

async function instance(runs?: RedisRuns) {
  const executor = new ActionExecutor({ actions, logger: silentLogger, shared: runs });
  const app = createHttpServer({ executor });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { executor, app, url, runs };
}
type Instance = Awaited<ReturnType<typeof instance>>;

async function pair(coalesceMs: number): Promise<[Instance, Instance]> {
  const o = { url: REDIS_URL, prefix, logger: silentLogger, coalesceMs };
  return [await instance(await connectRedisRuns(o)), await instance(await connectRedisRuns(o))];
}

async function closeAll(...instances: Instance[]): Promise<void> {
  for (const i of instances) {
    await i.executor.close();
    await i.app.close();
    await i.runs?.close();
  }
}

/** Latency of each chunk from its emit to its arrival at the SSE client. */
async function readLatencies(body: ReadableStream<Uint8Array>, into: number[]): Promise<SluiceEvent[]> {
  const events: SluiceEvent[] = [];
  for await (const event of readSseEvents(body)) {
    if (event.type === 'chunk') into.push(performance.now() - Number(event.text));
    events.push(event);
  }
  return events;
}

function stats(samples: number[]): { p50: number; p99: number } {
  const sorted = Float64Array.from(samples).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

const ms = (x: number): string => `${x.toFixed(3)} ms`;

// ── 1. latency ───────────────────────────────────────────────────────────────────────────────
async function latency(): Promise<void> {
  const count = 300;
  const pace = 2;
  const memory = await instance();
  const local: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const response = await fetch(`${memory.url}/webhook/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call('timed', { count, pace })) });
    await readLatencies(response.body!, local);
  }
  await closeAll(memory);
  const base = stats(local);
  console.log(`1. emit → SSE socket, ${RUNS} runs × ${count} chunks paced ${pace} ms`);
  console.log(`   in-memory, same instance                            p50 ${ms(base.p50)}   p99 ${ms(base.p99)}`);
  // With a reader on A too (the client that started the run), the log follows that reader.
  for (const [coalesceMs, readerOnA] of [[0, false], [0, true], [5, false]] as const) {
    const [a, b] = await pair(coalesceMs);
    const remote: number[] = [];
    const onA: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let run: { id: string };
      let reading: Promise<unknown> = Promise.resolve();
      if (readerOnA) {
        const started = await fetch(`${a.url}/webhook/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call('timed', { count, pace })) });
        run = { id: started.headers.get('x-sluice-run-id')! };
        reading = readLatencies(started.body!, onA);
      } else run = a.executor.start(call('timed', { count, pace }));
      await sleep(1);
      const response = await fetch(`${b.url}/runs/${run.id}/events`);
      const skip = remote.length;
      await readLatencies(response.body!, remote);
      await reading;
      // The first chunks were replayed from the log, not live: drop them.
      remote.splice(skip, 3);
    }
    await closeAll(a, b);
    const s = stats(remote);
    console.log(
      `   Redis, A → B, coalesce ${String(coalesceMs).padStart(1)} ms${(readerOnA ? ', a reader on A too' : '').padEnd(19)}   p50 ${ms(s.p50)}   p99 ${ms(s.p99)}   added p50 ${ms(s.p50 - base.p50)}  p99 ${ms(s.p99 - base.p99)}` +
        `   (target p50 ≤ ${coalesceMs === 0 ? 1 : coalesceMs + 5} ms, p99 ≤ ${coalesceMs + 5} ms)`,
    );
  }
}

// ── 2. throughput with 1,000 concurrent runs ─────────────────────────────────────────────────
async function throughput(): Promise<void> {
  const total = CONCURRENT * PER_RUN;
  const memoryTimes: number[] = [];
  const redisTimes: number[] = [];
  const perChunk: number[] = [];
  for (let r = 0; r < Math.min(RUNS, 3); r++) {
    const memory = new ActionExecutor({ actions, logger: silentLogger });
    let t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT }, () => memory.start(call('fixed', { count: PER_RUN })).done));
    memoryTimes.push(performance.now() - t0);
    await memory.close();

    const runs = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger });
    const executor = new ActionExecutor({ actions, logger: silentLogger, shared: runs });
    const before = { ...runs.stats };
    t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT }, () => executor.start(call('fixed', { count: PER_RUN })).done));
    while (runs.activity.writing > 0) await sleep(1);
    redisTimes.push(performance.now() - t0);
    perChunk.push((runs.stats.commands - before.commands) / total);
    await executor.close();
    await runs.close();
  }
  console.log(`2. ${CONCURRENT} concurrent runs × ${PER_RUN} chunks (${total.toLocaleString('en')} chunks), writer only, coalesce 5 ms`);
  console.log(`   in-memory         ${Math.round(total / (median(memoryTimes) / 1000)).toLocaleString('en')} chunks/s`);
  console.log(
    `   Redis             ${Math.round(total / (median(redisTimes) / 1000)).toLocaleString('en')} chunks/s (target ≥ 20,000)   Redis commands per chunk ${median(perChunk).toFixed(4)} (target ≤ 0.1)`,
  );
}

// ── 3. wall overhead of a paced 1,000-token run ──────────────────────────────────────────────
async function wall(): Promise<void> {
  const count = 1_000;
  const memory = await instance();
  const [a, b] = await pair(5);
  const memoryTimes: number[] = [];
  const redisTimes: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    let t0 = performance.now();
    const response = await fetch(`${memory.url}/webhook/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call('timed', { count, pace: 1 })) });
    await readLatencies(response.body!, []);
    memoryTimes.push(performance.now() - t0);
    t0 = performance.now();
    const run = a.executor.start(call('timed', { count, pace: 1 }));
    const remote = await fetch(`${b.url}/runs/${run.id}/events`);
    await readLatencies(remote.body!, []);
    redisTimes.push(performance.now() - t0);
  }
  await closeAll(memory, a, b);
  const m = median(memoryTimes);
  const x = median(redisTimes);
  console.log(`3. a ${count}-token run paced 1 ms, start → run-end at the reader`);
  console.log(`   in-memory ${m.toFixed(0)} ms   Redis (read on B) ${x.toFixed(0)} ms   overhead ${(((x - m) / m) * 100).toFixed(2)} % (target ≤ 3 %)`);
}

// ── 4. cross-instance barge-in ───────────────────────────────────────────────────────────────
async function bargeIn(): Promise<void> {
  const [a, b] = await pair(5);
  const samples: number[] = [];
  const local: number[] = [];
  for (let r = 0; r < 50; r++) {
    const run = a.executor.start(call('timed', { count: 100_000, pace: 5 }));
    let responseId = '';
    for await (const event of run.subscribe()) {
      if (event.type === 'stream-start') responseId = event.responseId;
      if (event.type === 'chunk') break;
    }
    await sleep(10);
    const aborted = new Promise<number>((resolve) => run.signal.addEventListener('abort', () => resolve(performance.now()), { once: true }));
    const t0 = performance.now();
    if (r % 2 === 0) await b.executor.acknowledge(responseId);
    else {
      a.executor.ack(responseId);
    }
    (r % 2 === 0 ? samples : local).push((await aborted) - t0);
    await run.done;
  }
  await closeAll(a, b);
  const s = stats(samples);
  const l = stats(local);
  console.log('4. barge-in: ack → the producer signal aborts (25 runs each)');
  console.log(`   same instance     p50 ${ms(l.p50)}   p99 ${ms(l.p99)}`);
  console.log(`   ack on B, run on A p50 ${ms(s.p50)}   p99 ${ms(s.p99)} (target p99 ≤ 50 ms; with pub/sub lost the durable mark applies within leaseMs / 3 = 1 s)`);
}

// ── 5. bytes per event and keys left ─────────────────────────────────────────────────────────
async function bytes(): Promise<void> {
  const admin = createClient({ url: REDIS_URL });
  await admin.connect();
  console.log('5. Redis memory per 76-byte chunk event (MEMORY USAGE of the stream / events)');
  const sample = JSON.stringify({ type: 'chunk', responseId: 'a'.repeat(32), text: 'tok ', runId: 'x'.repeat(5), seq: 1 });
  const ttlPrefix = `${prefix}ttl`;
  for (const coalesceMs of [0, 5]) {
    const runs = await connectRedisRuns({ url: REDIS_URL, prefix: ttlPrefix, logger: silentLogger, coalesceMs, endedTtlMs: 500, maxEventsPerEntry: coalesceMs === 0 ? 1 : 256 });
    const executor = new ActionExecutor({ actions, logger: silentLogger, shared: runs });
    const count = 10_000;
    const run = executor.start(call('fixed', { count }));
    await run.done;
    while (runs.activity.writing > 0) await sleep(5);
    const used = Number(await admin.sendCommand(['MEMORY', 'USAGE', runs.keys.log(run.id), 'SAMPLES', '0']));
    console.log(`   ${coalesceMs === 0 ? 'one event per entry' : `coalesce ${coalesceMs} ms      `}  ${(used / (count + 4)).toFixed(1)} B/event   (event JSON ${sample.length} B; target ≤ 120 B)`);
    await executor.close();
    await runs.close();
  }
  await sleep(800);
  const left: string[] = [];
  for await (const batch of admin.scanIterator({ MATCH: `${ttlPrefix}:*`, COUNT: 1000 })) left.push(...batch);
  console.log(`   keys left 0.8 s after the end with endedTtlMs 500 (instances closed): ${left.length} (target 0)`);
  await admin.close();
}

// ── 6. chat store: Redis vs PostgreSQL ───────────────────────────────────────────────────────
async function chats(): Promise<void> {
  const messages = Array.from({ length: 10 }, (_, i) => ({ id: `m${i}`, role: i % 2 === 0 ? 'user' : 'assistant', parts: [{ type: 'text', text: 'A sentence of a chat message. '.repeat(4) }] }));
  const runs = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger });
  const store = new RedisChatStore(runs);
  const redisTimes: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    await store.save(`c${i % 20}`, messages as never);
    await store.get(`c${i % 20}`);
    redisTimes.push(performance.now() - t0);
  }
  await runs.close();
  let pgLine = 'PostgreSQL unavailable';
  const client = new pg.Client({ connectionString: DATABASE_URL });
  try {
    await client.connect();
    const table = `${prefix}_chats`;
    await client.query(`CREATE TABLE ${table} (id text PRIMARY KEY, messages jsonb NOT NULL)`);
    const pgTimes: number[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const t0 = performance.now();
        await client.query(`INSERT INTO ${table} (id, messages) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET messages = EXCLUDED.messages`, [`c${i % 20}`, JSON.stringify(messages)]);
        await client.query(`SELECT messages FROM ${table} WHERE id = $1`, [`c${i % 20}`]);
        pgTimes.push(performance.now() - t0);
      }
    } finally {
      await client.query(`DROP TABLE ${table}`);
    }
    pgLine = `PostgreSQL ${ms(median(pgTimes))}`;
  } catch (error) {
    pgLine = `PostgreSQL unavailable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => {});
  }
  console.log('6. chat store: save + load of a 10-message chat (300 times)');
  console.log(`   Redis ${ms(median(redisTimes))}   ${pgLine}`);
}

// ── 7. application steps: step locks ─────────────────────────────────────────────────────────
const word = streamingAction({ reads: ['n'], writes: ['n'] }, async function* (state) {
  for (let i = 0; i < 20; i++) yield [`w${i} `, null];
  yield [{}, state.update({ n: (state.get('n') as number) + 1 })];
});

async function appServer(table: string, runs?: RedisRuns) {
  const persister = new PostgresPersister({ connectionString: DATABASE_URL, table });
  const apps = new CachedAppRegistry((appId) =>
    new ApplicationBuilder().withActions({ word }).withTransitions(['word', 'word']).withState({ n: 0 }).withEntrypoint('word').withIdentifiers(appId).withPersister(persister).initializeFromPersister(persister),
  );
  const executor = new ActionExecutor({ actions: [], logger: silentLogger, shared: runs });
  const stepLocks: StepLocks | undefined = runs === undefined ? undefined : new RedisStepLocks(runs);
  const app = createHttpServer({ executor, apps, ...(stepLocks !== undefined ? { stepLocks } : {}) });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const close = async (): Promise<void> => {
    await executor.close();
    await app.close();
    await persister.close();
  };
  return { url, persister, close };
}

async function stepTimes(urls: string[], appId: string, steps: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const response = await fetch(`${urls[i % urls.length]}/apps/${appId}/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    await response.text();
    if (response.status !== 200) throw new Error(`step ${i}: ${response.status}`);
    times.push(performance.now() - t0);
  }
  return times;
}

async function appSteps(): Promise<void> {
  const table = `${prefix}_steps`;
  const steps = 200;
  const o = { url: REDIS_URL, prefix, logger: silentLogger };
  const [ra, rb] = [await connectRedisRuns(o), await connectRedisRuns(o)];
  const single = await appServer(table);
  const a = await appServer(table, ra);
  const b = await appServer(table, rb);
  const locks = new RedisStepLocks(ra);
  const rounds: { one: number; same: number; two: number; lock: number }[] = [];
  try {
    for (let round = 0; round < RUNS; round++) {
      const one = median(await stepTimes([single.url], `one${round}`, steps));
      // Every step on A: the lock, no rebuild.
      const same = median(await stepTimes([a.url], `same${round}`, steps));
      // Alternating instances: every step finds its copy one commit behind and rebuilds it.
      const two = median(await stepTimes([a.url, b.url], `two${round}`, steps));
      const lockTimes: number[] = [];
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        const { lease } = await locks.acquire(`lock${round}`);
        await lease!.setRun('r', 'word');
        await lease!.release({ sequenceId: i, action: 'word', status: 'completed', runId: 'r' });
        lockTimes.push(performance.now() - t0);
      }
      rounds.push({ one, same, two, lock: median(lockTimes) });
    }
  } finally {
    await Promise.allSettled([single.close(), a.close(), b.close()]);
    await Promise.allSettled([ra.close(), rb.close()]);
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`DROP TABLE IF EXISTS ${table}`);
    await client.end();
  }
  const one = median(rounds.map((r) => r.one));
  const same = median(rounds.map((r) => r.same));
  const two = median(rounds.map((r) => r.two));
  console.log(`7. application step over HTTP (20 chunks, POST → run-end, PostgreSQL persister; ${steps} steps × ${RUNS} rounds)`);
  console.log(`   one instance, no locks ${ms(one)}`);
  console.log(`   step locks, every step on A ${ms(same)} (${(same / one).toFixed(2)}×)   alternating A/B (each step rebuilds the app) ${ms(two)} (${(two / one).toFixed(2)}×)`);
  console.log(`   the lock alone (acquire + name the run + release) ${ms(median(rounds.map((r) => r.lock)))}`);
}

async function cleanup(): Promise<void> {
  const admin = createClient({ url: REDIS_URL });
  await admin.connect();
  const keys: string[] = [];
  for await (const batch of admin.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) keys.push(...batch);
  for (let i = 0; i < keys.length; i += 500) await admin.del(keys.slice(i, i + 500));
  await admin.close();
}

console.log(`Scale-out over Redis (${REDIS_URL}), prefix ${prefix}, Node ${process.version}; medians unless said`);
const SECTIONS = [latency, throughput, wall, bargeIn, bytes, chats, appSteps];
/** `ONLY=1,7`: just those sections. */
const only = process.env.ONLY?.split(',').map(Number);
try {
  for (const [i, section] of SECTIONS.entries()) if (only === undefined || only.includes(i + 1)) await section();
} finally {
  await cleanup();
}
