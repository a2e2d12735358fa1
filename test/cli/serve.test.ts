/**
 * `sluice serve`: `startServer` in process (HTTP + gRPC over one executor, and a close that leaves
 * nothing behind), then the real CLI as a child process: its printed URLs, SIGTERM, bad flags.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { startServer } from '../../src/cli/serve.ts';
import { readSseEvents } from '../../src/client/sse.ts';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { ActionService } from '../../src/transports/grpc/gen/action_webhook_pb.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE = join(repo, 'node_modules', '.bin', 'node');
const MAIN = join(repo, 'src', 'cli', 'main.ts');
const EXAMPLE_ACTIONS = ['action_weather', 'action_story', 'action_card', 'action_greet', 'action_chat'];

function chatCall(text: string): Record<string, unknown> {
  return {
    next_action: 'action_chat',
    sender_id: 'serve-test',
    tracker: { sender_id: 'serve-test', latest_message: { text }, events: [], slots: {} },
    domain: {},
  };
}

/** Reads an SSE action call to its end. */
async function streamCall(url: string, call: unknown): Promise<{ response: Response; events: SluiceEvent[] }> {
  const response = await fetch(`${url}/webhook/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(call),
  });
  assert.equal(response.status, 200);
  assert.ok(response.body !== null);
  const events: SluiceEvent[] = [];
  for await (const event of readSseEvents(response.body)) events.push(event);
  return { response, events };
}

/** Handles that keep a process alive (the test runner's own are in the baseline). */
function liveHandles(): string[] {
  return process.getActiveResourcesInfo().filter((name) => name !== 'FSReqCallback').sort();
}

/** Live handles beyond those in `baseline` (a keep-alive socket of an earlier test may close meanwhile). */
function added(baseline: string[]): string[] {
  const left = [...baseline];
  return liveHandles().filter((name) => {
    const i = left.indexOf(name);
    if (i === -1) return true;
    left.splice(i, 1);
    return false;
  });
}

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return false;
  } catch (error) {
    return (error as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';
  }
}

describe('startServer', () => {
  test('serves /health, /actions, gRPC Actions, and a streamed action_chat reply over SSE', async () => {
    const server = await startServer({ actions: 'examples/actions.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger });
    try {
      assert.match(server.httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(server.grpcAddress, /^127\.0\.0\.1:\d+$/);
      assert.notEqual(server.httpUrl, 'http://127.0.0.1:0');

      const health = await fetch(`${server.httpUrl}/health`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });

      const actions = await fetch(`${server.httpUrl}/actions`);
      assert.deepEqual(await actions.json(), EXAMPLE_ACTIONS.map((name) => ({ name })));

      const grpc = createClient(ActionService, createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }));
      const listed = await grpc.actions({});
      assert.deepEqual(listed.actions, EXAMPLE_ACTIONS.map((name) => ({ name })));

      const { response, events } = await streamCall(server.httpUrl, chatCall('weather in Paris'));
      assert.equal(response.headers.get('x-sluice-run-id'), events[0]?.runId);
      const types = events.map((e) => e.type);
      assert.deepEqual(types.slice(0, 3), ['run-start', 'status', 'stream-start']);
      assert.deepEqual(types.slice(-3), ['stream-end', 'result', 'run-end']);
      const status = events.find((e) => e.type === 'status');
      assert.equal(status?.type === 'status' && status.text, 'Looking up the forecast for Paris…');
      const chunks = events.filter((e) => e.type === 'chunk');
      assert.ok(chunks.length > 5, 'the reply is streamed word by word');
      assert.equal(chunks.map((c) => c.text).join(''), 'In Paris: Light rain in the morning, clearing by noon. Highs of 14°C.');
      assert.deepEqual(events.at(-1), { type: 'run-end', reason: 'completed', runId: events[0]?.runId, seq: events.length });
    } finally {
      await server.close();
    }
  });

  test('close() with a reply in flight ends it and leaves nothing running', async () => {
    const baseline = liveHandles();
    const server = await startServer({ actions: 'examples/actions.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger });
    const response = await fetch(`${server.httpUrl}/webhook/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ ...chatCall('tell me a story'), next_action: 'action_story' }),
    });
    assert.ok(response.body !== null);
    const events: SluiceEvent[] = [];
    const reading = (async () => {
      for await (const event of readSseEvents(response.body!)) events.push(event);
    })();
    // Wait until the story is streaming, then shut down under it.
    while (!events.some((e) => e.type === 'chunk')) await new Promise((resolve) => setTimeout(resolve, 5));
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started < 2_000, `close() took ${Date.now() - started} ms`);
    await reading.catch(() => {});

    assert.equal(server.executor.activeRuns, 0, 'no run left');
    assert.equal(server.executor.activeStreams, 0, 'no stream left');
    const runId = events[0]?.runId ?? '';
    assert.equal(server.executor.getRun(runId)?.endReason, 'cancelled', 'the story was cancelled, not left running');
    assert.ok(await refused(`${server.httpUrl}/health`), 'HTTP no longer listens');
    const grpc = createClient(ActionService, createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }));
    await assert.rejects(grpc.actions({}, { timeoutMs: 2_000 }), 'gRPC no longer listens');
    // Sockets may take a turn or two to be released after their servers closed.
    const until = Date.now() + 2_000;
    while (added(baseline).length > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(added(baseline), [], 'no listener, socket or timer is left');
  });
});

/** A child running the real CLI, with what it printed. */
function cli(args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, SLUICE_LOG_LEVEL: 'warn' };
  for (const name of ['PORT', 'SLUICE_GRPC_PORT', 'SLUICE_HOST', 'NODE_TEST_CONTEXT']) delete env[name];
  const child = spawn(NODE, [MAIN, ...args], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (text: string) => (out.stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (out.stderr += text));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, out, exited };
}

/** The JSON "listening" line of a CLI child (waits up to 60 s). */
async function listening(
  child: ReturnType<typeof cli>['child'],
  out: { stdout: string; stderr: string },
): Promise<{ httpUrl: string; grpcAddress: string; chatUrl?: string; actions: string[]; msg: string }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const line = out.stdout.split('\n').find((l) => l.includes('"httpUrl"'));
    if (line !== undefined) return JSON.parse(line);
    assert.ok(child.exitCode === null, `the CLI exited early: ${out.stdout}${out.stderr}`);
    assert.ok(Date.now() < deadline, `no listening line within 60 s: ${out.stdout}${out.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs the CLI to its end (killed after 90 s: the machine may be loaded). */
async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { child, out, exited } = cli(args);
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const [code] = await exited;
  clearTimeout(timer);
  return { code, ...out };
}

describe('the sluice CLI', () => {
  test('serve logs where it listens as one JSON line, answers /health, and exits 0 on SIGTERM', async () => {
    const { child, out, exited } = cli(['serve', '--actions', 'examples/actions.ts', '--port', '0', '--grpc-port', '0', '--log-level', 'info']);
    try {
      const up = await listening(child, out);
      assert.match(up.httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(up.grpcAddress, /^127\.0\.0\.1:\d+$/);
      assert.ok(!up.httpUrl.endsWith(':0') && !up.grpcAddress.endsWith(':0'), 'the real ports are logged, not 0');
      assert.deepEqual(up.actions, EXAMPLE_ACTIONS);
      assert.equal(up.chatUrl, `${up.httpUrl}/api/chat`, 'action_chat answers /api/chat by default');
      assert.match(up.msg, new RegExp(`listening on ${up.httpUrl}`), 'the message carries the URL too');
      assert.doesNotMatch(out.stdout, /is up/, 'no plain-text banner in JSON mode');
      for (const line of out.stdout.trim().split('\n')) JSON.parse(line);

      const health = await fetch(`${up.httpUrl}/health`);
      assert.deepEqual(await health.json(), { status: 'ok' });

      child.kill('SIGTERM');
      const [code, signal] = await exited;
      assert.equal(signal, null, 'it exits by itself, not by the signal');
      assert.equal(code, 0, `exit code (stderr: ${out.stderr})`);
      assert.match(out.stdout, /"msg":"Shutting down: draining running runs"/);
      assert.ok(await refused(`${up.httpUrl}/health`), 'nothing listens any more');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  const bad: { name: string; args: string[]; message: RegExp }[] = [
    { name: '--port abc', args: ['serve', '--actions', 'examples/actions.ts', '--port', 'abc'], message: /--port must be a port number 0–65535 \(got 'abc'\)/ },
    { name: '--port 70000', args: ['serve', '--actions', 'examples/actions.ts', '--port', '70000'], message: /--port must be a port number 0–65535 \(got '70000'\)/ },
    { name: "--port ''", args: ['serve', '--actions', 'examples/actions.ts', '--port', ''], message: /--port must be a port number 0–65535 \(got ''\)/ },
    { name: '--grpc-port -1', args: ['serve', '--actions', 'examples/actions.ts', '--grpc-port=-1'], message: /--grpc-port must be a port number 0–65535 \(got '-1'\)/ },
    { name: 'missing --actions', args: ['serve', '--port', '0'], message: /--actions <module> is required/ },
    { name: 'an --actions module that does not exist', args: ['serve', '--actions', 'examples/nope.ts', '--port', '0', '--grpc-port', '0'], message: /Cannot find the actions module 'examples\/nope\.ts'/ },
    { name: 'an unknown command', args: ['frobnicate'], message: /Unknown command 'frobnicate'[\s\S]*Usage:/ },
    { name: 'an unexpected argument', args: ['serve', 'extra', '--actions', 'examples/actions.ts'], message: /Unexpected argument 'extra'/ },
    { name: 'an unknown flag', args: ['serve', '--actions', 'examples/actions.ts', '--bogus'], message: /Unknown option '--bogus'/ },
  ];
  // Each child spends most of its time starting up: run them side by side.
  describe('bad command lines', { concurrency: true }, () => {
    for (const c of bad) {
      test(`${c.name}: exits 1 with a message naming the problem`, async () => {
        const { code, stdout, stderr } = await runCli(c.args);
        assert.equal(code, 1, `exit code (stdout: ${stdout}, stderr: ${stderr})`);
        assert.match(stderr, /^sluice: /);
        assert.match(stderr, c.message);
        assert.doesNotMatch(stdout, /is up/, 'no server was started');
      });
    }
  });

  test('--help prints the usage and exits 0', async () => {
    const { code, stdout } = await runCli(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage:\n {2}sluice serve --actions <module>/);
  });
});
