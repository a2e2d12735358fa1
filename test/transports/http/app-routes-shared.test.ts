/**
 * Applications served by two instances (each its own executor, Redis connection, HTTP server, app
 * registry and PostgreSQL pool; one Redis, one PostgreSQL table), as behind a load balancer with no
 * sticky sessions: one step at a time across them, resume and cancel of a step on the instance
 * that did not start it, each instance's copy of an app brought up to the other's commits.
 * When CI=true a missing Redis or PostgreSQL fails; elsewhere the suite is skipped with a message.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { action, ApplicationBuilder, CachedAppRegistry, type Inputs } from '../../../src/app/index.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { PostgresPersister } from '../../../src/stores/index.ts';
import { connectRedisRuns, type RedisRuns } from '../../../src/stores/redis-runs.ts';
import { RedisStepLocks } from '../../../src/stores/redis-step-locks.ts';
import { appRoutes, createHttpServer, type HttpServerOptions } from '../../../src/transports/http/index.ts';
import { POSTGRES_URL, dropTables, postgresSkip, testTable } from '../../stores/postgres-helpers.ts';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from '../../stores/redis-helpers.ts';
import { tick } from './app-fixtures.ts';
import { openSse, postJson, type SseFrame, type SseStream } from './fixtures.ts';

interface Instance {
  url: string;
  apps: CachedAppRegistry;
  runs: RedisRuns;
  executor: ActionExecutor;
  persister: PostgresPersister;
  http: FastifyInstance;
  close(): Promise<void>;
}

/** Takes the user's text from the inputs (not streamed: it runs through before `tick`). */
const prompt = action({ reads: [], writes: ['prompt'] }, (state, inputs: Inputs) => [null, state.update({ prompt: String(inputs.text ?? '') })]);

async function startInstance(prefix: string, table: string, auth?: HttpServerOptions['auth']): Promise<Instance> {
  const runs = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger, leaseMs: 1_000 });
  const executor = new ActionExecutor({ actions: [], logger: silentLogger, shared: runs });
  const persister = new PostgresPersister({ connectionString: POSTGRES_URL, table });
  // `two-*` apps take a prompt (a step that is not streamed) before each tick.
  const apps = new CachedAppRegistry((appId) => {
    const builder = new ApplicationBuilder()
      .withState({ count: 0, transcript: [] as string[], prompt: '' })
      .withIdentifiers(appId)
      .withPersister(persister)
      .initializeFromPersister(persister)
      .withOptions({ graceMs: 500, logger: silentLogger });
    if (appId.startsWith('two-')) return builder.withActions({ prompt, tick }).withTransitions(['prompt', 'tick'], ['tick', 'prompt']).withEntrypoint('prompt');
    return builder.withActions({ tick }).withTransitions(['tick', 'tick']).withEntrypoint('tick');
  });
  const http = createHttpServer({ executor, apps, stepLocks: new RedisStepLocks(runs), logger: false, ...(auth !== undefined ? { auth } : {}) });
  const url = await http.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    apps,
    runs,
    executor,
    persister,
    http,
    async close() {
      await http.close();
      await executor.close();
      await runs.close();
      await persister.close();
    },
  };
}

const skip = (await redisSkip()) ?? (await postgresSkip());

const hasChunk = (s: SseStream): boolean => s.types().includes('chunk');
const runIdOf = (s: SseStream): string => String(s.res.headers['x-sluice-run-id']);
const events = (frames: SseFrame[]): string[] => frames.map((f) => `${f.id} ${f.event} ${JSON.stringify(f.data)}`);

describe('app routes on two instances (Redis step locks, PostgreSQL persister)', { skip }, () => {
  const prefix = testPrefix();
  const table = testTable();
  let a: Instance;
  let b: Instance;

  before(async () => {
    a = await startInstance(prefix, table);
    b = await startInstance(prefix, table);
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await dropPrefix(prefix);
    await dropTables(table);
  });

  it('a POST on B while A runs the step gets the 409 a single instance gives, naming A’s run; B’s state shows it running', async () => {
    const stream = await openSse(`${a.url}/apps/busy/stream`, { body: { inputs: { words: 40, intervalMs: 10 } } });
    await stream.until(hasChunk);
    const runId = runIdOf(stream);

    const refused = await postJson(`${b.url}/apps/busy/stream`, { inputs: {} });
    assert.equal(refused.status, 409);
    assert.equal((refused.json as any).reason, 'busy');
    assert.equal((refused.json as any).runId, runId);
    assert.match((refused.json as any).error, new RegExp(`is already running a step \\('tick', run ${runId}\\)`));

    const state = await fetch(`${b.url}/apps/busy/state`).then((r) => r.json() as Promise<any>);
    assert.deepEqual(state.running, { runId, action: 'tick' });
    await stream.done();
  });

  it('B resumes A’s step from the start and from a Last-Event-ID: the same events, no gap, no duplicate', async () => {
    const stream = await openSse(`${a.url}/apps/resume/stream`, { body: { inputs: { words: 30, intervalMs: 5 } } });
    await stream.until(hasChunk);
    const runId = runIdOf(stream);
    const whole = await openSse(`${b.url}/apps/resume/runs/${runId}/events`);
    const from = await openSse(`${b.url}/apps/resume/runs/${runId}/events`, { headers: { 'last-event-id': '4' } });
    const [own, read, rest] = await Promise.all([stream.done(), whole.done(), from.done()]);
    assert.equal(own.at(-1)!.event, 'run-end');
    assert.deepEqual(events(read), events(own));
    assert.deepEqual(events(rest), events(own.filter((f) => Number(f.id) > 4)));
  });

  it('the next step on B continues from A’s commit (B’s copy is rebuilt), and each instance sees the other’s last step', async () => {
    const first = await openSse(`${a.url}/apps/hand/stream`, { body: { inputs: { words: 2 } } });
    await first.done();
    // B builds its copy now, at step 0; A then commits step 1, so B's copy is one step behind.
    assert.equal(((await fetch(`${b.url}/apps/hand/state`).then((r) => r.json())) as any).sequenceId, 0);
    const second = await openSse(`${a.url}/apps/hand/stream`, { body: { inputs: { words: 2 } } });
    const secondRun = runIdOf(second);
    await second.done();
    let state = (await fetch(`${b.url}/apps/hand/state`).then((r) => r.json())) as any;
    assert.equal(state.sequenceId, 1);
    assert.equal(state.state.count, 2);
    assert.deepEqual(state.lastStep, { action: 'tick', sequenceId: 1, status: 'completed', runId: secondRun });

    const third = await openSse(`${b.url}/apps/hand/stream`, { body: { inputs: { words: 2 } } });
    const frames = await third.done();
    assert.equal(third.res.headers['x-sluice-sequence-id'], '2');
    assert.equal(frames.at(-1)!.data.reason, 'completed');
    state = (await fetch(`${a.url}/apps/hand/state`).then((r) => r.json())) as any;
    assert.equal(state.sequenceId, 2);
    assert.equal(state.state.count, 3);
    assert.equal(state.lastStep.runId, runIdOf(third));
    const rows = await a.persister.list('hand');
    assert.deepEqual(rows.map((r) => [r.sequenceId, r.status]), [[0, 'completed'], [1, 'completed'], [2, 'completed']]);
  });

  it('a cancel on B stops A’s step; it is committed once, as interrupted, and B answers with the commit', async () => {
    const stream = await openSse(`${a.url}/apps/stop/stream`, { body: { inputs: { words: 300, intervalMs: 10 } } });
    await stream.until(hasChunk);
    const runId = runIdOf(stream);
    const stop = await postJson(`${b.url}/apps/stop/runs/${runId}/cancel`, '');
    assert.equal(stop.status, 200);
    assert.deepEqual(stop.json, { cancelled: true, runId, action: 'tick', sequenceId: 0, status: 'interrupted' });
    const frames = await stream.done();
    assert.equal(frames.at(-1)!.data.reason, 'cancelled');
    const rows = await b.persister.list('stop');
    assert.deepEqual(rows.map((r) => [r.sequenceId, r.status]), [[0, 'interrupted']]);
    const again = await postJson(`${b.url}/apps/stop/runs/${runId}/cancel`, '');
    assert.equal(again.status, 409);
    // The app is free again everywhere: B runs the next step.
    const next = await openSse(`${b.url}/apps/stop/stream`, { body: { inputs: { words: 1 } } });
    assert.equal(next.status, 200);
    assert.equal(next.res.headers['x-sluice-sequence-id'], '1');
    await next.done();
  });

  it('a step run is reached only through its own app: another app’s URL and /runs/:id answer 404', async () => {
    const stream = await openSse(`${a.url}/apps/mine/stream`, { body: { inputs: { words: 2 } } });
    const runId = runIdOf(stream);
    await stream.done();
    for (const base of [a.url, b.url]) {
      const other = await fetch(`${base}/apps/theirs/runs/${runId}/events`);
      assert.equal(other.status, 404);
      await other.body?.cancel();
      assert.equal((await postJson(`${base}/apps/theirs/runs/${runId}/cancel`, '')).status, 404);
      const plain = await fetch(`${base}/runs/${runId}/events`);
      assert.equal(plain.status, 404);
      await plain.body?.cancel();
    }
  });

  it('Redis unreachable: a POST and a state read answer 503 naming the lock; nothing runs, the app is not left locked', async () => {
    const c = await startInstance(prefix, table);
    try {
      await c.runs.close();
      const post = await postJson(`${c.url}/apps/down/stream`, { inputs: {} });
      assert.equal(post.status, 503);
      assert.equal((post.json as any).code, 'unavailable');
      assert.match((post.json as any).error, /Cannot reach Redis for the app step lock/);
      const state = await fetch(`${c.url}/apps/down/state`);
      assert.equal(state.status, 503);
      assert.equal((await c.persister.list('down')).length, 0);
      const elsewhere = await openSse(`${a.url}/apps/down/stream`, { body: { inputs: { words: 1 } } });
      assert.equal(elsewhere.status, 200);
      await elsewhere.done();
    } finally {
      await c.http.close();
      await c.executor.close();
      await c.persister.close();
    }
  });

  it('a step run through before the streamed one (haltAfter) is readable on B too', async () => {
    const stream = await openSse(`${a.url}/apps/two-1/stream`, { body: { inputs: { text: 'hi', words: 2 }, haltAfter: ['tick'] } });
    assert.equal(stream.res.headers['x-sluice-action'], 'tick');
    await stream.done();
    const app = (await a.apps.get('two-1'))!;
    const through = app.runs.find((run) => run.action === 'prompt')!;
    const onB = await openSse(`${b.url}/apps/two-1/runs/${through.id}/events`);
    const frames = await onB.done();
    assert.equal(onB.status, 200);
    assert.deepEqual(frames.map((f) => f.event), through.events().map((e) => e.type));
    assert.equal(frames.at(-1)!.data.reason, 'completed');
  });

  it('step locks need a registry that can reload an app: refused at registration, naming the method', async () => {
    const server = Fastify();
    server.register(appRoutes, { apps: { get: () => null }, stepLocks: new RedisStepLocks(a.runs) });
    await assert.rejects(async () => server.ready(), /with 'stepLocks' the registry must implement reload\(appId\)/);
    await server.close().catch(() => {});
  });

  it('concurrent POSTs for one app on both instances: exactly one step runs, the other gets 409', async () => {
    for (let trial = 0; trial < 10; trial++) {
      const id = `race-${trial}`;
      const [x, y] = await Promise.all([
        openSse(`${a.url}/apps/${id}/stream`, { body: { inputs: { words: 3, intervalMs: 5 } } }),
        openSse(`${b.url}/apps/${id}/stream`, { body: { inputs: { words: 3, intervalMs: 5 } } }),
      ]);
      const statuses = [x.status, y.status].sort();
      assert.deepEqual(statuses, [200, 409], `trial ${trial}`);
      await Promise.all([x.done(), y.done()]);
      const rows = await a.persister.list(id);
      assert.deepEqual(rows.map((r) => r.sequenceId), [0]);
    }
  });

  it('with API keys, across instances: the same app id is each principal’s own app, and another principal’s step run is 404', async () => {
    const alice = 'alice-key-0123456789abcdef';
    const bob = 'bob-key-0123456789abcdef00';
    const auth = { apiKeys: [{ key: alice, principal: 'alice' }, { key: bob, principal: 'bob' }] };
    const [x, y] = [await startInstance(prefix, table, auth), await startInstance(prefix, table, auth)];
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    try {
      const mine = await openSse(`${x.url}/apps/same/stream`, { body: { inputs: { words: 40, intervalMs: 10 } }, headers: as(alice) });
      await mine.until(hasChunk);
      const runId = runIdOf(mine);
      const theirs = await openSse(`${y.url}/apps/same/stream`, { body: { inputs: { words: 1 } }, headers: as(bob) });
      assert.equal(theirs.status, 200, 'bob’s app “same” is not alice’s: not busy');
      await theirs.done();
      const read = await fetch(`${y.url}/apps/same/runs/${runId}/events`, { headers: as(bob) });
      assert.equal(read.status, 404);
      await read.body?.cancel();
      assert.equal((await postJson(`${y.url}/apps/same/runs/${runId}/cancel`, '', as(bob))).status, 404);
      const own = await openSse(`${y.url}/apps/same/runs/${runId}/events`, { headers: as(alice) });
      assert.equal(own.status, 200);
      assert.deepEqual(events(await own.done()), events(await mine.done()));
      assert.equal((await fetch(`${y.url}/apps/same/state`)).status, 401);
    } finally {
      await Promise.all([x.close(), y.close()]);
    }
  });
});

