/**
 * Regression tests of issue 14's "Found" defects 1–8 on the HTTP transport (each failed before
 * its fix), and the limits that answer them.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { defineAction } from '../../../src/runtime/action.ts';
import { assertHealthy } from '../../resources/health.ts';
import { call, openSse, postJson, startServer, waitFor, WsClient, type TestServer } from './fixtures.ts';

/** Resolves when the server closes a raw socket (or rejects after `ms`). */
function closedWithin(socket: net.Socket, ms: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
    socket.on('error', () => {});
  });
}

describe('defect 1: a WebSocket that sends and never reads', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ server: { ws: { heartbeatMs: 100, messageRate: 50, messageBurst: 50, maxQueuedBytes: 256 * 1024 } } });
  });
  after(() => server.close());

  it('is closed (rate limit, queue cap) and the server send queue stays bounded', async () => {
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, { perMessageDeflate: false });
    await new Promise((resolve) => socket.once('open', resolve));
    // Never read: what the server sends piles up in its own queue.
    (socket as unknown as { _socket: net.Socket })._socket.pause();
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    // Large messages whose replies used to echo them whole.
    const big = JSON.stringify({ type: 'x'.repeat(200_000) });
    let maxQueued = 0;
    for (let i = 0; i < 200 && socket.readyState === WebSocket.OPEN; i++) {
      socket.send(big);
      for (const client of server.app.websocketServer.clients) maxQueued = Math.max(maxQueued, client.bufferedAmount);
      await sleep(1);
    }
    await waitFor(() => server.app.websocketServer.clients.size === 0, 5000, 'the server to drop the socket');
    assert.ok(maxQueued < 1024 * 1024, `server queue peaked at ${maxQueued} bytes`);
    socket.terminate();
    await closed;
    await assertHealthy(server.url);
  });

  it('only a pong counts as a heartbeat: a chatty client that never pongs is dropped', async () => {
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, { perMessageDeflate: false, autoPong: false });
    await new Promise((resolve) => socket.once('open', resolve));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const chatter = setInterval(() => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ type: 'ack', responseId: 'nope' })), 20);
    try {
      await Promise.race([closed, sleep(3000).then(() => assert.fail('a socket that never pongs was kept'))]);
    } finally {
      clearInterval(chatter);
    }
  });

  it('a socket that answers pings stays', async () => {
    const client = await WsClient.connect(server.url);
    await sleep(400);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    await client.close();
  });
});

describe('defect 2: a follower that never reads', () => {
  let server: TestServer;
  const finished = new Set<string>();
  before(async () => {
    // Waits for its follower to subscribe, then writes ~20 MB: far more than socket buffers take.
    const flood = defineAction({
      name: 'action_flood',
      async *stream({ tracker }) {
        await sleep(200);
        const text = 'x'.repeat(2_000);
        for (let i = 0; i < 10_000; i++) yield text;
        finished.add(tracker.senderId);
      },
    });
    server = await startServer({ server: { sse: { stallTimeoutMs: 300 } }, executor: { actions: [flood] } });
  });
  after(() => server.close());

  async function stalledFollower(runId: string): Promise<net.Socket> {
    const follower = net.connect(server.port, '127.0.0.1');
    await new Promise((resolve) => follower.once('connect', resolve));
    follower.write(`GET /runs/${runId}/events HTTP/1.1\r\nHost: x\r\n\r\n`);
    follower.pause();
    return follower;
  }

  it('holds the producer for at most the stall timeout, then is dropped with a clear end', async () => {
    const run = server.executor.start(call('action_flood', { sender: 'stall' }));
    const follower = await stalledFollower(run.id);
    const started = Date.now();
    const end = await Promise.race([run.done, sleep(10_000).then(() => null)]);
    assert.ok(end !== null, 'the run finished: the follower did not hold it');
    assert.equal(end.reason, 'completed');
    assert.ok(finished.has('stall'));
    assert.ok(Date.now() - started < 5_000, `the producer was held ${Date.now() - started} ms`);
    // The follower reads again: what was queued ends with the error frame, then the server closes.
    let text = '';
    follower.setEncoding('utf8');
    follower.on('data', (chunk: string) => {
      text += chunk;
    });
    follower.resume();
    await closedWithin(follower, 5_000);
    const tail = text.slice(-300);
    assert.ok(/event: error\ndata: \{"type":"error","code":"resource_exhausted","message":"Reader too slow[^\n]*\n\n\r\n0\r\n\r\n$/.test(tail), tail);
    await assertHealthy(server.url);
  });

  it('a follower that never reads again is disconnected', async () => {
    const connections = (): Promise<number> => new Promise((resolve) => server.app.server.getConnections((_, n) => resolve(n)));
    const before = await connections();
    const run = server.executor.start(call('action_flood', { sender: 'stall2' }));
    const follower = await stalledFollower(run.id);
    assert.equal(await connections(), before + 1);
    await run.done;
    const deadline = Date.now() + 5_000;
    while ((await connections()) > before) {
      assert.ok(Date.now() < deadline, 'the server still holds the follower connection');
      await sleep(50);
    }
    follower.destroy();
  });
});

describe('defect 3: slow requests', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ server: { limits: { requestTimeoutMs: 1000, headersTimeoutMs: 500 } } });
  });
  after(() => server.close());

  it('partial headers are dropped within the header timeout', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    const tick = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 100);
    try {
      const took = await closedWithin(socket, 3000);
      assert.ok(took < 3000);
    } finally {
      clearInterval(tick);
    }
  });

  it('a trickled body is dropped within the request timeout, and /health stays fast meanwhile', async () => {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 50; i++) {
      const socket = net.connect(server.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{');
      sockets.push(socket);
    }
    const tick = setInterval(() => {
      for (const socket of sockets) if (socket.writable) socket.write(' ');
    }, 100);
    try {
      await assertHealthy(server.url);
      const took = await Promise.all(sockets.map((socket) => closedWithin(socket, 4000)));
      assert.ok(Math.max(...took) < 4000);
    } finally {
      clearInterval(tick);
    }
    await assertHealthy(server.url);
  });

  it('an SSE response outlives the request timeout (it only covers receiving the request)', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_ticker', { slots: { count: 15, interval_ms: 100 } }) });
    await stream.done();
    assert.equal(stream.types().at(-1), 'run-end');
    assert.equal(stream.frames().filter((f) => f.event === 'chunk').length, 15);
  });
});

describe('defect 4: run caps, deadline and connections', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      executor: { maxConcurrentRuns: 3, maxRunDurationMs: 400 },
      server: { limits: { maxConnections: 20 } },
    });
  });
  after(() => server.close());

  it('over the run cap: 429 with Retry-After on HTTP, resource_exhausted on WebSocket', async () => {
    const runs = [1, 2, 3].map((i) => server.executor.start(call('action_wait', { sender: `cap-${i}` })));
    const res = await postJson(`${server.url}/webhook/stream`, call('action_hello'));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.match((res.json as { error: string }).error, /at most 3 at once/);
    const unary = await postJson(`${server.url}/webhook`, call('action_hello'));
    assert.equal(unary.status, 429);
    const client = await WsClient.connect(server.url);
    client.send({ type: 'start', id: 's', call: call('action_hello') });
    const error = await client.next((m) => m.type === 'error');
    assert.equal(error.code, 'resource_exhausted');
    await client.close();
    for (const run of runs) run.cancel();
    await Promise.all(runs.map((run) => run.done));
    assert.equal((await postJson(`${server.url}/webhook`, call('action_hello'))).status, 200);
  });

  it('a run longer than maxRunDurationMs ends with reason timeout', async () => {
    const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_ticker', { slots: { count: 100, interval_ms: 50 } }) });
    await stream.done();
    assert.equal(stream.frames().at(-1)!.data.reason, 'timeout');
  });

  it('connections over the cap are refused; /health still answers once they go', async () => {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 30; i++) {
      const socket = net.connect(server.port, '127.0.0.1');
      socket.on('error', () => {});
      sockets.push(socket);
    }
    await sleep(200);
    const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open');
    await sleep(100);
    const stillOpen = sockets.filter((s) => !s.destroyed);
    assert.ok(stillOpen.length <= 20, `${stillOpen.length} of 30 connections kept (cap 20, ${open.length} connected)`);
    for (const socket of sockets) socket.destroy();
    await sleep(50);
    await assertHealthy(server.url);
  });
});

describe('defects 5–8 on HTTP', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ executor: { exposeActionErrors: false } });
  });
  after(() => server.close());

  /** JSON text of a value nested `depth` objects deep (JSON.stringify itself cannot write it). */
  const deep = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

  it('deeply nested slots on /webhook: 400 naming the limit, never a bare 500', async () => {
    const body = JSON.stringify(call('action_hello', { slots: { deep: 'DEEP' } })).replace('"DEEP"', deep(10_000));
    const res = await postJson(`${server.url}/webhook`, body);
    assert.equal(res.status, 400);
    assert.match((res.json as { error: string }).error, /nested too deeply: the limit is 64/);
    await assertHealthy(server.url);
  });

  it('a deeply nested type on /ws is invalid_argument, not internal', async () => {
    const client = await WsClient.connect(server.url);
    client.send(`{"type":${deep(10_000)}}`);
    const error = await client.next((m) => m.type === 'error');
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, /nested too deeply/);
    await client.close();
  });

  it('/webhook 500 does not echo the request body or the action error text by default', async () => {
    const res = await postJson(`${server.url}/webhook`, call('action_boom', { slots: { secret: 'hunter2' } }));
    assert.equal(res.status, 500);
    const body = res.json as Record<string, unknown>;
    assert.equal(body.request_body, undefined);
    assert.doesNotMatch(JSON.stringify(body), /hunter2/);
    assert.match(String(body.error), /Action 'action_boom' failed/);
  });

  it('SSE honours Connection: close (the socket ends with the stream) and keeps keep-alive otherwise', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const body = JSON.stringify(call('action_hello'));
    socket.write(
      `POST /webhook/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString();
    });
    await closedWithin(socket, 2000);
    assert.match(text, /connection: close/i);
    assert.match(text, /event: run-end/);

    const agent = new http.Agent({ keepAlive: true });
    const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
      const req = http.request(`${server.url}/webhook/stream`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(headers.connection, 'keep-alive');
    agent.destroy();
  });
});

describe('defect 7: exposing action errors is the operator’s choice', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ executor: { exposeActionErrors: true } });
  });

  after(() => server.close());

  it('with exposure on, /webhook 500 is Rasa’s own body: the error text and request_body', async () => {
    const sent = call('action_boom');
    const res = await postJson(`${server.url}/webhook`, sent);
    assert.equal(res.status, 500);
    const body = res.json as Record<string, unknown>;
    assert.deepEqual(body.request_body, sent);
    assert.doesNotMatch(String(body.error), /Action 'action_boom' failed/);
  });
});
