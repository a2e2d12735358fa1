/**
 * Server-Sent Events: framing, headers, liveness, resume, disconnect vs cancel, backpressure.
 */

import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { createHttpServer } from '../../../src/transports/http/index.ts';
import { Probe, assertSettled, call, createActions, openSse, postJson, startServer, waitFor, type SseStream, type TestServer } from './fixtures.ts';

function runIdOf(stream: SseStream): string {
  const id = stream.res.headers['x-sluice-run-id'];
  assert.equal(typeof id, 'string', 'X-Sluice-Run-Id header');
  return id as string;
}

function assertGapFree(stream: SseStream, from = 1): void {
  stream.frames().forEach((frame, i) => {
    assert.equal(frame.id, String(from + i));
    assert.equal(frame.data.seq, from + i);
    assert.equal(frame.data.type, frame.event);
  });
}

describe('SSE', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());
  afterEach(() => assertSettled(server.executor));

  it('frames every event as id / event / data, exactly', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_stream') });
    assert.equal(stream.status, 200);
    await stream.done();
    const runId = runIdOf(stream);
    assert.match(stream.text, /^(id: \d+\nevent: [a-z-]+\ndata: \{[^\n]*\}\n\n)+$/);
    assert.deepEqual(stream.types(), ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end']);
    assertGapFree(stream);
    for (const frame of stream.frames()) assert.equal(frame.data.runId, runId);
    const chunk = stream.frames()[2]!;
    const responseId = chunk.data.responseId as string;
    assert.match(responseId, /^[0-9a-f]{32}$/);
    assert.ok(
      stream.text.includes(`id: 3\nevent: chunk\ndata: {"type":"chunk","responseId":"${responseId}","text":"one ","runId":"${runId}","seq":3}\n\n`),
    );
    assert.ok(stream.text.endsWith(`id: 8\nevent: run-end\ndata: {"type":"run-end","reason":"completed","runId":"${runId}","seq":8}\n\n`));
    assert.deepEqual(stream.frames()[6]!.data.events, [{ event: 'slot', timestamp: null, name: 'streamed', value: true }]);
  });

  it('sends the SSE headers at once, never compressed', async () => {
    const started = Date.now();
    const stream = await openSse(`${server.url}/webhook/stream`, {
      body: call('action_ticker', { slots: { count: 1, interval_ms: 300 } }),
      headers: { 'accept-encoding': 'gzip, deflate, br' },
    });
    assert.ok(Date.now() - started < 250, 'headers arrive before the first chunk');
    assert.ok(!stream.types().includes('chunk'));
    const h = stream.res.headers;
    assert.equal(h['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(h['cache-control'], 'no-cache, no-transform');
    assert.equal(h['x-accel-buffering'], 'no');
    // `agent: false` sends `Connection: close`: the stream honours it (keep-alive otherwise, see limits.test.ts).
    assert.equal(h.connection, 'close');
    assert.equal(h['content-encoding'], undefined);
    assert.match(h['x-sluice-run-id'] as string, /^[0-9a-f-]{36}$/);
    await stream.done();
    assert.equal(stream.types().at(-1), 'run-end');
  });

  it('answers POST /webhook as SSE when Accept asks for text/event-stream', async () => {
    const stream = await openSse(`${server.url}/webhook`, { body: call('action_stream'), headers: { accept: 'text/event-stream' } });
    assert.equal(stream.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    await stream.done();
    assert.equal(stream.types().length, 8);
    const json = await postJson(`${server.url}/webhook`, call('action_stream'), { accept: 'application/json, text/event-stream;q=0' });
    assert.equal(json.status, 200);
    assert.equal((json.json as { responses: unknown[] }).responses.length, 3);
  });

  it('validates the call before opening the stream (JSON 4xx)', async () => {
    const unknown = await postJson(`${server.url}/webhook/stream`, call('action_nope'));
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.json, { error: "No registered action found for name 'action_nope'.", action_name: 'action_nope' });

    const malformed = await postJson(`${server.url}/webhook`, { next_action: 'action_stream', tracker: {} }, { accept: 'text/event-stream' });
    assert.equal(malformed.status, 400);
    assert.deepEqual(malformed.json, { error: 'Invalid action call: tracker.sender_id: is required', action_name: 'action_stream' });

    const notJson = await postJson(`${server.url}/webhook/stream`, '{oops');
    assert.equal(notJson.status, 400);
    assert.deepEqual(notJson.json, { error: 'Invalid body request' });

    const detach = await postJson(`${server.url}/webhook/stream?detach=maybe`, call('action_stream'));
    assert.equal(detach.status, 400);
    assert.match((detach.json as { error: string }).error, /'detach' value 'maybe'/);
  });

  it('streams a call that names no action as a skipped result', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call(null) });
    await stream.done();
    assert.deepEqual(stream.types(), ['run-start', 'result', 'run-end']);
    assert.equal(stream.frames()[1]!.data.skipped, true);
  });

  it('reports errors after the headers as event: error, then run-end', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_boom_stream') });
    await stream.done();
    assert.deepEqual(stream.types(), ['run-start', 'stream-start', 'chunk', 'stream-end', 'error', 'run-end']);
    const [, , , end, error, runEnd] = stream.frames();
    assert.equal(end!.data.reason, 'error');
    assert.equal(error!.data.code, 'internal');
    assert.equal(error!.data.message, 'action exploded');
    assert.equal(runEnd!.data.reason, 'error');

    const domain = await openSse(`${server.url}/webhook/stream`, { body: call('action_stream', { domain: {}, domain_digest: 'nope' }) });
    await domain.done();
    const err = domain.frames().find((f) => f.event === 'error')!;
    assert.equal(err.data.reason, 'domain_missing');
  });

  it('keeps the seq gap-free when an event cannot be JSON-encoded', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_bigint') });
    await stream.done();
    assertGapFree(stream);
    const chunk = stream.frames().find((f) => f.event === 'chunk')!;
    assert.match(chunk.data.encodingError, /could not be encoded as JSON/);
    assert.equal(stream.types().at(-1), 'run-end');
  });

  it('cancels the run when the client disconnects (default)', async () => {
    for (const [path, headers] of [
      ['/webhook/stream', {}],
      ['/webhook', { accept: 'text/event-stream' }],
    ] as const) {
      const sender = `disconnect-${path}`;
      const stream = await openSse(`${server.url}${path}`, { body: call('action_ticker', { sender }), headers });
      const runId = runIdOf(stream);
      await stream.until((s) => s.types().includes('chunk'));
      stream.destroy();
      await waitFor(() => server.probe.aborted.has(sender), 2000, "the action's signal to abort");
      const run = server.executor.getRun(runId)!;
      await run.done;
      assert.equal(run.endReason, 'cancelled');
    }
  });

  it('keeps a detached run going after a disconnect; it can be resumed', async () => {
    for (const [query, headers] of [
      ['?detach=true', {}],
      ['', { 'x-sluice-detach': 'true' }],
    ] as const) {
      const sender = `detached${query}`;
      const stream = await openSse(`${server.url}/webhook/stream${query}`, {
        body: call('action_ticker', { sender, slots: { count: 10, interval_ms: 10 } }),
        headers,
      });
      const runId = runIdOf(stream);
      await stream.until((s) => s.types().includes('chunk'));
      stream.destroy();
      const run = server.executor.getRun(runId)!;
      await run.done;
      assert.equal(run.endReason, 'completed');
      assert.ok(server.probe.finished.has(sender));
      assert.ok(!server.probe.aborted.has(sender));

      const replay = await openSse(`${server.url}/runs/${runId}/events`);
      assert.equal(replay.status, 200);
      assert.equal(replay.res.headers['x-sluice-run-id'], runId);
      await replay.done();
      assertGapFree(replay);
      assert.equal(replay.types().filter((t) => t === 'chunk').length, 10);
      assert.equal(replay.types().at(-1), 'run-end');
    }
  });

  it('resumes from Last-Event-ID (which wins over ?after=), or from ?after=', async () => {
    const run = server.executor.start(call('action_stream'));
    await run.done;
    const fromHeader = await openSse(`${server.url}/runs/${run.id}/events?after=1`, { headers: { 'last-event-id': '5' } });
    await fromHeader.done();
    assert.deepEqual(fromHeader.types(), ['stream-end', 'result', 'run-end']);
    assertGapFree(fromHeader, 6);

    const fromQuery = await openSse(`${server.url}/runs/${run.id}/events?after=6`);
    await fromQuery.done();
    assert.deepEqual(fromQuery.types(), ['result', 'run-end']);

    const atEnd = await openSse(`${server.url}/runs/${run.id}/events?after=8`);
    await atEnd.done();
    assert.equal(atEnd.status, 200);
    assert.deepEqual(atEnd.types(), []);
  });

  it('follows a live run: replay, then live events; a reader leaving does not cancel', async () => {
    const run = server.executor.start(call('action_ticker', { sender: 'follower', slots: { count: 8, interval_ms: 15 } }));
    const first = await openSse(`${server.url}/runs/${run.id}/events`);
    await first.until((s) => s.types().filter((t) => t === 'chunk').length >= 2);
    first.destroy();
    const seen = Number(first.frames().at(-1)!.id);
    const second = await openSse(`${server.url}/runs/${run.id}/events`, { headers: { 'last-event-id': String(seen) } });
    await second.done();
    assertGapFree(second, seen + 1);
    assert.equal(second.types().at(-1), 'run-end');
    assert.equal(run.endReason, 'completed');
    assert.ok(!server.probe.aborted.has('follower'));
  });

  it('GET /runs/:id/events: 404 unknown run, 400 bad resume point', async () => {
    const unknown = await fetch(`${server.url}/runs/no-such-run/events`);
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as { error: string }).error, /No run found with id 'no-such-run'/);

    const run = server.executor.start(call('action_stream'));
    await run.done;
    const bad = await fetch(`${server.url}/runs/${run.id}/events`, { headers: { 'last-event-id': 'abc' } });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /Invalid Last-Event-ID 'abc'/);
    const beyond = await fetch(`${server.url}/runs/${run.id}/events?after=99`);
    assert.equal(beyond.status, 400);
    assert.match(((await beyond.json()) as { error: string }).error, /has no event 99/);
  });

  it('writes : ping comments while idle', async () => {
    const pinging = await startServer({ server: { sse: { pingIntervalMs: 20 } } });
    try {
      const stream = await openSse(`${pinging.url}/webhook/stream`, { body: call('action_ticker', { slots: { count: 1, interval_ms: 150 } }) });
      await stream.done();
      assert.ok(stream.text.includes(': ping\n\n'), stream.text);
      assert.equal(stream.types().at(-1), 'run-end');
    } finally {
      await pinging.close();
    }
  });

  it('ends the response at maxDurationMs; the run goes on and can be resumed', async () => {
    const limited = await startServer({ server: { sse: { maxDurationMs: 80 } } });
    try {
      const stream = await openSse(`${limited.url}/webhook/stream`, {
        body: call('action_ticker', { sender: 'max', slots: { count: 12, interval_ms: 20 } }),
      });
      const runId = runIdOf(stream);
      await stream.done();
      assert.ok(stream.text.endsWith(`: max duration reached; resume with GET /runs/${runId}/events and Last-Event-ID\n\n`), stream.text);
      assert.ok(!stream.types().includes('run-end'));
      const run = limited.executor.getRun(runId)!;
      assert.ok(!run.isCancelled, 'max duration is not a disconnect');

      // Each resumed response may hit the limit too: keep resuming from the last id seen.
      let frames = stream.frames();
      for (let i = 0; i < 50 && frames.at(-1)!.event !== 'run-end'; i++) {
        const more = await openSse(`${limited.url}/runs/${runId}/events`, { headers: { 'last-event-id': frames.at(-1)!.id! } });
        assert.equal(more.status, 200);
        await more.done();
        frames = [...frames, ...more.frames()];
      }
      frames.forEach((f, i) => assert.equal(f.data.seq, i + 1));
      assert.equal(frames.filter((f) => f.event === 'chunk').length, 12);
      await run.done;
      assert.equal(run.endReason, 'completed');
    } finally {
      await limited.close();
    }
  });

  it('410 when the resume point is no longer retained', async () => {
    const small = await startServer({ executor: { run: { highWaterMark: 4, logLimit: 4 } } });
    try {
      const run = small.executor.start(call('action_stream', { slots: {} }));
      await run.done;
      const ticker = small.executor.start(call('action_ticker', { slots: { count: 20, interval_ms: 1 } }));
      await ticker.done;
      const res = await fetch(`${small.url}/runs/${ticker.id}/events?after=1`);
      assert.equal(res.status, 410);
      const body = (await res.json()) as { error: string; code: string };
      assert.equal(body.code, 'out_of_range');
      assert.match(body.error, /no longer retained/);
    } finally {
      await small.close();
    }
  });

  it('holds a slow reader within the run high-water mark, then delivers everything', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, {
      body: call('action_many', { sender: 'slow-sse', slots: { count: 3000, size: 2000 } }),
    });
    const runId = runIdOf(stream);
    const run = server.executor.getRun(runId)!;
    stream.res.pause();
    let previous = -1;
    // Wait for the producer to stall: the socket is full and the run's buffer is at its mark.
    for (let i = 0; i < 200; i++) {
      await sleep(10);
      assert.ok(run.buffered <= run.highWaterMark, `buffered ${run.buffered} > ${run.highWaterMark}`);
      const emitted = server.probe.emitted.get('slow-sse') ?? 0;
      if (emitted === previous && emitted > 0) break;
      previous = emitted;
    }
    assert.ok((server.probe.emitted.get('slow-sse') ?? 0) < 3000, 'the producer is held back');
    assert.equal(run.state, 'running');
    stream.res.resume();
    await stream.done();
    assert.equal(stream.types().filter((t) => t === 'chunk').length, 3000);
    assertGapFree(stream);
  });

  it('a client that vanishes while back-pressured releases the writer and cancels the run', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, {
      body: call('action_many', { sender: 'vanish-sse', slots: { count: 100000, size: 2000 } }),
    });
    const run = server.executor.getRun(runIdOf(stream))!;
    stream.res.pause();
    await waitFor(() => run.buffered >= run.lowWaterMark, 3000, 'the reader to fall behind');
    stream.destroy();
    await run.done;
    assert.equal(run.endReason, 'cancelled');
  });

  it('keeps headers set by hooks (e.g. CORS) on the hijacked response', async () => {
    const executor = new ActionExecutor({ logger: silentLogger, actions: createActions(new Probe()) });
    const app = createHttpServer({ executor });
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('access-control-allow-origin', '*');
      reply.header('content-length', '12');
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const stream = await openSse(`${url}/webhook/stream`, { body: call('action_stream') });
      assert.equal(stream.res.headers['access-control-allow-origin'], '*');
      assert.equal(stream.res.headers['content-length'], undefined);
      assert.equal(stream.res.headers['content-type'], 'text/event-stream; charset=utf-8');
      await stream.done();
      assert.equal(stream.types().at(-1), 'run-end');
    } finally {
      await app.close();
      await assertSettled(executor);
    }
  });

  it('server close ends open SSE responses instead of waiting for them', async () => {
    const closing = await startServer();
    const stream = await openSse(`${closing.url}/webhook/stream?detach=true`, { body: call('action_ticker', { sender: 'shutdown' }) });
    await stream.until((s) => s.types().includes('chunk'));
    const started = Date.now();
    await closing.app.close();
    await stream.done();
    assert.ok(Date.now() - started < 1000);
    assert.ok(stream.text.endsWith(': server shutting down\n\n'));
    // The run belongs to the executor, which the application closes.
    await closing.executor.close();
    await assertSettled(closing.executor);
  });

  it('pipelined stream calls on one socket are answered in turn (the queued one is not a disconnect)', async () => {
    const body = (sender: string): string => JSON.stringify(call('action_ticker', { sender, slots: { count: 3, interval_ms: 15 } }));
    const request = (sender: string): string =>
      `POST /webhook/stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body(sender))}\r\n\r\n${body(sender)}`;
    const socket = net.connect(Number(new URL(server.url).port), '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => (text += data));
    socket.write(request('pipe-a') + request('pipe-b'));
    await waitFor(() => text.split('event: run-end').length === 3 && text.endsWith('0\r\n\r\n'), 5000, 'both streams to end');
    socket.destroy();
    const responses = text.split('HTTP/1.1 200 OK').slice(1);
    assert.equal(responses.length, 2);
    for (const response of responses) {
      const events = [...response.matchAll(/event: ([a-z-]+)\n/g)].map((m) => m[1]);
      assert.deepEqual(events, ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end']);
      assert.match(response, /"reason":"completed"/);
    }
    assert.ok(server.probe.finished.has('pipe-a') && server.probe.finished.has('pipe-b'));
  });

  it('HEAD is not served as a stream', async () => {
    const run = server.executor.start(call('action_stream'));
    await run.done;
    const res = await fetch(`${server.url}/runs/${run.id}/events`, { method: 'HEAD' });
    assert.equal(res.status, 404);
  });
});
