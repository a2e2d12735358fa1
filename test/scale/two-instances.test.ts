// Two real `sluice serve` processes on loopback sharing one Redis (a random key prefix): a run
// started on A is read, resumed, cancelled and barged in on from B; A killed with SIGKILL mid-run
// leaves B's reader with a `producer lost` error; Redis paused briefly loses nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createClient } from 'redis';
import WebSocket from 'ws';
import { createClient as createRpcClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { VoiceService } from '../../src/transports/grpc/gen/sluice_voice_pb.ts';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from '../stores/redis-helpers.ts';
import { drain, readRun, startInstance, startRun, wordsCall, type Instance } from './cluster.ts';

const skip = await redisSkip();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function assertGapFree(events: SluiceEvent[], from: number): void {
  events.forEach((event, i) => assert.equal(event.seq, from + i + 1, `event ${i} has seq ${event.seq}, expected ${from + i + 1}`));
}

describe('two sluice serve processes sharing Redis', { skip, timeout: 120_000 }, () => {
  const prefix = testPrefix();
  let a: Instance;
  let b: Instance;
  before(async () => {
    [a, b] = await Promise.all([startInstance(REDIS_URL, prefix), startInstance(REDIS_URL, prefix)]);
  });
  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await dropPrefix(prefix);
  });

  test('start on A, read on B: the same events, gap-free, live and after the end', async () => {
    const started = await startRun(a.http, wordsCall(60, 5));
    const onA = drain(started.events);
    await sleep(50);
    const live = await readRun(b.http, started.runId);
    assert.equal(live.status, 200);
    const all = await onA;
    assert.equal(all.at(-1)?.type, 'run-end');
    assertGapFree(live.events, 0);
    assert.deepEqual(live.events, all);
    const later = await readRun(b.http, started.runId);
    assert.deepEqual(later.events, all);
  });

  test('resume on B from a random Last-Event-ID (many trials, during and after the run): 0 gaps, 0 duplicates', async () => {
    const started = await startRun(a.http, wordsCall(150, 4));
    const onA = drain(started.events);
    let trials = 0;
    await fc.assert(
      fc.asyncProperty(fc.double({ min: 0, max: 1, noNaN: true }), async (fraction) => {
        trials++;
        const known = await readRun(b.http, started.runId, 0);
        const from = Math.min(known.events.length - 1, Math.floor(fraction * known.events.length));
        const resumed = await readRun(b.http, started.runId, from);
        assert.equal(resumed.status, 200);
        assertGapFree(resumed.events, from);
        assert.equal(resumed.events.at(-1)?.type, 'run-end');
        assert.deepEqual(resumed.events, (await onA).slice(from));
      }),
      { numRuns: 25 },
    );
    assert.equal(trials, 25);
  });

  test('/ws resume on B and GET /runs/:id/sentences on B', async () => {
    const started = await startRun(a.http, wordsCall(20, 5));
    const all = await drain(started.events);
    const socket = new WebSocket(`${b.http.replace('http', 'ws')}/ws`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const got: SluiceEvent[] = [];
    const done = new Promise<void>((resolve) =>
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as SluiceEvent;
        if (typeof message.seq === 'number') got.push(message);
        if (message.type === 'run-end') resolve();
      }),
    );
    socket.send(JSON.stringify({ type: 'resume', runId: started.runId, after: 7 }));
    await done;
    socket.close();
    assert.deepEqual(got, all.slice(7));
    const response = await fetch(`${b.http}/runs/${started.runId}/sentences`);
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.match(text, /Word 0\./);
    assert.match(text, /Word 19\./);
    assert.match(text, /event: end/);
  });

  test('gRPC FollowSentences on B follows a run started on A, from an index', async () => {
    const started = await startRun(a.http, wordsCall(12, 10));
    const onA = drain(started.events);
    await sleep(40);
    const voice = createRpcClient(VoiceService, createGrpcTransport({ baseUrl: `http://${b.grpc}` }));
    const sentences: { index: number; text: string }[] = [];
    let end = '';
    for await (const event of voice.followSentences({ runId: started.runId, afterIndex: 2 })) {
      if (event.event.case === 'sentence') sentences.push({ index: event.event.value.index, text: event.event.value.text });
      if (event.event.case === 'runEnd') end = event.event.value.reason;
    }
    await onA;
    assert.equal(end, 'completed');
    assert.deepEqual(
      sentences.map((x) => x.index),
      Array.from({ length: 9 }, (_, i) => i + 3),
    );
    assert.equal(sentences[0]!.text.trim(), 'Word 3.');
  });

  test('cancel on B stops the producer on A', async () => {
    const started = await startRun(a.http, wordsCall(100_000, 5));
    const onA = drain(started.events);
    await sleep(100);
    const response = await fetch(`${b.http}/runs/${started.runId}/cancel`, { method: 'POST' });
    assert.equal(response.status, 202);
    const events = await onA;
    const end = events.at(-1) as { type: string; reason: string };
    assert.equal(end.type, 'run-end');
    assert.equal(end.reason, 'cancelled');
    assert.ok(events.length < 1000, 'the producer stopped');
    const again = await fetch(`${b.http}/runs/${started.runId}/cancel`, { method: 'POST' });
    assert.equal(again.status, 409);
    const unknown = await fetch(`${b.http}/runs/no-such-run/cancel`, { method: 'POST' });
    assert.equal(unknown.status, 404);
  });

  test('a barge-in ack on B by responseId stops the stream on A', async () => {
    const started = await startRun(a.http, wordsCall(100_000, 5));
    let responseId = '';
    let acked: unknown = null;
    const events: SluiceEvent[] = [];
    for await (const event of started.events) {
      events.push(event);
      if (event.type === 'stream-start') responseId = event.responseId;
      if (event.type === 'chunk' && acked === null) {
        const response = await fetch(`${b.http}/streams/${responseId}/ack`, { method: 'POST' });
        acked = await response.json();
        // Not found: stop here rather than read a stream that would run for minutes.
        if ((acked as { acknowledged?: boolean }).acknowledged !== true) await fetch(`${a.http}/runs/${started.runId}/cancel`, { method: 'POST' });
      }
    }
    assert.deepEqual(acked, { acknowledged: true, responseId });
    const end = events.at(-1) as { type: string; reason: string };
    assert.equal(end.reason, 'cancelled');
    const streamEnd = events.find((e) => e.type === 'stream-end') as { reason: string } | undefined;
    assert.equal(streamEnd?.reason, 'cancelled');
  });

  test('Redis paused (CLIENT PAUSE 300 ms) mid-run: B still gets every event, in order', async () => {
    const started = await startRun(a.http, wordsCall(120, 3));
    const onA = drain(started.events);
    await sleep(60);
    const reading = readRun(b.http, started.runId);
    const admin = createClient({ url: REDIS_URL });
    await admin.connect();
    await admin.sendCommand(['CLIENT', 'PAUSE', '300', 'WRITE']);
    await admin.close();
    const seen = await reading;
    assertGapFree(seen.events, 0);
    assert.deepEqual(seen.events, await onA);
  });

  test('kill -9 A mid-run: B reads error unavailable "producer lost" and run-end within lease + 1 s, once', async () => {
    const started = await startRun(a.http, wordsCall(100_000, 10));
    await sleep(100);
    const reading = readRun(b.http, started.runId);
    await sleep(100);
    const killedAt = Date.now();
    await a.kill();
    const seen = await reading;
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed < 3_000 + 1_000 + 1_500, `within the 3 s lease + 1 s (and test slack): ${elapsed} ms`);
    const errors = seen.events.filter((e) => e.type === 'error') as { code: string; message: string }[];
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'unavailable');
    assert.match(errors[0]!.message, /producer lost/);
    assert.equal(seen.events.at(-1)?.type, 'run-end');
    assertGapFree(seen.events, 0);
    const again = await readRun(b.http, started.runId);
    assert.deepEqual(again.events, seen.events, 'written once');
  });
});
