/**
 * Property tests of {@link Run} on its own: a producer that honours backpressure, 1–3 readers at
 * random speeds that join late, leave, resume from any retained seq, and cancel at random points;
 * small random high/low-water marks and log limits. The executor-level properties are in
 * `executor.property.test.ts`.
 *
 * `KNOWN` flags tolerate runtime bugs these properties found (each has a regression test at the end
 * of this file); see `known` below for how they are switched.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { SluiceError } from '../../src/protocol/errors.ts';
import type { EventInput, SluiceEvent } from '../../src/protocol/events.ts';
import { isClosingEvent } from '../../src/protocol/events.ts';
import { Run } from '../../src/runtime/run.ts';
import { known } from './known-bugs.ts';

const KNOWN = {
  /** Bug C: a reader whose `after` is beyond every seq handed out loses the closing events on cancel. */
  tailResumeAfterCancel: known('tailResumeAfterCancel'),
  /** Bug F (Run part): after a cancel, closing events go past the HWM while a slower reader still lags. */
  closingEventsOvershootHwm: known('closingEventsOvershootHwm'),
  /** Bug G: a cancel after the `result` was emitted (but not yet read) drops the result. */
  cancelDropsEmittedTerminal: known('cancelDropsEmittedTerminal'),
  /**
   * Bug I: with the wait at HWM − 1, a producer that ignores it is stopped when the lag would
   * reach `hardLimit`, one event before the documented "once the lag would pass this".
   */
  hardLimitOneEarly: known('hardLimitOneEarly', true),
};
const RUNS_SCALE = Number(process.env.SLUICE_PROPERTY_RUNS ?? 1) || 1;

type Op =
  | { k: 'emit'; type: 'status' | 'chunk' | 'message' | 'stream-start' | 'stream-end' | 'tool-delta' }
  | { k: 'pause'; ms: number }
  | { k: 'cancel' };

type Speed = 'sync' | 'micro' | 'immediate' | 'timer';

interface ReaderPlan {
  speed: Speed;
  every: number;
  /** When to subscribe and from which seq. */
  join: { delay: 'now' | 'micro' | 'timer'; from: 'zero' | 'delivered' | 'any' | 'tail'; pick: number };
  leave: null | { at: number; resume: boolean };
  /** Cancel the run after reading this many events. */
  cancelAt: number | null;
}

interface Scenario {
  hwm: number;
  lwmFraction: number;
  logExtra: number;
  ops: Op[];
  readers: ReaderPlan[];
}

function inputOf(op: Extract<Op, { k: 'emit' }>, i: number): EventInput {
  switch (op.type) {
    case 'status':
      return { type: 'status', text: `s${i}` };
    case 'chunk':
      return { type: 'chunk', responseId: i % 3 === 0 ? 'r' : 'q', text: `c${i}` };
    case 'message':
      return { type: 'message', message: { text: `m${i}` } };
    case 'stream-start':
      return { type: 'stream-start', responseId: 'r' };
    case 'stream-end':
      return { type: 'stream-end', responseId: 'r', reason: 'completed' };
    case 'tool-delta':
      return { type: 'tool-delta', toolCallId: 't', argsDelta: '{' };
  }
}

async function pause(speed: Speed | number): Promise<void> {
  if (speed === 'sync') return;
  if (speed === 'micro' || speed === -1) await Promise.resolve();
  else if (speed === 'immediate' || speed === 0) await new Promise<void>((r) => setImmediate(r));
  else await sleep(typeof speed === 'number' ? speed : Math.random() < 0.5 ? 0 : 1);
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .constantFrom('status' as const, 'chunk' as const, 'chunk' as const, 'message' as const, 'stream-start' as const, 'stream-end' as const, 'tool-delta' as const)
      .map((type): Op => ({ k: 'emit', type })),
  },
  { weight: 3, arbitrary: fc.integer({ min: -1, max: 1 }).map((ms): Op => ({ k: 'pause', ms })) },
  { weight: 1, arbitrary: fc.constant<Op>({ k: 'cancel' }) },
);

const froms: ReaderPlan['join']['from'][] = KNOWN.tailResumeAfterCancel ? ['zero', 'zero', 'delivered'] : ['zero', 'zero', 'delivered', 'any', 'tail'];
const readerArb: fc.Arbitrary<ReaderPlan> = fc.record({
  speed: fc.constantFrom<Speed>('sync', 'micro', 'immediate', 'immediate', 'timer'),
  every: fc.integer({ min: 1, max: 4 }),
  join: fc.record({
    delay: fc.constantFrom('now' as const, 'now' as const, 'micro' as const, 'timer' as const),
    from: fc.constantFrom(...froms),
    pick: fc.nat(),
  }),
  leave: fc.option(fc.record({ at: fc.integer({ min: 1, max: 40 }), resume: fc.boolean() }), { freq: 3 }),
  cancelAt: fc.option(fc.integer({ min: 1, max: 40 }), { freq: 4 }),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  hwm: fc.integer({ min: 2, max: 16 }),
  lwmFraction: fc.double({ min: 0, max: 0.999, noNaN: true }),
  logExtra: fc.integer({ min: 0, max: 20 }),
  ops: fc.array(opArb, { maxLength: 40 }),
  readers: fc.array(readerArb, { minLength: 1, maxLength: 3 }),
});

interface Segment {
  after: number;
  events: SluiceEvent[];
}

interface ReaderLog {
  index: number;
  segments: Segment[];
  complete: boolean;
  /** Subscribing failed with out_of_range (the log no longer held the start). */
  rejected: boolean;
}

interface Trace {
  unstable: boolean;
  emits: { type: string; buffered: number; cancelled: boolean; unstable: boolean; dropped: boolean }[];
  cancels: { ok: boolean; deliveredBefore: number; claimedBefore: number; lastBefore: number; kept: number; terminalBefore: boolean }[];
  readerBuffered: { buffered: number; unstable: boolean; cancelled: boolean }[];
  /** The chunks emitted, by seq: what every reader must get at that seq. */
  chunks: Map<number, { responseId: string; text: string }>;
}

function cancelRun(run: Run, trace: Trace): void {
  const deliveredBefore = run.deliveredHigh;
  // What readers hold or claim (a reader that subscribed `after: k` claims 1..k).
  let claimedBefore = deliveredBefore;
  for (const sub of run.subscribers) claimedBefore = Math.max(claimedBefore, sub.cursor);
  const lastBefore = run.lastSeq;
  const terminalBefore = run.hasTerminal;
  const ok = run.cancel(new SluiceError('cancelled', 'stop'));
  trace.cancels.push({ ok, deliveredBefore, claimedBefore, lastBefore, kept: run.keptThrough, terminalBefore });
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function play(s: Scenario): Promise<{ run: Run; trace: Trace; logs: ReaderLog[]; endEvent: SluiceEvent }> {
  const lowWaterMark = Math.floor(s.lwmFraction * (s.hwm - 1)); // valid whether the producer waits at HWM or HWM − 1
  const run = new Run({ action: 'p', highWaterMark: s.hwm, lowWaterMark, logLimit: s.hwm + s.logExtra });
  const trace: Trace = { unstable: false, emits: [], cancels: [], readerBuffered: [], chunks: new Map() };

  const emit = async (input: EventInput): Promise<void> => {
    const before = run.lastSeq;
    const cancelled = run.isCancelled;
    // Half the chunks take the lean path a streaming step uses (kept as bare text while unread).
    const wait = input.type === 'chunk' && run.lastSeq % 2 === 1 ? run.emitChunk(input.responseId, input.text as string) : run.emit(input);
    const dropped = run.lastSeq === before;
    if (input.type === 'chunk' && !dropped) trace.chunks.set(run.lastSeq, { responseId: input.responseId, text: input.text as string });
    trace.emits.push({ type: input.type, buffered: run.buffered, cancelled, unstable: trace.unstable, dropped });
    if (cancelled && !isClosingEvent(input.type)) {
      assert.equal(wait, undefined, 'an emit after a cancel does not wait');
      assert.ok(dropped, `'${input.type}' emitted after a cancel is dropped`);
    } else assert.ok(!dropped, `'${input.type}' was not appended`);
    if (wait !== undefined) await wait;
  };

  const produce = async (): Promise<void> => {
    await emit({ type: 'run-start', action: 'p', at: 0 });
    let i = 0;
    for (const op of s.ops) {
      if (op.k === 'pause') await pause(op.ms);
      else if (op.k === 'cancel') cancelRun(run, trace);
      else await emit(inputOf(op, i++));
    }
    await emit({ type: 'result', events: [], responses: [] });
    await emit({ type: 'run-end', reason: run.isCancelled ? 'cancelled' : 'completed' });
  };

  const read = async (plan: ReaderPlan, index: number): Promise<ReaderLog> => {
    const log: ReaderLog = { index, segments: [], complete: false, rejected: false };
    await pause(plan.join.delay === 'now' ? 'sync' : plan.join.delay === 'micro' ? 'micro' : 1);
    let after: number;
    switch (plan.join.from) {
      case 'zero':
        after = 0;
        break;
      case 'delivered':
        after = plan.join.pick % (run.deliveredHigh + 1);
        break;
      case 'any':
        after = plan.join.pick % (run.lastSeq + 1);
        break;
      case 'tail':
        after = run.lastSeq;
        break;
    }
    let total = 0;
    let resumed = false;
    for (;;) {
      if (run.lastSeq > after) trace.unstable = true;
      let sub;
      try {
        sub = run.subscribe({ after });
      } catch (error) {
        assert.ok(SluiceError.isInstance(error) && error.code === 'out_of_range', String(error));
        assert.ok(after < run.base, `out_of_range for after=${after} while base=${run.base}`);
        log.rejected = true;
        return log;
      }
      const segment: Segment = { after, events: [] };
      log.segments.push(segment);
      let left = false;
      for await (const event of sub) {
        segment.events.push(event);
        total++;
        trace.readerBuffered.push({ buffered: run.buffered, unstable: trace.unstable, cancelled: run.isCancelled });
        if (plan.cancelAt === total) cancelRun(run, trace);
        if (!resumed && plan.leave !== null && plan.leave.at === total) {
          left = true;
          break;
        }
        if (total % plan.every === 0) await pause(plan.speed);
      }
      if (!left) {
        log.complete = true;
        return log;
      }
      if (plan.leave === null || !plan.leave.resume) return log;
      resumed = true;
      await pause(plan.speed);
      after = segment.events.at(-1)?.seq ?? after;
    }
  };

  const readers = s.readers.map((plan, index) => read(plan, index));
  const producing = produce();
  const endEvent = await withTimeout(run.done, 'the run (producer stuck?)');
  await producing;
  const logs = await withTimeout(Promise.all(readers), 'a reader');
  return { run, trace, logs, endEvent };
}

function check(s: Scenario, { run, trace, logs, endEvent }: Awaited<ReturnType<typeof play>>): void {
  const ok = trace.cancels.filter((c) => c.ok);
  const cancelled = ok.length > 0;
  assert.ok(ok.length <= 1, 'cancel succeeds once');
  const kept = cancelled ? (ok[0] as (typeof ok)[number]).kept : Infinity;

  // The run ended once, as expected; disconnecting never cancels.
  assert.equal(run.state, 'ended');
  assert.equal(endEvent.type, 'run-end');
  assert.equal(run.endReason, cancelled ? 'cancelled' : 'completed');
  assert.equal(run.isCancelled, cancelled);
  assert.equal(run.events().at(-1), endEvent);

  // A cancel keeps every event a reader was handed, and drops (in one step) everything after.
  for (const c of ok) {
    assert.ok(c.kept >= c.deliveredBefore, `cancel kept ${c.kept} < delivered ${c.deliveredBefore}`);
    assert.ok(
      c.kept <= Math.max(c.claimedBefore, 1, run.base),
      `cancel kept unread events (kept ${c.kept}, delivered ${c.deliveredBefore}, claimed ${c.claimedBefore})`,
    );
    assert.ok(c.kept <= c.lastBefore);
  }

  // Per reader: gap-free from `after + 1`, the same event object at each seq, well-formed ends.
  const bySeq = new Map<number, SluiceEvent>();
  for (const log of logs) {
    const where = `reader ${log.index}`;
    for (const segment of log.segments) {
      segment.events.forEach((event, i) => {
        assert.equal(event.seq, segment.after + i + 1, `${where}: seq gap after ${segment.after} at position ${i}`);
        assert.equal(event.runId, run.id);
        const other = bySeq.get(event.seq);
        if (other === undefined) bySeq.set(event.seq, event);
        else assert.equal(event, other, `${where}: a different event at seq ${event.seq}`);
        if (event.seq > kept) assert.ok(isClosingEvent(event.type), `${where}: '${event.type}' at seq ${event.seq} after the cancel kept ${kept}`);
        if (event.type === 'chunk') {
          assert.deepEqual({ responseId: event.responseId, text: event.text }, trace.chunks.get(event.seq), `${where}: the chunk at seq ${event.seq}`);
        }
      });
    }
    if (!log.complete) continue;
    const last = log.segments.at(-1) as Segment;
    const first = log.segments[0] as Segment;
    const all = log.segments.length > 1 ? log.segments.flatMap((x) => x.events) : last.events;
    if (last.after >= run.lastSeq) {
      assert.equal(last.events.length, 0, `${where}: joined after the end, read nothing`);
      continue;
    }
    assert.equal(all.at(-1)?.type, 'run-end', `${where}: a reader that read to the end got run-end last`);
    assert.equal(all.filter((e) => e.type === 'run-end').length, 1, `${where}: one run-end`);
    if (first.after === 0) {
      assert.equal(all[0]?.type, 'run-start', `${where}: run-start first`);
      const results = all.filter((e) => e.type === 'result').length;
      const tolerated = KNOWN.cancelDropsEmittedTerminal && ok.some((c) => c.terminalBefore) && results === 0;
      if (!tolerated) assert.equal(results, 1, `${where}: one result`);
    }
  }

  // The buffer stays within the high-water mark while every reader reads from where it joined.
  const bound = (cancelledNow: boolean): number => (KNOWN.closingEventsOvershootHwm && cancelledNow ? s.hwm + 2 : s.hwm);
  for (const e of trace.emits) {
    if (!e.unstable) assert.ok(e.buffered <= bound(e.cancelled), `emit of '${e.type}' left ${e.buffered} buffered (HWM ${s.hwm})`);
  }
  for (const r of trace.readerBuffered) {
    if (!r.unstable) assert.ok(r.buffered <= bound(r.cancelled), `a reader saw ${r.buffered} buffered (HWM ${s.hwm})`);
  }
  // The log never holds more than 2 × logLimit events beyond what the slowest reader still needs.
  assert.ok(run.log.length < 2 * run.logLimit + s.hwm * 4 + 3, `log holds ${run.log.length} events (logLimit ${run.logLimit})`);
}

describe('Run properties', () => {
  it('readers see gap-free, identical events; cancel drops only unread events; the buffer is bounded', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        check(s, await play(s));
      }),
      { numRuns: Math.round(200 * RUNS_SCALE) },
    );
  });

  it('a reader that joins at any seq, then sees the run cancelled, gets a gap-free tail ending in run-end', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 20 }), fc.nat(), fc.nat(), fc.boolean(), async (n, pickJoin, pickRead, withReader) => {
        const run = new Run({ highWaterMark: 64 });
        const early = withReader ? run.subscribe() : null;
        run.emit({ type: 'run-start', action: 'p', at: 0 });
        for (let i = 0; i < n; i++) run.emit({ type: 'status', text: String(i) });
        // The early reader reads some events; the joiner picks any seq the run has reached.
        const read = early === null ? 0 : pickRead % (n + 2);
        for (let i = 0; i < read; i++) await early?.next();
        const limit = KNOWN.tailResumeAfterCancel ? run.deliveredHigh : run.lastSeq;
        const after = pickJoin % (limit + 1);
        const joiner = run.subscribe({ after });
        run.cancel('stop');
        void run.emit({ type: 'result', events: [], responses: [] });
        run.emit({ type: 'run-end', reason: 'cancelled' });
        const got: SluiceEvent[] = [];
        for await (const event of joiner) got.push(event);
        got.forEach((e, i) => assert.equal(e.seq, after + i + 1, 'gap-free from after + 1'));
        assert.equal(got.at(-1)?.type, 'run-end', `joined after ${after} of ${n + 1}: ${got.map((e) => e.type)}`);
        assert.equal(got.filter((e) => e.type === 'result').length, 1);
        early?.unsubscribe();
      }),
      { numRuns: Math.round(300 * RUNS_SCALE) },
    );
  });

  it('after a cancel, the closing events keep the slowest reader within the high-water mark', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 16 }), fc.nat(), fc.nat(), async (hwm, pickSlow, pickFast) => {
        const run = new Run({ highWaterMark: hwm });
        const slow = run.subscribe();
        const fast = run.subscribe();
        let wait = run.emit({ type: 'run-start', action: 'p', at: 0 });
        // Produce until the producer is held: the slow reader has read `slowRead`, the fast one more.
        const slowRead = pickSlow % 2; // only run-start exists yet
        for (let i = 0; i < slowRead; i++) await slow.next();
        while (wait === undefined) wait = run.emit({ type: 'chunk', responseId: 'r', text: 'x' });
        const fastRead = slowRead + (pickFast % (run.lastSeq - slowRead + 1));
        for (let i = 0; i < fastRead; i++) await fast.next();
        run.cancel('stop');
        await wait;
        let peak = 0;
        for (const input of [
          { type: 'stream-end', responseId: 'r', reason: 'cancelled' },
          { type: 'result', events: [], responses: [] },
          { type: 'run-end', reason: 'cancelled' },
        ] as EventInput[]) {
          const w = run.emit(input);
          peak = Math.max(peak, run.buffered);
          if (w !== undefined) {
            // Let the readers drain so an awaiting producer is released.
            const reading = Promise.all([slow.drain(), fast.drain()]);
            await reading;
            await w;
          }
        }
        const bound = KNOWN.closingEventsOvershootHwm ? hwm + 2 : hwm;
        assert.ok(peak <= bound, `buffered reached ${peak} (HWM ${hwm})`);
      }),
      { numRuns: Math.round(300 * RUNS_SCALE) },
    );
  });

  it('a producer that ignores backpressure is stopped at exactly the hard limit; closing events still pass', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 32 }), fc.integer({ min: 0, max: 64 }), (hwm, extra) => {
        const hardLimit = hwm + extra;
        const run = new Run({ highWaterMark: hwm, hardLimit });
        const reader = run.subscribe(); // never reads
        let accepted = 0;
        let refused: unknown;
        for (let i = 0; i < hardLimit + 5 && refused === undefined; i++) {
          try {
            const wait = run.emit({ type: 'chunk', responseId: 'r', text: 'x' });
            accepted++;
            // The producer is told to wait by the time the lag reaches the HWM (at HWM − 1 when a
            // slot is kept for a cancel's stream-end), never before.
            if (accepted < hwm - 1) assert.equal(wait, undefined, `emit ${accepted} of HWM ${hwm} need not wait`);
            if (accepted >= hwm) assert.notEqual(wait, undefined, `emit ${accepted} of HWM ${hwm} must wait`);
          } catch (error) {
            refused = error;
          }
        }
        // Stopped once the lag would pass the hard limit (RunOptions.hardLimit), not before.
        assert.ok(SluiceError.isInstance(refused) && refused.code === 'resource_exhausted', String(refused));
        if (KNOWN.hardLimitOneEarly) assert.ok(accepted === hardLimit || accepted === hardLimit - 1, `accepted ${accepted}`);
        else assert.equal(accepted, hardLimit, `accepted ${accepted} emits (HWM ${hwm}, hardLimit ${hardLimit})`);
        assert.equal(run.buffered, accepted);
        // Whole messages (Rasa's synchronous utter_message) and closing events still pass.
        void run.emit({ type: 'message', message: { text: 'm' } });
        void run.emit({ type: 'result', events: [], responses: [] });
        run.emit({ type: 'run-end', reason: 'completed' });
        assert.equal(run.state, 'ended');
        assert.equal(reader.drain().length, accepted + 3);
      }),
      { numRuns: 200 },
    );
  });

  it('every resume point in the retained log replays exactly the suffix', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 2, max: 8 }), fc.nat(), async (n, logLimit, pick) => {
        const run = new Run({ highWaterMark: logLimit, logLimit });
        run.emit({ type: 'run-start', action: 'p', at: 0 });
        for (let i = 0; i < n; i++) run.emit({ type: 'status', text: String(i) });
        // Nobody reads: the log keeps between logLimit and 2×logLimit − 1 of the newest events.
        assert.ok(run.log.length >= Math.min(logLimit, n + 1) && run.log.length < 2 * logLimit);
        assert.equal(run.log.length + run.base, run.lastSeq);
        const after = run.base + (pick % (run.lastSeq - run.base + 1));
        const sub = run.subscribe({ after });
        void run.emit({ type: 'result', events: [], responses: [] });
        run.emit({ type: 'run-end', reason: 'completed' });
        const seqs: number[] = [];
        for await (const event of sub) seqs.push(event.seq);
        assert.deepEqual(seqs, Array.from({ length: run.lastSeq - after }, (_, i) => after + i + 1));
        if (run.base > 0) assert.throws(() => run.subscribe({ after: run.base - 1 }), { code: 'out_of_range' });
        assert.throws(() => run.subscribe({ after: run.lastSeq + 1 }), { code: 'invalid_argument' });
      }),
      { numRuns: 200 },
    );
  });

  it('option validation: bad marks and limits are refused with invalid_argument', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: -2, max: 20 })),
        fc.option(fc.integer({ min: -2, max: 20 })),
        fc.option(fc.integer({ min: -2, max: 40 })),
        fc.option(fc.integer({ min: -2, max: 80 })),
        (hwm, lwm, logLimit, hardLimit) => {
          const options = {
            ...(hwm === null ? {} : { highWaterMark: hwm }),
            ...(lwm === null ? {} : { lowWaterMark: lwm }),
            ...(logLimit === null ? {} : { logLimit }),
            ...(hardLimit === null ? {} : { hardLimit }),
          };
          const h = hwm ?? 256;
          // HWM ≥ 2 and LWM < HWM − 1: the producer waits at HWM − 1 (one slot for a cancel's stream-end).
          const valid =
            h >= 2 &&
            (lwm === null || (lwm >= 0 && lwm < h - 1)) &&
            (logLimit === null || (logLimit >= 1 && logLimit >= h)) &&
            (hardLimit === null || (hardLimit >= 1 && hardLimit >= h));
          if (valid) {
            const run = new Run(options);
            assert.equal(run.highWaterMark, h);
            assert.ok(run.lowWaterMark < run.highWaterMark - 1 && run.hardLimit >= h && run.logLimit >= h);
          } else assert.throws(() => new Run(options), { code: 'invalid_argument' });
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('regressions: Run bugs found by the properties', () => {
  it('bug I: a producer that ignores backpressure is stopped only once the lag would pass hardLimit', () => {
    const run = new Run({ highWaterMark: 2, hardLimit: 3 });
    run.subscribe(); // never reads
    const lags: number[] = [];
    let refused: unknown;
    try {
      for (let i = 0; i < 5; i++) {
        void run.emit({ type: 'chunk', responseId: 'r', text: 'x' });
        lags.push(run.buffered);
      }
    } catch (error) {
      refused = error;
    }
    // Documented: "stopped with resource_exhausted once the lag would pass this" → lags 1, 2, 3, then refused.
    assert.deepEqual(lags, [1, 2, 3], `lags before refusal ${JSON.stringify(lags)}; refused: ${String(refused)}`);
  });

  it('bug G: a cancel after the result was emitted keeps the result', async () => {
    const run = new Run({ highWaterMark: 16 });
    const sub = run.subscribe();
    run.emit({ type: 'run-start', action: 'p', at: 0 });
    assert.equal((await sub.next()).value?.type, 'run-start');
    run.emit({ type: 'result', events: [{ event: 'slot', name: 'x', value: 1 }], responses: [] });
    const accepted = run.cancel('stop'); // the outcome is already decided; today this returns true
    run.emit({ type: 'run-end', reason: accepted ? 'cancelled' : 'completed' });
    const rest: string[] = [];
    for await (const event of sub) rest.push(`${event.type}:${event.seq}`);
    // Before the fix: ["run-end:2"] — the result was dropped with the unread backlog.
    assert.deepEqual(rest, ['result:2', 'run-end:3']);
  });

  it('bug C: a reader subscribed after the last seq (a live tail) still gets the closing events of a cancelled run', async () => {
    const run = new Run({ highWaterMark: 16 });
    run.emit({ type: 'run-start', action: 'p', at: 0 });
    for (let i = 0; i < 5; i++) run.emit({ type: 'status', text: String(i) });
    const tail = run.subscribe({ after: run.lastSeq }); // "only what comes next": after 6
    run.cancel('stop'); // no reader was handed anything beyond seq 1 → lastSeq rewinds to 1
    void run.emit({ type: 'result', events: [], responses: [] });
    run.emit({ type: 'run-end', reason: 'cancelled' });
    const got: string[] = [];
    for await (const event of tail) got.push(`${event.type}:${event.seq}`);
    // Before the fix: [] — the tail reader's cursor (6) is beyond the new lastSeq (3); it ends without run-end.
    assert.deepEqual(
      got.map((g) => g.split(':')[0]),
      ['result', 'run-end'],
      JSON.stringify(got),
    );
  });

  it('bug C′: after the cancel rewound seq, a resumed reader is not handed a different event under a seq it was promised', async () => {
    const run = new Run({ highWaterMark: 16 });
    run.emit({ type: 'run-start', action: 'p', at: 0 });
    run.emit({ type: 'status', text: 'a' }); // 2
    run.emit({ type: 'status', text: 'b' }); // 3
    const sub = run.subscribe({ after: 2 }); // resumes: it claims to have seen 1..2
    run.cancel('stop'); // keeps only seq 1; lastSeq = 1
    void run.emit({ type: 'result', events: [], responses: [] }); // 2
    void run.emit({ type: 'stream-end', responseId: 'r', reason: 'cancelled' }); // 3
    run.emit({ type: 'run-end', reason: 'cancelled' }); // 4
    const got: string[] = [];
    for await (const event of sub) got.push(`${event.type}:${event.seq}`);
    // Before the fix: ["stream-end:3","run-end:4"] — seq 2 now names the result, which this reader never gets.
    assert.ok(got.some((g) => g.startsWith('result')), JSON.stringify(got));
  });
});
