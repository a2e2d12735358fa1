/**
 * SseWriter on a plain node:http server, read byte for byte from a raw socket: the HTTP/1.1 chunks
 * it writes straight to the socket, its fallbacks (HTTP/1.0, HEAD, pipelined responses), burst
 * coalescing, backpressure and the shared ping wheel.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { SseWriter, type SseCloseReason } from '../../src/channels/sse-writer.ts';
import { waitFor } from '../transports/http/fixtures.ts';

/** What a test route does with its writer; `closed` settles with the close reason. */
type Route = (writer: SseWriter, req: http.IncomingMessage) => void | Promise<void>;

interface Harness {
  port: number;
  routes: Map<string, Route>;
  /** Close reasons by request path, once closed. */
  closed: Map<string, SseCloseReason>;
  writers: Map<string, SseWriter>;
  close(): Promise<void>;
}

async function startHarness(pingIntervalMs = 60_000): Promise<Harness> {
  const routes = new Map<string, Route>();
  const closed = new Map<string, SseCloseReason>();
  const writers = new Map<string, SseWriter>();
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const writer = new SseWriter(res, { pingIntervalMs });
    writers.set(path, writer);
    writer.onclose = (reason) => closed.set(path, reason);
    writer.open({ 'x-path': path });
    void routes.get(path)?.(writer, req);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    routes,
    closed,
    writers,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A raw client socket that keeps every byte it received. */
class RawClient {
  readonly socket: net.Socket;
  data = Buffer.alloc(0);
  ended = false;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (chunk: Buffer) => (this.data = Buffer.concat([this.data, chunk])));
    this.socket.on('close', () => (this.ended = true));
    this.socket.on('error', () => {});
  }

  send(text: string): void {
    this.socket.write(text);
  }

  get text(): string {
    return this.data.toString('utf8');
  }

  async until(condition: (text: string) => boolean, what: string): Promise<void> {
    await waitFor(() => condition(this.text), 3000, what);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

interface RawResponse {
  head: string;
  headers: Map<string, string>;
  /** The raw body bytes as text (chunk framing included when chunked). */
  raw: string;
  /** The body, de-chunked. */
  body: string;
  /** The payload of each HTTP chunk (chunked responses). */
  chunks: string[];
}

/** Parses the complete chunked (or, with `untilClose`, close-delimited) responses in `text`. */
function parseResponses(text: string, untilClose = false): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', pos);
    assert.notEqual(headEnd, -1, `incomplete head: ${JSON.stringify(text.slice(pos))}`);
    const head = text.slice(pos, headEnd);
    const headers = new Map<string, string>();
    for (const line of head.split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    pos = headEnd + 4;
    const start = pos;
    const chunks: string[] = [];
    if (headers.get('transfer-encoding') === 'chunked') {
      for (;;) {
        const lineEnd = text.indexOf('\r\n', pos);
        assert.notEqual(lineEnd, -1, 'chunk size line');
        const size = Number.parseInt(text.slice(pos, lineEnd), 16);
        assert.ok(Number.isInteger(size), `chunk size '${text.slice(pos, lineEnd)}'`);
        const data = Buffer.from(text.slice(lineEnd + 2), 'utf8').subarray(0, size).toString('utf8');
        assert.equal(text.slice(lineEnd + 2 + data.length, lineEnd + 4 + data.length), '\r\n', 'CRLF after the chunk data');
        pos = lineEnd + 4 + data.length;
        if (size === 0) break;
        chunks.push(data);
      }
      out.push({ head, headers, raw: text.slice(start, pos), body: chunks.join(''), chunks });
    } else {
      assert.ok(untilClose, 'a response without chunked encoding is only expected with untilClose');
      pos = text.length;
      out.push({ head, headers, raw: text.slice(start), body: text.slice(start), chunks });
    }
  }
  return out;
}

describe('SseWriter on the wire', () => {
  let harness: Harness;
  before(async () => {
    harness = await startHarness();
  });
  after(() => harness.close());

  it('writes each burst as one HTTP/1.1 chunk; the connection serves the next request after end()', async () => {
    harness.routes.set('/burst', async (writer) => {
      writer.write('data: a\n\n');
      writer.write('data: é\n\n'); // multi-byte: the chunk size counts bytes
      await sleep(20);
      writer.write(': later\n\n');
      await sleep(20);
      writer.end('ended', 'data: last\n\n');
    });
    harness.routes.set('/second', (writer) => writer.end());
    const client = new RawClient(harness.port);
    client.send('GET /burst HTTP/1.1\r\nhost: x\r\n\r\n');
    await client.until((text) => text.endsWith('0\r\n\r\n'), 'the first response to end');
    client.send('GET /second HTTP/1.1\r\nhost: x\r\n\r\n');
    await client.until((text) => text.split('0\r\n\r\n').length === 3, 'the second response on the same socket');
    const [first, second] = parseResponses(client.text);
    assert.match(first!.head, /^HTTP\/1\.1 200 OK/);
    assert.equal(first!.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(first!.headers.get('x-path'), '/burst');
    assert.deepEqual(first!.chunks, ['data: a\n\ndata: é\n\n', ': later\n\n', 'data: last\n\n']);
    assert.equal(first!.raw, '13\r\ndata: a\n\ndata: é\n\n\r\n9\r\n: later\n\n\r\nc\r\ndata: last\n\n\r\n0\r\n\r\n');
    assert.equal(second!.headers.get('x-path'), '/second');
    assert.equal(second!.body, '');
    assert.equal(harness.closed.get('/burst'), 'ended');
    assert.ok(!client.ended, 'keep-alive: the socket stays open');
    client.destroy();
  });

  it('keeps the streams of different sockets apart when they write in the same tick', async () => {
    const paths = ['/same-tick-1', '/same-tick-2', '/same-tick-3'];
    let opened = 0;
    const all = Promise.withResolvers<void>();
    for (const path of paths) {
      harness.routes.set(path, () => {
        if (++opened === paths.length) all.resolve();
      });
    }
    const clients = paths.map((path) => {
      const client = new RawClient(harness.port);
      client.send(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
      return client;
    });
    await all.promise;
    for (let i = 0; i < 3; i++) for (const path of paths) harness.writers.get(path)!.write(`data: ${path} ${i}\n\n`);
    for (const path of paths) harness.writers.get(path)!.end();
    for (const [i, client] of clients.entries()) {
      await client.until((text) => text.endsWith('0\r\n\r\n'), 'the response to end');
      const [response] = parseResponses(client.text);
      const path = paths[i]!;
      assert.deepEqual(response!.chunks, [`data: ${path} 0\n\ndata: ${path} 1\n\ndata: ${path} 2\n\n`]);
      client.destroy();
    }
  });

  it('HTTP/1.0: no chunk framing, the body ends with the connection', async () => {
    harness.routes.set('/old', async (writer) => {
      writer.write('data: one\n\n');
      await sleep(10);
      writer.write('data: two\n\n');
      writer.end();
    });
    const client = new RawClient(harness.port);
    client.send('GET /old HTTP/1.0\r\n\r\n');
    await waitFor(() => client.ended, 3000, 'the server to close the connection');
    const [response] = parseResponses(client.text, true);
    assert.equal(response!.headers.get('transfer-encoding'), undefined);
    assert.equal(response!.body, 'data: one\n\ndata: two\n\n');
  });

  it('HEAD: headers only, and the socket goes on to the next request', async () => {
    harness.routes.set('/head', (writer) => {
      writer.write('data: not sent\n\n');
      writer.end();
    });
    harness.routes.set('/after-head', (writer) => writer.end('ended', 'data: ok\n\n'));
    const client = new RawClient(harness.port);
    client.send('HEAD /head HTTP/1.1\r\nhost: x\r\n\r\n');
    await client.until((text) => text.includes('\r\n\r\n'), 'the HEAD response');
    await sleep(30);
    assert.ok(!client.text.includes('not sent'), client.text);
    client.send('GET /after-head HTTP/1.1\r\nhost: x\r\n\r\n');
    await client.until((text) => text.endsWith('0\r\n\r\n'), 'the GET after HEAD');
    const head = client.text.slice(0, client.text.indexOf('\r\n\r\n') + 4);
    const [response] = parseResponses(client.text.slice(head.length));
    assert.equal(response!.body, 'data: ok\n\n');
    client.destroy();
  });

  it('pipelined requests: the second stream waits for the first, then arrives whole and in order', async () => {
    harness.routes.set('/pipe-1', async (writer) => {
      for (let i = 0; i < 3; i++) {
        writer.write(`data: 1-${i}\n\n`);
        await sleep(15);
      }
      writer.end();
    });
    harness.routes.set('/pipe-2', async (writer) => {
      for (let i = 0; i < 3; i++) {
        writer.write(`data: 2-${i}\n\n`);
        await sleep(5);
      }
      writer.end();
    });
    const client = new RawClient(harness.port);
    client.send('GET /pipe-1 HTTP/1.1\r\nhost: x\r\n\r\nGET /pipe-2 HTTP/1.1\r\nhost: x\r\n\r\n');
    await client.until((text) => text.split('0\r\n\r\n').length === 3, 'both responses');
    const [first, second] = parseResponses(client.text);
    assert.equal(first!.headers.get('x-path'), '/pipe-1');
    assert.equal(first!.body, 'data: 1-0\n\ndata: 1-1\n\ndata: 1-2\n\n');
    assert.equal(second!.headers.get('x-path'), '/pipe-2');
    assert.equal(second!.body, 'data: 2-0\n\ndata: 2-1\n\ndata: 2-2\n\n');
    assert.equal(harness.closed.get('/pipe-2'), 'ended');
    client.destroy();
  });

  it('a pipelining client that leaves disconnects both streams, the queued one too', async () => {
    const stop = new Set<string>();
    const ticking: Route = async (writer, req) => {
      while (!writer.closed && !stop.has(req.url!)) {
        writer.write('data: tick\n\n');
        await sleep(5);
      }
    };
    harness.routes.set('/left-1', ticking);
    harness.routes.set('/left-2', ticking);
    const client = new RawClient(harness.port);
    client.send('GET /left-1 HTTP/1.1\r\nhost: x\r\n\r\nGET /left-2 HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor(() => harness.writers.has('/left-2'), 3000, 'the second request');
    assert.equal(harness.closed.get('/left-2'), undefined, 'a queued response is not a disconnect');
    await client.until((text) => text.includes('data: tick'), 'the first stream');
    client.destroy();
    await waitFor(() => harness.closed.size > 0 && harness.closed.has('/left-1') && harness.closed.has('/left-2'), 3000, 'both to close');
    assert.equal(harness.closed.get('/left-1'), 'disconnected');
    assert.equal(harness.closed.get('/left-2'), 'disconnected');
    stop.add('/left-1').add('/left-2');
  });

  it('backpressure: a full socket makes write() return a promise that settles on drain, or on close', async () => {
    const big = `data: ${'x'.repeat(64 * 1024)}\n\n`;
    /** Writes until a wait does not settle within 100 ms (the kernel's buffers are full too). */
    const fillUntilBlocked = async (writer: SseWriter): Promise<{ wait: Promise<void> }> => {
      for (let bytes = 0; bytes < 256 * 1024 * 1024; bytes += big.length) {
        const wait = writer.write(big);
        if (wait === undefined) {
          await sleep(0);
          continue;
        }
        const settled = await Promise.race([wait.then(() => true), sleep(100).then(() => false)]);
        if (!settled) return { wait };
      }
      throw new Error('the socket never filled up');
    };
    const blocked = new Map<string, Promise<{ wait: Promise<void> }>>();
    harness.routes.set('/full-drain', (writer) => void blocked.set('/full-drain', fillUntilBlocked(writer)));
    const client = new RawClient(harness.port);
    client.socket.pause();
    client.send('GET /full-drain HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor(() => blocked.has('/full-drain'), 3000, 'the route');
    const { wait: waiting } = await blocked.get('/full-drain')!;
    let drained = false;
    void waiting.then(() => (drained = true));
    client.socket.resume();
    await waitFor(() => drained, 5000, 'the wait to settle on drain');
    assert.ok(!harness.writers.get('/full-drain')!.closed);
    harness.writers.get('/full-drain')!.end();
    client.destroy();

    harness.routes.set('/full-close', (writer) => void blocked.set('/full-close', fillUntilBlocked(writer)));
    const leaving = new RawClient(harness.port);
    leaving.socket.pause();
    leaving.send('GET /full-close HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor(() => blocked.has('/full-close'), 3000, 'the route');
    const { wait: stuck } = await blocked.get('/full-close')!;
    let settled = false;
    void stuck.then(() => (settled = true));
    leaving.destroy();
    await waitFor(() => settled, 3000, 'the wait to settle on close');
    assert.equal(harness.closed.get('/full-close'), 'disconnected');
    assert.equal(harness.writers.get('/full-close')!.write('data: dropped\n\n'), undefined, 'writes after close are dropped');
  });
});

describe('SseWriter pings (one shared wheel per interval)', () => {
  it('pings every idle stream, never a busy one, and stops when the streams close', async () => {
    const harness = await startHarness(40);
    try {
      const busy = { stop: false };
      harness.routes.set('/busy', async (writer) => {
        while (!busy.stop && !writer.closed) {
          writer.write('data: busy\n\n');
          await sleep(10);
        }
      });
      const idle = Array.from({ length: 20 }, (_, i) => new RawClient(harness.port));
      idle.forEach((client, i) => client.send(`GET /idle-${i} HTTP/1.1\r\nhost: x\r\n\r\n`));
      const worker = new RawClient(harness.port);
      worker.send('GET /busy HTTP/1.1\r\nhost: x\r\n\r\n');
      const started = Date.now();
      for (const client of idle) await client.until((text) => text.includes(': ping\n\n'), 'a ping on every idle stream');
      assert.ok(Date.now() - started < 1000);
      await sleep(150);
      assert.ok(!worker.text.includes(': ping'), 'a stream that writes is not pinged');
      // Silence between two pings of one idle stream stays under twice the interval (plus slack).
      const pings = (client: RawClient): number => client.text.split(': ping\n\n').length - 1;
      const before = pings(idle[0]!);
      await sleep(200);
      assert.ok(pings(idle[0]!) >= before + 2, `pings went on: ${before} → ${pings(idle[0]!)}`);
      busy.stop = true;
      for (const client of [...idle, worker]) client.destroy();
      await waitFor(() => harness.closed.size === 21, 3000, 'every stream to close');
      for (const reason of harness.closed.values()) assert.equal(reason, 'disconnected');
    } finally {
      await harness.close();
    }
  });

  it('the first ping comes about one interval after open, not at once', async () => {
    const harness = await startHarness(300);
    try {
      const client = new RawClient(harness.port);
      const opened = Date.now();
      client.send('GET /first HTTP/1.1\r\nhost: x\r\n\r\n');
      await client.until((text) => text.includes(': ping\n\n'), 'the first ping');
      const after = Date.now() - opened;
      // The wheel ticks every interval / 16: the first visit is 15/16 to 16/16 of an interval away.
      assert.ok(after >= 250, `first ping after ${after} ms`);
      client.destroy();
    } finally {
      await harness.close();
    }
  });
});
