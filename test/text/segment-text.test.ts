import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { segmentText } from '../../src/text/index.ts';
import { SENTENCE_CASES } from './sentence-cases.ts';

const SPEAKABLE = /[\p{L}\p{N}]/u;
const trimmed = (chunks: string[]): string[] => chunks.map((c) => c.trim());

// The expected sentences are trimmed; the chunks keep their whitespace (checked separately below).
for (const c of SENTENCE_CASES) {
  test(`case ${c.n}: ${JSON.stringify(c.input)}`, () => {
    assert.deepEqual(trimmed(segmentText(c.input)), c.sentences);
  });
}

test('every case joins back to its input exactly (or yields nothing when it has no letter or digit)', () => {
  for (const c of SENTENCE_CASES) {
    const out = segmentText(c.input);
    if (SPEAKABLE.test(c.input)) assert.equal(out.join(''), c.input, `case ${c.n}`);
    else assert.deepEqual(out, [], `case ${c.n}`);
  }
});

test('whitespace after a sentence stays with it; leading whitespace goes to the first sentence', () => {
  assert.deepEqual(segmentText('  Hello there.   How are you?\n'), ['  Hello there.   ', 'How are you?\n']);
  assert.deepEqual(segmentText('First.\n\nSecond.'), ['First.\n\n', 'Second.']);
  assert.deepEqual(segmentText('你好。今天天气很好！'), ['你好。', '今天天气很好！']);
});

test('general English beyond the fixture', () => {
  const expect = (input: string, sentences: string[]) => assert.deepEqual(trimmed(segmentText(input)), sentences, input);
  expect('Martin Luther King Jr. was a leader. He spoke well.', ['Martin Luther King Jr. was a leader.', 'He spoke well.']);
  expect('Roe v. Wade was decided in 1973. It was a landmark case.', ['Roe v. Wade was decided in 1973.', 'It was a landmark case.']);
  expect('Use a language, e.g. Python, for this. It helps.', ['Use a language, e.g. Python, for this.', 'It helps.']);
  expect('The meeting is on Sat. Jan. 4 at noon. Be there.', ['The meeting is on Sat. Jan. 4 at noon.', 'Be there.']);
  expect('Written by J. K. Rowling. It sold well.', ['Written by J. K. Rowling.', 'It sold well.']);
  expect('Plan B. It works.', ['Plan B.', 'It works.']);
  expect('She lives on Baker St. The house is old.', ['She lives on Baker St.', 'The house is old.']);
  expect('This is **important.** Read it again.', ['This is **important.**', 'Read it again.']);
  expect('Prices rose 5.5%. Analysts expected 4%.', ['Prices rose 5.5%.', 'Analysts expected 4%.']);
  expect('Wait… What happened? Nothing.', ['Wait…', 'What happened?', 'Nothing.']);
  expect('See pp. 10-12 for details. Thanks.', ['See pp. 10-12 for details.', 'Thanks.']);
  expect('He was born ca. 1900 in Paris. He died in 1980.', ['He was born ca. 1900 in Paris.', 'He died in 1980.']);
  expect('Go to example.com. It has info.', ['Go to example.com.', 'It has info.']);
});

test('a chunk is never only punctuation or whitespace', () => {
  assert.deepEqual(segmentText('Hello.\n\n...\n\nWorld.'), ['Hello.\n\n...\n\n', 'World.']);
  assert.deepEqual(segmentText('Wait!\n!!!\n'), ['Wait!\n!!!\n']);
  assert.deepEqual(segmentText('...\nHello'), ['...\nHello']);
  assert.deepEqual(segmentText('Line one\n---\nLine two'), ['Line one\n---\n', 'Line two']);
  assert.deepEqual(segmentText('?!'), []);
  assert.deepEqual(segmentText(' \n\t'), []);
});

test('ace mode and a custom pattern only pick split points too', () => {
  assert.deepEqual(segmentText('Hello there. How are you?', { mode: 'ace' }), ['Hello there. ', 'How are you?']);
  assert.deepEqual(segmentText('He scored 42. Next question.', { mode: 'ace' }), ['He scored 42. Next question.']);
  assert.deepEqual(segmentText('a; b;c; d', { mode: /;\s*/ }), ['a; ', 'b;', 'c; ', 'd']);
  const re = /[.!?]\s+/y;
  re.lastIndex = 3;
  assert.deepEqual(segmentText('One. Two! Three', { mode: re }), ['One. ', 'Two! ', 'Three']);
  assert.equal(re.lastIndex, 3, "the caller's RegExp is not used or mutated");
});

const SHARED_CASES = '/work/shared/data/sentence-cases.json';
test('the fixture agrees with the shared sentence-cases.json', { skip: !existsSync(SHARED_CASES) && 'shared data not present' }, () => {
  const shared = JSON.parse(readFileSync(SHARED_CASES, 'utf8')) as { input: string; sentences: string[] }[];
  assert.ok(shared.length > 0);
  for (const s of shared) {
    const c = SENTENCE_CASES.find((x) => x.input === s.input);
    assert.ok(c, `fixture lacks ${JSON.stringify(s.input)}`);
    assert.deepEqual(c.sentences, s.sentences);
  }
});

test('ACE mode score on the 67 cases (for comparison, not a requirement)', (t) => {
  const misses: number[] = [];
  for (const c of SENTENCE_CASES) {
    if (JSON.stringify(trimmed(segmentText(c.input, { mode: 'ace' }))) !== JSON.stringify(c.sentences)) misses.push(c.n);
  }
  const right = SENTENCE_CASES.length - misses.length;
  t.diagnostic(`ACE regex mode: ${right}/${SENTENCE_CASES.length} right (reference measured 39); default mode must be 67/67`);
  t.diagnostic(`ACE misses cases ${misses.join(', ')}`);
});
