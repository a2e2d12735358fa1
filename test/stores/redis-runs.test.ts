// The Redis mode in one process: two executors, each with its own connections and instance id,
// sharing a random key prefix — what two servers do, without the processes (test/scale/ has those).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createClient } from 'redis';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { defineAction } from '../../src/runtime/action.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { slotSet } from '../../src/runtime/rasa-events.ts';
import { decodeEntry, encodeEntry } from '../../src/stores/redis-codec.ts';
import { connectRedisRuns, type RedisRuns, type RedisRunsOptions } from '../../src/stores/redis-runs.ts';
import { REDIS_URL, dropPrefix, keysOf, redisSkip, testPrefix } from './redis-helpers.ts';

const skip = await redisSkip();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Streams `count` words, `pauseMs` apart, then a slot; stops early when its signal aborts. */
const words = defineAction({
  name: 'words',
  async *stream({ tracker, signal }) {
    const count = Number(tracker.getSlot('count') ?? 40);
    const pause = Number(tracker.getSlot('pause') ?? 2);
    for (let i = 0; i < count && !signal.aborted; i++) {
      yield `w${i} `;
      if (pause > 0) await sleep(pause);
    }
    return [slotSet('done', true)];
  },
});

const call = (slots: Record<string, unknown> = {}) => ({ next_action: 'words', tracker: { sender_id: 'u', slots } });

interface Pair {
  prefix: string;
  ra: RedisRuns;
  rb: RedisRuns;
  a: ActionExecutor;
  b: ActionExecutor;
  close(): Promise<void>;
}

async function pair(options: Partial<RedisRunsOptions> = {}): Promise<Pair> {
  const prefix = testPrefix();
  const o = { url: REDIS_URL, prefix, logger: silentLogger, ...options };
  const ra = await connectRedisRuns(o);
  const rb = await connectRedisRuns(o);
  const a = new ActionExecutor({ actions: [words], shared: ra, logger: silentLogger });
  const b = new ActionExecutor({ actions: [words], shared: rb, logger: silentLogger });
  return {
    prefix,
    ra,
    rb,
    a,
    b,
    async close() {
      await Promise.allSettled([a.close(), b.close()]);
      await Promise.allSettled([ra.close(), rb.close()]);
      await dropPrefix(prefix);
    },
  };
}

async function collect(events: AsyncIterable<SluiceEvent>): Promise<SluiceEvent[]> {
  const out: SluiceEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

function assertGapFree(events: SluiceEvent[], from: number): void {
  events.forEach((event, i) => assert.equal(event.seq, from + i + 1, `event ${i} has seq ${event.seq}, expected ${from + i + 1}`));
}

describe('Redis entry codec', () => {
  test('round-trips text chunks (stored as strings) and other events', () => {
    const responseId = 'a'.repeat(32);
    const events = [
      { type: 'stream-start', responseId, runId: 'r', seq: 4 },
      { type: 'chunk', responseId, text: 'Hello ', runId: 'r', seq: 5 },
      { type: 'chunk', responseId, text: 'world', runId: 'r', seq: 6 },
      { type: 'chunk', responseId, text: 'Pick', buttons: [{ title: 'A', payload: '/a' }], runId: 'r', seq: 7 },
      { type: 'status', text: 'Working', runId: 'r', seq: 8 },
    ] as SluiceEvent[];
    const entry = encodeEntry(events);
    assert.equal(entry.id, '8-0');
    assert.ok(entry.fields[1]!.includes('"Hello "'));
    assert.deepEqual(decodeEntry('r', entry.id, entry.fields), events);
  });
});

describe('Redis mode across two executors', { skip }, () => {
  let p: Pair;
  before(async () => {
    p = await pair();
  });
  after(async () => {
    await p.close();
  });

  test('a run started on A is read on B: the same events, gap-free, then it ends', async () => {
    const run = p.a.start(call({ count: 60 }));
    const local = collect(run.subscribe());
    await sleep(15);
    const remote = await p.b.findRun(run.id);
    assert.ok(remote !== undefined);
    assert.equal(remote.action, 'words');
    const seen = await collect(remote.subscribe());
    assertGapFree(seen, 0);
    assert.deepEqual(seen, await local);
    assert.equal(seen.at(-1)?.type, 'run-end');
  });

  test('resume on B from a random seq, during and after the run: no gap, no duplicate', async () => {
    const run = p.a.start(call({ count: 120, pause: 1 }));
    const all = await collect(run.subscribe());
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: all.length - 1 }), async (from) => {
        const remote = await p.b.findRun(run.id);
        const seen = await collect(remote!.subscribe({ after: from }));
        assertGapFree(seen, from);
        assert.deepEqual(seen, all.slice(from));
      }),
      { numRuns: 40 },
    );
    // And while it runs: readers join at random points of a live run.
    const live = p.a.start(call({ count: 80, pause: 3 }));
    const expected = collect(live.subscribe());
    const readers: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) {
      await sleep(20);
      const remote = await p.b.findRun(live.id);
      const from = Math.floor(Math.random() * (remote!.lastSeq + 1));
      readers.push(
        collect(remote!.subscribe({ after: from })).then(async (seen) => {
          assertGapFree(seen, from);
          assert.deepEqual(seen, (await expected).slice(from));
        }),
      );
    }
    await Promise.all(readers);
  });

  test('cancel on B stops the producer on A; every reader sees the run end cancelled', async () => {
    const run = p.a.start(call({ count: 10_000, pause: 5 }));
    await sleep(30);
    const remote = await p.b.findRun(run.id);
    const seen = collect(remote!.subscribe());
    assert.equal(p.b.cancel(run.id), true);
    assert.equal(p.b.cancel(run.id), false, 'a second cancel is refused, as on one instance');
    const end = await run.done;
    assert.equal(end.reason, 'cancelled');
    assert.equal(run.signal.aborted, true);
    const events = await seen;
    assert.equal(events.at(-1)?.type, 'run-end');
    assert.equal((events.at(-1) as { reason: string }).reason, 'cancelled');
    assertGapFree(events, 0);
  });

  test('a barge-in ack on B (by responseId) stops the stream on A', async () => {
    const run = p.a.start(call({ count: 10_000, pause: 5 }));
    const local = run.subscribe();
    let responseId = '';
    for await (const event of local) {
      if (event.type === 'stream-start') responseId = event.responseId;
      if (event.type === 'chunk') break;
    }
    await sleep(30);
    assert.equal(await p.b.acknowledge(responseId), true);
    const end = await run.done;
    assert.equal(end.reason, 'cancelled');
    assert.equal(await p.b.acknowledge('f'.repeat(32)), false, 'an unknown stream is not acknowledged');
  });

  test('a late barge-in on B (the action is done, A’s reader is behind) cuts what that reader has not read, as on one instance; B’s copy is the same cut log', async () => {
    const run = p.a.start(call({ count: 40, pause: 0 }));
    const local = run.subscribe();
    const seen: SluiceEvent[] = [];
    while (seen.at(-1)?.type !== 'chunk') seen.push((await local.next()).value as SluiceEvent);
    while (!run.hasTerminal) await sleep(2); // the action is done: its result is in
    const responseId = (seen.find((e) => e.type === 'stream-start') as { responseId: string }).responseId;
    assert.equal(await p.b.acknowledge(responseId), true);
    // The ack is sent, not yet applied: A applies it when the control message arrives.
    await Promise.race([
      new Promise((resolve) => (run.signal.aborted ? resolve(null) : run.signal.addEventListener('abort', resolve, { once: true }))),
      sleep(2_000).then(() => assert.fail('the barge-in did not reach A within 2 s')),
    ]);
    assert.equal((await run.done).reason, 'cancelled');
    const rest = await collect(local);
    const all = [...seen, ...rest];
    assert.deepEqual(rest.map((e) => e.type), ['stream-end', 'result', 'run-end']);
    assert.equal((rest[0] as { reason: string }).reason, 'cancelled');
    assertGapFree(all, 0);
    const remote = await p.b.findRun(run.id);
    assert.deepEqual(await collect(remote!.subscribe()), all, 'the shared log holds the cut run, not the chunks nobody read');
  });

  test('a cancel on B while A’s reader is behind drops the chunks nobody read, as on one instance', async () => {
    const run = p.a.start(call({ count: 200, pause: 1 }));
    const local = run.subscribe();
    const seen: SluiceEvent[] = [];
    while (seen.filter((e) => e.type === 'chunk').length < 3) seen.push((await local.next()).value as SluiceEvent);
    await sleep(60); // the action runs on; this reader reads nothing
    const produced = run.lastSeq;
    assert.ok(produced > seen.length + 10, `the action is ahead of its reader (${produced} events, ${seen.length} read)`);
    assert.equal(p.b.cancel(run.id), false, 'B holds no copy yet: a cancel goes through a copy');
    const remote = (await p.b.findRun(run.id))!;
    assert.equal(remote.cancel('stop'), true);
    await run.done;
    const rest = await collect(local);
    const all = [...seen, ...rest];
    assertGapFree(all, 0);
    assert.ok(all.length < produced, `unread chunks were dropped (${all.length} delivered of ${produced})`);
    assert.deepEqual(await collect((await p.b.findRun(run.id))!.subscribe()), all);
  });

  test('history gone mid-run (the log key deleted): B is told (out_of_range), a new resume is refused, never a gap', async () => {
    const run = p.a.start(call({ count: 200, pause: 3 }));
    await sleep(40);
    const remote = await p.b.findRun(run.id);
    const seen = collect(remote!.subscribe());
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    await sleep(30);
    await client.del(p.ra.keys.log(run.id));
    await client.close();
    const events = await seen;
    const error = events.find((e) => e.type === 'error') as { code: string; message: string } | undefined;
    assert.ok(error !== undefined, 'the reader is told');
    assert.equal(error.code, 'out_of_range');
    assert.match(error.message, /history of run .* is gone/);
    assert.equal(events.at(-1)?.type, 'run-end');
    assertGapFree(events, 0);
    await run.done;
    await sleep(50);
    // A reader elsewhere that resumes from before what the log still holds is refused.
    const rc = await connectRedisRuns({ url: REDIS_URL, prefix: p.prefix, logger: silentLogger });
    const c = new ActionExecutor({ actions: [words], shared: rc, logger: silentLogger });
    try {
      const fresh = await c.findRun(run.id);
      assert.ok(fresh !== undefined);
      assert.throws(() => fresh.subscribe({ after: 10 }), (e: Error & { code?: string }) => e.code === 'out_of_range');
    } finally {
      await c.close();
      await rc.close();
    }
  });

  // Regression: A hands out a run id (start() returns, SSE's run id header, /ws 'started') before
  // its log writer has registered the run in Redis; B used to call such a run unknown (404).
  test('a run is found on B as soon as A started it, before its log writer registered it', async () => {
    // The same tick: B's lookup reaches Redis before A's first append.
    for (let i = 0; i < 10; i++) {
      const run = p.a.start(call({ count: 3, pause: 0 }));
      const remote = await p.b.findRun(run.id);
      assert.ok(remote !== undefined, `found on B (try ${i})`);
      assert.deepEqual(await collect(remote.subscribe()), await collect(run.subscribe()));
    }
    // B asks first, A starts the run a little later: still found.
    const runId = `late-${Date.now()}`;
    const finding = p.b.findRun(runId);
    await sleep(5);
    const run = p.a.start(call({ count: 3, pause: 0 }), { runId });
    const remote = await finding;
    assert.ok(remote !== undefined, 'found on B');
    assert.deepEqual(await collect(remote.subscribe()), await collect(run.subscribe()));
  });

  test('an unknown run is not found on B', async () => {
    assert.equal(await p.b.findRun('no-such-run'), undefined);
  });
});

describe('Redis mode: leases, retention, faults', { skip }, () => {
  test('copies of remote runs are bounded: unread ones make room, and when every copy is read another is refused (429-style)', async () => {
    const p = await pair({ maxReplicas: 2 });
    try {
      const runs = [0, 1, 2, 3].map(() => p.a.start(call({ count: 1_000, pause: 5 })));
      await sleep(30);
      const [x, y, z, w] = runs;
      // x and y are opened and read; z fits once x's reader leaves.
      const xr = (await p.b.findRun(x!.id))!.subscribe();
      const yr = (await p.b.findRun(y!.id))!.subscribe();
      await assert.rejects(p.b.findRun(z!.id), (error: any) => error.code === 'resource_exhausted' && error.details.reason === 'too_many_replicas');
      xr.unsubscribe();
      const zr = (await p.b.findRun(z!.id))!.subscribe();
      assert.equal((await zr.next()).value?.seq, 1, 'the new copy replays from the start');
      await assert.rejects(p.b.findRun(w!.id), (error: any) => error.code === 'resource_exhausted');
      assert.equal(p.rb.activity.following, 2);
      yr.unsubscribe();
      zr.unsubscribe();
      for (const run of runs) run.cancel();
    } finally {
      await p.close();
    }
  });

  test('producer lost: A stops heartbeating mid-run → B reads error unavailable "producer lost" and run-end, once', async () => {
    const p = await pair({ leaseMs: 400 });
    try {
      const run = p.a.start(call({ count: 10_000, pause: 5 }));
      await sleep(30);
      const remote = await p.b.findRun(run.id);
      // A third reader instance claims too: only one error is written.
      const rc = await connectRedisRuns({ url: REDIS_URL, prefix: p.prefix, logger: silentLogger, leaseMs: 400 });
      const c = new ActionExecutor({ actions: [words], shared: rc, logger: silentLogger });
      const other = await c.findRun(run.id);
      const seenB = collect(remote!.subscribe());
      const seenC = collect(other!.subscribe());
      const lostAt = Date.now();
      await p.ra.close(); // gives up the lease; A's run goes on locally, unseen
      const events = await seenB;
      const elapsed = Date.now() - lostAt;
      assert.ok(elapsed < 400 + 1000 + 2000, `told within lease + 1 s (+ slack): ${elapsed} ms`);
      const errors = events.filter((e) => e.type === 'error') as { code: string; message: string }[];
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.code, 'unavailable');
      assert.match(errors[0]!.message, /producer lost/);
      assert.equal(events.at(-1)?.type, 'run-end');
      assertGapFree(events, 0);
      assert.deepEqual(await seenC, events);
      await c.close();
      await rc.close();
      run.cancel();
    } finally {
      await p.close();
    }
  });

  test('keys carry a TTL and are gone after the ended-run TTL; MAXLEN caps a stream', async () => {
    const p = await pair({ endedTtlMs: 300, maxLen: 20, coalesceMs: 0, maxEventsPerEntry: 1 });
    try {
      const run = p.a.start(call({ count: 400, pause: 0 }));
      await collect(run.subscribe());
      await sleep(50);
      const client = createClient({ url: REDIS_URL });
      await client.connect();
      const length = await client.xLen(p.ra.keys.log(run.id));
      assert.ok(length < 400, `capped: ${length} entries`);
      const ttl = await client.pTTL(p.ra.keys.meta(run.id));
      assert.ok(ttl > 0 && ttl <= 300, `ttl ${ttl}`);
      await client.close();
      // A resume before the oldest entry kept is refused as gone (410), never a silent gap.
      const remote = await p.b.findRun(run.id);
      assert.throws(() => remote!.subscribe({ after: 0 }), (e: Error & { code?: string }) => e.code === 'out_of_range');
      await sleep(400);
      const left = (await keysOf(p.prefix)).filter((k) => k.includes(':run:') || k.includes(':resp:'));
      assert.deepEqual(left, []);
    } finally {
      await p.close();
    }
  });

  test('Redis unreachable at start: a clear error naming the URL', async () => {
    await assert.rejects(
      connectRedisRuns({ url: 'redis://127.0.0.1:1', logger: silentLogger, connectTimeoutMs: 1000 }),
      (error: Error & { code?: string }) => error.code === 'unavailable' && /redis:\/\/127\.0\.0\.1:1/.test(error.message),
    );
  });

  test('a bad prefix or URL is refused with invalid_argument', async () => {
    await assert.rejects(connectRedisRuns({ url: REDIS_URL, prefix: 'a{b}' }), (e: Error & { code?: string }) => e.code === 'invalid_argument');
    await assert.rejects(connectRedisRuns({ url: 'http://x' }), (e: Error & { code?: string }) => e.code === 'invalid_argument');
  });
});
