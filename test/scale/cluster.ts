/**
 * Real `sluice serve` processes sharing one Redis, for the two-instance tests: spawns the CLI with
 * `--port 0 --grpc-port 0 --redis … --redis-prefix …` and reads the chosen addresses from its
 * stdout (any `http://host:port` is the HTTP address; the gRPC one is the host:port on a line that
 * says gRPC, whether the banner is text or a JSON log line).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { readSseEvents } from '../../src/client/sse.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE = join(repo, 'node_modules', '.bin', 'node');
const MAIN = join(repo, 'src', 'cli', 'main.ts');
export const FIXTURE = join(repo, 'test', 'scale', 'fixtures', 'actions.ts');

/** One running instance. */
export interface Instance {
  process: ChildProcess;
  http: string;
  grpc: string;
  /** Everything it printed. */
  output(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** kill -9. */
  kill(): Promise<void>;
}

/** Starts `sluice serve` on free ports with `--redis url --redis-prefix prefix` (and `extraArgs`). */
export async function startInstance(redisUrl: string, prefix: string, extraEnv: Record<string, string> = {}, extraArgs: string[] = []): Promise<Instance> {
  const child = spawn(NODE, [MAIN, 'serve', '--actions', FIXTURE, '--port', '0', '--grpc-port', '0', '--redis', redisUrl, '--redis-prefix', prefix, ...extraArgs], {
    cwd: repo,
    env: { ...process.env, SLUICE_LOG_LEVEL: 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => (out += text));
  child.stderr!.on('data', (text: string) => (out += text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const addresses = await new Promise<{ http: string; grpc: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sluice serve did not start within 30 s:\n${out}`)), 30_000);
    const check = (): void => {
      const http = out.match(/http:\/\/[\w.[\]:-]+:\d+/)?.[0];
      const grpc = out.split('\n').find((line) => /grpc/i.test(line) && !/http:\/\/[^\s"]*grpc/i.test(line))?.match(/((?:\d{1,3}\.){3}\d{1,3}|\[[^\]]+\]|localhost):(\d+)/)?.[0];
      if (http !== undefined && grpc !== undefined) {
        clearTimeout(timer);
        resolve({ http, grpc });
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sluice serve exited (${code}):\n${out}`));
    });
  });
  return {
    process: child,
    ...addresses,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A call of the fixture's `words` action. */
export function wordsCall(count: number, pause: number): Record<string, unknown> {
  return { next_action: 'words', tracker: { sender_id: 'scale', slots: { count, pause } } };
}

/** Starts a detached run over SSE; resolves with its id and the open stream of its events. */
export async function startRun(http: string, call: unknown): Promise<{ runId: string; events: AsyncGenerator<SluiceEvent>; abort: AbortController }> {
  const abort = new AbortController();
  const response = await fetch(`${http}/webhook/stream?detach=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(call),
    signal: abort.signal,
  });
  if (response.status !== 200 || response.body === null) throw new Error(`start failed: ${response.status} ${await response.text()}`);
  return { runId: response.headers.get('x-sluice-run-id')!, events: readSseEvents(response.body, { signal: abort.signal }), abort };
}

/** `GET /runs/:id/events` after `after` (as Last-Event-ID), read to the end. */
export async function readRun(http: string, runId: string, after?: number): Promise<{ status: number; events: SluiceEvent[]; body?: unknown }> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (after !== undefined) headers['last-event-id'] = String(after);
  const response = await fetch(`${http}/runs/${runId}/events`, { headers });
  if (response.status !== 200 || response.body === null) return { status: response.status, events: [], body: await response.json().catch(() => null) };
  const events: SluiceEvent[] = [];
  for await (const event of readSseEvents(response.body)) events.push(event);
  return { status: 200, events };
}

/** Reads an event iterator to its end. */
export async function drain(events: AsyncIterable<SluiceEvent>): Promise<SluiceEvent[]> {
  const out: SluiceEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}
