// Prometheus metrics: known traffic over SSE, WebSocket and the Rasa webhook, then a scrape of
// GET /metrics, parsed from the text exposition format and checked figure by figure.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SluiceMetrics } from '../../src/obs/metrics.ts';
import { createMetricsServer } from '../../src/obs/route.ts';
import { metricsOptionsFrom } from '../../src/cli/flags/obs.ts';
import { startServer as startSluice } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { call, openSse, postJson, startServer, waitFor, WsClient } from '../transports/http/fixtures.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (version 0.0.4): `# HELP`, `# TYPE`, then `name{a="b"} value` lines. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      types.set(name!, type!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { samples, types };
}

/** The value of the sample `name` whose labels include `labels` (0 when absent). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `one sample ${name} ${JSON.stringify(labels)} (got ${found.length})`);
  return found[0]?.value ?? 0;
}

async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parseExposition(await response.text());
  assert.equal(types.get('sluice_run_duration_seconds'), 'histogram');
  assert.equal(types.get('sluice_runs_started_total'), 'counter');
  assert.equal(types.get('sluice_active_runs'), 'gauge');
  return samples;
}

describe('GET /metrics', () => {
  test('after known traffic: runs by transport and action, outcomes, chunks, bytes, cancels, errors, latencies, gauges', async () => {
    const metrics = new SluiceMetrics({ processMetrics: false });
    const server = await startServer({ executor: { observers: [metrics] } });
    metrics.attach(server.executor);
    // The fixture server is already listening: the route goes on a listener of its own here
    // (the HTTP-port route is covered through `sluice serve` below).
    const scrapeServer = createMetricsServer(metrics);
    const metricsUrl = `${await scrapeServer.listen({ port: 0, host: '127.0.0.1' })}/metrics`;
    const bodyBytes: number[] = [];
    try {
      // 3 SSE runs of 3 chunks each.
      for (let i = 0; i < 3; i++) {
        const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_stream', { sender: `s${i}` }) });
        await stream.done();
        bodyBytes.push(Buffer.byteLength(stream.text));
      }
      // One SSE run failing after a chunk.
      const boom = await openSse(`${server.url}/webhook/stream`, { body: call('action_boom_stream') });
      await boom.done();
      bodyBytes.push(Buffer.byteLength(boom.text));
      // One SSE run barged in after its first chunk.
      const waiting = await openSse(`${server.url}/webhook/stream`, { body: call('action_wait', { sender: 'barge' }) });
      await waiting.until((s) => s.types().includes('chunk'));
      const responseId = waiting.frames().find((f) => f.event === 'chunk')!.data.responseId as string;
      const ack = await postJson(`${server.url}/streams/${responseId}/ack`, {});
      assert.deepEqual(ack.json, { acknowledged: true, responseId });
      await waiting.done();
      bodyBytes.push(Buffer.byteLength(waiting.text));
      // The Rasa webhook: one unary run.
      const unary = await postJson(`${server.url}/webhook`, call('action_hello'));
      assert.equal(unary.status, 200);
      // A WebSocket run, with the socket kept open for the connection gauge.
      const ws = await WsClient.connect(server.url);
      ws.send({ type: 'start', call: call('action_stream', { sender: 'ws' }) });
      await ws.next((m) => m.type === 'run-end');
      await waitFor(() => server.executor.activeRuns === 0, 3000, 'every run to end');

      let samples = await scrape(metricsUrl);
      assert.equal(valueOf(samples, 'sluice_runs_started_total', { transport: 'http-sse', action: 'action_stream' }), 3);
      assert.equal(valueOf(samples, 'sluice_runs_started_total', { transport: 'http-sse', action: 'action_boom_stream' }), 1);
      assert.equal(valueOf(samples, 'sluice_runs_started_total', { transport: 'http-webhook', action: 'action_hello' }), 1);
      assert.equal(valueOf(samples, 'sluice_runs_started_total', { transport: 'ws', action: 'action_stream' }), 1);
      assert.equal(valueOf(samples, 'sluice_runs_ended_total', { reason: 'completed' }), 5);
      assert.equal(valueOf(samples, 'sluice_runs_ended_total', { reason: 'error' }), 1);
      assert.equal(valueOf(samples, 'sluice_runs_ended_total', { reason: 'cancelled' }), 1);
      assert.equal(valueOf(samples, 'sluice_errors_total', { code: 'internal' }), 1);
      assert.equal(valueOf(samples, 'sluice_runs_cancelled_total', { reason: 'barge_in' }), 1);
      assert.equal(valueOf(samples, 'sluice_runs_timed_out_total'), 0);
      // action_stream: 3 chunks × 3 runs, + 1 before the boom, + 1 before the barge-in; ws: 3.
      assert.equal(valueOf(samples, 'sluice_chunks_total', { transport: 'http-sse' }), 11);
      assert.equal(valueOf(samples, 'sluice_chunks_total', { transport: 'ws' }), 3);
      // Every byte of every SSE body, counted by the writer.
      assert.equal(valueOf(samples, 'sluice_bytes_out_total', { transport: 'http-sse' }), bodyBytes.reduce((a, b) => a + b, 0));
      assert.ok(valueOf(samples, 'sluice_bytes_out_total', { transport: 'ws' }) > 0);
      assert.ok(valueOf(samples, 'sluice_writes_total', { transport: 'ws' }) >= 3);
      // Latencies: one first-chunk observation per run that streamed (5 SSE + 1 ws), none for the unary hello.
      assert.equal(valueOf(samples, 'sluice_time_to_first_chunk_seconds_count', { transport: 'http-sse' }), 5);
      assert.equal(valueOf(samples, 'sluice_time_to_first_chunk_seconds_count', { transport: 'ws' }), 1);
      assert.equal(valueOf(samples, 'sluice_barge_in_to_stream_end_seconds_count', { transport: 'http-sse' }), 1);
      assert.equal(valueOf(samples, 'sluice_run_duration_seconds_count', { action: 'action_stream', outcome: 'completed' }), 4);
      assert.equal(valueOf(samples, 'sluice_run_duration_seconds_count', { action: 'action_wait', outcome: 'cancelled' }), 1);
      // Histogram buckets are cumulative and end at the count.
      const buckets = samples.filter((s) => s.name === 'sluice_run_duration_seconds_bucket' && s.labels.action === 'action_stream');
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'monotonic buckets');
      assert.equal(buckets.at(-1)!.labels.le, '+Inf');
      assert.equal(buckets.at(-1)!.value, 4);
      // Gauges: nothing running; the socket still open.
      assert.equal(valueOf(samples, 'sluice_active_runs'), 0);
      assert.equal(valueOf(samples, 'sluice_active_streams'), 0);
      assert.equal(valueOf(samples, 'sluice_connections', { transport: 'ws' }), 1);
      assert.equal(valueOf(samples, 'sluice_connections', { transport: 'http-sse' }), 0);
      assert.equal(valueOf(samples, 'sluice_botframework_sends_queued'), 0);

      // A live SSE reader shows in the gauges while it reads.
      const ticker = await openSse(`${server.url}/webhook/stream`, { body: call('action_ticker', { sender: 'live', slots: { count: 200, interval_ms: 10 } }) });
      await ticker.until((s) => s.types().includes('chunk'));
      samples = await scrape(metricsUrl);
      assert.equal(valueOf(samples, 'sluice_active_runs'), 1);
      assert.equal(valueOf(samples, 'sluice_active_streams'), 1);
      assert.equal(valueOf(samples, 'sluice_readers', { transport: 'http-sse' }), 1);
      assert.equal(valueOf(samples, 'sluice_connections', { transport: 'http-sse' }), 1);
      ticker.destroy();
      await waitFor(() => server.executor.activeRuns === 0, 3000, 'the disconnected run to end');
      samples = await scrape(metricsUrl);
      assert.equal(valueOf(samples, 'sluice_readers', { transport: 'http-sse' }), 0);
      assert.equal(valueOf(samples, 'sluice_runs_cancelled_total', { reason: 'disconnect' }), 1);
      await ws.close();
    } finally {
      await scrapeServer.close();
      await server.close();
    }
  });

  test('sluice serve: /metrics on the HTTP port by default, on its own port with --metrics-port, none with --no-metrics', async () => {
    const fixtures = new URL('../cli/fixtures/actions.ts', import.meta.url).pathname;
    const base = { actions: fixtures, host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger };
    const onHttp = await startSluice({ ...base });
    try {
      assert.equal(onHttp.metricsUrl, `${onHttp.httpUrl}/metrics`);
      await postJson(`${onHttp.httpUrl}/webhook`, call('action_hello'));
      // A run read as sentences: the first sentence is timed.
      const streamed = await openSse(`${onHttp.httpUrl}/webhook/stream?detach=true`, { body: call('action_count') });
      const runId = streamed.res.headers['x-sluice-run-id'] as string;
      await streamed.done();
      const sentences = await openSse(`${onHttp.httpUrl}/runs/${runId}/sentences`);
      await sentences.done();
      assert.match(sentences.text, /one two/);
      const samples = await scrape(onHttp.metricsUrl!);
      assert.equal(valueOf(samples, 'sluice_time_to_first_sentence_seconds_count', { transport: 'http-sse' }), 1);
      assert.equal(valueOf(samples, 'sluice_time_to_first_chunk_seconds_count', { transport: 'http-sse' }), 1);
      assert.equal(valueOf(samples, 'sluice_runs_started_total', { transport: 'http-webhook', action: 'action_hello' }), 1);
      assert.ok(samples.some((s) => s.name === 'process_cpu_user_seconds_total'), 'process metrics');
    } finally {
      await onHttp.close();
    }
    const ownPort = await startSluice({ ...base, metrics: metricsOptionsFrom({ 'metrics-port': '0', 'metrics-path': '/prom' }) });
    try {
      assert.ok(ownPort.metricsUrl?.endsWith('/prom'));
      assert.notEqual(new URL(ownPort.metricsUrl!).port, new URL(ownPort.httpUrl).port);
      await scrape(ownPort.metricsUrl!);
      assert.equal((await fetch(`${ownPort.httpUrl}/prom`)).status, 404);
      assert.equal((await fetch(`${ownPort.httpUrl}/metrics`)).status, 404);
    } finally {
      await ownPort.close();
    }
    const none = await startSluice({ ...base, metrics: metricsOptionsFrom({ 'no-metrics': true }) });
    try {
      assert.equal(none.metricsUrl, undefined);
      assert.equal((await fetch(`${none.httpUrl}/metrics`)).status, 404);
    } finally {
      await none.close();
    }
  });

  test('bad flag values are errors naming the flag', () => {
    assert.throws(() => metricsOptionsFrom({ 'metrics-port': 'x' }), /--metrics-port/);
    assert.throws(() => metricsOptionsFrom({ 'metrics-port': '70000' }), /--metrics-port/);
    assert.throws(() => metricsOptionsFrom({ 'metrics-path': 'metrics' }), /--metrics-path/);
    assert.deepEqual(metricsOptionsFrom({}), { path: '/metrics' });
    assert.throws(() => createMetricsServer(new SluiceMetrics({ processMetrics: false }), 'nope'), /must start with/);
  });
});
