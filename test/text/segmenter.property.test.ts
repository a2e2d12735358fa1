import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SentenceStream, segmentText } from '../../src/text/index.ts';
import type { SegmentOptions } from '../../src/text/index.ts';

/** Runs per property; raise it (e.g. FC_RUNS=20000) for a deeper search. */
const RUNS = Number(process.env['FC_RUNS'] ?? 400);
const SPEAKABLE = /[\p{L}\p{N}]/u;

// Pieces that exercise every rule: abbreviations, initials, decimals, URLs, list markers, ellipses, quotes,
// brackets, markdown, newlines, CJK and other scripts, and plenty of stray punctuation and whitespace.
const PIECES = [
  'Hello', 'world', 'the', 'cat', 'It', 'She', 'Then', 'we', 'went', 'home', 'Mr.', 'Mrs.', 'Dr.', 'Prof.', 'St.',
  'vs.', 'e.g.', 'i.e.', 'etc.', 'Inc.', 'approx.', 'Jan.', 'No.', 'Fig.', 'a.m.', 'p.m.', 'U.S.', 'Ph.D.', 'J.',
  'R.', 'A.', 'F.', 'I', 'option', 'Kennedy', 'Tolkien', '3.14', '.5', '0.5', '42', '1999', '2.0.1', '1.', '2.',
  '12.05.2024', '$3.50', 'https://example.com/docs?page=2', 'john.doe@example.com', 'config.yaml', 'v2.0',
  '...', '…', '?!', '!!!', '.', '?', '!', ',', ';', ':', '"', '“', '”', "'", '(', ')', '**', '`', '-', ' ', ' ',
  ' ', '  ', '\n', '\n\n', '\r\n', '\t', '你好', '。', '！', '？', '今天', 'こんにちは', 'नमस्ते', '।', 'كيف',
  '؟', '¿', '¡', 'Juli', 'der', 'Steps', '😀', '\u00a0', '\u2028', 'é', 'e\u0301',
];

const texts = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.constantFrom(...PIECES), { maxLength: 60 }).map((a) => a.join('')) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('a', 'B', '.', ' ', '\n', '?', '1', '"', '。'), maxLength: 80 }) },
);

const cuts = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 16 });

function streamed(text: string, sizes: number[], options?: SegmentOptions): string[] {
  const s = new SentenceStream(options);
  const out: string[] = [];
  let i = 0;
  for (let k = 0; i < text.length; k++) {
    const n = sizes[k % sizes.length]!;
    out.push(...s.push(text.slice(i, i + n)));
    i += n;
  }
  out.push(...s.flush());
  return out;
}

const optionSets: { name: string; options: SegmentOptions }[] = [
  { name: 'default', options: {} },
  { name: 'minFirstLength 20', options: { minFirstLength: 20 } },
  { name: 'maxLength 12', options: { maxLength: 12 } },
  { name: 'minFirstLength 5 + maxLength 9', options: { minFirstLength: 5, maxLength: 9 } },
  { name: 'ace', options: { mode: 'ace' } },
  { name: 'custom pattern', options: { mode: /[.!?。]+["”)]*\s*/ } },
];

for (const { name, options } of optionSets) {
  test(`property (${name}): output joins back to the input and has no punctuation-only chunk`, () => {
    fc.assert(
      fc.property(texts, (text) => {
        const out = segmentText(text, options);
        if (SPEAKABLE.test(text)) assert.equal(out.join(''), text);
        else assert.deepEqual(out, []);
        for (const chunk of out) assert.match(chunk, SPEAKABLE);
      }),
      { numRuns: RUNS },
    );
  });

  test(`property (${name}): any delta split gives the same chunks as the whole text`, () => {
    fc.assert(
      fc.property(texts, cuts, (text, sizes) => {
        assert.deepEqual(streamed(text, sizes, options), segmentText(text, options));
      }),
      { numRuns: RUNS },
    );
  });
}

test('property: maxLength bounds every chunk that a cut can be made in', () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('word', 'another', 'x', ',', ' ', ' ', '. ', 'Next'), { maxLength: 80 }).map((a) => a.join('')),
      fc.integer({ min: 8, max: 40 }),
      (text, maxLength) => {
        for (const chunk of segmentText(text, { maxLength })) {
          // A chunk may only exceed the limit when no cut within it would keep a letter on both sides.
          if (chunk.length > maxLength) assert.ok((chunk.slice(0, maxLength).match(/[a-zA-Z]/g) ?? []).length <= 1, chunk);
        }
      },
    ),
    { numRuns: RUNS },
  );
});

test('property: with stall flushes at random moments, text is only lost if it has no letter or digit', () => {
  fc.assert(
    fc.property(texts, cuts, fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }), (text, sizes, stalls) => {
      let t = 0;
      const s = new SentenceStream({ stallFlushMs: 10, now: () => t, maxLength: 30 });
      const out: string[] = [];
      let i = 0;
      for (let k = 0; i < text.length; k++) {
        const n = sizes[k % sizes.length]!;
        out.push(...s.push(text.slice(i, i + n)));
        i += n;
        if (stalls[k % stalls.length]) {
          t += 10;
          out.push(...s.poll());
        }
      }
      out.push(...s.flush());
      for (const chunk of out) assert.match(chunk, SPEAKABLE);
      const joined = out.join('');
      assert.ok(text.startsWith(joined), 'chunks are the text, in order');
      assert.doesNotMatch(text.slice(joined.length), SPEAKABLE, 'only unspeakable text may be left over');
    }),
    { numRuns: RUNS },
  );
});
