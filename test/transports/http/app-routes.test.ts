/**
 * Applications over HTTP (`/apps/:appId/…`): streaming a step as SSE, resume, cancel, disconnect
 * vs detach, one step at a time, bad requests, state and tracked runs — on a real server with a
 * SQLite persister and tracker in a temporary directory.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { action, ApplicationBuilder, CachedAppRegistry, expr, type Inputs } from '../../../src/app/index.ts';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { SQLitePersister, SQLiteTracker } from '../../../src/stores/index.ts';
import { appRoutes, createHttpServer } from '../../../src/transports/http/index.ts';
import { exampleApps } from '../../../examples/app.ts';
import { tick } from './app-fixtures.ts';
import { openSse, postJson, waitFor, type SseStream } from './fixtures.ts';

/** Takes the user's text from the inputs (a non-streaming step before `tick`). */
const prompt = action({ reads: [], writes: ['prompt'] }, (state, inputs: Inputs) => [null, state.update({ prompt: String(inputs.text ?? '') })]);

/** Waits up to 5 s for its signal (a slow non-streaming step before `tick`). */
const wait = action({ reads: [], writes: [] }, async (state, _inputs, ctx) => {
  await sleep(5_000, undefined, { signal: ctx.signal });
  return [null, state];
});

const boom = action({ reads: [], writes: [] }, () => {
  throw new Error('kaput');
});

/**
 * App ids choose the graph: `unknown-*` has no app, `finite-*` ends after one step, `chat-*` is
 * prompt → tick → prompt, `slow-*` is wait → tick → wait, `boom-*` fails, anything else ticks forever.
 */
function factory(persister: SQLitePersister) {
  return (appId: string): ApplicationBuilder<any> | null => {
    if (appId.startsWith('unknown-')) return null;
    const builder = new ApplicationBuilder()
      .withState({ count: 0, transcript: [] as string[], prompt: '' })
      .withIdentifiers(appId)
      .withPersister(persister)
      .initializeFromPersister(persister)
      .withOptions({ graceMs: 500, logger: silentLogger });
    if (appId.startsWith('boom-')) return builder.withActions({ boom }).withTransitions(['boom', 'boom']).withEntrypoint('boom');
    if (appId.startsWith('slow-')) {
      return builder.withActions({ wait, tick }).withTransitions(['wait', 'tick'], ['tick', 'wait']).withEntrypoint('wait');
    }
    if (appId.startsWith('chat-')) {
      return builder.withActions({ prompt, tick }).withTransitions(['prompt', 'tick'], ['tick', 'prompt']).withEntrypoint('prompt');
    }
    const limit = appId.startsWith('finite-') ? 1 : Infinity;
    return builder
      .withActions({ tick })
      .withTransitions(['tick', 'tick', expr((s) => (s.get('count') as number) < limit)])
      .withEntrypoint('tick');
  };
}

interface Harness {
  url: string;
  dir: string;
  persister: SQLitePersister;
  tracker: SQLiteTracker;
  registry: CachedAppRegistry;
  executor: ActionExecutor;
  /** Closes the server (idempotent). */
  stopServer(): Promise<void>;
  /** Closes the server and the stores, and removes the directory. */
  close(): Promise<void>;
}

async function startAppServer(options: { tracker?: boolean } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-app-routes-'));
  const persister = new SQLitePersister({ dataDir: dir });
  const tracker = new SQLiteTracker({ dataDir: dir });
  const registry = new CachedAppRegistry(factory(persister), options.tracker === false ? {} : { tracker });
  const executor = new ActionExecutor({ logger: silentLogger });
  const server = createHttpServer({ executor, apps: registry, logger: false, sse: { pingIntervalMs: 1_000 } });
  const url = await server.listen({ port: 0, host: '127.0.0.1' });
  let stopped: Promise<void> | null = null;
  const stopServer = (): Promise<void> => (stopped ??= server.close().then(() => executor.close()));
  return {
    url,
    dir,
    persister,
    tracker,
    registry,
    executor,
    stopServer,
    async close() {
      try {
        await stopServer();
      } finally {
        persister.close();
        tracker.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function runIdOf(stream: SseStream): string {
  return stream.res.headers['x-sluice-run-id'] as string;
}

const hasChunk = (s: SseStream): boolean => s.types().includes('chunk');

async function getJson(url: string): Promise<{ status: number; json: any }> {
  const res = await fetch(url);
  return { status: res.status, json: await res.json() };
}

describe('application routes', () => {
  let h: Harness;
  before(async () => {
    h = await startAppServer();
  });
  after(() => h.close());

  it('POST /apps/:appId/stream streams the next step as SSE and commits it; the sequence id advances', async () => {
    const stream = await openSse(`${h.url}/apps/s1/stream`, { body: { inputs: { words: 3 } } });
    assert.equal(stream.status, 200);
    assert.match(String(stream.res.headers['content-type']), /^text\/event-stream/);
    assert.equal(stream.res.headers['x-sluice-action'], 'tick');
    assert.equal(stream.res.headers['x-sluice-sequence-id'], '0');
    const runId = runIdOf(stream);
    const frames = await stream.done();
    assert.deepEqual(
      frames.map((f) => f.event),
      ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end'],
    );
    assert.deepEqual(
      frames.map((f) => f.id),
      frames.map((_, i) => String(i + 1)),
      'ids are the gap-free seqs',
    );
    for (const f of frames) {
      assert.equal(f.data.runId, runId);
      assert.equal(f.data.seq, Number(f.id));
    }
    assert.deepEqual(frames.filter((f) => f.event === 'chunk').map((f) => f.data.text), ['w0 ', 'w1 ', 'w2 ']);
    assert.deepEqual(frames.at(-2)!.data.state, { count: 1, transcript: ['w0 w1 w2 '] });
    assert.equal(frames.at(-1)!.data.reason, 'completed');

    const state = await getJson(`${h.url}/apps/s1/state`);
    assert.equal(state.status, 200);
    assert.equal(state.json.sequenceId, 0);
    assert.equal(state.json.position, 'tick');
    assert.equal(state.json.nextAction, 'tick');
    assert.equal(state.json.running, null);
    assert.deepEqual(state.json.state, { count: 1, transcript: ['w0 w1 w2 '], prompt: '' });
    assert.deepEqual(state.json.lastStep, { action: 'tick', sequenceId: 0, status: 'completed', runId });

    const second = await openSse(`${h.url}/apps/s1/stream`, { body: { inputs: { words: 1 } } });
    assert.equal(second.res.headers['x-sluice-sequence-id'], '1');
    await second.done();
    assert.equal((await getJson(`${h.url}/apps/s1/state`)).json.sequenceId, 1);
    assert.deepEqual(
      h.persister.list('s1').map((r) => [r.sequenceId, r.status, r.state.count]),
      [
        [0, 'completed', 1],
        [1, 'completed', 2],
      ],
    );
  });

  it('GET /apps/:appId/runs/:runId/events resumes after Last-Event-ID (or ?after=); 404 for an unknown run', async () => {
    const stream = await openSse(`${h.url}/apps/r1/stream`, { body: { inputs: { words: 6, intervalMs: 25 } } });
    const runId = runIdOf(stream);
    await stream.until((s) => s.frames().length >= 3);
    const resumed = await openSse(`${h.url}/apps/r1/runs/${runId}/events`, { headers: { 'last-event-id': '3' } });
    assert.equal(resumed.status, 200);
    assert.equal(resumed.res.headers['x-sluice-run-id'], runId);
    const [original, tail] = await Promise.all([stream.done(), resumed.done()]);
    assert.equal(tail[0]!.id, '4');
    assert.deepEqual(tail, original.slice(3), 'the resumed reader gets exactly what followed seq 3');
    assert.equal(tail.at(-1)!.event, 'run-end');

    // After the run ended its log is still served, from any point.
    const replay = await openSse(`${h.url}/apps/r1/runs/${runId}/events?after=6`);
    assert.deepEqual(await replay.done(), original.slice(6));

    const ahead = await getJson(`${h.url}/apps/r1/runs/${runId}/events?after=999`);
    assert.equal(ahead.status, 400);
    const unknown = await getJson(`${h.url}/apps/r1/runs/no-such-run/events`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.error, /no run with id 'no-such-run'/);
  });

  it("a drain waits for a streaming step as for the executor's own runs, then cancels it (committed as interrupted)", async () => {
    const d = await startAppServer();
    try {
      const stream = await openSse(`${d.url}/apps/drain1/stream`, { body: { inputs: { words: 500, intervalMs: 10 } } });
      await stream.until(hasChunk);
      const began = Date.now();
      const outcome = await d.executor.drain(300, 2_000);
      assert.ok(Date.now() - began >= 280, 'the step had the drain timeout to finish');
      assert.deepEqual(outcome, { finished: 0, cancelled: 1 });
      const frames = await stream.done();
      assert.equal(frames.at(-1)!.event, 'run-end');
      assert.equal(frames.at(-1)!.data.reason, 'cancelled');
      await waitFor(() => d.persister.list('drain1').length === 1);
      assert.deepEqual(d.persister.list('drain1').map((r) => r.status), ['interrupted']);
    } finally {
      await d.close();
    }
  });

  it('POST /apps/:appId/runs/:runId/cancel stops the step mid-stream; it is committed once, as interrupted', async () => {
    const stream = await openSse(`${h.url}/apps/c1/stream`, { body: { inputs: { words: 200, intervalMs: 10 } } });
    const runId = runIdOf(stream);
    await stream.until(hasChunk);

    const stop = await postJson(`${h.url}/apps/c1/runs/${runId}/cancel`, '');
    assert.equal(stop.status, 200);
    assert.deepEqual(stop.json, { cancelled: true, runId, action: 'tick', sequenceId: 0, status: 'interrupted' });

    const frames = await stream.done();
    assert.deepEqual(frames.slice(-3).map((f) => f.event), ['stream-end', 'result', 'run-end']);
    assert.equal(frames.at(-3)!.data.reason, 'cancelled');
    assert.equal(frames.at(-1)!.data.reason, 'cancelled');
    assert.equal(frames.filter((f) => f.event === 'result').length, 1);

    const rows = h.persister.list('c1');
    assert.deepEqual(rows.map((r) => [r.sequenceId, r.status]), [[0, 'interrupted']]);
    const said = frames.filter((f) => f.event === 'chunk').map((f) => f.data.text).join('');
    assert.deepEqual(rows[0]!.state.transcript, [`${said}…`], 'the text the client saw is kept');
    const tracked = await h.tracker.listRuns('c1');
    assert.deepEqual(tracked.map((t) => [t.runId, t.status, t.error]), [[runId, 'interrupted', 'Cancelled by the client']]);

    const again = await postJson(`${h.url}/apps/c1/runs/${runId}/cancel`, '');
    assert.equal(again.status, 409);
    assert.match((again.json as any).error, /has already ended \(cancelled\)/);
    assert.equal((await postJson(`${h.url}/apps/c1/runs/nope/cancel`, '')).status, 404);

    const next = await openSse(`${h.url}/apps/c1/stream`, { body: {} });
    assert.equal(next.res.headers['x-sluice-sequence-id'], '1', 'the app goes on after an interrupted step');
    await next.done();
  });

  it('a client that disconnects cancels its step (committed as interrupted)', async () => {
    const stream = await openSse(`${h.url}/apps/d1/stream`, { body: { inputs: { words: 200, intervalMs: 10 } } });
    await stream.until(hasChunk);
    stream.destroy();
    await waitFor(() => h.persister.list('d1').length === 1, 3000, 'the interrupted commit');
    assert.equal(h.persister.list('d1')[0]!.status, 'interrupted');
    await waitFor(() => h.tracker.listRuns('d1').length === 1, 3000, 'the tracked step');
    assert.equal(h.tracker.listRuns('d1')[0]!.error, 'The client disconnected');
    assert.equal((await getJson(`${h.url}/apps/d1/state`)).json.running, null);
  });

  it('?detach=true keeps the step going after a disconnect; it is resumed with …/events', async () => {
    const stream = await openSse(`${h.url}/apps/d2/stream?detach=true`, { body: { inputs: { words: 8, intervalMs: 15 } } });
    const runId = runIdOf(stream);
    await stream.until(hasChunk);
    const seen = stream.frames();
    stream.destroy();
    const resumed = await openSse(`${h.url}/apps/d2/runs/${runId}/events`, { headers: { 'last-event-id': seen.at(-1)!.id! } });
    const rest = await resumed.done();
    assert.equal(Number(rest[0]!.id), Number(seen.at(-1)!.id) + 1);
    assert.equal(rest.at(-1)!.data.reason, 'completed');
    const chunks = [...seen, ...rest].filter((f) => f.event === 'chunk').map((f) => f.data.text);
    assert.equal(chunks.length, 8);
    await waitFor(() => h.persister.list('d2').length === 1);
    assert.equal(h.persister.list('d2')[0]!.status, 'completed');
  });

  it('one step at a time: a POST while a step streams gets 409 with its run id', async () => {
    const first = await openSse(`${h.url}/apps/b1/stream`, { body: { inputs: { words: 200, intervalMs: 10 } } });
    const runId = runIdOf(first);
    await first.until(hasChunk);

    const busy = await postJson(`${h.url}/apps/b1/stream`, {});
    assert.equal(busy.status, 409);
    assert.equal((busy.json as any).reason, 'busy');
    assert.equal((busy.json as any).runId, runId);
    assert.match((busy.json as any).error, new RegExp(`already running a step \\('tick', run ${runId}\\).*POST /apps/b1/runs/${runId}/cancel`));
    const state = await getJson(`${h.url}/apps/b1/state`);
    assert.deepEqual(state.json.running, { runId, action: 'tick' });

    assert.equal((await postJson(`${h.url}/apps/b1/runs/${runId}/cancel`, '')).status, 200);
    await first.done();

    // Two POSTs at once: exactly one streams.
    const both = await Promise.all([
      openSse(`${h.url}/apps/b1/stream`, { body: { inputs: { words: 2 } } }),
      openSse(`${h.url}/apps/b1/stream`, { body: { inputs: { words: 2 } } }),
    ]);
    assert.deepEqual(both.map((s) => s.status).sort(), [200, 409]);
    await Promise.all(both.map((s) => s.done()));
    assert.deepEqual(h.persister.list('b1').map((r) => r.status), ['interrupted', 'completed']);
  });

  it('404 for an unknown app on every route', async () => {
    const post = await postJson(`${h.url}/apps/unknown-1/stream`, {});
    assert.equal(post.status, 404);
    assert.deepEqual(post.json, { error: "No app found with id 'unknown-1'", code: 'not_found' });
    for (const path of ['state', 'runs', 'runs/x/events']) {
      assert.equal((await getJson(`${h.url}/apps/unknown-1/${path}`)).status, 404, path);
    }
    assert.equal((await postJson(`${h.url}/apps/unknown-1/runs/x/cancel`, '')).status, 404);
  });

  it('400 for a bad body or option, naming the field; nothing runs', async () => {
    const cases: [unknown, RegExp][] = [
      ['{"inputs": ', /not valid JSON/],
      [[], /expected a JSON object/],
      [{ inputs: 5 }, /^inputs: expected a JSON object \(got a number\)/],
      [{ inputs: ['a'] }, /^inputs: .*got an array/],
      [{ haltAfter: 'tick' }, /^haltAfter: expected a non-empty array/],
      [{ haltAfter: [] }, /^haltAfter: expected a non-empty array/],
      [{ haltAfter: [1] }, /^haltAfter: expected a non-empty array/],
      [{ haltAfter: ['nope'] }, /^haltAfter: unknown action 'nope' \(the app's actions: tick\)/],
      [{ haltAfter: ['@tag:x'] }, /^haltAfter: '@tag:x': tags are not accepted/],
      [{ halt_after: ['tick'] }, /unknown field 'halt_after'/],
    ];
    for (const [body, message] of cases) {
      const res = await postJson(`${h.url}/apps/v1/stream`, typeof body === 'string' ? body : JSON.stringify(body));
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match((res.json as any).error, message);
      assert.equal((res.json as any).code, 'invalid_argument');
    }
    const detach = await postJson(`${h.url}/apps/v1/stream?detach=maybe`, {});
    assert.equal(detach.status, 400);
    assert.match((detach.json as any).error, /detach/);
    const limit = await getJson(`${h.url}/apps/v1/runs?limit=0`);
    assert.equal(limit.status, 400);
    assert.match(limit.json.error, /^limit: /);
    // Fastify refuses path parameters over its maxParamLength (100) before the route runs.
    const long = await getJson(`${h.url}/apps/${'x'.repeat(300)}/state`);
    assert.equal(long.status, 414);
    assert.deepEqual(h.persister.list('v1'), []);
  });

  it('409 once the app has finished (no next action)', async () => {
    const first = await openSse(`${h.url}/apps/finite-1/stream`, { body: {} });
    await first.done();
    const done = await postJson(`${h.url}/apps/finite-1/stream`, {});
    assert.equal(done.status, 409);
    assert.equal((done.json as any).reason, 'no_next_action');
    assert.match((done.json as any).error, /has finished/);
    assert.equal((await getJson(`${h.url}/apps/finite-1/state`)).json.nextAction, null);
  });

  it('haltAfter streams a later step; the steps before it run through and are tracked too', async () => {
    const stream = await openSse(`${h.url}/apps/chat-1/stream`, { body: { inputs: { text: 'hey', words: 2 }, haltAfter: ['tick'] } });
    assert.equal(stream.res.headers['x-sluice-action'], 'tick');
    assert.equal(stream.res.headers['x-sluice-sequence-id'], '1');
    const frames = await stream.done();
    assert.equal(frames[0]!.data.action, 'tick');
    assert.equal(frames.at(-1)!.data.reason, 'completed');

    const runs = await getJson(`${h.url}/apps/chat-1/runs`);
    assert.deepEqual(runs.json.runs.map((r: any) => [r.sequenceId, r.action, r.status]), [
      [1, 'tick', 'completed'],
      [0, 'prompt', 'completed'],
    ]);
    const promptRun = runs.json.runs[1].runId;
    const replay = await openSse(`${h.url}/apps/chat-1/runs/${promptRun}/events`);
    assert.deepEqual((await replay.done()).map((f) => f.event), ['run-start', 'result', 'run-end']);
    const state = await getJson(`${h.url}/apps/chat-1/state`);
    assert.equal(state.json.state.prompt, 'hey');
    assert.equal(state.json.nextAction, 'prompt');
  });

  it('a disconnect while the steps before the streamed one run stops the call there', async () => {
    const body = JSON.stringify({ haltAfter: ['tick'] });
    const req = http.request(`${h.url}/apps/slow-1/stream`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    });
    req.on('error', () => {});
    req.end(body);
    let state: any;
    for (let i = 0; i < 100; i++) {
      state = (await getJson(`${h.url}/apps/slow-1/state`)).json;
      if (state.running !== null) break;
      await sleep(5);
    }
    assert.equal(state.running.action, 'wait', 'the step before the streamed one is the one running');
    const busy = await postJson(`${h.url}/apps/slow-1/stream`, {});
    assert.equal(busy.status, 409);
    assert.equal((busy.json as any).runId, state.running.runId);

    req.destroy();
    await waitFor(() => h.persister.list('slow-1').length === 1, 3000, 'the interrupted commit');
    const [row] = h.persister.list('slow-1');
    assert.equal(row!.action, 'wait');
    assert.equal(row!.status, 'interrupted');
    await waitFor(() => h.tracker.listRuns('slow-1').length === 1);
    await sleep(20);
    assert.equal(h.persister.list('slow-1').length, 1, 'the streamed step never started');
    assert.equal((await getJson(`${h.url}/apps/slow-1/state`)).json.running, null);
  });

  it('a step that fails before streaming is still answered as a stream, ending with its error', async () => {
    const stream = await openSse(`${h.url}/apps/boom-1/stream`, { body: {} });
    assert.equal(stream.status, 200);
    const frames = await stream.done();
    assert.deepEqual(frames.map((f) => f.event), ['run-start', 'error', 'run-end']);
    assert.equal(frames[1]!.data.message, 'kaput');
    assert.equal(frames[2]!.data.reason, 'error');
    assert.deepEqual(h.persister.list('boom-1').map((r) => r.status), ['failed']);
    assert.equal((await getJson(`${h.url}/apps/boom-1/state`)).json.running, null, 'a failed step does not keep the app busy');
  });

  it('GET /apps/:appId/runs lists the tracked steps, newest first', async () => {
    const a = await openSse(`${h.url}/apps/t1/stream`, { body: { inputs: { words: 2 } } });
    await a.done();
    const b = await openSse(`${h.url}/apps/t1/stream`, { body: { inputs: { words: 200, intervalMs: 10 } } });
    await b.until(hasChunk);
    await postJson(`${h.url}/apps/t1/runs/${runIdOf(b)}/cancel`, '');
    await b.done();

    const runs = await getJson(`${h.url}/apps/t1/runs`);
    assert.equal(runs.status, 200);
    assert.equal(runs.json.appId, 't1');
    assert.equal(runs.json.tracked, true);
    assert.deepEqual(
      runs.json.runs.map((r: any) => [r.sequenceId, r.runId, r.status, r.streamed]),
      [
        [1, runIdOf(b), 'interrupted', true],
        [0, runIdOf(a), 'completed', true],
      ],
    );
    assert.equal(runs.json.runs[1].itemCount, 2);
    assert.equal(typeof runs.json.runs[1].timeToFirstItemMs, 'number');
    const one = await getJson(`${h.url}/apps/t1/runs?limit=1`);
    assert.equal(one.json.runs.length, 1);
  });
});

describe('application routes: configuration', () => {
  it('without a tracker, GET /apps/:appId/runs answers tracked: false and no runs', async () => {
    const h = await startAppServer({ tracker: false });
    try {
      const stream = await openSse(`${h.url}/apps/n1/stream`, { body: {} });
      await stream.done();
      const runs = await getJson(`${h.url}/apps/n1/runs`);
      assert.equal(runs.status, 200);
      assert.deepEqual(runs.json, { appId: 'n1', tracked: false, runs: [] });
    } finally {
      await h.close();
    }
  });

  it('the next POST right after run-end is taken, even while a slow tracker still records the step (it runs once the hook is done)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-app-routes-'));
    const persister = new SQLitePersister({ dataDir: dir });
    const recorded: number[] = [];
    const slowTracker = {
      async postRunStep(event: { sequenceId: number }) {
        await sleep(300);
        recorded.push(event.sequenceId);
      },
      listRuns: () => [],
    };
    const registry = new CachedAppRegistry(factory(persister), { tracker: slowTracker as never });
    const executor = new ActionExecutor({ logger: silentLogger });
    const server = createHttpServer({ executor, apps: registry, logger: false });
    const url = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      const first = await openSse(`${url}/apps/hook-1/stream`, { body: { inputs: { words: 2 } } });
      assert.equal((await first.done()).at(-1)?.event, 'run-end');
      const second = await openSse(`${url}/apps/hook-1/stream`, { body: { inputs: { words: 2 } } });
      assert.equal(second.status, 200);
      assert.equal(second.res.headers['x-sluice-sequence-id'], '1');
      await second.done();
      await waitFor(() => recorded.length === 2, 2_000, 'both steps tracked');
      assert.deepEqual(recorded, [0, 1]);
    } finally {
      await server.close();
      await executor.close();
      persister.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('closing the server cancels the steps in progress (detached ones too) and waits for their commits', async () => {
    const h = await startAppServer();
    try {
      const stream = await openSse(`${h.url}/apps/x1/stream?detach=true`, { body: { inputs: { words: 500, intervalMs: 10 } } });
      await stream.until(hasChunk);
      await h.stopServer();
      await stream.ended;
      assert.deepEqual(h.persister.list('x1').map((r) => r.status), ['interrupted']);
      assert.equal(h.tracker.listRuns('x1')[0]?.error, 'The server is shutting down');
    } finally {
      await h.close();
    }
  });

  it('works as a plugin on any Fastify instance (empty bodies, invalid JSON)', async () => {
    const apps = new CachedAppRegistry((appId) =>
      new ApplicationBuilder().withActions({ tick }).withTransitions(['tick', 'tick']).withState({ count: 0, transcript: [] }).withEntrypoint('tick').withIdentifiers(appId),
    );
    const server = Fastify();
    await server.register(appRoutes, { apps, logger: silentLogger, pingIntervalMs: 1_000 });
    const url = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      const empty = await openSse(`${url}/apps/p1/stream`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '0' } });
      assert.equal(empty.status, 200);
      assert.equal((await empty.done()).at(-1)!.data.reason, 'completed');
      const bad = await postJson(`${url}/apps/p1/stream`, '{nope');
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.json, { error: 'Invalid request body: it is not valid JSON', code: 'invalid_argument' });
      const state = await getJson(`${url}/apps/p1/state`);
      assert.equal(state.json.state.count, 1);
    } finally {
      await server.close();
    }
    assert.throws(() => new CachedAppRegistry(null as never), /factory/);
    await assert.rejects(async () => {
      await Fastify().register(appRoutes, { apps: {} as never }).ready();
    }, /AppRegistry/);
  });

  it('the example app streams a reply and resumes its conversation from SQLite after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-example-app-'));
    const executor = new ActionExecutor({ logger: silentLogger });
    try {
      for (const expected of [1, 2]) {
        const apps = exampleApps({ dataDir: dir, wordDelayMs: 1 });
        const server = createHttpServer({ executor, apps, logger: false });
        const url = await server.listen({ port: 0, host: '127.0.0.1' });
        try {
          const stream = await openSse(`${url}/apps/demo/stream`, { body: { inputs: { message: 'hello' } } });
          const frames = await stream.done();
          const text = frames.filter((f) => f.event === 'chunk').map((f) => f.data.text).join('');
          assert.equal(text, `You said: hello. That is message ${expected} of this chat.`);
          const state = await getJson(`${url}/apps/demo/state`);
          assert.equal(state.json.sequenceId, expected - 1);
          assert.equal(state.json.state.history.length, expected * 2);
          assert.equal((await getJson(`${url}/apps/demo/runs`)).json.runs.length, expected);
        } finally {
          await server.close();
          (apps.tracker as SQLiteTracker).close();
        }
      }
    } finally {
      await executor.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CachedAppRegistry', () => {
  const build = (appId: string, id = appId) =>
    new ApplicationBuilder().withActions({ tick }).withTransitions(['tick', 'tick']).withState({ count: 0, transcript: [] }).withEntrypoint('tick').withIdentifiers(id);

  it('builds each app once (concurrent first requests share the build) and retries a failed build', async () => {
    let builds = 0;
    let fail = true;
    const registry = new CachedAppRegistry(async (appId) => {
      builds++;
      await sleep(5);
      if (appId === 'flaky' && fail) throw new SluiceError('unavailable', 'store down');
      return appId === 'none' ? null : build(appId);
    });
    const [a, b] = await Promise.all([registry.get('a'), registry.get('a')]);
    assert.ok(a !== null && a === b);
    assert.equal(builds, 1);
    assert.equal(await registry.get('a'), a);
    await assert.rejects(registry.get('flaky'), /store down/);
    fail = false;
    assert.equal((await registry.get('flaky'))?.appId, 'flaky');
    assert.equal(await registry.get('none'), null);
    assert.equal(registry.size, 2, 'unknown ids and failed builds are not kept');
  });

  it('refuses an app built with another id', async () => {
    const registry = new CachedAppRegistry((appId) => build(appId, 'other'));
    await assert.rejects(registry.get('mine'), /built app 'other' for id 'mine': call withIdentifiers\(appId\)/);
  });

  it('maxApps drops the least recently used idle apps, never one with a step in progress', async () => {
    const registry = new CachedAppRegistry((appId) => build(appId), { maxApps: 2 });
    const a = (await registry.get('a'))!;
    const [, container] = await a.streamResult({ haltAfter: ['tick'], inputs: { words: 50, intervalMs: 5 } });
    await registry.get('b');
    await registry.get('c');
    assert.equal(await registry.get('a'), a, 'a is busy: b was dropped instead');
    assert.equal(registry.size, 2);
    await container.cancel();
    assert.throws(() => new CachedAppRegistry(() => null, { maxApps: 0 }), /maxApps/);
  });
});
