/**
 * Sentence segmenter throughput: whole text and streaming with 1–4 character deltas, against a raw loop that
 * only concatenates the same deltas (measured in the same run).
 *
 *   node_modules/.bin/node bench/segmenter.ts [sizeMB=5] [runs=7]
 */
import { SentenceStream, segmentText } from '../src/text/index.ts';
import type { SegmentOptions } from '../src/text/index.ts';

const sizeMb = Number(process.argv[2] ?? 5);
const runs = Math.max(5, Number(process.argv[3] ?? 7));

/** mulberry32: small deterministic PRNG so every run segments the same text. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const num = (max: number): number => Math.floor(rand() * max);

const NAMES = ['Smith', 'Jones', 'Lee', 'Garcia', 'Kennedy', 'Brown', 'Nguyen', 'Okafor'];
const TITLES = ['Mr.', 'Mrs.', 'Dr.', 'Prof.', 'Ms.'];
const NOUNS = ['report', 'server', 'invoice', 'meeting', 'model', 'request', 'package', 'update', 'account'];
const VERBS = ['reviewed', 'shipped', 'approved', 'rejected', 'updated', 'checked', 'cancelled', 'scheduled'];
const TEMPLATES: (() => string)[] = [
  () => `${pick(TITLES)} ${pick(NAMES)} ${pick(VERBS)} the ${pick(NOUNS)} on Jan. ${1 + num(28)} at ${1 + num(12)} ${pick(['a.m.', 'p.m.'])} yesterday.`,
  () => `The ${pick(NOUNS)} costs $${num(500)}.${String(num(100)).padStart(2, '0')} per unit, i.e. about ${num(90)}.${num(10)}% less than last year.`,
  () => `See https://example.com/docs/${pick(NOUNS)}?page=${num(40)} for details, or e-mail support@example.org.`,
  () => `Version ${num(5)}.${num(20)}.${num(10)} fixes the ${pick(NOUNS)} bug, e.g. the crash in config.yaml parsing.`,
  () => `I think ${pick(NAMES)} said "it was ${pick(VERBS)}." Then the team moved on.`,
  () => `Wait... what happened to the ${pick(NOUNS)}?! Nobody knows.`,
  () => `The U.S. team and ${pick(NAMES)} Inc. ${pick(VERBS)} approx. ${num(1000)} items (see Fig. ${1 + num(9)}).`,
  () => `Here are the steps: 1. Open the ${pick(NOUNS)}. 2. Click save. 3. Wait ${num(60)} seconds.`,
  () => `John F. ${pick(NAMES)} ${pick(VERBS)} it in ${1990 + num(35)}.`,
  () => `Thanks for asking!\n\n- First, check the ${pick(NOUNS)}\n- Then restart the ${pick(NOUNS)}\n`,
  () => `Is the ${pick(NOUNS)} ready yet? No. It will be ready by ${1 + num(12)} p.m. tomorrow.`,
  () => `The rate is .${num(10)} percent; the value dropped to ${num(100)}.${num(10)} overall.`,
];

function generate(targetChars: number): string {
  const parts: string[] = [];
  let n = 0;
  while (n < targetChars) {
    const s = pick(TEMPLATES)() + (rand() < 0.1 ? '\n' : ' ');
    parts.push(s);
    n += s.length;
  }
  return parts.join('');
}

const text = generate(sizeMb * 1024 * 1024);
const bytes = Buffer.byteLength(text, 'utf8');
const deltas: string[] = [];
for (let i = 0; i < text.length; ) {
  const n = 1 + num(4);
  deltas.push(text.slice(i, i + n));
  i += n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function time(fn: () => number): number {
  const t0 = performance.now();
  const r = fn();
  const ms = performance.now() - t0;
  if (r < 0) throw new Error('unreachable');
  return ms;
}

function baseline(): number {
  let s = '';
  for (let i = 0; i < deltas.length; i++) s += deltas[i]!;
  return s.length;
}

function whole(options: SegmentOptions): () => number {
  return () => segmentText(text, options).length;
}

function streaming(options: SegmentOptions): () => number {
  return () => {
    const s = new SentenceStream(options);
    let n = 0;
    for (let i = 0; i < deltas.length; i++) n += s.push(deltas[i]!).length;
    return n + s.flush().length;
  };
}

const cases: { name: string; fn: () => number }[] = [
  { name: 'raw baseline (concatenate deltas)', fn: baseline },
  { name: 'default, whole text', fn: whole({}) },
  { name: 'default, streaming 1–4 char deltas', fn: streaming({}) },
  { name: 'default + maxLength 120, streaming', fn: streaming({ maxLength: 120, minFirstLength: 20 }) },
  { name: 'ace, whole text', fn: whole({ mode: 'ace' }) },
  { name: 'ace, streaming 1–4 char deltas', fn: streaming({ mode: 'ace' }) },
];

// Warm-up, then interleaved runs so that drift affects every case alike.
for (const c of cases) c.fn();
const samples = cases.map(() => [] as number[]);
for (let r = 0; r < runs; r++) cases.forEach((c, k) => samples[k]!.push(time(c.fn)));

const sentences = segmentText(text).length;
console.log(
  `text: ${(bytes / 1e6).toFixed(2)} MB, ${sentences} chunks, ${deltas.length} deltas; median of ${runs} runs; node ${process.version}`,
);
const baseMs = median(samples[0]!);
const rows = cases.map((c, k) => {
  const ms = median(samples[k]!);
  return {
    case: c.name,
    'median ms': ms.toFixed(1),
    'MB/s': (bytes / 1e6 / (ms / 1000)).toFixed(1),
    'ns/delta': ((ms * 1e6) / deltas.length).toFixed(0),
    'time vs baseline': k === 0 ? '1.0×' : `${(ms / baseMs).toFixed(1)}×`,
  };
});
console.table(rows);
