import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SluiceError } from '../../src/protocol/errors.ts';
import { isResponseId, newResponseId, newRunId } from '../../src/protocol/ids.ts';
import { parseActionCall, parseEvent } from '../../src/protocol/schemas.ts';

test('an action call keeps unknown fields (forward compatible)', () => {
  const call = parseActionCall({ next_action: 'a', tracker: { sender_id: 'u', future: 1 }, new_top_level: true });
  assert.equal((call as Record<string, unknown>).new_top_level, true);
  assert.equal((call.tracker as Record<string, unknown>).future, 1);
});

test('a malformed action call names every offending field', () => {
  assert.throws(
    () => parseActionCall({ next_action: 1, tracker: { sender_id: 2, events: 'x' } }),
    (e: unknown) =>
      SluiceError.isInstance(e) &&
      e.code === 'invalid_argument' &&
      /next_action/.test(e.message) &&
      /tracker\.sender_id/.test(e.message) &&
      /tracker\.events/.test(e.message),
  );
  assert.throws(() => parseActionCall([]), /must be a JSON object/);
  assert.throws(() => parseActionCall(null), /must be a JSON object/);
});

test('events from the wire are validated, unknown fields tolerated, unknown types refused', () => {
  const e = parseEvent({ type: 'chunk', runId: 'r', seq: 3, responseId: 'x', text: 'hi', extra: 1 });
  assert.equal(e.type, 'chunk');
  assert.throws(() => parseEvent({ type: 'pong', runId: 'r', seq: 1 }), /Invalid event/);
  assert.throws(() => parseEvent({ type: 'run-end', runId: 'r', seq: 0, reason: 'completed' }), /seq/);
  assert.throws(() => parseEvent({ type: 'run-end', runId: 'r', seq: 1, reason: 'bored' }), /reason/);
});

test('response ids are 32 lowercase hex characters, like uuid4().hex; run ids are UUIDs', () => {
  const ids = new Set(Array.from({ length: 100 }, newResponseId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.ok(isResponseId(id), id);
  assert.equal(isResponseId('ABC'), false);
  assert.match(newRunId(), /^[0-9a-f-]{36}$/);
});
