/**
 * The WebSocket endpoint: commands, events, disconnects, backpressure and heartbeat.
 */

import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import { WsClient, assertSettled, call, startServer, waitFor, type TestServer } from './fixtures.ts';

function rawSocket(client: WsClient): Duplex {
  return (client.socket as unknown as { _socket: Duplex })._socket;
}

function serverSockets(server: TestServer): Set<WebSocket> {
  return (server.app as unknown as { websocketServer: { clients: Set<WebSocket> } }).websocketServer.clients;
}

function assertGapFree(events: { seq: number }[], from = 1): void {
  events.forEach((event, i) => assert.equal(event.seq, from + i));
}

async function startRun(client: WsClient, id: string, body: unknown, detach?: boolean): Promise<string> {
  client.send({ type: 'start', id, call: body, ...(detach === undefined ? {} : { detach }) });
  const started = await client.next((m) => m.type === 'started' && m.id === id);
  return started.runId as string;
}

async function runEnd(client: WsClient, runId: string): Promise<any> {
  return client.next((m) => m.type === 'run-end' && m.runId === runId);
}

describe('WebSocket /ws', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());
  afterEach(() => assertSettled(server.executor));

  it('start: replies started {id, runId}, then streams every event of the run', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await startRun(client, 'c1', call('action_stream'));
    assert.match(runId, /^[0-9a-f-]{36}$/);
    await runEnd(client, runId);
    const events = client.ofRun(runId);
    assert.deepEqual(
      events.map((e) => e.type),
      ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end'],
    );
    assertGapFree(events);
    assert.equal(client.messages[0].type, 'started', 'started comes before the events');
    assert.deepEqual(client.messages[0], { type: 'started', id: 'c1', runId });
    await client.close();
  });

  it('runs several runs at once on one socket', async () => {
    const client = await WsClient.connect(server.url);
    const slots = { count: 5, interval_ms: 5 };
    const [a, b, c] = await Promise.all([
      startRun(client, 'a', call('action_ticker', { sender: 'multi-a', slots })),
      startRun(client, 'b', call('action_ticker', { sender: 'multi-b', slots })),
      startRun(client, 'c', call('action_stream')),
    ]);
    for (const runId of [a!, b!, c!]) {
      await runEnd(client, runId);
      assertGapFree(client.ofRun(runId));
    }
    assert.equal(client.ofRun(a!).filter((e) => e.type === 'chunk').length, 5);
    await client.close();
  });

  it('cancel: stops the run; errors for an ended or unknown run', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await startRun(client, 'x', call('action_ticker', { sender: 'ws-stop' }));
    await client.next((m) => m.type === 'chunk' && m.runId === runId);
    client.send({ type: 'cancel', runId });
    assert.deepEqual(await client.next((m) => m.type === 'cancelled'), { type: 'cancelled', runId });
    const end = await runEnd(client, runId);
    assert.equal(end.reason, 'cancelled');
    assert.ok(server.probe.aborted.has('ws-stop'));

    client.send({ type: 'cancel', runId });
    const ended = await client.next((m) => m.type === 'error' && /already ended/.test(m.message));
    assert.equal(ended.code, 'failed_precondition');
    client.send({ type: 'cancel', runId: 'nope' });
    const unknown = await client.next((m) => m.type === 'error' && m.code === 'not_found');
    assert.match(unknown.message, /no run found with id 'nope'/);
    await client.close();
  });

  it('ack: barge-in stops the stream (stream-end cancelled, result, run-end)', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await startRun(client, 'w', call('action_wait', { sender: 'ws-barge' }));
    const chunk = await client.next((m) => m.type === 'chunk' && m.runId === runId);
    client.send({ type: 'ack', responseId: chunk.responseId });
    assert.deepEqual(await client.next((m) => m.type === 'acked'), { type: 'acked', responseId: chunk.responseId, acknowledged: true });
    await runEnd(client, runId);
    const events = client.ofRun(runId);
    assert.deepEqual(
      events.map((e) => e.type),
      ['run-start', 'stream-start', 'chunk', 'stream-end', 'result', 'run-end'],
    );
    assert.equal(events[3].reason, 'cancelled');
    assert.deepEqual(events[4].events, [{ event: 'slot', timestamp: null, name: 'interrupted', value: true }]);
    assert.equal(events[5].reason, 'cancelled');

    client.send({ type: 'ack', responseId: chunk.responseId });
    await client.next((m) => m.type === 'acked' && m.acknowledged === false);
    await client.close();
  });

  it('closing the socket cancels the runs it started, except detached ones', async () => {
    const client = await WsClient.connect(server.url);
    const owned = await startRun(client, 'o', call('action_ticker', { sender: 'ws-owned' }));
    const detached = await startRun(client, 'd', call('action_ticker', { sender: 'ws-detached', slots: { count: 10, interval_ms: 10 } }), true);
    await client.next((m) => m.type === 'chunk' && m.runId === owned);
    await client.next((m) => m.type === 'chunk' && m.runId === detached);
    await client.close();

    const ownedRun = server.executor.getRun(owned)!;
    const detachedRun = server.executor.getRun(detached)!;
    await Promise.all([ownedRun.done, detachedRun.done]);
    assert.equal(ownedRun.endReason, 'cancelled');
    assert.ok(server.probe.aborted.has('ws-owned'));
    assert.equal(detachedRun.endReason, 'completed');
    assert.ok(server.probe.finished.has('ws-detached'));
    assert.equal(detachedRun.subscribers.size, 0, 'subscriptions released');
  });

  it('resume: continues a run from a seq on another socket; one reader per run and socket', async () => {
    const first = await WsClient.connect(server.url);
    const runId = await startRun(first, 'r', call('action_ticker', { sender: 'ws-resume', slots: { count: 10, interval_ms: 10 } }), true);
    await first.next((m) => m.type === 'chunk' && m.runId === runId && m.text === 'tick 2 ');
    first.socket.terminate();
    await first.closed;
    const seen = first.ofRun(runId).at(-1).seq as number;

    const second = await WsClient.connect(server.url);
    second.send({ type: 'resume', runId, after: seen });
    // A repeated resume replaces the first reader rather than doubling every event.
    second.send({ type: 'resume', runId, after: seen });
    await runEnd(second, runId);
    const events = second.ofRun(runId);
    assertGapFree(events, seen + 1);
    assert.equal(events.at(-1).reason, 'completed');
    assert.equal([...first.ofRun(runId), ...events].filter((e) => e.type === 'chunk').length, 10);

    second.send({ type: 'resume', runId: 'nope', after: 0 });
    assert.match((await second.next((m) => m.type === 'error' && m.code === 'not_found')).message, /no run found/);
    second.send({ type: 'resume', runId, after: 999 });
    assert.match((await second.next((m) => m.type === 'error' && /has no event 999/.test(m.message))).code, /invalid_argument/);
    second.send({ type: 'resume', runId, after: -1 });
    await second.next((m) => m.type === 'error' && /'after' must be/.test(m.message));
    await second.close();
  });

  it('answers bad messages with {type:error, code, message}; the socket stays open', async () => {
    const client = await WsClient.connect(server.url);
    const cases: [unknown, RegExp][] = [
      ['not json', /not valid JSON/],
      ['[1,2]', /expected a JSON object/],
      [{ id: 'x' }, /'type' is required/],
      [{ type: 'explode' }, /unknown type "explode"/],
      [{ type: 'start', id: 'no-call' }, /'call' is required/],
      [{ type: 'start', id: 5, call: call('action_stream') }, /'id' must be a string/],
      [{ type: 'start', call: call('action_stream'), detach: 'yes' }, /'detach' must be a boolean/],
      [{ type: 'start', id: 'bad-tracker', call: { next_action: 'action_stream', tracker: {} } }, /tracker\.sender_id: is required/],
      [{ type: 'cancel' }, /'runId' must be a string/],
      [{ type: 'ack', responseId: 7 }, /'responseId' must be a string/],
      [{ type: 'resume' }, /'runId' must be a string/],
    ];
    for (const [message, pattern] of cases) {
      const before = client.messages.length;
      client.send(typeof message === 'string' ? message : JSON.stringify(message));
      const reply = await client.next((m) => client.messages.indexOf(m) >= before && m.type === 'error');
      assert.match(reply.message, pattern);
      assert.equal(reply.code, 'invalid_argument');
      assert.equal(reply.seq, undefined);
    }
    client.socket.send(Buffer.from('{}'), { binary: true });
    await client.next((m) => m.type === 'error' && /binary/.test(m.message));

    client.send({ type: 'start', id: 'ghost', call: call('action_nope') });
    const notFound = await client.next((m) => m.type === 'error' && m.id === 'ghost');
    assert.deepEqual(notFound, {
      type: 'error',
      code: 'not_found',
      message: "start: No registered action found for name 'action_nope'.",
      id: 'ghost',
      reason: 'action_not_found',
      actionName: 'action_nope',
    });

    const runId = await startRun(client, 'ok', call('action_stream'));
    await runEnd(client, runId);
    await client.close();
  });

  it('bounds the send buffer: a paused reader holds the run within its high-water mark', async () => {
    const bounded = await startServer({ server: { ws: { highWaterMark: 64 * 1024, heartbeatMs: 60_000 } } });
    try {
      const client = await WsClient.connect(bounded.url);
      const runId = await startRun(client, 'big', call('action_many', { sender: 'ws-slow', slots: { count: 4000, size: 2000 } }));
      rawSocket(client).pause();
      const run = bounded.executor.getRun(runId)!;
      const [socket] = serverSockets(bounded);
      let previous = -1;
      for (let i = 0; i < 300; i++) {
        await sleep(10);
        assert.ok(run.buffered <= run.highWaterMark, `run.buffered ${run.buffered} > ${run.highWaterMark}`);
        assert.ok(socket!.bufferedAmount <= 64 * 1024 + 4096, `bufferedAmount ${socket!.bufferedAmount}`);
        const emitted = bounded.probe.emitted.get('ws-slow') ?? 0;
        if (emitted === previous && emitted > 0 && run.buffered >= run.lowWaterMark) break;
        previous = emitted;
      }
      assert.ok((bounded.probe.emitted.get('ws-slow') ?? 0) < 4000, 'the producer is held back');
      assert.equal(run.state, 'running');
      rawSocket(client).resume();
      await runEnd(client, runId);
      assert.equal(client.ofRun(runId).filter((e) => e.type === 'chunk').length, 4000);
      assertGapFree(client.ofRun(runId));
      await client.close();
    } finally {
      await bounded.close();
    }
  });

  it('terminates a socket that stays above the mark for stallTimeoutMs (and cancels its runs)', async () => {
    const stalled = await startServer({ server: { ws: { highWaterMark: 16 * 1024, stallTimeoutMs: 150, heartbeatMs: 60_000 } } });
    try {
      const client = await WsClient.connect(stalled.url);
      const runId = await startRun(client, 'stall', call('action_many', { sender: 'ws-stall', slots: { count: 100_000, size: 2000 } }));
      rawSocket(client).pause();
      await waitFor(() => serverSockets(stalled).size === 0, 3000, 'the server to terminate the stalled socket');
      const run = stalled.executor.getRun(runId)!;
      await run.done;
      assert.equal(run.endReason, 'cancelled');
      client.socket.terminate();
    } finally {
      await stalled.close();
    }
  });

  it('heartbeat: keeps live sockets, reaps one that stops answering pings', async () => {
    const beating = await startServer({ server: { ws: { heartbeatMs: 30 } } });
    try {
      const live = await WsClient.connect(beating.url);
      const dead = await WsClient.connect(beating.url);
      const runId = await startRun(dead, 'dead', call('action_ticker', { sender: 'ws-dead' }));
      rawSocket(dead).pause();
      await waitFor(() => serverSockets(beating).size === 1, 2000, 'the dead socket to be reaped');
      await beating.executor.getRun(runId)!.done;
      assert.ok(beating.probe.aborted.has('ws-dead'));
      await sleep(100);
      assert.equal(live.socket.readyState, live.socket.OPEN);
      const ok = await startRun(live, 'live', call('action_stream'));
      await runEnd(live, ok);
      await live.close();
      dead.socket.terminate();
    } finally {
      await beating.close();
    }
  });

  it('server close closes sockets (and their runs end)', async () => {
    const closing = await startServer();
    const client = await WsClient.connect(closing.url);
    const runId = await startRun(client, 'c', call('action_ticker', { sender: 'ws-server-close' }));
    await client.next((m) => m.type === 'chunk' && m.runId === runId);
    const run = closing.executor.getRun(runId)!;
    await closing.app.close();
    await client.closed;
    await run.done;
    assert.equal(run.endReason, 'cancelled');
    await assertSettled(closing.executor);
  });
});
