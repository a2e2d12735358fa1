import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { ReplicaRun, type ReplicaSource } from '../../src/runtime/replica-run.ts';

const source: ReplicaSource = { requestCancel() {}, idle() {} };

function event(seq: number, type: 'chunk' | 'run-end' = 'chunk'): SluiceEvent {
  return (type === 'chunk'
    ? { type, responseId: 'r', text: `t${seq}`, runId: 'x', seq }
    : { type, reason: 'completed', runId: 'x', seq }) as SluiceEvent;
}

describe('ReplicaRun', () => {
  test('a resume after an event the copy has not read from the log yet waits for the events that follow it', async () => {
    const run = new ReplicaRun({ id: 'x', action: 'a' }, 0, source);
    run.feed(event(1));
    // The client read up to 3 from the producing instance; the log copy has only 1 so far.
    const sub = run.subscribe({ after: 3 });
    const next = sub.next();
    for (const seq of [2, 3, 4]) run.feed(event(seq));
    assert.equal(((await next).value as SluiceEvent).seq, 4);
    run.feed(event(5, 'run-end'));
    assert.equal(((await sub.next()).value as SluiceEvent).type, 'run-end');
    assert.equal((await sub.next()).done, true);
  });

  test('an ended copy still refuses a resume after its last event', () => {
    const run = new ReplicaRun({ id: 'x', action: 'a' }, 0, source);
    run.feed(event(1));
    run.feed(event(2, 'run-end'));
    assert.throws(() => run.subscribe({ after: 3 }), /has no event 3/);
  });
});
