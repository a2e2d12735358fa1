/**
 * Many concurrent SSE streams at 20 chunks/s each: the largest number one server process holds
 * with p99 added chunk latency < 100 ms and ≥ 99 % of the offered chunks delivered, for Sluice
 * (Fastify + executor + run + SseWriter) and, in the same run, for a raw `node:http` SSE server
 * whose producers do the identical work (same wake-ups, same frames); also the memory of an idle
 * stream on each.
 *
 *   node bench/sse-concurrency.ts                                  (npm run bench:sse-concurrency)
 *   N=2000,3000,4000 REPS=3 DURATION_S=8 IMPLS=native,raw,raw-direct,sluice node bench/sse-concurrency.ts
 *
 * Settings (environment):
 * - `N`: stream counts to try, ascending (default 2000,4000,6000,8000,10000). An implementation
 *   stops ramping after its first failing N; then the gap between its last pass and first failure
 *   is bisected down to `STEP` streams (default 1000; 0: no bisection).
 * - `REPS`: runs per (implementation, N) (default 3), interleaved; medians are reported and judged.
 * - `DURATION_S`: seconds each stream ticks (default 8, at least 3; see "steady state" below).
 * - `IDLE_N`: idle streams for the memory figure (default 2000; 0 skips it).
 * - `IMPLS`: any of `raw` (node:http, `res.write(frame)` per chunk: what a hand-written SSE
 *   endpoint does), `raw-direct` (the same, but each frame leaves as one pre-framed HTTP chunk in
 *   one `socket.write`, as Sluice's SseWriter does: the floor for this workload in Node), `sluice`
 *   and `native` (bench/native/loopback-floor.c, built with `cc`: a C epoll server and client doing
 *   the same schedule with ~200-byte frames, one `write(2)` per chunk and no HTTP: the floor of the
 *   machine itself, whatever the server is written in). Default `native,raw,sluice` (without
 *   `native` when there is no C compiler).
 * - `ACTION=generator`: the Sluice action yields from an async generator instead of awaiting
 *   `dispatcher.streamChunk()` (the default).
 * - `TIMERS=timeout`: a `setTimeout` per stream and chunk instead of the shared wake-up wheel.
 * - `LOG_LIMIT=16`: the runs' `logLimit` (and `highWaterMark`, at most 256); a run keeps up to twice
 *   that many events for resumes (default 4,096), which the GC pays for.
 * - `TRACE=1`: the client prints latency per 250 ms of due time (when were the slow chunks due?).
 * - `SERVER_FLAGS`: extra Node flags for the server processes (e.g. `--perf-basic-prof` for `perf`).
 * - `PROFILE=sluice` (or `raw`, or `raw,sluice`): each such server writes a CPU profile of its
 *   measured interval (from "go" to the last chunk) into `PROFILE_DIR` (default /tmp).
 *
 * Processes: this one only orchestrates (it sleeps while measuring). Each run forks a fresh server
 * and a fresh client, so the server's CPU, event loop and memory are its own: on this 2-core
 * machine the server gets one core and the client the other (the client's CPU is printed too; near
 * 100 % it would be the bottleneck). The machine is shared: the load average is printed per run.
 *
 * Workload: every stream waits for a common start ("go", once all streams are open), then emits
 * one chunk every 50 ms on a drift-free schedule (due = start + random phase + i × 50 ms). The
 * producers are woken by one 1 ms wheel per process (a stand-in for the upstream model sockets
 * that would wake them, cheap next to the server's own work); each chunk carries its due time in
 * µs, so **added latency = receive time − due time**: it counts everything a chunk waits for on the
 * server (a late wake-up because the event loop is busy, the framework, the socket) and the
 * client's read. **Steady state**: all streams start together and end together, so chunks due in
 * the first and the last second are left out. **Delivered / offered**: chunks received in the
 * steady window / chunks due in it; a server that cannot keep up falls behind and shows below
 * 100 % (above 100 %: it caught up on a backlog from the start).
 *
 * Client: raw `net` sockets writing a hand-made HTTP/1.1 POST (the Rasa call that Sluice parses and
 * the raw server parses too), reading into one shared buffer (`onread`, no allocation per read)
 * and scanning bytes only for `"text":"<µs>"` and, at the end, `event: run-end`.
 */

import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { envInt, median, percentile } from './http-lib.ts';

const PERIOD_MS = 50; // 20 chunks/s
const RATE = 1000 / PERIOD_MS;
const P99_LIMIT_MS = 100;
const DELIVERY_MIN = 0.99;
/** Seconds at the start (all streams start together) and at the end (all end together) left out. */
const WARMUP_S = 1;
/** Streams opened at once while ramping up (the listen backlog is 4096). */
const OPEN_BATCH = 500;
const SELF = fileURLToPath(import.meta.url);

/** See `IMPLS` in the module comment. */
type Impl = 'native' | 'raw' | 'raw-direct' | 'sluice';
const IMPLS: readonly Impl[] = ['native', 'raw', 'raw-direct', 'sluice'];

const ORIGIN = performance.timeOrigin;
/** Wall-clock milliseconds with sub-ms resolution, comparable across processes. */
function now(): number {
  return ORIGIN + performance.now();
}

/** The Rasa action call every stream posts (the raw server parses it too). */
function callFor(action: string, sender: string, count: number): string {
  return JSON.stringify({
    next_action: action,
    sender_id: sender,
    tracker: { sender_id: sender, slots: { count }, latest_message: {}, events: [] },
    domain: { version: '3.1' },
  });
}

// ---------------------------------------------------------------------------------------------
// The workload, shared by every server: wait for "go", then a drift-free 50 ms schedule.

let goAt = 0;
let release!: () => void;
const go = new Promise<void>((resolve) => {
  release = () => {
    goAt = now();
    resolve();
  };
});

/**
 * How producers wait for their next due time. `wheel` (default): one 1 ms interval timer for the
 * whole process, due wake-ups kept in 1 ms buckets, so the stand-in for an upstream (a model's
 * socket) costs little next to the server; `timeout`: a `setTimeout` per stream and chunk.
 */
const TIMERS = process.env.TIMERS === 'timeout' ? 'timeout' : 'wheel';
/** Buckets of the wake-up wheel, by whole ms (mod 128; nothing is scheduled further than 51 ms ahead). */
const buckets: (() => void)[][] = Array.from({ length: 128 }, () => []);
/** The last whole ms whose bucket was emptied. */
let wheelAt = 0;
let wheelTimer: NodeJS.Timeout | null = null;

function turnWheel(): void {
  const to = Math.floor(now());
  for (; wheelAt < to; ) {
    const bucket = buckets[++wheelAt & 127]!;
    if (bucket.length === 0) continue;
    buckets[wheelAt & 127] = [];
    for (let i = 0; i < bucket.length; i++) bucket[i]!();
  }
}

/** Resolves at `due` (ms, wall clock), or returns undefined when it is already past. */
function until(due: number): Promise<void> | undefined {
  if (TIMERS === 'timeout') {
    const wait = Math.round(due - now());
    return wait < 1 ? undefined : new Promise((resolve) => setTimeout(resolve, wait));
  }
  const slot = Math.ceil(due);
  if (wheelTimer === null) {
    wheelAt = Math.floor(now());
    wheelTimer = setInterval(turnWheel, 1);
  }
  if (slot <= wheelAt) return undefined;
  return new Promise((resolve) => buckets[slot & 127]!.push(resolve));
}

/** The chunk text: the due time in whole µs (16 digits). */
function stamp(due: number): string {
  return String(Math.round(due * 1000));
}

/** Process-wide figures a server reports between "go" and "stats". */
function serverStats(profileTo: string | undefined): { start(): void; stop(): Promise<object> } {
  let elu0 = performance.eventLoopUtilization();
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  const delay = monitorEventLoopDelay({ resolution: 10 });
  let gcMs = 0;
  let gcMax = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcMs += entry.duration;
      if (entry.duration > gcMax) gcMax = entry.duration;
    }
  });
  let session: import('node:inspector').Session | undefined;
  return {
    start() {
      if (profileTo !== undefined) {
        session = new inspector.Session();
        session.connect();
        session.post('Profiler.enable');
        session.post('Profiler.setSamplingInterval', { interval: 200 });
        session.post('Profiler.start');
      }
      elu0 = performance.eventLoopUtilization();
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      delay.enable();
      gcObserver.observe({ entryTypes: ['gc'] });
    },
    async stop() {
      delay.disable();
      gcObserver.disconnect();
      const cpu = process.cpuUsage(cpu0);
      const seconds = (performance.now() - t0) / 1000;
      const elu = performance.eventLoopUtilization(elu0).utilization;
      if (session !== undefined) {
        const { profile } = await new Promise<{ profile: object }>((resolve, reject) =>
          session!.post('Profiler.stop', (error, result) => (error ? reject(error) : resolve(result))),
        );
        writeFileSync(profileTo!, JSON.stringify(profile));
        session.disconnect();
      }
      return {
        elu,
        cpuUser: cpu.user / 1e6 / seconds,
        cpuSystem: cpu.system / 1e6 / seconds,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        loopDelayP99: delay.percentile(99) / 1e6,
        gcShare: gcMs / 1000 / seconds,
        gcMax,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Sluice server.

/**
 * The Sluice action's style: `dispatcher` (default; Rasa style, `await dispatcher.streamChunk()`)
 * or `generator` (`async *stream()` yielding strings, which adds the async-generator protocol).
 */
const ACTION = process.env.ACTION === 'generator' ? 'generator' : 'dispatcher';

async function sluiceServer(): Promise<{ port: number; active(): number; close(): Promise<void> }> {
  const { defineAction } = await import('../src/runtime/action.ts');
  const { ActionExecutor } = await import('../src/runtime/executor.ts');
  const { silentLogger } = await import('../src/runtime/logger.ts');
  const { createHttpServer } = await import('../src/transports/http/index.ts');
  const logLimit = process.env.LOG_LIMIT === undefined ? undefined : envInt('LOG_LIMIT', 65_536);
  const executor = new ActionExecutor({
    logger: silentLogger,
    run: logLimit === undefined ? undefined : { highWaterMark: Math.min(256, logLimit), logLimit },
    actions: [
      defineAction({
        name: 'bench_idle',
        async run(_dispatcher, _tracker, _domain, { signal }) {
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          return [];
        },
      }),
      ACTION === 'generator'
        ? defineAction({
            name: 'bench_ticker',
            async *stream({ tracker, signal }) {
              const count = tracker.getSlot('count') as number;
              await go;
              let due = goAt + Math.random() * PERIOD_MS;
              for (let i = 0; i < count; i++) {
                const wait = until(due);
                if (wait !== undefined) await wait;
                // No abort listener per tick: a cancelled run is noticed at the next tick.
                if (signal.aborted) return;
                yield stamp(due);
                due += PERIOD_MS;
              }
            },
          })
        : defineAction({
            name: 'bench_ticker',
            async run(dispatcher, tracker, _domain, { signal }) {
              const count = tracker.getSlot('count') as number;
              await go;
              let due = goAt + Math.random() * PERIOD_MS;
              for (let i = 0; i < count; i++) {
                const wait = until(due);
                if (wait !== undefined) await wait;
                if (signal.aborted) return [];
                const sent = dispatcher.streamChunk({ text: stamp(due) });
                if (sent !== undefined) await sent;
                due += PERIOD_MS;
              }
              await dispatcher.streamEnd();
              return [];
            },
          }),
    ],
  });
  const app = createHttpServer({ executor });
  const base = await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
  return {
    port: Number(new URL(base).port),
    active: () => executor.activeRuns,
    async close() {
      await app.close();
      await executor.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw node:http server: the same frames, the same wake-ups, one write per chunk, `drain` honoured.

const RAW_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
};

async function rawServer(direct: boolean): Promise<{ port: number; active(): number; close(): Promise<void> }> {
  let active = 0;
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (text: string) => (body += text));
    req.on('end', () => {
      const call = JSON.parse(body) as { next_action: string; tracker: { slots: { count: number } } };
      const action = call.next_action;
      const count = call.tracker.slots.count;
      const runId = randomUUID();
      const responseId = randomBytes(16).toString('hex');
      let seq = 0;
      let closed = false;
      let waiting: (() => void) | null = null;
      active++;
      open.add(res);
      const frame = (event: { type: string; runId?: string; seq?: number }): string => {
        event.runId = runId;
        event.seq = ++seq;
        return `id: ${seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
      };
      const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
      ping.unref();
      res.on('close', () => {
        closed = true;
        clearInterval(ping);
        open.delete(res);
        active--;
        waiting?.();
      });
      // `raw-direct` bypasses `res`, so its backpressure is the socket's.
      (direct ? res.socket! : res).on('drain', () => waiting?.());
      res.writeHead(200, RAW_HEADERS);
      res.flushHeaders();
      res.write(frame({ type: 'run-start', action, at: Date.now() } as { type: string }));
      if (action === 'bench_idle') return;
      void (async () => {
        await go;
        let due = goAt + Math.random() * PERIOD_MS;
        for (let i = 0; i < count && !closed; i++) {
          const wait = until(due);
          if (wait !== undefined) await wait;
          if (closed) return;
          const text = frame({ type: 'chunk', responseId, text: stamp(due) } as { type: string });
          const ok = direct ? res.socket!.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`) : res.write(text);
          if (!ok) await new Promise<void>((resolve) => (waiting = resolve));
          waiting = null;
          due += PERIOD_MS;
        }
        if (!closed) res.end(frame({ type: 'run-end', reason: 'completed' } as { type: string }));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    active: () => active,
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Server process: `node bench/sse-concurrency.ts server raw|sluice`.

async function serveProcess(impl: Impl): Promise<void> {
  const server = impl === 'sluice' ? await sluiceServer() : await rawServer(impl === 'raw-direct');
  const stats = serverStats(process.env.PROFILE_TO);
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = async (): Promise<NodeJS.MemoryUsage> => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await sleep(100);
    }
    return process.memoryUsage();
  };
  process.on('message', async (message: { type: string }) => {
    switch (message.type) {
      case 'memory':
        process.send!({ type: 'memory', memory: await settle(), active: server.active() });
        break;
      case 'go':
        stats.start();
        release();
        process.send!({ type: 'going', at: goAt });
        break;
      case 'stats':
        process.send!({ type: 'stats', ...(await stats.stop()), active: server.active() });
        break;
      case 'exit':
        await server.close();
        process.exit(0);
    }
  });
  process.send!({ type: 'listening', port: server.port });
}

// ---------------------------------------------------------------------------------------------
// Client process: `node bench/sse-concurrency.ts client`.

interface OpenCommand {
  type: 'open';
  port: number;
  action: string;
  n: number;
  /** Chunks each stream sends (0: idle streams, wait only for the headers). */
  chunks: number;
}

const MARK = Buffer.from('"text":"');
const RUN_END = Buffer.from('event: run-end');
const HEAD_END = Buffer.from('\r\n\r\n');
/** Bytes a marker and its stamp take: `"text":"` + 16 digits + `"`. */
const MARK_SPAN = MARK.length + 17;

interface Stream {
  socket: net.Socket;
  headers: boolean;
  got: number;
  /** Bytes of an incomplete frame left from the previous read. */
  carry: Buffer | null;
  done: boolean;
}

function clientProcess(): void {
  const streams: Stream[] = [];
  process.on('message', async (message: OpenCommand | { type: 'close' } | { type: 'exit' }) => {
    if (message.type === 'exit') process.exit(0);
    if (message.type === 'close') {
      for (const stream of streams.splice(0)) stream.socket.destroy();
      process.send!({ type: 'closed' });
      return;
    }
    const { port, action, n, chunks } = message;
    const shared = Buffer.allocUnsafe(256 * 1024);
    const latencies = new Float64Array(n * Math.max(chunks, 1));
    let samples = 0;
    /** Samples of the steady state (see `steadyFrom` / `steadyTo`). */
    let steady = 0;
    let steadyFrom = Infinity;
    /** The window [steadyFrom, steadyTo) in which due and received chunks are counted. */
    let steadyTo = Infinity;
    let dueInWindow = 0;
    let receivedInWindow = 0;
    const trace: number[] | null = process.env.TRACE === '1' ? [] : null;
    let firstDue = Infinity;
    let lastAt = 0;
    let ready = 0;
    let failed = 0;
    let finished = 0;
    let onReady: (() => void) | null = null;
    let onFinished: (() => void) | null = null;
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();

    const finish = (stream: Stream, ok: boolean): void => {
      if (stream.done) return;
      stream.done = true;
      if (!ok) failed++;
      finished++;
      if (!stream.headers) onReady?.();
      if (finished === n) onFinished?.();
    };

    const read = (stream: Stream, nread: number, buf: Buffer): void => {
      const received = now();
      let data = buf;
      let len = nread;
      if (stream.carry !== null) {
        data = Buffer.concat([stream.carry, buf.subarray(0, nread)]);
        len = data.length;
        stream.carry = null;
      }
      let pos = 0;
      if (!stream.headers) {
        const end = data.indexOf(HEAD_END);
        if (end === -1 || end >= len) {
          stream.carry = Buffer.from(data.subarray(0, len));
          return;
        }
        // "HTTP/1.1 200"
        if (data[9] !== 0x32 || data[10] !== 0x30 || data[11] !== 0x30) {
          finish(stream, false);
          stream.socket.destroy();
          return;
        }
        stream.headers = true;
        ready++;
        onReady?.();
        pos = end + 4;
      }
      let parsedTo = pos;
      const inWindow = received >= steadyFrom && received < steadyTo;
      for (let at = data.indexOf(MARK, pos); at !== -1 && at + MARK_SPAN <= len; at = data.indexOf(MARK, at + MARK_SPAN)) {
        let due = 0;
        let i = at + MARK.length;
        for (let c = data[i]!; c !== 0x22; c = data[++i]!) due = due * 10 + (c - 0x30);
        due /= 1000;
        if (firstDue === Infinity) {
          steadyFrom = due + WARMUP_S * 1000;
          steadyTo = due + (chunks - RATE * WARMUP_S) * PERIOD_MS;
        }
        if (due >= steadyFrom && due < steadyTo) {
          if (steady < latencies.length) latencies[steady++] = received - due;
          dueInWindow++;
        }
        if (trace !== null) trace.push(due, received - due);
        samples++;
        if (due < firstDue) firstDue = due;
        lastAt = received;
        if (inWindow) receivedInWindow++;
        stream.got++;
        parsedTo = i + 1;
      }
      if (stream.got >= chunks && chunks > 0) {
        const end = data.indexOf(RUN_END, parsedTo);
        if (end !== -1 && end < len) {
          finish(stream, true);
          stream.socket.destroy();
          return;
        }
      }
      // A read that stops inside a frame (rare: frames are written whole): keep its tail.
      const last = data[len - 1];
      const clean = last === 0x0a && (data[len - 2] === 0x0a || (data[len - 2] === 0x0d && data[len - 3] === 0x0a));
      if (!clean) stream.carry = Buffer.from(data.subarray(Math.max(parsedTo, len - MARK_SPAN - RUN_END.length), len));
    };

    const openOne = (i: number): void => {
      const body = callFor(action, `s${i}`, chunks);
      const request =
        `POST /webhook/stream HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\n` +
        `accept: text/event-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      const stream: Stream = { socket: null as unknown as net.Socket, headers: false, got: 0, carry: null, done: false };
      stream.socket = net.connect({
        port,
        host: '127.0.0.1',
        noDelay: true,
        onread: { buffer: shared, callback: (nread: number, buf: Uint8Array) => (read(stream, nread, buf as Buffer), true) },
      });
      stream.socket.on('error', () => finish(stream, false));
      stream.socket.on('close', () => finish(stream, chunks === 0 ? stream.headers : stream.got >= chunks));
      stream.socket.write(request);
      streams.push(stream);
    };

    const t0 = performance.now();
    for (let i = 0; i < n; i += OPEN_BATCH) {
      const batch = Math.min(n, i + OPEN_BATCH);
      for (let j = i; j < batch; j++) openOne(j);
      await new Promise<void>((resolve) => {
        onReady = () => {
          if (ready + failed >= batch) resolve();
        };
        onReady();
      });
    }
    onReady = null;
    process.send!({ type: 'ready', ready, failed, openMs: performance.now() - t0 });
    if (chunks === 0) return;

    const deadline = performance.now() + (chunks / RATE) * 4000 + 30_000;
    await new Promise<void>((resolve) => {
      onFinished = resolve;
      if (finished === n) resolve();
      const timer = setInterval(() => {
        if (performance.now() > deadline) resolve();
      }, 500);
      timer.unref();
    });
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    if (trace !== null) printTrace(trace, firstDue);
    // Latency of the steady state only (see steadyFrom / steadyTo).
    const sorted = latencies.subarray(0, steady).sort();
    for (const stream of streams.splice(0)) stream.socket.destroy();
    process.send!({
      type: 'latency',
      samples,
      expected: n * chunks,
      incomplete: n - finished + failed,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted[steady - 1],
      dueInWindow,
      receivedInWindow,
      window: steadyTo - steadyFrom,
      lastAt,
      firstDue,
      cpu: (cpu.user + cpu.system) / 1e6,
      elu: elu.utilization,
    });
  });
}

if (process.argv[2] === 'server') await serveProcess(process.argv[3] as Impl);
else if (process.argv[2] === 'client') clientProcess();
else await orchestrate();

// ---------------------------------------------------------------------------------------------
// Orchestrator.

function reply<T = any>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (message: { type: string }): void => {
      if (message.type !== type) return;
      child.off('message', on);
      child.off('exit', onExit);
      resolve(message as T);
    };
    const onExit = (code: number | null): void => reject(new Error(`child exited (${code}) while waiting for '${type}'`));
    child.on('message', on);
    child.once('exit', onExit);
  });
}

/** The figures of one run of one implementation at one N. */
interface Trial {
  p50: number;
  p99: number;
  max: number;
  delivered: number;
  offered: number;
  ratio: number;
  elu: number;
  cpu: number;
  cpuPerChunkUs: number;
  loopDelayP99: number;
  clientCpu: number;
  incomplete: number;
}

async function orchestrate(): Promise<void> {
  const list = (process.env.N ?? '2000,4000,6000,8000,10000').split(',').map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`N must be a comma list of positive integers (got ${process.env.N})`);
  const REPS = envInt('REPS', 3);
  const DURATION_S = envInt('DURATION_S', 8);
  if (DURATION_S < 3) throw new Error('DURATION_S must be at least 3 (the first second is warm-up)');
  const IDLE_N = process.env.IDLE_N === '0' ? 0 : envInt('IDLE_N', 2000);
  const STEP = process.env.STEP === '0' ? 0 : envInt('STEP', 1000);
  const floor = buildNativeFloor();
  const impls = (process.env.IMPLS ?? (floor instanceof Error ? 'raw,sluice' : 'native,raw,sluice')).split(',') as Impl[];
  if (impls.some((impl) => !IMPLS.includes(impl))) throw new Error(`IMPLS must list some of ${IMPLS.join(', ')} (got ${process.env.IMPLS})`);
  if (impls.includes('native') && floor instanceof Error) throw floor;
  const profile = (process.env.PROFILE ?? '').split(',').filter((impl) => impl !== '');
  let profiles = 0;
  const fdLimit = await fdLimitOf();
  const top = Math.max(...list, IDLE_N);
  if (fdLimit !== undefined && top + 100 > fdLimit) {
    console.log(`N=${top} needs more file descriptors than ulimit -n allows (${fdLimit}); use N ≤ ${fdLimit - 100}`);
    process.exit(1);
  }
  console.log(
    `SSE concurrency at ${RATE} chunks/s per stream: Sluice vs raw node:http and the machine's C floor (Node ${process.version}, ${os.cpus().length} cores, ` +
      `ulimit -n ${fdLimit ?? '?'}, loadavg ${loadavg()})`,
  );
  console.log(
    `  pass = p99 added latency < ${P99_LIMIT_MS} ms and delivered ≥ ${DELIVERY_MIN * 100}% of offered; medians of ${REPS} run(s); ` +
      `${DURATION_S} s per run (measured over the steady state: chunks due in the first and last ${WARMUP_S} s are left out)`,
  );

  const spawnServer = async (impl: Impl, memory = false): Promise<{ child: ChildProcess; port: number }> => {
    const execArgv = [...process.execArgv, '--expose-gc', ...(process.env.SERVER_FLAGS ?? '').split(' ').filter((flag) => flag !== '')];
    const env = { ...process.env };
    delete env.PROFILE_TO;
    if (profile.includes(impl) && !memory) {
      env.PROFILE_TO = `${process.env.PROFILE_DIR ?? '/tmp'}/sse-concurrency-${impl}-${process.pid}-${++profiles}.cpuprofile`;
      console.log(`    (profiling ${impl} to ${env.PROFILE_TO})`);
    }
    const child = fork(SELF, ['server', impl], { execArgv, env, serialization: 'advanced' });
    const { port } = await reply<{ port: number }>(child, 'listening');
    return { child, port };
  };
  const stop = async (server: ChildProcess, client: ChildProcess): Promise<void> => {
    client.send({ type: 'exit' });
    server.send({ type: 'exit' });
    await Promise.all([waitExit(client), waitExit(server)]);
  };

  // 1. Memory per idle stream.
  if (IDLE_N > 0) {
    // raw-direct differs from raw only in how chunks are written: its idle streams are raw's.
    for (const impl of impls.filter((impl) => impl !== 'raw-direct' && impl !== 'native')) {
      const rss: number[] = [];
      const heap: number[] = [];
      for (let rep = 0; rep < REPS; rep++) {
        const { child: server, port } = await spawnServer(impl, true);
        const client = fork(SELF, ['client'], { serialization: 'advanced' });
        server.send({ type: 'memory' });
        const before = (await reply(server, 'memory')).memory as NodeJS.MemoryUsage;
        client.send({ type: 'open', port, action: 'bench_idle', n: IDLE_N, chunks: 0 } satisfies OpenCommand);
        const opened = await reply(client, 'ready');
        server.send({ type: 'memory' });
        const after = await reply(server, 'memory');
        rss.push((after.memory.rss - before.rss) / IDLE_N);
        heap.push((after.memory.heapUsed - before.heapUsed) / IDLE_N);
        if (opened.failed > 0 || after.active !== IDLE_N) console.log(`  ! ${impl}: ${opened.failed} idle streams failed, ${after.active} active`);
        await stop(server, client);
      }
      console.log(
        `  ${impl.padEnd(6)} memory per idle stream (N=${IDLE_N}): RSS ${kib(median(rss))} KiB, heap ${kib(median(heap))} KiB` +
          `  (runs: RSS ${rss.map(kib).join(' / ')}, heap ${heap.map(kib).join(' / ')})`,
      );
    }
  }

  // 2. Ramp (then bisect) N per implementation.
  const results = new Map<string, Trial>();
  const runOnce = async (impl: Impl, n: number): Promise<Trial> => {
    if (impl === 'native') return runNative(floor as string, n, DURATION_S);
    const chunks = RATE * DURATION_S;
    const { child: server, port } = await spawnServer(impl);
    const client = fork(SELF, ['client'], { serialization: 'advanced' });
    client.send({ type: 'open', port, action: 'bench_ticker', n, chunks } satisfies OpenCommand);
    const ready = await reply(client, 'ready');
    await sleep(200);
    server.send({ type: 'go' });
    await reply(server, 'going');
    const latency = await reply(client, 'latency');
    server.send({ type: 'stats' });
    const stats = await reply(server, 'stats');
    await stop(server, client);
    const offered = latency.dueInWindow / (latency.window / 1000);
    const delivered = latency.receivedInWindow / (latency.window / 1000);
    const seconds = (latency.lastAt - latency.firstDue) / 1000;
    const trial: Trial = {
      p50: latency.p50,
      p99: latency.p99,
      max: latency.max,
      delivered,
      offered,
      ratio: delivered / offered,
      elu: stats.elu,
      cpu: stats.cpuUser + stats.cpuSystem,
      cpuPerChunkUs: (stats.cpuSeconds / latency.samples) * 1e6,
      loopDelayP99: stats.loopDelayP99,
      clientCpu: latency.cpu / seconds,
      incomplete: latency.incomplete + ready.failed,
    };
    console.log(
      `    ${impl.padEnd(6)} N=${String(n).padStart(5)}: p50 ${ms(trial.p50)} p99 ${ms(trial.p99)} max ${ms(trial.max)} ms; ` +
        `delivered ${kcs(delivered)}/${kcs(offered)} k chunks/s (${pct(trial.ratio)}); server ELU ${pct(trial.elu)}, CPU ${pct(trial.cpu)} ` +
        `(${trial.cpuPerChunkUs.toFixed(1)} µs/chunk, ${pct(stats.cpuSystem / trial.cpu)} sys), loop delay p99 ${ms(trial.loopDelayP99)} ms, GC ${pct(stats.gcShare)} (longest ${ms(stats.gcMax)} ms); client CPU ${pct(trial.clientCpu)}` +
        `${trial.incomplete > 0 ? `; ${trial.incomplete} streams incomplete` : ''}; open ${(ready.openMs / 1000).toFixed(1)} s; loadavg ${loadavg()}`,
    );
    return trial;
  };
  const medianTrial = (trials: Trial[]): Trial => {
    const pick = (key: keyof Trial): number => median(trials.map((t) => t[key]));
    return {
      p50: pick('p50'),
      p99: pick('p99'),
      max: pick('max'),
      delivered: pick('delivered'),
      offered: pick('offered'),
      ratio: pick('ratio'),
      elu: pick('elu'),
      cpu: pick('cpu'),
      cpuPerChunkUs: pick('cpuPerChunkUs'),
      loopDelayP99: pick('loopDelayP99'),
      clientCpu: pick('clientCpu'),
      incomplete: pick('incomplete'),
    };
  };
  const passes = (t: Trial): boolean => t.p99 < P99_LIMIT_MS && t.ratio >= DELIVERY_MIN;
  const measure = async (n: number, which: Impl[]): Promise<void> => {
    console.log(`  N=${n}:`);
    const trials = new Map<Impl, Trial[]>(which.map((impl) => [impl, []]));
    // Interleaved, so a burst of load from elsewhere on the machine hits both alike.
    for (let rep = 0; rep < REPS; rep++) for (const impl of which) trials.get(impl)!.push(await runOnce(impl, n));
    for (const impl of which) {
      const m = medianTrial(trials.get(impl)!);
      results.set(`${impl}:${n}`, m);
      console.log(
        `  = ${impl.padEnd(6)} N=${String(n).padStart(5)} median: p50 ${ms(m.p50)} p99 ${ms(m.p99)} max ${ms(m.max)} ms, delivered ${pct(m.ratio)}, ` +
          `ELU ${pct(m.elu)}, ${m.cpuPerChunkUs.toFixed(1)} µs CPU/chunk → ${passes(m) ? 'pass' : 'FAIL'}`,
      );
    }
  };

  const best = new Map<Impl, number>();
  const failedAt = new Map<Impl, number>();
  for (const n of list) {
    const which = impls.filter((impl) => !failedAt.has(impl));
    if (which.length === 0) break;
    await measure(n, which);
    for (const impl of which) {
      if (passes(results.get(`${impl}:${n}`)!)) best.set(impl, n);
      else failedAt.set(impl, n);
    }
  }
  if (STEP > 0) {
    for (const impl of impls) {
      let low = best.get(impl) ?? 0;
      let high = failedAt.get(impl);
      while (high !== undefined && high - low > STEP) {
        const mid = Math.round((low + high) / 2 / 100) * 100;
        if (mid <= low || mid >= high) break;
        await measure(mid, [impl]);
        if (passes(results.get(`${impl}:${mid}`)!)) low = mid;
        else high = mid;
      }
      if (low > 0) best.set(impl, low);
      if (high !== undefined) failedAt.set(impl, high);
    }
  }

  console.log('  summary (medians):');
  const ns = [...new Set([...results.keys()].map((key) => Number(key.split(':')[1])))].sort((a, b) => a - b);
  console.log(`    ${'N'.padStart(6)}  ${'impl'.padEnd(10)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'max ms'.padStart(7)}  delivered   ELU  CPU µs/chunk`);
  for (const n of ns) {
    for (const impl of impls) {
      const t = results.get(`${impl}:${n}`);
      if (t === undefined) continue;
      console.log(
        `    ${String(n).padStart(6)}  ${impl.padEnd(10)} ${ms(t.p50).padStart(7)} ${ms(t.p99).padStart(7)} ${ms(t.max).padStart(7)}  ` +
          `${pct(t.ratio).padStart(9)} ${pct(t.elu).padStart(5)} ${t.cpuPerChunkUs.toFixed(1).padStart(13)}  ${passes(t) ? 'pass' : 'FAIL'}`,
      );
    }
  }
  for (const impl of impls) {
    const n = best.get(impl);
    const limit = failedAt.has(impl) ? `(fails at ${failedAt.get(impl)})` : '(passed every N tried)';
    console.log(`  ${impl.padEnd(10)} max N with p99 < ${P99_LIMIT_MS} ms and ≥ ${DELIVERY_MIN * 100}% delivered: ${n ?? 'none'} ${limit}`);
  }
  const sluice = best.get('sluice');
  for (const base of ['native', 'raw', 'raw-direct'] as const) {
    const other = best.get(base);
    if (sluice === undefined || other === undefined) continue;
    const common = ns.filter((n) => results.has(`${base}:${n}`) && results.has(`sluice:${n}`));
    const cpu = common.map((n) => `${(results.get(`sluice:${n}`)!.cpuPerChunkUs / results.get(`${base}:${n}`)!.cpuPerChunkUs).toFixed(2)}× at ${n}`);
    console.log(`  Sluice/${base}: max N ${(sluice / other).toFixed(2)}; server CPU per chunk ${cpu.join(', ')}`);
  }
}

/** Builds bench/native/loopback-floor.c into the temp dir; the error says why when it cannot. */
function buildNativeFloor(): string | Error {
  const source = fileURLToPath(new URL('./native/loopback-floor.c', import.meta.url));
  const binary = `${os.tmpdir()}/sluice-loopback-floor`;
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', binary, source], { stdio: 'pipe' });
    return binary;
  } catch (error) {
    return new Error(`IMPLS=native needs a C compiler (\`cc\`, or CC=…) to build ${source}: ${(error as Error).message}`);
  }
}

/** One run of the C floor (its server and client are its own two processes). */
function runNative(binary: string, n: number, seconds: number): Trial {
  const out = JSON.parse(execFileSync(binary, [String(n), String(seconds), 'json'], { encoding: 'utf8' })) as {
    p50: number;
    p99: number;
    max: number;
    offered: number;
    delivered: number;
    sent: number;
    serverUser: number;
    serverSystem: number;
    clientCpu: number;
    shortWrites: number;
  };
  const window = seconds - 2 * WARMUP_S;
  const cpu = (out.serverUser + out.serverSystem) / seconds;
  const trial: Trial = {
    p50: out.p50,
    p99: out.p99,
    max: out.max,
    delivered: out.delivered / window,
    offered: out.offered / window,
    ratio: out.delivered / out.offered,
    elu: cpu,
    cpu,
    cpuPerChunkUs: ((out.serverUser + out.serverSystem) / out.sent) * 1e6,
    loopDelayP99: 0,
    clientCpu: out.clientCpu / seconds,
    incomplete: out.shortWrites,
  };
  console.log(
    `    ${'native'.padEnd(6)} N=${String(n).padStart(5)}: p50 ${ms(trial.p50)} p99 ${ms(trial.p99)} max ${ms(trial.max)} ms; ` +
      `delivered ${kcs(trial.delivered)}/${kcs(trial.offered)} k chunks/s (${pct(trial.ratio)}); server CPU ${pct(cpu)} ` +
      `(${trial.cpuPerChunkUs.toFixed(1)} µs/chunk, ${pct(out.serverSystem / (out.serverUser + out.serverSystem))} sys); client CPU ${pct(trial.clientCpu)}` +
      `${out.shortWrites > 0 ? `; ${out.shortWrites} short writes` : ''}; loadavg ${loadavg()}`,
  );
  return trial;
}

/** `TRACE=1`: p50 / p99 / max latency per 250 ms of due time, to see when the slow chunks were due. */
function printTrace(trace: number[], from: number): void {
  const bins = new Map<number, number[]>();
  for (let i = 0; i < trace.length; i += 2) {
    const bin = Math.floor((trace[i]! - from) / 250);
    let list = bins.get(bin);
    if (list === undefined) bins.set(bin, (list = []));
    list.push(trace[i + 1]!);
  }
  for (const [bin, list] of [...bins].sort((a, b) => a[0] - b[0])) {
    const sorted = Float64Array.from(list).sort();
    console.log(
      `      t=${((bin * 250) / 1000).toFixed(2)} s: n ${sorted.length} p50 ${ms(percentile(sorted, 50))} p99 ${ms(percentile(sorted, 99))} max ${ms(sorted[sorted.length - 1]!)}`,
    );
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function kib(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}

function ms(value: number): string {
  return value < 10 ? value.toFixed(2) : value.toFixed(0);
}

function pct(value: number): string {
  return `${(value * 100).toFixed(0)}%`;
}

function kcs(value: number): string {
  return (value / 1000).toFixed(1);
}

function loadavg(): string {
  return os.loadavg().map((v) => v.toFixed(2)).join(' ');
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
