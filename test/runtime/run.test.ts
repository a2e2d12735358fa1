import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SluiceError } from '../../src/protocol/errors.ts';
import type { EventInput, SluiceEvent } from '../../src/protocol/events.ts';
import { Run } from '../../src/runtime/run.ts';

const chunk = (text: string): EventInput => ({ type: 'chunk', responseId: 'r', text });

function finish(run: Run): void {
  run.emit({ type: 'result', events: [], responses: [] });
  run.emit({ type: 'run-end', reason: 'completed' });
}

/** The first `n` events of a subscription, leaving it open. */
async function* take(sub: AsyncIterator<SluiceEvent>, n: number): AsyncGenerator<SluiceEvent> {
  for (let i = 0; i < n; i++) {
    const r = await sub.next();
    if (r.done === true) return;
    yield r.value;
  }
}

async function collect(iterable: AsyncIterable<SluiceEvent>): Promise<SluiceEvent[]> {
  const out: SluiceEvent[] = [];
  for await (const e of iterable) out.push(e);
  return out;
}

describe('Run', () => {
  test('stamps runId and a gap-free seq starting at 1', () => {
    const run = new Run({ id: 'r1' });
    run.emit({ type: 'run-start', action: 'a', at: 1 });
    run.emit(chunk('x'));
    finish(run);
    assert.deepEqual(
      run.events().map((e) => [e.runId, e.seq]),
      [
        ['r1', 1],
        ['r1', 2],
        ['r1', 3],
        ['r1', 4],
      ],
    );
  });

  test('any number of subscribers each get every event, live', async () => {
    const run = new Run();
    const a = collect(run.subscribe());
    const b = collect(run.subscribe());
    run.emit(chunk('1'));
    await new Promise((r) => setImmediate(r));
    run.emit(chunk('2'));
    finish(run);
    const [ea, eb] = await Promise.all([a, b]);
    assert.deepEqual(
      ea.map((e) => e.seq),
      [1, 2, 3, 4],
    );
    assert.deepEqual(ea, eb);
  });

  test('a subscriber can start after a seq: replay from the log, then live', async () => {
    const run = new Run();
    for (let i = 0; i < 5; i++) run.emit(chunk(String(i)));
    const late = collect(run.subscribe({ after: 3 }));
    run.emit(chunk('live'));
    finish(run);
    assert.deepEqual(
      (await late).map((e) => e.seq),
      [4, 5, 6, 7, 8],
    );
  });

  test('subscribing after the end replays the tail and finishes', async () => {
    const run = new Run();
    run.emit(chunk('a'));
    finish(run);
    assert.deepEqual(
      (await collect(run.subscribe({ after: 1 }))).map((e) => e.type),
      ['result', 'run-end'],
    );
    assert.deepEqual(await collect(run.subscribe({ after: 3 })), []);
  });

  test('a bad or unknown `after` is refused; a trimmed one is out_of_range', () => {
    const run = new Run({ highWaterMark: 2, logLimit: 4 });
    for (let i = 0; i < 10; i++) run.emit(chunk(String(i)));
    assert.throws(() => run.subscribe({ after: -1 }), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument');
    assert.throws(() => run.subscribe({ after: 11 }), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument');
    assert.throws(() => run.subscribe({ after: 0 }), (e: unknown) => SluiceError.isInstance(e) && e.code === 'out_of_range');
  });

  test('the log keeps at most about twice logLimit events when nobody reads', () => {
    const run = new Run({ highWaterMark: 4, logLimit: 8 });
    for (let i = 0; i < 1000; i++) run.emit(chunk(String(i)));
    assert.ok(run.log.length < 16, `log holds ${run.log.length}`);
    assert.equal(run.lastSeq, 1000);
  });

  test('emitChunk is emit of a chunk: same events, backpressure, trimming, and nothing after a cancel or the end', async () => {
    const a = new Run({ id: 'same', highWaterMark: 4, logLimit: 4 });
    const b = new Run({ id: 'same', highWaterMark: 4, logLimit: 4 });
    const subA = a.subscribe();
    const subB = b.subscribe();
    const waits: [boolean, boolean][] = [];
    for (let i = 0; i < 6; i++) waits.push([a.emit(chunk(String(i))) !== undefined, b.emitChunk('r', String(i)) !== undefined]);
    assert.deepEqual(
      waits.map(([x]) => x),
      waits.map(([, y]) => y),
      'the producer is held back at the same point',
    );
    assert.ok(waits.some(([x]) => x), 'a lagging reader holds the producer');
    finish(a);
    finish(b);
    assert.deepEqual(await collect(subB), await collect(subA));

    const trimmed = new Run({ highWaterMark: 4, logLimit: 4 });
    for (let i = 0; i < 100; i++) trimmed.emitChunk('r', String(i));
    assert.ok(trimmed.log.length < 8 && trimmed.lastSeq === 100);

    const cancelled = new Run();
    cancelled.emitChunk('r', 'kept');
    cancelled.cancel('stop');
    assert.equal(cancelled.emitChunk('r', 'dropped'), undefined);
    finish(cancelled);
    assert.deepEqual(
      cancelled.events().flatMap((e) => (e.type === 'chunk' ? [e.text] : [])),
      ['kept'],
    );
    assert.throws(() => cancelled.emitChunk('r', 'late'), (e: unknown) => SluiceError.isInstance(e) && e.code === 'failed_precondition');
  });

  test('chunks emitted while nobody reads are the same events for a late reader, a resume and a late barge-in (two streams)', async () => {
    const script = (run: Run, chunkOf: (run: Run, responseId: string, text: string) => void): void => {
      run.emit({ type: 'run-start', action: 'a', at: 1 });
      for (const responseId of ['s1', 's2']) {
        run.emit({ type: 'stream-start', responseId });
        for (let i = 0; i < 5; i++) chunkOf(run, responseId, `${responseId}-${i}`);
        run.emit({ type: 'stream-end', responseId, reason: 'completed' });
      }
      run.emit({ type: 'result', events: [], responses: [] });
    };
    const viaEmit = (run: Run, responseId: string, text: string): void => void run.emit({ type: 'chunk', responseId, text });
    const viaChunk = (run: Run, responseId: string, text: string): void => void run.emitChunk(responseId, text);

    const a = new Run({ id: 'x' });
    const b = new Run({ id: 'x' });
    script(a, viaEmit);
    script(b, viaChunk);
    assert.ok(b.log.some((entry) => typeof entry === 'string'), 'kept as bare text while nobody read');
    assert.deepEqual(
      (await collect(take(b.subscribe({ after: 9 }), 3))).map((e) => [e.seq, e.type, e.type === 'chunk' ? e.responseId : '']),
      [
        [10, 'chunk', 's2'],
        [11, 'chunk', 's2'],
        [12, 'chunk', 's2'],
      ],
    );
    assert.deepEqual(b.events(), a.events());

    // A late barge-in drops the unread chunks, whatever form they are kept in.
    const c = new Run({ id: 'y' });
    const d = new Run({ id: 'y' });
    script(c, viaEmit);
    script(d, viaChunk);
    const readC = c.subscribe();
    const readD = d.subscribe();
    const firstC = await collect(take(readC, 4));
    const firstD = await collect(take(readD, 4));
    assert.deepEqual(firstD, firstC);
    assert.equal(c.cancelDelivery('barge_in'), true);
    assert.equal(d.cancelDelivery('barge_in'), true);
    c.emit({ type: 'run-end', reason: 'completed' });
    d.emit({ type: 'run-end', reason: 'completed' });
    assert.deepEqual(await collect(readD), await collect(readC));
    assert.deepEqual(d.events(), c.events());
  });

  test('exactly one result and one run-end; nothing after run-end', () => {
    const run = new Run();
    run.emit({ type: 'result', events: [], responses: [] });
    assert.throws(() => run.emit({ type: 'result', events: [], responses: [] }), /already has a result/);
    assert.throws(() => run.emit({ type: 'error', code: 'internal', message: 'x' }), /already has a result/);
    run.emit({ type: 'run-end', reason: 'completed' });
    assert.throws(() => run.emit(chunk('late')), (e: unknown) => SluiceError.isInstance(e) && e.code === 'failed_precondition');
    assert.equal(run.state, 'ended');
  });

  test('run-end without a result or an error is refused', () => {
    assert.throws(() => new Run().emit({ type: 'run-end', reason: 'completed' }), /needs a 'result' or an 'error'/);
  });

  test('a producer ahead of its slowest subscriber by the high-water mark awaits (one slot kept for a cancel)', async () => {
    const run = new Run({ highWaterMark: 4 });
    const sub = run.subscribe();
    let waits = 0;
    for (let i = 0; i < 2; i++) assert.equal(run.emit(chunk(String(i))), undefined);
    const wait = run.emit(chunk('2'));
    assert.ok(wait instanceof Promise);
    waits++;
    let released = false;
    void wait.then(() => (released = true));
    await sub.next();
    await new Promise((r) => setImmediate(r));
    assert.equal(released, false, 'released before reaching the low-water mark');
    await sub.next();
    await new Promise((r) => setImmediate(r));
    assert.equal(released, true);
    assert.equal(waits, 1);
  });

  test('without subscribers nothing waits', () => {
    const run = new Run({ highWaterMark: 2 });
    for (let i = 0; i < 10; i++) assert.equal(run.emit(chunk(String(i))), undefined);
  });

  test('a producer that ignores backpressure is stopped with resource_exhausted at the hard limit', () => {
    const run = new Run({ highWaterMark: 2, hardLimit: 4 });
    run.subscribe();
    assert.throws(
      () => {
        for (let i = 0; i < 10; i++) run.emit(chunk(String(i)));
      },
      (e: unknown) => SluiceError.isInstance(e) && e.code === 'resource_exhausted' && /await/.test(e.message),
    );
    assert.ok(run.buffered <= 4);
  });

  test('unsubscribing a reader is not a cancel, and frees a waiting producer', async () => {
    const run = new Run({ highWaterMark: 2 });
    const sub = run.subscribe();
    run.emit(chunk('a'));
    const wait = run.emit(chunk('b'));
    assert.ok(wait);
    sub.unsubscribe();
    await wait;
    assert.equal(run.signal.aborted, false);
    assert.equal(run.isCancelled, false);
    assert.deepEqual(await sub.next(), { value: undefined, done: true });
  });

  test('leaving a for-await loop early unsubscribes that reader only', async () => {
    const run = new Run();
    const other = run.subscribe();
    run.emit(chunk('a'));
    run.emit(chunk('b'));
    for await (const _ of run.subscribe()) break;
    assert.equal(run.subscribers.size, 1);
    assert.equal((await other.next()).value?.seq, 1);
  });

  test('a subscription signal detaches the reader', async () => {
    const run = new Run();
    const controller = new AbortController();
    const sub = run.subscribe({ signal: controller.signal });
    const pending = sub.next();
    controller.abort();
    assert.deepEqual(await pending, { value: undefined, done: true });
    assert.equal(run.isCancelled, false);
  });

  test('cancel aborts the signal, drops the unread backlog in O(1), keeps seq gap-free', async () => {
    const run = new Run({ highWaterMark: 100_000 });
    const sub = run.subscribe();
    run.emit({ type: 'run-start', action: 'a', at: 0 });
    for (let i = 0; i < 50_000; i++) run.emit(chunk(String(i)));
    await sub.next();
    await sub.next(); // read through seq 2
    const t = performance.now();
    assert.equal(run.cancel('stop'), true);
    const elapsed = performance.now() - t;
    assert.ok(elapsed < 5, `cancel took ${elapsed} ms`);
    assert.equal(run.signal.aborted, true);
    assert.equal(run.lastSeq, 2);
    assert.equal(run.cancel('again'), false);
    assert.equal(run.emit(chunk('dropped after cancel')), undefined);
    finish(run);
    const rest = await collect(sub);
    assert.deepEqual(
      rest.map((e) => [e.seq, e.type]),
      [
        [3, 'result'],
        [4, 'run-end'],
      ],
    );
    assert.equal(run.cancelReason?.code, 'cancelled');
  });

  test('cancel keeps what any reader has already been handed', async () => {
    const run = new Run();
    const fast = run.subscribe();
    const slow = run.subscribe();
    for (let i = 0; i < 6; i++) run.emit(chunk(String(i)));
    for (let i = 0; i < 4; i++) await fast.next();
    run.cancel();
    finish(run);
    assert.deepEqual(
      (await collect(slow)).map((e) => e.seq),
      [1, 2, 3, 4, 5, 6],
    );
  });

  test('a parent signal cancels the run', async () => {
    const parent = new AbortController();
    const run = new Run({ signal: parent.signal });
    parent.abort(new Error('client left'));
    assert.equal(run.isCancelled, true);
    const already = new Run({ signal: AbortSignal.abort() });
    await Promise.resolve();
    assert.equal(already.isCancelled, true);
  });

  test('invalid options are refused with the option named', () => {
    assert.throws(() => new Run({ highWaterMark: 0 }), /'highWaterMark'/);
    assert.throws(() => new Run({ highWaterMark: 1 }), /'highWaterMark' must be at least 2/);
    assert.throws(() => new Run({ highWaterMark: 4, lowWaterMark: 3 }), /'lowWaterMark'/);
    assert.throws(() => new Run({ highWaterMark: 8, logLimit: 4 }), /'logLimit'/);
    assert.throws(() => new Run({ highWaterMark: 8, hardLimit: 4 }), /'hardLimit'/);
  });

  test('done resolves with the run-end event', async () => {
    const run = new Run();
    finish(run);
    assert.deepEqual((await run.done).reason, 'completed');
    assert.equal(run.endReason, 'completed');
  });

  test('drain() hands over every available event at once', () => {
    const run = new Run();
    const sub = run.subscribe();
    for (let i = 0; i < 3; i++) run.emit(chunk(String(i)));
    assert.deepEqual(
      sub.drain().map((e) => e.seq),
      [1, 2, 3],
    );
    assert.deepEqual(sub.drain(), []);
  });
});

describe('Run.cancelDelivery (barge-in after the result)', () => {
  /** A run whose action finished a stream of `n` chunks and its result before anyone read much. */
  function finishedRun(n: number): Run {
    const run = new Run({ id: 'late', highWaterMark: 64 });
    run.emit({ type: 'run-start', action: 'a', at: 1 });
    run.emit({ type: 'stream-start', responseId: 'r' });
    for (let i = 0; i < n; i++) run.emit(chunk(`c${i}`));
    run.emit({ type: 'stream-end', responseId: 'r', reason: 'completed' });
    run.emit({ type: 'result', events: [{ event: 'slot', name: 's', value: 1 }], responses: [] });
    run.emit({ type: 'run-end', reason: 'completed' });
    return run;
  }

  const shape = (events: SluiceEvent[]): string[] =>
    events.map((e) => `${e.seq}:${e.type}${e.type === 'stream-end' || e.type === 'run-end' ? `:${e.reason}` : ''}`);

  test('drops the unread chunks, ends the seen stream as cancelled, keeps the result, renumbers', async () => {
    const run = finishedRun(5);
    const sub = run.subscribe();
    const seen = [await sub.next(), await sub.next(), await sub.next()].map((r) => r.value as SluiceEvent);
    const outcome = run.events().find((e) => e.type === 'result');
    assert.equal(run.cancelDelivery(new SluiceError('cancelled', 'barge-in')), true);
    const rest = await collect(sub);
    assert.deepEqual(shape([...seen, ...rest]), ['1:run-start', '2:stream-start', '3:chunk', '4:stream-end:cancelled', '5:result', '6:run-end:cancelled']);
    assert.equal(rest[1], outcome, 'the result is the same event, renumbered');
    assert.equal(rest[0]?.runId, 'late');
    assert.equal(run.endReason, 'cancelled');
    assert.equal(run.keptThrough, 3);
    assert.equal(run.signal.aborted, true);
    assert.equal((await run.done).reason, 'cancelled');
    // A reader that resumes from the start sees the rewritten log, gap-free.
    assert.deepEqual(shape(await collect(run.subscribe())), shape([...seen, ...rest]));
  });

  test('a stream that started unread goes whole, with its end', async () => {
    const run = finishedRun(3);
    const sub = run.subscribe();
    await sub.next(); // run-start only
    assert.equal(run.cancelDelivery('stop'), true);
    assert.deepEqual(shape(await collect(sub)), ['2:result', '3:run-end:cancelled']);
  });

  test('refuses when nothing is left to stop, or twice', async () => {
    const run = finishedRun(2);
    const all = await collect(run.subscribe());
    assert.equal(run.cancelDelivery('late'), false, 'everything was delivered');
    assert.equal(all.at(-1)?.type, 'run-end');
    assert.equal(run.endReason, 'completed');

    const other = finishedRun(2);
    const sub = other.subscribe();
    for (let i = 0; i < 5; i++) await sub.next(); // through stream-end: only the result is unread
    assert.equal(other.cancelDelivery('late'), false, 'only the result and run-end are unread');
    const again = finishedRun(2);
    again.subscribe();
    assert.equal(again.cancelDelivery('one'), true);
    assert.equal(again.cancelDelivery('two'), false);
  });

  test('an error end stays an error end', async () => {
    const run = new Run();
    run.emit({ type: 'run-start', action: 'a', at: 1 });
    run.emit({ type: 'stream-start', responseId: 'r' });
    run.emit(chunk('a'));
    run.emit(chunk('b'));
    run.emit({ type: 'stream-end', responseId: 'r', reason: 'error' });
    run.emit({ type: 'error', code: 'internal', message: 'boom' });
    run.emit({ type: 'run-end', reason: 'error' });
    const sub = run.subscribe({ after: 3 });
    assert.equal(run.cancelDelivery('stop'), true);
    assert.deepEqual(shape(await collect(sub)), ['4:stream-end:cancelled', '5:error', '6:run-end:error']);
  });

  test('between the result and run-end, the coming run-end is a cancelled one', async () => {
    const run = new Run();
    run.emit({ type: 'run-start', action: 'a', at: 1 });
    run.emit({ type: 'stream-start', responseId: 'r' });
    run.emit(chunk('a'));
    run.emit({ type: 'stream-end', responseId: 'r', reason: 'completed' });
    run.emit({ type: 'result', events: [], responses: [] });
    const sub = run.subscribe({ after: 2 });
    assert.equal(run.cancel('plain cancel refuses'), false);
    assert.equal(run.cancelDelivery('late'), true);
    run.emit({ type: 'run-end', reason: 'completed' });
    assert.deepEqual(shape(await collect(sub)), ['3:stream-end:cancelled', '4:result', '5:run-end:cancelled']);
  });

  test('before the result it is a plain cancel', () => {
    const run = new Run();
    run.emit({ type: 'run-start', action: 'a', at: 1 });
    run.subscribe();
    assert.equal(run.cancelDelivery('stop'), true);
    assert.equal(run.state, 'cancelled');
  });

  test('whenRead fires once the ended run has been read, or its last reader left', async () => {
    const run = finishedRun(2);
    const calls: string[] = [];
    const sub = run.subscribe();
    run.whenRead(() => calls.push('read'));
    await sub.next();
    assert.equal(calls.length, 0);
    await collect(sub);
    assert.deepEqual(calls, ['read']);
    run.whenRead(() => calls.push('at once'));
    assert.deepEqual(calls, ['read', 'at once']);

    const left = finishedRun(2);
    const reader = left.subscribe();
    await reader.next();
    left.whenRead(() => calls.push('left'));
    reader.unsubscribe();
    assert.deepEqual(calls, ['read', 'at once', 'left']);
  });
});

describe('Run: a trailing subscriber (the shared log’s copier)', () => {
  test('takes only what another reader has been handed; alone, everything; a leader leaving frees it', async () => {
    const run = new Run({ id: 't', highWaterMark: 64 });
    const trailing = run.subscribe({ trailing: true });
    const leader = run.subscribe();
    for (let i = 0; i < 5; i++) run.emit(chunk(`c${i}`));
    assert.deepEqual(trailing.drain(), [], 'nothing handed to the leader yet');
    await leader.next();
    await leader.next();
    assert.deepEqual(trailing.drain().map((e) => e.seq), [1, 2]);
    const waiting = trailing.next();
    await leader.next();
    assert.equal(((await waiting).value as SluiceEvent).seq, 3, 'woken when the leader advanced');
    leader.unsubscribe();
    assert.deepEqual(trailing.drain().map((e) => e.seq), [4, 5], 'the only reader left: everything');
    const alone = new Run({ id: 'alone' });
    const copier = alone.subscribe({ trailing: true });
    alone.emit(chunk('x'));
    assert.equal(((await copier.next()).value as SluiceEvent).seq, 1);
  });

  test('after the run ended it waits for the leader to read the tail, then ends', async () => {
    const run = new Run({ id: 'end', highWaterMark: 64 });
    const trailing = run.subscribe({ trailing: true });
    const leader = run.subscribe();
    run.emit(chunk('a'));
    finish(run);
    let ended = false;
    const copied = collect(trailing).then((events) => {
      ended = true;
      return events;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(ended, false, 'the leader has read nothing: the copier waits');
    const read = await collect(leader);
    assert.deepEqual((await copied).map((e) => e.seq), read.map((e) => e.seq));
  });

  test('a late barge-in cuts what the leader has not read, and the copier copies the cut log, gap-free', async () => {
    const run = new Run({ id: 'late', highWaterMark: 64 });
    const trailing = run.subscribe({ trailing: true });
    const leader = run.subscribe();
    run.emit({ type: 'run-start', action: 'a', at: 1 });
    run.emit({ type: 'stream-start', responseId: 'r' });
    for (let i = 0; i < 10; i++) run.emit(chunk(`c${i}`));
    run.emit({ type: 'stream-end', responseId: 'r', reason: 'completed' });
    run.emit({ type: 'result', events: [], responses: [] });
    run.emit({ type: 'run-end', reason: 'completed' });
    const seen = [await leader.next(), await leader.next(), await leader.next()].map((r) => r.value as SluiceEvent);
    assert.equal(run.cancelDelivery('barge-in'), true);
    const rest = await collect(leader);
    const copy = await collect(trailing);
    const shape = (events: SluiceEvent[]) => events.map((e) => `${e.seq}:${e.type}`);
    assert.deepEqual(shape(copy), shape([...seen, ...rest]));
    assert.deepEqual(shape(rest), ['4:stream-end', '5:result', '6:run-end']);
  });
});
