/**
 * Helpers shared by the transport benchmarks (sse.ts, ws.ts, sse-concurrency.ts, ui-message.ts,
 * sentences.ts); figures only.
 */

import { once } from 'node:events';
import http from 'node:http';
import { Worker } from 'node:worker_threads';
import { defineAction, type ActionDefinition } from '../src/runtime/action.ts';

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The p-th percentile (0–100) of a sorted list. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

/** Reads a positive integer from the environment. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got ${raw})`);
  return value;
}

/** A streaming action that yields `count` small text chunks as fast as backpressure allows. */
export function chunksAction(count: number): ActionDefinition {
  return defineAction({
    name: 'bench_chunks',
    async *stream() {
      for (let i = 0; i < count; i++) yield 'tok ';
    },
  });
}

/** Formats a per-item line: `unit` names the item (default 'chunk': "µs/chunk", "chunks/s"). */
export function line(label: string, ms: number, chunks: number, unit = 'chunk'): string {
  const us = (ms * 1000) / chunks;
  const perSecond = Math.round(chunks / (ms / 1000));
  return `  ${label.padEnd(26)} ${us.toFixed(3).padStart(8)} µs/${unit}  ${perSecond.toLocaleString('en-US').padStart(12)} ${unit}s/s  (median ${ms.toFixed(1)} ms)`;
}

/** One path of a transport benchmark's report: its key in the runs, its label, and (raw paths) a target for sluice ÷ it. */
export interface ReportPath {
  key: string;
  label: string;
  target?: string;
}

/**
 * Prints a transport benchmark's result: the title, a {@link line} per path (the last one is
 * Sluice's), Sluice's ratio to each raw path with its target, `notes`, then every run.
 */
export function printComparison(title: string, chunks: number, paths: ReportPath[], times: Record<string, number[]>, notes: string[] = []): void {
  const ms = new Map(paths.map((path) => [path.key, median(times[path.key] ?? [])]));
  const sluice = paths[paths.length - 1] as ReportPath;
  const sluiceMs = ms.get(sluice.key) as number;
  console.log(title);
  for (const path of paths) console.log(line(path.label, ms.get(path.key) as number, chunks));
  for (const path of paths.slice(0, -1)) {
    const name = `${sluice.key} / ${path.key === 'raw' ? 'raw' : `raw ${path.key}`}`;
    const target = path.target === undefined ? '' : `  (target ${path.target})`;
    console.log(`  ratio ${name.padEnd(20)} ${(sluiceMs / (ms.get(path.key) as number)).toFixed(2)}×${target}`);
  }
  for (const note of notes) console.log(`  ${note}`);
  for (const [name, list] of Object.entries(times)) console.log(`  runs (ms) ${name.padEnd(8)} ${list.map((t) => t.toFixed(0)).join(' ')}`);
}

/** The Rasa call that runs `bench_chunks`. */
export const benchCall = {
  next_action: 'bench_chunks',
  sender_id: 'bench',
  tracker: { sender_id: 'bench', slots: {}, latest_message: {}, events: [] },
  domain: { version: '3.1' },
};

/** A request for the frame-counting client, and how many SSE frames its response must hold. */
export interface FrameJob {
  url: string;
  /** JSON body of a POST (GET without). */
  body?: string;
  frames: number;
}

/**
 * The frame-counting client, in a worker thread so it never shares the server's event loop:
 * `measure` resolves with the milliseconds a job took, and rejects on a wrong frame count.
 */
export function frameClient(): { measure(job: FrameJob): Promise<number>; close(): Promise<number> } {
  const worker = new Worker(new URL('./sse-frame-client.ts', import.meta.url));
  return {
    measure: (job) =>
      new Promise((resolve, reject) => {
        worker.once('message', (result: { ms: number; frames: number }) =>
          result.frames === job.frames ? resolve(result.ms) : reject(new Error(`expected ${job.frames} frames, got ${result.frames}`)),
        );
        worker.postMessage(job);
      }),
    close: () => worker.terminate(),
  };
}

/**
 * A raw `node:http` SSE server sending `n` frames (`frame(i)`, i from 1), honouring `drain`: one
 * write per frame at `/`, 256 frames per write at `/batched` (the best a raw writer can do).
 */
export async function rawSseServer(
  n: number,
  headers: http.OutgoingHttpHeaders,
  frame: (i: number) => string,
): Promise<{ url: string; close(): void }> {
  const server = http.createServer(async (req, res) => {
    res.writeHead(200, headers);
    res.flushHeaders();
    const batch = req.url === '/batched' ? 256 : 1;
    let text = '';
    for (let i = 1; i <= n; i++) {
      text += frame(i);
      if (i % batch !== 0 && i !== n) continue;
      const ok = res.write(text);
      text = '';
      if (!ok) await once(res, 'drain');
    }
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, close: () => server.close() };
}

/**
 * Runs every job `warmup + runs` times, interleaved so all see the same machine conditions, and
 * returns the measured milliseconds per job name (warm-up runs left out).
 */
export async function interleavedRuns<K extends string>(
  jobs: Record<K, () => FrameJob>,
  measure: (job: FrameJob) => Promise<number>,
  warmup: number,
  runs: number,
): Promise<Record<K, number[]>> {
  const names = Object.keys(jobs) as K[];
  const times = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < warmup + runs; i++) {
    for (const name of names) {
      const ms = await measure(jobs[name]());
      if (i >= warmup) times[name].push(ms);
    }
  }
  return times;
}
