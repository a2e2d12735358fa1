import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SluiceError } from '../../src/protocol/errors.ts';
import { SentenceStream, segmentText } from '../../src/text/index.ts';

type AnyOptions = Record<string, unknown>;
const make = (options: unknown) => () => new SentenceStream(options as AnyOptions);

/** Asserts that `fn` throws `invalid_argument` with a message naming `option`, and returns the message. */
function rejects(fn: () => unknown, _kind: 'type' | 'range', option: string): string {
  let message = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(SluiceError.isInstance(e) && e.code === 'invalid_argument', `expected invalid_argument, got ${String(e)}`);
    message = e.message;
    assert.ok(message.includes(`'${option}'`), `message should name '${option}': ${message}`);
    return true;
  });
  return message;
}

test('maxLength must not be below minFirstLength, with a message giving both values', () => {
  const m = rejects(make({ minFirstLength: 20, maxLength: 5 }), 'range', 'maxLength');
  assert.equal(m, "SentenceStream: option 'maxLength' must be ≥ minFirstLength (got 5 < 20)");
  assert.doesNotThrow(make({ minFirstLength: 20, maxLength: 20 }));
});

test('lengths must be non-negative integers (maxLength ≥ 1)', () => {
  rejects(make({ minFirstLength: -1 }), 'range', 'minFirstLength');
  rejects(make({ minFirstLength: 2.5 }), 'range', 'minFirstLength');
  rejects(make({ minFirstLength: Infinity }), 'range', 'minFirstLength');
  rejects(make({ minFirstLength: Number.NaN }), 'type', 'minFirstLength');
  rejects(make({ minFirstLength: '20' }), 'type', 'minFirstLength');
  rejects(make({ maxLength: 0 }), 'range', 'maxLength');
  rejects(make({ maxLength: -10 }), 'range', 'maxLength');
  rejects(make({ maxLength: 7.5 }), 'range', 'maxLength');
  rejects(make({ maxLength: null }), 'type', 'maxLength');
  assert.doesNotThrow(make({ minFirstLength: 0, maxLength: Infinity }));
});

test('mode must be default, ace or a RegExp', () => {
  rejects(make({ mode: 'icu' }), 'type', 'mode');
  rejects(make({ mode: 42 }), 'type', 'mode');
  rejects(make({ mode: '[.!?]\\s' }), 'type', 'mode');
  rejects(make({ mode: { source: '.' } }), 'type', 'mode');
  assert.doesNotThrow(make({ mode: 'ace' }));
  assert.doesNotThrow(make({ mode: /[.!?]\s+/u }));
});

test('a custom pattern that can match the empty string is rejected', () => {
  for (const re of [/x*/, /(?<=\.)/, /\b/, /$/m, /(?:)/, /\s*/g, /(?=[A-Z])/]) {
    const m = rejects(make({ mode: re }), 'range', 'mode');
    assert.match(m, /empty string/);
  }
});

test('locale must be a valid language tag', () => {
  rejects(make({ locale: 'not a locale!' }), 'range', 'locale');
  rejects(make({ locale: 5 }), 'type', 'locale');
  assert.doesNotThrow(make({ locale: 'de-DE' }));
});

test('stallFlushMs must be a positive number and now a function', () => {
  rejects(make({ stallFlushMs: 0 }), 'range', 'stallFlushMs');
  rejects(make({ stallFlushMs: -5 }), 'range', 'stallFlushMs');
  rejects(make({ stallFlushMs: Number.NaN }), 'type', 'stallFlushMs');
  rejects(make({ stallFlushMs: '100' }), 'type', 'stallFlushMs');
  rejects(make({ now: 'Date.now' }), 'type', 'now');
  assert.doesNotThrow(make({ stallFlushMs: 250, now: () => 0 }));
});

test('unknown options are rejected by name (typos do not pass silently)', () => {
  const m = rejects(make({ maxLenght: 5 }), 'type', 'maxLenght');
  assert.match(m, /unknown option/);
  // Stream-only options make no sense for a whole text.
  rejects(() => segmentText('Hi.', { stallFlushMs: 100 } as AnyOptions), 'type', 'stallFlushMs');
});

test('segmentText validates its options and its text, naming itself', () => {
  const m = rejects(() => segmentText('Hi.', { maxLength: -1 }), 'range', 'maxLength');
  assert.match(m, /^segmentText: /);
  assert.throws(() => segmentText(undefined as unknown as string), /segmentText: text must be a string/);
  assert.throws(() => segmentText('Hi.', 'ace' as unknown as AnyOptions), /options must be an object/);
  assert.throws(make(null), /options must be an object/);
  assert.throws(make([]), /options must be an object/);
  assert.doesNotThrow(make(undefined));
});
