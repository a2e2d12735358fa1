import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SentenceStream, segmentText } from '../../src/text/index.ts';
import type { SentenceStreamOptions } from '../../src/text/index.ts';
import { SENTENCE_CASES } from './sentence-cases.ts';

/** Pushes `deltas` one by one; returns what each push returned, then what flush returned. */
function feed(stream: SentenceStream, deltas: string[]): string[][] {
  const steps = deltas.map((d) => stream.push(d));
  steps.push(stream.flush());
  return steps;
}

function charByChar(text: string, options?: SentenceStreamOptions): string[] {
  return feed(new SentenceStream(options), [...text]).flat();
}

test('streaming one character at a time gives the same chunks as segmentText, for all 67 cases', () => {
  for (const c of SENTENCE_CASES) {
    assert.deepEqual(charByChar(c.input), segmentText(c.input), `case ${c.n}`);
    assert.deepEqual(charByChar(c.input, { mode: 'ace' }), segmentText(c.input, { mode: 'ace' }), `case ${c.n} (ace)`);
  }
});

test('holds the last sentence until a letter or digit follows its boundary', () => {
  const s = new SentenceStream();
  assert.deepEqual(s.push('Hello there.'), []);
  assert.deepEqual(s.push(' '), []);
  assert.deepEqual(s.push('  '), []);
  assert.equal(s.pending, 'Hello there.   ');
  assert.deepEqual(s.push('H'), ['Hello there.   ']);
  assert.equal(s.pending, 'H');
  assert.deepEqual(s.push('ow are you?'), []);
  assert.deepEqual(s.flush(), ['How are you?']);
  assert.equal(s.pending, '');
});

test('the lookahead decides: a lowercase word after the quote keeps the sentence together', () => {
  const s = new SentenceStream();
  assert.deepEqual(feed(s, ['"Are you coming?"', ' ', 's', 'he asked. ', 'Yes']), [[], [], [], [], ['"Are you coming?" she asked. '], ['Yes']]);
});

test('rules that compare the next word wait for the whole word', () => {
  const s = new SentenceStream();
  assert.deepEqual(s.push("I'll take option A. "), []);
  assert.deepEqual(s.push('I'), []);
  assert.deepEqual(s.push('s'), []);
  assert.deepEqual(s.push(' that okay?'), ["I'll take option A. "]);
  assert.deepEqual(s.flush(), ['Is that okay?']);

  const t = new SentenceStream();
  assert.deepEqual(t.push("It's Team A vs. "), []);
  assert.deepEqual(t.push('Team'), []);
  assert.deepEqual(t.push(' B tonight. '), []);
  assert.deepEqual(t.push('W'), ["It's Team A vs. Team B tonight. "]);
});

test('never emits a chunk of only punctuation or whitespace, also when streamed', () => {
  for (const text of ['Hello.\n\n...\n\nWorld.', 'Wait!\n!!!\n', '...\nHello', '  \n\nHi. ?! Ok', 'Done. …']) {
    const out = charByChar(text);
    assert.deepEqual(out, segmentText(text));
    assert.equal(out.join(''), text);
    for (const chunk of out) assert.match(chunk, /[\p{L}\p{N}]/u, JSON.stringify(out));
  }
  assert.deepEqual(charByChar('... !? \n'), []);
});

test('newlines are hard breaks, including CRLF and paragraph breaks', () => {
  assert.deepEqual(charByChar('Steps:\n1. Open the app\n2. Click login\n3. Done'), [
    'Steps:\n',
    '1. Open the app\n',
    '2. Click login\n',
    '3. Done',
  ]);
  assert.deepEqual(charByChar('first line\r\nsecond line\n\nthird'), ['first line\r\n', 'second line\n\n', 'third']);
  const s = new SentenceStream();
  assert.deepEqual(s.push('Thanks for asking\n'), []);
  assert.deepEqual(s.push('\nH'), ['Thanks for asking\n\n']);
});

test('CJK and other full-width terminators need no space', () => {
  const s = new SentenceStream();
  assert.deepEqual(s.push('你好。'), []);
  assert.deepEqual(s.push('今'), ['你好。']);
  assert.deepEqual(s.push('天天气很好！你想出去吗？'), ['今天天气很好！']);
  assert.deepEqual(s.flush(), ['你想出去吗？']);
  assert.deepEqual(charByChar('こんにちは。元気ですか？'), ['こんにちは。', '元気ですか？']);
  assert.deepEqual(charByChar('नमस्ते। आप कैसे हैं?'), ['नमस्ते। ', 'आप कैसे हैं?']);
});

test('minFirstLength joins short sentences into the first chunk only', () => {
  assert.deepEqual(segmentText('Hi! How are you? Fine. Ok.', { minFirstLength: 10 }), ['Hi! How are you? ', 'Fine. ', 'Ok.']);
  assert.deepEqual(segmentText('Hi!', { minFirstLength: 10 }), ['Hi!']);
  // Trailing whitespace does not count.
  assert.deepEqual(segmentText('Hello.     Yes.', { minFirstLength: 7 }), ['Hello.     Yes.']);
  assert.deepEqual(charByChar('Hi! How are you? Fine.', { minFirstLength: 10 }), ['Hi! How are you? ', 'Fine.']);
});

test('maxLength cuts run-on text at soft punctuation, then at a space, then hard', () => {
  const text =
    'This sentence keeps going and going, because the model forgot to stop, and it never ends with a period ' +
    'so the speaker would wait forever without a limit';
  const out = segmentText(text, { maxLength: 60 });
  assert.equal(out.join(''), text);
  for (const chunk of out) assert.ok(chunk.length <= 60, JSON.stringify(chunk));
  assert.deepEqual(out, [
    'This sentence keeps going and going, ',
    'because the model forgot to stop, ',
    'and it never ends with a period so the speaker would wait ',
    'forever without a limit',
  ]);
  assert.deepEqual(charByChar(text, { maxLength: 60 }), out);

  const token = 'x'.repeat(25);
  assert.deepEqual(segmentText(token, { maxLength: 10 }), ['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(5)]);
  // Sentences shorter than the limit are untouched.
  assert.deepEqual(segmentText('Short one. Another one.', { maxLength: 15 }), ['Short one. ', 'Another one.']);
  // The first chunk respects minFirstLength when cut.
  assert.deepEqual(segmentText('a b c d e f g h i j k l', { minFirstLength: 5, maxLength: 8 }), ['a b c d ', 'e f g h ', 'i j k l']);
});

test('stall flush: poll() emits pending text once the injected clock passes stallFlushMs', () => {
  let t = 0;
  const s = new SentenceStream({ stallFlushMs: 500, now: () => t });
  assert.equal(s.msUntilStallFlush(), undefined, 'nothing pending yet');
  assert.deepEqual(s.push('Hello there, my fri'), []);
  t = 400;
  assert.equal(s.msUntilStallFlush(), 100);
  assert.deepEqual(s.poll(), []);
  t = 500;
  assert.equal(s.msUntilStallFlush(), 0);
  assert.deepEqual(s.poll(), ['Hello there, my '], 'a trailing partial word is held back');
  t = 5000;
  assert.deepEqual(s.poll(), [], 'at most once per pause');
  assert.equal(s.msUntilStallFlush(), undefined);
  assert.deepEqual(s.push('end. How'), ['friend. ']);
  assert.deepEqual(s.flush(), ['How']);
});

test('stall flush of a finished sentence, and of text whose punctuation comes later', () => {
  let t = 0;
  const s = new SentenceStream({ stallFlushMs: 100, now: () => t });
  s.push('Hello.');
  t = 100;
  assert.deepEqual(s.poll(), ['Hello.']);
  // The space after the boundary cannot stand alone: it waits for the next sentence.
  assert.deepEqual(s.push(' Next'), []);
  assert.deepEqual(s.flush(), [' Next']);

  const u = new SentenceStream({ stallFlushMs: 100, now: () => t });
  t = 0;
  u.push('Hello');
  t = 200;
  assert.deepEqual(u.poll(), ['Hello']);
  u.push('.');
  assert.deepEqual(u.flush(), [], 'a lone "." after a stall flush has nothing to join, so it is dropped');
});

test('stall flush is off by default and after flush()', () => {
  const s = new SentenceStream();
  s.push('Hello');
  assert.equal(s.msUntilStallFlush(), undefined);
  assert.deepEqual(s.poll(), []);
  let t = 0;
  const u = new SentenceStream({ stallFlushMs: 10, now: () => t });
  u.push('Hello');
  u.flush();
  t = 100;
  assert.deepEqual(u.poll(), []);
});

test('reset() forgets everything; push after flush throws; flush is idempotent', () => {
  const s = new SentenceStream();
  s.push('Half a sent');
  s.reset();
  assert.equal(s.pending, '');
  assert.deepEqual(feed(s, ['New one. ', 'Second.']), [[], ['New one. '], ['Second.']]);
  assert.deepEqual(s.flush(), []);
  assert.throws(() => s.push('more'), /flushed/);
  s.reset();
  assert.deepEqual(s.push('Works again. A'), ['Works again. ']);
});

test('push() rejects non-strings and ignores empty deltas', () => {
  const s = new SentenceStream();
  assert.throws(() => s.push(42 as unknown as string), /delta must be a string/);
  assert.throws(() => s.push(undefined as unknown as string), /delta must be a string/);
  assert.deepEqual(s.push(''), []);
});

test('ace mode streams: a sentence is released once whitespace and one more character arrived', () => {
  const s = new SentenceStream({ mode: 'ace' });
  assert.deepEqual(s.push('Hello there.'), []);
  assert.deepEqual(s.push(' '), []);
  assert.deepEqual(s.push('H'), ['Hello there. ']);
  assert.deepEqual(s.flush(), ['H']);
});

test('a custom pattern streams like the whole text', () => {
  const re = /[.!?]+\s+/;
  const text = 'One!! Two?  Three... Four';
  assert.deepEqual(charByChar(text, { mode: re }), segmentText(text, { mode: re }));
  assert.deepEqual(segmentText(text, { mode: re }), ['One!! ', 'Two?  ', 'Three... ', 'Four']);
});

test('long sentences stream in linear time (no re-reading of the whole pending text)', () => {
  // Each input is one ~300 kB sentence full of candidate boundaries that all merge, the worst case for a
  // segmenter that re-reads its pending text. Quadratic behaviour takes minutes here; linear takes milliseconds.
  const inputs: [string, SentenceStreamOptions][] = [
    ['e.g. a '.repeat(40_000), {}],
    ['J. R. R. '.repeat(30_000), {}],
    ['a.b'.repeat(100_000), {}],
    ['word '.repeat(60_000), { mode: /[.!?]\s+/ }],
    ['word '.repeat(60_000), { mode: 'ace' }],
  ];
  for (const [text, options] of inputs) {
    const t0 = performance.now();
    const out = charByChar(text, options);
    const ms = performance.now() - t0;
    assert.equal(out.join(''), text);
    assert.ok(ms < 3000, `${JSON.stringify(text.slice(0, 9))}… took ${ms.toFixed(0)} ms`);
  }
});
