/**
 * The `sluice` command as a child process: --version, per-command help, unknown flags, the config
 * module, JSON log lines, an actions module that throws on import, SIGTERM drain with exit 0, a
 * second signal, and `npm start` stopped by a SIGTERM to npm.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { coreFlags } from '../../src/cli/flags/core.ts';
import { serverFlags } from '../../src/cli/flags/server.ts';
import { call, openSse } from '../transports/http/fixtures.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE = join(repo, 'node_modules', '.bin', 'node');
const MAIN = join(repo, 'src', 'cli', 'main.ts');
const SLOW = 'test/cli/fixtures/slow-actions.ts';

interface Child {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of Object.keys(env)) if (name.startsWith('SLUICE_') && !(name in extra)) delete env[name];
  for (const name of ['PORT', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS']) if (!(name in extra)) delete env[name];
  return env;
}

function spawnCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Child {
  const child = spawn(NODE, [MAIN, ...args], { cwd: options.cwd ?? repo, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  return track(child);
}

function track(child: ChildProcess): Child {
  const out = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (out.stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (out.stderr += text));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, out, exited };
}

async function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { child, out, exited } = spawnCli(args, options);
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const [code] = await exited;
  clearTimeout(timer);
  return { code, ...out };
}

/** JSON log records printed so far. */
function records(stdout: string): Record<string, any>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line));
}

async function waitForRecord(c: Child, predicate: (r: Record<string, any>) => boolean, what: string, timeoutMs = 60_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = records(c.out.stdout).find(predicate);
    if (found !== undefined) return found;
    assert.ok(c.child.exitCode === null, `the CLI exited before ${what}:\n${c.out.stdout}${c.out.stderr}`);
    assert.ok(Date.now() < deadline, `no ${what} within ${timeoutMs} ms:\n${c.out.stdout}${c.out.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const listening = (c: Child) => waitForRecord(c, (r) => typeof r.httpUrl === 'string', 'listening line');

function kill(c: Child): void {
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Two at a time: each child compiles the server's modules, and the machine may be busy.
describe('sluice command line', { concurrency: 2 }, () => {
  test('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
    const { code, stdout } = await runCli(['--version']);
    assert.equal(code, 0);
    assert.equal(stdout, `${version}\n`);
  });

  test('serve --help lists every serve flag with its environment variable', async () => {
    const { code, stdout } = await runCli(['serve', '--help']);
    assert.equal(code, 0);
    const flags = [...coreFlags, ...serverFlags].filter((spec) => spec.commands.includes('serve'));
    assert.ok(flags.length > 15);
    for (const spec of flags) {
      const row = stdout.split('\n').find((line) => new RegExp(`^\\s+(?:-\\w, )?--${spec.name}\\b`).test(line));
      assert.ok(row !== undefined, `--${spec.name} is listed:\n${stdout}`);
      if (spec.env !== undefined) assert.match(row, new RegExp(`env ${spec.env}\\b`), `--${spec.name} names ${spec.env}`);
    }
    assert.doesNotMatch(stdout, /--url\b/, 'the chat client flags are not serve flags');
  });

  test('an unknown flag is an error naming it; a Rasa SDK flag Sluice lacks says what to use', async () => {
    const bogus = await runCli(['serve', '--actions', SLOW, '--bogus']);
    assert.equal(bogus.code, 1);
    assert.match(bogus.stderr, /^sluice: Unknown option '--bogus'/);
    const rasa = await runCli(['serve', '--actions', SLOW, '--logging-config-file', 'log.yml']);
    assert.equal(rasa.code, 1);
    assert.match(rasa.stderr, /Unknown option '--logging-config-file' \(a Rasa SDK flag Sluice does not take: use --log-level/);
    const badDrain = await runCli(['serve', '--actions', SLOW, '--drain-timeout', 'soon']);
    assert.match(badDrain.stderr, /--drain-timeout must be a number of seconds > 0 \(got 'soon'\)/);
    const badLimit = await runCli(['serve', '--actions', SLOW, '--body-limit', 'lots', '--port', '0', '--grpc-port', '0']);
    assert.match(badLimit.stderr, /--body-limit must be a size in bytes/);
  });

  test('an actions module that throws on import: message, file and line; the stack at debug level', async () => {
    const { code, stdout, stderr } = await runCli(['serve', '--actions', 'test/cli/fixtures/throws-on-import.ts', '--log-level', 'debug', '--port', '0', '--grpc-port', '0']);
    assert.equal(code, 1);
    assert.match(stderr, /the model key is missing/);
    assert.match(stderr, /throws-on-import\.ts:4/);
    const logged = records(stdout);
    const error = logged.find((r) => r.level === 50);
    assert.ok(error !== undefined, stdout);
    assert.match(error.file, /test\/cli\/fixtures\/throws-on-import\.ts$/);
    assert.equal(error.line, 4);
    assert.match(error.msg, /the model key is missing/);
    const debug = logged.find((r) => r.level === 20 && typeof r.stack === 'string');
    assert.ok(debug !== undefined, 'the stack is logged at debug');
    assert.match(debug.stack, /throws-on-import\.ts:4/);
  });

  test('the config module in the working directory is used; env beats config, flags beat env', async () => {
    const cwd = join(repo, 'test/cli/fixtures/config');
    // The config says port 5999 and chat action action_short_ticker; PORT=0 (env) beats the port,
    // and --chat-action beats SLUICE_CHAT_ACTION.
    const c = spawnCli(['serve', '--chat-action', 'action_ticker'], { cwd, env: { PORT: '0', SLUICE_GRPC_PORT: '0', SLUICE_CHAT_ACTION: 'action_quick' } });
    try {
      const up = await listening(c);
      assert.notEqual(new URL(up.httpUrl).port, '5999', 'env PORT beats the config');
      assert.deepEqual(up.actions, ['action_ticker', 'action_quick', 'action_short_ticker'], 'actions from the config module');
      assert.equal(up.chatAction, 'action_ticker', 'the flag beats the env');
      assert.ok(records(c.out.stdout).some((r) => r.level === 20 && /sluice\.config\.ts$/.test(r.config ?? '')), 'debug level from the config');
    } finally {
      kill(c);
    }
  });

  test('--log-pretty: a human banner with the URLs and readable log lines, no JSON', async () => {
    const c = spawnCli(['serve', '--actions', SLOW, '--port', '0', '--grpc-port', '0', '--log-pretty']);
    try {
      const deadline = Date.now() + 60_000;
      while (!/actions: .*\n/.test(c.out.stdout)) {
        assert.ok(c.child.exitCode === null && Date.now() < deadline, `no banner: ${c.out.stdout}${c.out.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const http = /HTTP\s+(http:\/\/127\.0\.0\.1:\d+)\s/.exec(c.out.stdout);
      assert.ok(http !== null, c.out.stdout);
      assert.match(c.out.stdout, /Sluice action server is up/);
      await fetch(`${http[1]}/health`).then((r) => r.text());
      const until = Date.now() + 10_000;
      while (!/INFO.*request/.test(c.out.stdout) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.match(c.out.stdout, /INFO.*: request/);
      assert.equal(records(c.out.stdout).length, 0, 'no JSON line');
    } finally {
      kill(c);
    }
  });

  test('JSON lines: one per request and one per run end, with the run id and transport', async () => {
    const c = spawnCli(['serve', '--actions', SLOW, '--port', '0', '--grpc-port', '0']);
    try {
      const up = await listening(c);
      const stream = await openSse(`${up.httpUrl}/webhook/stream`, { body: call('action_ticker', { slots: { ticks: 3, interval_ms: 5 } }) });
      await stream.done();
      const runId = stream.res.headers['x-sluice-run-id'];
      const end = await waitForRecord(c, (r) => r.msg === 'run end', 'run-end line');
      assert.deepEqual(
        { action: end.action, runId: end.runId, reason: end.reason, chunks: end.chunks, transport: end.transport },
        { action: 'action_ticker', runId, reason: 'completed', chunks: 3, transport: 'http-sse' },
      );
      assert.equal(typeof end.durationMs, 'number');
      const req = await waitForRecord(c, (r) => r.msg === 'request' && r.url === '/webhook/stream', 'request line');
      assert.equal(req.method, 'POST');
      assert.equal(req.status, 200);
      assert.equal(typeof req.ms, 'number');
      assert.match(String(req.reqId), /\S/);
      for (const line of c.out.stdout.trim().split('\n')) JSON.parse(line);
    } finally {
      kill(c);
    }
  });

  test('SIGTERM drains: the open stream gets an unavailable error and run-end, and the process exits 0', async () => {
    const c = spawnCli(['serve', '--actions', SLOW, '--port', '0', '--grpc-port', '0', '--drain-timeout', '0.5']);
    try {
      const up = await listening(c);
      const stream = await openSse(`${up.httpUrl}/webhook/stream`, { body: call('action_ticker') });
      await stream.until((s) => s.types().includes('chunk'), 10_000);
      c.child.kill('SIGTERM');
      const frames = await stream.done();
      assert.deepEqual(frames.slice(-2).map((f) => f.event), ['error', 'run-end']);
      assert.equal(frames.at(-2)?.data.code, 'unavailable');
      const [code, signal] = await c.exited;
      assert.equal(signal, null);
      assert.equal(code, 0, c.out.stderr);
      assert.ok(records(c.out.stdout).some((r) => r.msg === 'Stopped' && r.cancelled === 1));
    } finally {
      kill(c);
    }
  });

  test('a second signal exits at once', async () => {
    const c = spawnCli(['serve', '--actions', SLOW, '--port', '0', '--grpc-port', '0', '--drain-timeout', '60']);
    try {
      const up = await listening(c);
      const stream = await openSse(`${up.httpUrl}/webhook/stream`, { body: call('action_ticker') });
      await stream.until((s) => s.types().includes('chunk'), 10_000);
      c.child.kill('SIGTERM');
      await waitForRecord(c, (r) => r.msg === 'Shutting down: draining running runs', 'drain line');
      const started = Date.now();
      c.child.kill('SIGINT');
      const [code] = await c.exited;
      assert.equal(code, 130);
      assert.ok(Date.now() - started < 10_000, 'it did not wait for the 60 s drain');
      stream.destroy();
    } finally {
      kill(c);
    }
  });

  test('npm start, then SIGTERM to npm: the server stops and nothing is left running', async () => {
    const npm = track(spawn('npm', ['start'], { cwd: repo, env: cleanEnv({ PORT: '0', SLUICE_GRPC_PORT: '0' }), stdio: ['ignore', 'pipe', 'pipe'] }));
    let serverPid: number | undefined;
    try {
      const up = await waitForRecord(npm, (r) => typeof r.httpUrl === 'string', 'listening line', 90_000);
      serverPid = up.pid as number;
      assert.ok(alive(serverPid));
      npm.child.kill('SIGTERM');
      await npm.exited;
      const until = Date.now() + 15_000;
      while (alive(serverPid) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(alive(serverPid), false, `the server (pid ${serverPid}) is gone`);
      assert.ok(records(npm.out.stdout).some((r) => r.msg === 'Stopped'), 'it drained and stopped by itself');
    } finally {
      kill(npm);
      if (serverPid !== undefined && alive(serverPid)) process.kill(serverPid, 'SIGKILL');
    }
  });
});
