/**
 * Control routes: stop (cancel) and barge-in (ack), and how they differ from a disconnect.
 */

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { assertSettled, call, openSse, postJson, startServer, waitFor, type TestServer } from './fixtures.ts';

describe('control routes', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());
  afterEach(() => assertSettled(server.executor));

  it('POST /runs/:id/cancel: 202, then 409 once ended; 404 for an unknown run', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_ticker', { sender: 'stop' }) });
    const runId = stream.res.headers['x-sluice-run-id'] as string;
    await stream.until((s) => s.types().includes('chunk'));

    const stop = await postJson(`${server.url}/runs/${runId}/cancel`, '');
    assert.equal(stop.status, 202);
    assert.deepEqual(stop.json, { cancelled: true, runId });

    await stream.done();
    const types = stream.types();
    assert.deepEqual(types.slice(-3), ['stream-end', 'result', 'run-end']);
    const frames = stream.frames();
    assert.equal(frames.at(-3)!.data.reason, 'cancelled');
    assert.equal(frames.at(-1)!.data.reason, 'cancelled');
    assert.ok(server.probe.aborted.has('stop'), "the action's signal aborted");

    const again = await postJson(`${server.url}/runs/${runId}/cancel`, '');
    assert.equal(again.status, 409);
    assert.match((again.json as { error: string }).error, /has already ended \(cancelled\)/);

    const unknown = await postJson(`${server.url}/runs/nope/cancel`, '');
    assert.equal(unknown.status, 404);
    assert.match((unknown.json as { error: string }).error, /No run found with id 'nope'/);
  });

  it('POST /streams/:responseId/ack barges in: no further chunks, stream-end cancelled, result, run-end', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_wait', { sender: 'barge' }) });
    await stream.until((s) => s.types().includes('chunk'));
    const responseId = stream.frames().find((f) => f.event === 'chunk')!.data.responseId as string;

    const ack = await postJson(`${server.url}/streams/${responseId}/ack`, '');
    assert.equal(ack.status, 200);
    assert.deepEqual(ack.json, { acknowledged: true, responseId });

    await stream.done();
    assert.deepEqual(stream.types(), ['run-start', 'stream-start', 'chunk', 'stream-end', 'result', 'run-end']);
    const [, , chunk, end, result, runEnd] = stream.frames();
    assert.equal(chunk!.data.text, 'first');
    assert.equal(end!.data.reason, 'cancelled');
    assert.equal(end!.data.responseId, responseId);
    assert.deepEqual(result!.data.events, [{ event: 'slot', timestamp: null, name: 'interrupted', value: true }]);
    assert.equal(runEnd!.data.reason, 'cancelled');
    assert.ok(server.probe.aborted.has('barge'));
    assert.ok(!stream.text.includes('late'));

    // As in Rasa, a late ack is no error.
    const late = await postJson(`${server.url}/streams/${responseId}/ack`, '');
    assert.equal(late.status, 200);
    assert.deepEqual(late.json, { acknowledged: false, responseId });
    const unknown = await postJson(`${server.url}/streams/${'0'.repeat(32)}/ack`, '');
    assert.equal(unknown.status, 200);
    assert.equal((unknown.json as { acknowledged: boolean }).acknowledged, false);
  });

  it('after a barge-in, an action that ignores it gets an empty result at the timeout', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_stubborn') });
    await stream.until((s) => s.types().includes('chunk'));
    const responseId = stream.frames().find((f) => f.event === 'chunk')!.data.responseId as string;
    const acked = Date.now();
    assert.equal((await postJson(`${server.url}/streams/${responseId}/ack`, '')).status, 200);
    await stream.done();
    const elapsed = Date.now() - acked;
    assert.ok(elapsed >= 400 && elapsed < 1400, `result ${elapsed} ms after the ack (timeout 0.5 s)`);
    assert.deepEqual(stream.types().slice(-3), ['stream-end', 'result', 'run-end']);
    assert.deepEqual(stream.frames().at(-2)!.data.events, []);
    assert.equal(stream.frames().at(-1)!.data.reason, 'timeout');
  });

  it('cancel reaches a detached run with no reader', async () => {
    const stream = await openSse(`${server.url}/webhook/stream?detach=1`, { body: call('action_ticker', { sender: 'detached-stop' }) });
    const runId = stream.res.headers['x-sluice-run-id'] as string;
    await stream.until((s) => s.types().includes('chunk'));
    stream.destroy();
    await waitFor(() => server.executor.getRun(runId)!.subscribers.size === 0, 2000, 'the reader to leave');
    assert.equal(server.executor.getRun(runId)!.state, 'running');
    assert.equal((await postJson(`${server.url}/runs/${runId}/cancel`, '')).status, 202);
    await server.executor.getRun(runId)!.done;
    assert.ok(server.probe.aborted.has('detached-stop'));
  });
});
