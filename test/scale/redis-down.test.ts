// Redis lost mid-run, with a private redis-server (this test must not stop the shared one): the
// instance that runs the action keeps streaming to its own readers, a resume on the other instance
// fails with a clear error, nothing crashes, and both recover when Redis comes back (empty: the
// old run's history is gone and a reader is told so).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createClient } from 'redis';
import { drain, readRun, startInstance, startRun, wordsCall, type Instance } from './cluster.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  for (let i = 0; i < 100; i++) {
    try {
      await client.connect();
      await client.close();
      return child;
    } catch {
      await sleep(50);
    }
  }
  child.kill('SIGKILL');
  throw new Error('the private redis-server did not start');
}

const instances: Instance[] = [];
let redis: ChildProcess | undefined;
let dir = '';

after(async () => {
  await Promise.allSettled(instances.map((i) => i.stop()));
  redis?.kill('SIGKILL');
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

test('Redis down mid-run: local readers go on, remote resumes fail clearly, recovery when it returns', { timeout: 90_000 }, async (t) => {
  const available = await new Promise<boolean>((resolve) => {
    const probe = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    probe.on('error', () => resolve(false));
    probe.on('exit', (code) => resolve(code === 0));
  });
  if (!available) {
    if (process.env.CI === 'true') assert.fail('redis-server is needed for this test in CI');
    return t.skip('no redis-server binary to run a private Redis');
  }
  dir = await mkdtemp(join(tmpdir(), 'sluice-redis-down-'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  redis = await startRedis(port, dir);
  const [a, b] = await Promise.all([startInstance(url, 'down'), startInstance(url, 'down')]);
  instances.push(a, b);

  const started = await startRun(a.http, wordsCall(80, 20));
  const onA = drain(started.events);
  await sleep(150);
  const followed = readRun(b.http, started.runId);
  await sleep(100);
  redis.kill('SIGKILL');
  await new Promise((resolve) => redis!.once('exit', resolve));

  // A's own reader gets the whole run.
  const local = await onA;
  assert.equal(local.at(-1)?.type, 'run-end');
  assert.equal((local.at(-1) as { reason: string }).reason, 'completed');
  local.forEach((event, i) => assert.equal(event.seq, i + 1));

  // B's reader is told (no hang), and a new resume on B fails with a clear error.
  const remote = await followed;
  const error = remote.events.find((e) => e.type === 'error') as { code: string; message: string } | undefined;
  assert.ok(error !== undefined, 'the reader on B is told');
  assert.equal(error.code, 'unavailable');
  assert.match(error.message, /Redis/);
  const resume = await readRun(b.http, started.runId + '-other');
  assert.equal(resume.status, 503);
  assert.match(String((resume.body as { error?: string }).error), /Redis/);
  assert.equal(a.process.exitCode, null, 'A is still up');
  assert.equal(b.process.exitCode, null, 'B is still up');

  // Redis returns, empty: new runs are shared again; the old run's history is gone.
  redis = await startRedis(port, dir);
  let recovered = false;
  for (let i = 0; i < 60 && !recovered; i++) {
    await sleep(250);
    try {
      const again = await startRun(a.http, wordsCall(5, 1));
      const all = await drain(again.events);
      const onB = await readRun(b.http, again.runId);
      recovered = onB.status === 200 && onB.events.length === all.length;
    } catch {
      // not yet
    }
  }
  assert.ok(recovered, 'runs started after Redis returned are read on the other instance');
  // B still holds its copy of the old run, which ended with the error; or, once dropped, the run
  // is unknown (404). Never a stream that looks complete.
  const old = await readRun(b.http, started.runId, 10);
  if (old.status === 200) assert.deepEqual(old.events.slice(-2).map((e) => e.type), ['error', 'run-end']);
  else assert.equal(old.status, 404);
});
