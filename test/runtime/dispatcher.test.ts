// The dispatcher rules of Rasa SDK 3.17 (reference/rasa-sdk.md §1c, their tests §1e 1–20, 29–33),
// then where Sluice goes further.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SluiceError } from '../../src/protocol/errors.ts';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { Dispatcher } from '../../src/runtime/dispatcher.ts';
import { Run } from '../../src/runtime/run.ts';

const buttons = [
  { title: 'Yes', payload: '/affirm' },
  { title: 'No', payload: '/deny' },
];

/** A dispatcher streaming into a run ("with a sink"), and the events it produced so far. */
function streaming(): { d: Dispatcher; run: Run; events: () => Array<Record<string, unknown>> } {
  const run = new Run({ action: 'test' });
  const d = new Dispatcher({ run });
  // Strip the run stamps so assertions read like Rasa's sink items.
  const events = (): Array<Record<string, unknown>> =>
    run.events().map((e: SluiceEvent) => {
      const { runId: _r, seq: _s, ...rest } = e;
      return rest;
    });
  return { d, run, events };
}

/** What a collecting dispatcher would replay: the chunks are visible once the stream ends. */
async function replayed(d: Dispatcher): Promise<Record<string, unknown>[]> {
  await d.streamEnd();
  return d.messages;
}

const message = (fields: Record<string, unknown>): Record<string, unknown> => ({
  text: null,
  buttons: [],
  elements: [],
  custom: {},
  template: null,
  response: null,
  image: null,
  attachment: null,
  ...fields,
});

describe('Dispatcher without a run (collects, Rasa’s non-streaming path)', () => {
  test('1. a chunk without a start is collected and replayed as exactly one message', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ text: 'Hello' });
    assert.deepEqual(await replayed(d), [message({ text: 'Hello' })]);
  });

  test('2. implicit start: inactive before the chunk, active after', async () => {
    const d = new Dispatcher();
    assert.equal(d.isStreamingActive, false);
    await d.streamChunk({ text: 'Hello' });
    assert.equal(d.isStreamingActive, true);
  });

  test('4. a rich chunk (image + buttons) carries no text key', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ image: 'https://example.com/a.png', buttons });
    const [m] = await replayed(d);
    assert.equal(m?.text, null);
    assert.equal(m?.image, 'https://example.com/a.png');
    assert.deepEqual(m?.buttons, buttons);
  });

  test('6. json is replayed as the message’s custom payload', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ json: { type: 'card' } });
    const messages = await replayed(d);
    assert.equal(messages.length, 1);
    assert.deepEqual(messages[0]?.custom, { type: 'card' });
  });

  test('7. text + buttons stay one message', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ text: 'Pick one', buttons });
    assert.deepEqual(await replayed(d), [message({ text: 'Pick one', buttons })]);
  });

  test('8. null/undefined fields are left out, an empty string is kept', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ text: '', image: null, buttons: null, elements: [] });
    assert.deepEqual(await replayed(d), [message({ text: '' })]);
  });

  test('extra keys survive the replay (Rasa merges kwargs)', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ text: 'x', extra_field: 42 });
    assert.deepEqual(await replayed(d), [message({ text: 'x', extra_field: 42 })]);
  });

  for (const key of ['template', 'response']) {
    test(`9. '${key}' in a chunk is an error naming the key`, () => {
      const d = new Dispatcher();
      assert.throws(
        () => d.streamChunk({ text: 'x', [key]: 'utter_greet' }),
        (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && e.message.includes(`'${key}'`),
      );
    });
  }

  test('10. both template and response: one error naming both', () => {
    const d = new Dispatcher();
    assert.throws(
      () => d.streamChunk({ template: 'a', response: 'b' }),
      (e: unknown) => SluiceError.isInstance(e) && e.message.includes("'template'") && e.message.includes("'response'"),
    );
  });

  test('the forbidden-key check runs even after a cancel', () => {
    const d = new Dispatcher();
    d.cancelStream();
    assert.throws(() => d.streamChunk({ response: 'x' }), /response/);
  });

  test('11. chunks are replayed in call order, one message each (never concatenated)', async () => {
    const d = new Dispatcher();
    for (const text of ['a', 'b', 'c']) await d.streamChunk({ text });
    assert.deepEqual(
      (await replayed(d)).map((m) => m.text),
      ['a', 'b', 'c'],
    );
  });

  test('12. a second start drops what was collected and stays active', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ text: 'dropped' });
    await d.streamStart();
    assert.equal(d.isStreamingActive, true);
    await d.streamChunk({ text: 'kept' });
    assert.deepEqual(
      (await replayed(d)).map((m) => m.text),
      ['kept'],
    );
  });

  test('13. stream end turns 2 chunks into 2 messages, keeping text and buttons', async () => {
    const d = new Dispatcher();
    await d.streamStart();
    await d.streamChunk({ text: 'Hello ' });
    await d.streamChunk({ text: 'Pick', buttons });
    await d.streamEnd();
    assert.deepEqual(d.messages, [message({ text: 'Hello ' }), message({ text: 'Pick', buttons })]);
  });

  test('14. isStreamingActive: false → true after start (no chunk needed) → false after end', async () => {
    const d = new Dispatcher();
    assert.equal(d.isStreamingActive, false);
    await d.streamStart();
    assert.equal(d.isStreamingActive, true);
    await d.streamChunk({ text: 'x' });
    assert.equal(d.isStreamingActive, true);
    await d.streamEnd();
    assert.equal(d.isStreamingActive, false);
  });

  test('15. start then end with no chunks adds no messages', async () => {
    const d = new Dispatcher();
    await d.streamStart();
    await d.streamEnd();
    assert.deepEqual(d.messages, []);
  });

  test('20. full lifecycle: one text message, one image message', async () => {
    const d = new Dispatcher();
    await d.streamStart();
    await d.streamChunk({ text: 'Hello' });
    await d.streamChunk({ image: 'https://example.com/i.png' });
    await d.streamEnd();
    assert.equal(d.messages.length, 2);
    assert.equal(d.messages[0]?.text, 'Hello');
    assert.equal(d.messages[1]?.image, 'https://example.com/i.png');
  });

  test('a second streamEnd adds nothing', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ text: 'x' });
    await d.streamEnd();
    await d.streamEnd();
    assert.equal(d.messages.length, 1);
  });

  test('utterMessage builds Rasa’s response dict, json → custom, extra keys kept', () => {
    const d = new Dispatcher();
    d.utterMessage({ text: 'hi', json: { a: 1 }, response: 'utter_hi', mood: 'happy' });
    assert.deepEqual(d.messages, [message({ text: 'hi', custom: { a: 1 }, response: 'utter_hi', mood: 'happy' })]);
  });

  test('29. cancelStream sets isStreamingCancelled', () => {
    const d = new Dispatcher();
    d.cancelStream();
    assert.equal(d.isStreamingCancelled, true);
  });

  test('30. a chunk after the cancel is dropped; the one before is kept', async () => {
    const d = new Dispatcher();
    await d.streamChunk({ text: 'before' });
    d.cancelStream();
    await d.streamChunk({ text: 'after' });
    assert.deepEqual(
      (await replayed(d)).map((m) => m.text),
      ['before'],
    );
  });

  test('33. a second start clears isStreamingCancelled', async () => {
    const d = new Dispatcher();
    d.cancelStream();
    await d.streamStart();
    assert.equal(d.isStreamingCancelled, false);
  });

  test('wrong types are refused with a message naming the field', () => {
    const d = new Dispatcher();
    assert.throws(() => d.streamChunk({ text: 42 as unknown as string }), /'text' must be a string/);
    assert.throws(() => d.streamChunk({ buttons: 'x' as unknown as [] }), /'buttons' must be an array/);
    assert.throws(() => d.streamChunk({ json: [] as unknown as Record<string, unknown> }), /'json' must be an object/);
    assert.throws(() => d.utterMessage({ text: {} as unknown as string }), /'text' must be a string/);
    assert.throws(() => d.streamChunk(null as unknown as { text: string }), /expected an object/);
  });

  test('reserved keys cannot be smuggled into a chunk', () => {
    const d = new Dispatcher();
    for (const key of ['type', 'runId', 'seq', 'responseId']) {
      assert.throws(() => d.streamChunk({ text: 'x', [key]: 'y' }), new RegExp(`'${key}' is reserved`));
    }
  });
});

describe('Dispatcher streaming into a run (“with a sink”)', () => {
  test('3. implicit start emits stream-start, then the chunk', async () => {
    const { d, events } = streaming();
    await d.streamChunk({ text: 'hi' });
    const [start, chunk] = events();
    assert.equal(start?.type, 'stream-start');
    assert.match(String(start?.responseId), /^[0-9a-f]{32}$/);
    assert.deepEqual(chunk, { type: 'chunk', responseId: start?.responseId, text: 'hi' });
  });

  test('5. json reaches the stream as custom', async () => {
    const { d, events } = streaming();
    await d.streamChunk({ json: { type: 'card' } });
    assert.deepEqual(events()[1]?.custom, { type: 'card' });
  });

  test('an empty json object is dropped, like a falsy dict in Rasa', async () => {
    const { d, events } = streaming();
    await d.streamChunk({ text: 'x', json: {} });
    assert.equal('custom' in (events()[1] ?? {}), false);
  });

  test('16. start emits exactly one stream-start', async () => {
    const { d, events } = streaming();
    await d.streamStart();
    assert.deepEqual(
      events().map((e) => e.type),
      ['stream-start'],
    );
  });

  test('17. a chunk is forwarded at once with exactly its fields', async () => {
    const { d, events } = streaming();
    await d.streamStart();
    await d.streamChunk({ text: 'Hi', image: 'https://example.com/x.png' });
    const [start, chunk] = events();
    assert.deepEqual(chunk, { type: 'chunk', responseId: start?.responseId, text: 'Hi', image: 'https://example.com/x.png' });
  });

  test('18. end emits stream-end(completed) and messages stay empty', async () => {
    const { d, events } = streaming();
    await d.streamChunk({ text: 'x' });
    await d.streamEnd();
    assert.deepEqual(events()[2], { type: 'stream-end', responseId: events()[0]?.responseId, reason: 'completed' });
    assert.deepEqual(d.messages, []);
  });

  test('19. full lifecycle: start, chunk, rich chunk, end — one responseId', async () => {
    const { d, events } = streaming();
    await d.streamStart();
    await d.streamChunk({ text: 'Hello ' });
    await d.streamChunk({ text: 'world', buttons });
    await d.streamEnd();
    const all = events();
    assert.deepEqual(
      all.map((e) => e.type),
      ['stream-start', 'chunk', 'chunk', 'stream-end'],
    );
    assert.equal(new Set(all.map((e) => e.responseId)).size, 1);
    assert.deepEqual(all[2]?.buttons, buttons);
  });

  test('31. a chunk after the cancel is not forwarded', async () => {
    const { d, events } = streaming();
    await d.streamStart();
    d.cancelStream();
    await d.streamChunk({ text: 'dropped' });
    assert.equal(
      events().filter((e) => e.type === 'chunk').length,
      0,
    );
  });

  test('32. cancel then end: the stream closes once (reason cancelled), messages stay empty', async () => {
    const { d, events } = streaming();
    await d.streamChunk({ text: 'x' });
    d.cancelStream();
    await d.streamEnd();
    const ends = events().filter((e) => e.type === 'stream-end');
    assert.deepEqual(
      ends.map((e) => e.reason),
      ['cancelled'],
    );
    assert.deepEqual(d.messages, []);
  });

  test('streamed chunks never reach messages; utterMessage goes to messages and is a live message event', async () => {
    const { d, events } = streaming();
    await d.streamChunk({ text: 'streamed' });
    d.utterMessage({ text: 'whole' });
    assert.deepEqual(
      d.messages.map((m) => m.text),
      ['whole'],
    );
    assert.deepEqual(events().at(-1), { type: 'message', message: message({ text: 'whole' }) });
  });

  test('a start while a stream is open supersedes it: the old one ends, the new one has a new id', async () => {
    const { d, events } = streaming();
    await d.streamChunk({ text: 'one' });
    await d.streamStart();
    await d.streamChunk({ text: 'two' });
    await d.streamEnd();
    const all = events();
    assert.deepEqual(
      all.map((e) => `${String(e.type)}${e.reason ? `:${String(e.reason)}` : ''}`),
      ['stream-start', 'chunk', 'stream-end:superseded', 'stream-start', 'chunk', 'stream-end:completed'],
    );
    assert.notEqual(all[0]?.responseId, all[3]?.responseId);
  });

  test('streamEnd with no open stream emits nothing (Rasa sends a ChunkEnd with an empty id)', async () => {
    const { d, events } = streaming();
    await d.streamEnd();
    await d.streamChunk({ text: 'x' });
    await d.streamEnd();
    await d.streamEnd();
    assert.deepEqual(
      events().map((e) => e.type),
      ['stream-start', 'chunk', 'stream-end'],
    );
  });

  test('status and tool events are emitted in order', async () => {
    const { d, events } = streaming();
    await d.status('Searching documents…');
    await d.toolStart('t1', 'search');
    await d.toolDelta('t1', '{"q":');
    await d.toolCall('t1', 'search', { q: 'x' });
    await d.toolResult('t1', 'search', { output: [1] });
    await d.toolResult('t2', 'search', { error: 'boom' });
    assert.deepEqual(events(), [
      { type: 'status', text: 'Searching documents…' },
      { type: 'tool-start', toolCallId: 't1', name: 'search' },
      { type: 'tool-delta', toolCallId: 't1', argsDelta: '{"q":' },
      { type: 'tool-call', toolCallId: 't1', name: 'search', args: { q: 'x' } },
      { type: 'tool-result', toolCallId: 't1', name: 'search', output: [1] },
      { type: 'tool-result', toolCallId: 't2', name: 'search', error: 'boom' },
    ]);
  });

  test('barge-in (the run is cancelled): the stream ends cancelled, the signal aborts, a restart does not undo it', async () => {
    const { d, run, events } = streaming();
    const sub = run.subscribe();
    await d.streamChunk({ text: 'heard' });
    await sub.next();
    await sub.next(); // the reader has seen the start and the first chunk
    await d.streamChunk({ text: 'never heard' });
    run.cancel('barge-in');
    assert.equal(d.signal.aborted, true);
    assert.equal(d.isStreamingCancelled, true);
    await d.streamEnd();
    await d.streamStart();
    await d.streamChunk({ text: 'after restart' });
    assert.equal(d.isStreamingCancelled, true);
    assert.deepEqual(
      events().map((e) => `${String(e.type)}:${String(e.text ?? e.reason ?? '')}`),
      ['stream-start:', 'chunk:heard', 'stream-end:cancelled'],
    );
  });

  test('a cancel that drops the unread stream-start emits no stream-end either', async () => {
    const { d, run, events } = streaming();
    run.emit({ type: 'run-start', action: 'test', at: 0 });
    run.subscribe(); // a reader that has read nothing
    await d.streamChunk({ text: 'unread' });
    run.cancel();
    await d.streamEnd();
    assert.deepEqual(
      events().map((e) => e.type),
      ['run-start'],
    );
  });

  test('calls after close() fail with failed_precondition naming the action and the call', async () => {
    const run = new Run({ action: 'late' });
    const d = new Dispatcher({ run });
    d.close();
    assert.throws(
      () => d.streamChunk({ text: 'x' }),
      (e: unknown) => SluiceError.isInstance(e) && e.code === 'failed_precondition' && /'late' called streamChunk\(\)/.test(e.message),
    );
    assert.throws(() => d.utterMessage({ text: 'x' }), /utterMessage\(\) after its run ended/);
  });
});
