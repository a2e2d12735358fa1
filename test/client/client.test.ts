/**
 * `sluice/client` against a real server (createHttpServer on 127.0.0.1 port 0, the HTTP transport's
 * test actions): both transports, resume after a connection dropped on the server's side, ack,
 * cancel, abort, and retries running out behind a proxy that goes away.
 */

import assert from 'node:assert/strict';
import type http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { ClientRun, SluiceClient, SluiceError, type ReconnectInfo, type SluiceEvent, type Transport } from '../../src/client/index.ts';
import { call, startServer, waitFor, type TestServer } from '../transports/http/fixtures.ts';
import { startTcpProxy } from './tcp-proxy.ts';

/** Reads a run to its end, calling `onEvent` after each event is recorded. */
async function collect(run: ClientRun, onEvent?: (event: SluiceEvent, events: SluiceEvent[]) => void | Promise<void>): Promise<SluiceEvent[]> {
  const events: SluiceEvent[] = [];
  for await (const event of run) {
    events.push(event);
    await onEvent?.(event, events);
  }
  return events;
}

/** Asserts the events are one whole run: seq 1..n with no gap or repeat, run-start first, run-end last. */
function assertWholeRun(events: SluiceEvent[]): void {
  assert.deepEqual(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
    'gap-free, duplicate-free seqs',
  );
  assert.equal(events[0]?.type, 'run-start');
  assert.equal(events.at(-1)?.type, 'run-end');
}

/** Sockets the server accepted, so a test can cut them as a network failure would. */
function trackSockets(server: TestServer): Set<Socket> {
  const sockets = new Set<Socket>();
  server.app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}

function cutAll(sockets: Set<Socket>): void {
  for (const socket of sockets) socket.destroy();
}

const ticker = (sender: string, count: number, interval = 10) => call('action_ticker', { sender, slots: { count, interval_ms: interval } });
const FAST_RETRY = { retries: 8, initialDelayMs: 10, maxDelayMs: 50 };

describe('SluiceClient', () => {
  let server: TestServer;
  let client: SluiceClient;

  beforeEach(async () => {
    server = await startServer();
    client = new SluiceClient({ baseUrl: server.url, retry: FAST_RETRY });
  });

  afterEach(async () => {
    await server.close();
  });

  for (const transport of ['sse', 'websocket'] as const satisfies Transport[]) {
    describe(`over ${transport}`, () => {
      test('streams a run as typed events, run-start to run-end; started gives its id', async () => {
        const run = client.start(call('action_stream'), { transport });
        const events = await collect(run);
        assertWholeRun(events);
        const runId = await run.started;
        assert.equal(run.runId, runId);
        assert.ok(events.every((e) => e.runId === runId));
        const text = events.flatMap((e) => (e.type === 'chunk' ? [e.text] : [])).join('');
        assert.equal(text, 'one two three');
        const result = events.find((e) => e.type === 'result');
        assert.deepEqual(result?.type === 'result' ? result.events.map((e) => e.name) : null, ['streamed']);
        assert.equal(run.reconnects, 0);
      });

      test('connections cut by the server mid-run are resumed from the last seq: no gap, no duplicate', async () => {
        const sockets = trackSockets(server);
        const reconnects: ReconnectInfo[] = [];
        const run = client.start(ticker(`cut-${transport}`, 40, 5), { transport, onReconnect: (info) => reconnects.push(info) });
        const events = await collect(run, (event) => {
          // Twice: once early, once after a resume has delivered events.
          if (event.seq === 5 || event.seq === 20) cutAll(sockets);
        });
        assertWholeRun(events);
        assert.equal(events.at(-1)?.type === 'run-end' && events.at(-1)?.type, 'run-end');
        assert.equal((events.at(-1) as { reason: string }).reason, 'completed', 'the run was not cancelled by the drops');
        assert.equal(events.filter((e) => e.type === 'chunk').length, 40);
        assert.ok(run.reconnects >= 2, `resumed at least twice (${run.reconnects})`);
        assert.ok(reconnects.some((r) => r.lastSeq >= 5) && reconnects.some((r) => r.lastSeq >= 20), JSON.stringify(reconnects.map((r) => r.lastSeq)));
        assert.ok(reconnects.every((r) => r.runId === run.runId && r.error instanceof Error));
        assert.ok(server.probe.finished.has(`cut-${transport}`));
      });

      test('ack() barges in on the open streamed message: the stream ends cancelled, the action\'s events still arrive', async () => {
        const run = client.start(call('action_wait', { sender: `ack-${transport}` }), { transport });
        let acked: boolean | undefined;
        const events = await collect(run, async (event) => {
          if (event.type === 'chunk' && acked === undefined) {
            assert.deepEqual(run.openStreams, [event.responseId]);
            acked = await run.ack();
          }
        });
        assert.equal(acked, true);
        assertWholeRun(events);
        assert.deepEqual(
          events.filter((e) => e.type === 'chunk').map((e) => (e.type === 'chunk' ? e.text : '')),
          ['first'],
          'no chunk after the ack',
        );
        const end = events.find((e) => e.type === 'stream-end');
        assert.equal(end?.type === 'stream-end' && end.reason, 'cancelled');
        assert.equal((events.at(-1) as { reason: string }).reason, 'cancelled');
        assert.deepEqual(run.openStreams, []);
        assert.equal(await run.ack(), false, 'nothing left to acknowledge');
      });

      test('cancel() stops the run; its closing events still arrive on the stream', async () => {
        const sender = `cancel-${transport}`;
        const run = client.start(ticker(sender, 1000), { transport });
        let cancelled: boolean | undefined;
        const events = await collect(run, async (event) => {
          if (event.type === 'chunk' && cancelled === undefined) cancelled = await run.cancel();
        });
        assert.equal(cancelled, true);
        assertWholeRun(events);
        assert.equal((events.at(-1) as { reason: string }).reason, 'cancelled');
        assert.ok(events.filter((e) => e.type === 'chunk').length < 100);
        assert.ok(server.probe.aborted.has(sender), "the action's signal aborted");
        assert.equal(await run.cancel(), false, 'a second cancel finds the run ended');
      });

      test('the signal stops reading; a resumable run goes on and can be followed from the last seq', async () => {
        const sender = `abort-${transport}`;
        const controller = new AbortController();
        const run = client.start(ticker(sender, 15, 10), { transport, signal: controller.signal });
        const seen: SluiceEvent[] = [];
        await assert.rejects(
          collect(run, (event, events) => {
            seen.push(event);
            if (events.length === 4) controller.abort();
          }),
          (error: Error) => error.name === 'AbortError',
        );
        assert.equal(seen.length, 4);
        // The detached run carries on; its remaining events are still there to read.
        const rest = await collect(client.follow(run.runId as string, { after: run.lastSeq, transport }));
        assertWholeRun([...seen, ...rest]);
        assert.equal((rest.at(-1) as { reason: string }).reason, 'completed');
        assert.ok(server.probe.finished.has(sender));
      });

      test('with resumable: false, aborting the reader hangs up, which cancels the run', async () => {
        const sender = `attached-${transport}`;
        const controller = new AbortController();
        const run = client.start(ticker(sender, 1000), { transport, signal: controller.signal, resumable: false });
        await assert.rejects(
          collect(run, (_event, events) => {
            if (events.length === 3) controller.abort();
          }),
          { name: 'AbortError' },
        );
        await waitFor(() => server.probe.aborted.has(sender), 3000, 'the run to be cancelled');
      });

      test('a call the server refuses throws its error (not_found), and started rejects', async () => {
        const run = client.start(call('action_nope'), { transport });
        await assert.rejects(collect(run), (error: SluiceError) => {
          assert.ok(SluiceError.isInstance(error));
          assert.equal(error.code, 'not_found');
          assert.match(error.message, /action_nope/);
          return true;
        });
        await assert.rejects(run.started, { code: 'not_found' });
        assert.equal(await run.cancel(), false);
      });

      test('cancel() works on a run nobody reads yet: started settles without a reader', async () => {
        const sender = `unread-${transport}`;
        const run = client.start(ticker(sender, 1000), { transport });
        assert.match(await run.started, /\S/);
        assert.equal(await run.cancel(), true);
        await waitFor(() => server.probe.aborted.has(sender), 3000, 'the run to be cancelled');
        const events = await collect(run);
        assert.equal((events.at(-1) as { reason: string }).reason, 'cancelled');
      });
    });
  }

  test('a dead server: "cannot connect to <URL>", over both transports, without retrying a start', async () => {
    const dead = await startTcpProxy(server.url);
    await dead.close();
    const lost = new SluiceClient({ baseUrl: dead.url, retry: FAST_RETRY });
    for (const transport of ['sse', 'websocket'] as const) {
      const run = lost.start(call('action_stream'), { transport });
      await assert.rejects(collect(run), (error: SluiceError) => {
        assert.equal(error.code, 'unavailable');
        assert.match(error.message, new RegExp(`^cannot connect to ${dead.url.replace(/[.]/g, '\\.')}`));
        return true;
      });
      assert.equal(run.reconnects, 0);
    }
    await assert.rejects(lost.cancel('x'), /cannot connect to/);
  });

  test('retries run out: the stream and every reconnection fail, and the error says so', async () => {
    const proxy = await startTcpProxy(server.url);
    const reconnects: ReconnectInfo[] = [];
    const viaProxy = new SluiceClient({ baseUrl: proxy.url, retry: { retries: 3, initialDelayMs: 5, maxDelayMs: 20 } });
    const run = viaProxy.start(ticker('exhausted', 1000), { onReconnect: (info) => reconnects.push(info) });
    await assert.rejects(
      collect(run, async (_event, events) => {
        if (events.length === 3) await proxy.close();
      }),
      (error: SluiceError) => {
        assert.equal(error.code, 'unavailable');
        assert.equal(error.details.reason, 'retries_exhausted');
        assert.match(error.message, /3 attempts to resume after seq \d+ failed \(last: cannot connect to/);
        return true;
      },
    );
    assert.deepEqual(reconnects.map((r) => r.attempt), [1, 2, 3]);
    assert.ok(reconnects.every((r) => r.delayMs >= 0 && r.delayMs <= 20));
    // The run itself is fine on the server: stop it there.
    assert.equal(await client.cancel(run.runId as string), true);
  });

  test('a server that accepts the connection but never answers: the start times out', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const impatient = new SluiceClient({ baseUrl: url, connectTimeoutMs: 200 });
      for (const transport of ['sse', 'websocket'] as const) {
        await assert.rejects(collect(impatient.start(call('action_stream'), { transport })), (error: SluiceError) => {
          assert.match(error.message, /within 200 ms/);
          return true;
        });
      }
    } finally {
      silent.close();
    }
  });

  test('follow() replays a finished run from its log, or from after a seq', async () => {
    const first = await collect(client.start(call('action_stream')));
    const runId = first[0]!.runId;
    assert.deepEqual(await collect(client.follow(runId)), first);
    assert.deepEqual(await collect(client.follow(runId, { after: 3, transport: 'websocket' })), first.slice(3));
    await assert.rejects(collect(client.follow('0'.repeat(32))), { code: 'not_found' });
  });

  test('the WebSocket queue is bounded: a slow reader is dropped and resumed, with every event in order', async () => {
    const small = new SluiceClient({ baseUrl: server.url, transport: 'websocket', maxBufferedEvents: 8, retry: FAST_RETRY });
    const run = small.start(call('action_many', { sender: 'slow', slots: { count: 200, size: 10 } }));
    const events = await collect(run, async (_event, events) => {
      if (events.length % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    });
    assertWholeRun(events);
    assert.equal(events.filter((e) => e.type === 'chunk').length, 200);
    assert.ok(run.reconnects > 0, 'the overflow dropped the connection at least once');
  });

  test('headers and apiKey reach the server on every request', async () => {
    const seen: (string | undefined)[] = [];
    const note = (request: http.IncomingMessage): number => seen.push(request.headers.authorization);
    server.app.server.on('request', note);
    server.app.server.on('upgrade', note);
    const keyed = new SluiceClient({ baseUrl: server.url, apiKey: 'k-123', headers: { 'x-extra': '1' } });
    await collect(keyed.start(call('action_stream')));
    // Node's WebSocket sends headers with the upgrade (a browser's cannot).
    await collect(keyed.start(call('action_stream'), { transport: 'websocket' }));
    await keyed.ack('0'.repeat(32));
    assert.ok(seen.length >= 3 && seen.every((h) => h === 'Bearer k-123'), seen.join());
  });

  test('bad options are refused at once with a message naming them', async () => {
    assert.throws(() => new SluiceClient({}), /needs a baseUrl/);
    assert.throws(() => new SluiceClient({ baseUrl: 'ftp://x' }), /must be http/);
    assert.throws(() => new SluiceClient({ baseUrl: server.url, retry: { retries: -1 } }), /retry\.retries/);
    assert.throws(() => client.start(call('action_stream'), { transport: 'carrier-pigeon' as Transport }), /transport must be/);
    const run = client.start(call('action_stream'));
    const reading = collect(run);
    assert.throws(() => run[Symbol.asyncIterator](), /iterated once/);
    await reading;
  });
});

describe('SluiceClient and a quiet or time-limited stream', () => {
  async function readTicker(options: { pingIntervalMs?: number; maxDurationMs?: number }, idleTimeoutMs: number, count: number, interval: number) {
    const server = await startServer({ server: { sse: options } });
    try {
      const client = new SluiceClient({ baseUrl: server.url, idleTimeoutMs, retry: FAST_RETRY });
      const run = client.start(ticker('quiet', count, interval));
      const events = await collect(run);
      assertWholeRun(events);
      assert.equal((events.at(-1) as { reason: string }).reason, 'completed');
      return run.reconnects;
    } finally {
      await server.close();
    }
  }

  test('silence longer than idleTimeoutMs is taken as a dead connection, and resumed', async () => {
    assert.ok((await readTicker({ pingIntervalMs: 60_000 }, 150, 3, 400)) >= 1);
  });

  test('a reader slower than idleTimeoutMs is not taken for a dead connection', async () => {
    const server = await startServer({ server: { sse: { pingIntervalMs: 60_000 } } });
    try {
      const client = new SluiceClient({ baseUrl: server.url, idleTimeoutMs: 100, retry: FAST_RETRY });
      const run = client.start(ticker('slow-reader', 4, 10));
      const events = await collect(run, () => new Promise((resolve) => setTimeout(resolve, 150)));
      assertWholeRun(events);
      assert.equal(run.reconnects, 0);
    } finally {
      await server.close();
    }
  });

  test("the server's pings keep a quiet stream alive: no reconnection", async () => {
    assert.equal(await readTicker({ pingIntervalMs: 40 }, 300, 3, 400), 0);
  });

  test("a stream the server ends at its maximum duration is resumed where it stopped", async () => {
    assert.ok((await readTicker({ maxDurationMs: 150 }, 5_000, 12, 40)) >= 1);
  });
});
