/**
 * Per-item overhead of `Application.streamResult` against a raw async generator in the same
 * process, and against LangGraph.js's `custom` stream mode for the same one-node graph.
 *
 *   node_modules/.bin/node bench/app.ts [--runs 7] [--n 100000,1000000] [--lg-n 100000,1000000]
 *
 * Each path streams N short string tokens and then its final result; the consumer reads every
 * item. Figures are medians over the runs (after a warm-up run per path); overhead is the median
 * of the per-run differences from the raw generator measured right before. LangGraph runs the
 * same one-node graph two ways: the node writing in a tight synchronous loop, and the node
 * consuming an async token source (the shape of our async-generator action and of a real model
 * stream). `--lg-n 0` skips LangGraph.
 * @module
 */

import { parseArgs } from 'node:util';
import { Annotation, END, type LangGraphRunnableConfig, START, StateGraph } from '@langchain/langgraph';
import { ApplicationBuilder, streamingAction } from '../src/app/index.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    n: { type: 'string', default: '100000,1000000' },
    'lg-n': { type: 'string', default: '100000,1000000' },
  },
});
const RUNS = Math.max(5, Number(values.runs));
const SIZES = values.n.split(',').map(Number);
const LG_SIZES = values['lg-n'] === '0' ? [] : values['lg-n'].split(',').map(Number);
const TOKENS = ['Hello', ' world', ',', ' this', ' is', ' a', ' token', '.'];

// ── the paths ────────────────────────────────────────────────────────────────────────────────

async function* rawGenerator(n: number): AsyncGenerator<string> {
  for (let i = 0; i < n; i++) yield TOKENS[i & 7] as string;
}

async function raw(n: number): Promise<number> {
  let chars = 0;
  for await (const token of rawGenerator(n)) chars += token.length;
  return chars;
}

const asyncAction = streamingAction({ reads: [], writes: ['chars'] }, async function* (state, inputs) {
  const n = inputs.n as number;
  let chars = 0;
  for (let i = 0; i < n; i++) {
    const token = TOKENS[i & 7] as string;
    chars += token.length;
    yield [token, null];
  }
  yield [{ chars }, state.update({ chars })];
});

const syncAction = streamingAction({ reads: [], writes: ['chars'] }, function* (state, inputs) {
  const n = inputs.n as number;
  let chars = 0;
  for (let i = 0; i < n; i++) {
    const token = TOKENS[i & 7] as string;
    chars += token.length;
    yield [token, null];
  }
  yield [{ chars }, state.update({ chars })];
});

const app = await new ApplicationBuilder()
  .withActions({ asyncAction, syncAction })
  .withTransitions(['asyncAction', 'asyncAction'], ['syncAction', 'syncAction'])
  .withState({ chars: 0 })
  .withEntrypoint('asyncAction')
  .build();
const syncApp = await new ApplicationBuilder()
  .withActions({ syncAction })
  .withTransitions(['syncAction', 'syncAction'])
  .withState({ chars: 0 })
  .withEntrypoint('syncAction')
  .build();

async function sluice(n: number): Promise<number> {
  const [, container] = await app.streamResult({ haltAfter: ['asyncAction'], inputs: { n } });
  let chars = 0;
  for await (const token of container) chars += (token as string).length;
  const [result] = await container.get();
  if ((result as { chars: number }).chars !== chars) throw new Error('lost items');
  return chars;
}

async function sluiceSync(n: number): Promise<number> {
  const [, container] = await syncApp.streamResult({ haltAfter: ['syncAction'], inputs: { n } });
  let chars = 0;
  for await (const token of container) chars += (token as string).length;
  return chars;
}

/** The container read in process and the step's run read by a subscriber (a transport's view). */
async function sluiceWithSubscriber(n: number): Promise<number> {
  const [, container] = await app.streamResult({ haltAfter: ['asyncAction'], inputs: { n } });
  const run = container.run;
  if (run === null) throw new Error('no run');
  const reader = (async () => {
    let events = 0;
    for await (const _ of run.subscribe()) events++;
    return events;
  })();
  let chars = 0;
  for await (const token of container) chars += (token as string).length;
  const events = await reader;
  if (events < n) throw new Error(`the subscriber saw ${events} events for ${n} items`);
  return chars;
}

const GraphState = Annotation.Root({ n: Annotation<number>(), chars: Annotation<number>() });

function oneNodeGraph(asyncSource: boolean) {
  return new StateGraph(GraphState)
    .addNode('generate', async (state: typeof GraphState.State, config: LangGraphRunnableConfig) => {
      let chars = 0;
      if (asyncSource) {
        for await (const token of rawGenerator(state.n)) {
          chars += token.length;
          config.writer?.(token);
        }
      } else {
        for (let i = 0; i < state.n; i++) {
          const token = TOKENS[i & 7] as string;
          chars += token.length;
          config.writer?.(token);
        }
      }
      return { chars };
    })
    .addEdge(START, 'generate')
    .addEdge('generate', END)
    .compile();
}

const syncWriterGraph = oneNodeGraph(false);
const asyncSourceGraph = oneNodeGraph(true);

function langgraph(graph: ReturnType<typeof oneNodeGraph>): (n: number) => Promise<number> {
  return async (n) => {
    let chars = 0;
    for await (const token of await graph.stream({ n, chars: 0 }, { streamMode: 'custom' })) chars += (token as string).length;
    return chars;
  };
}

// ── measurement ──────────────────────────────────────────────────────────────────────────────

async function time(fn: (n: number) => Promise<number>, n: number): Promise<number> {
  const start = performance.now();
  const chars = await fn(n);
  const ms = performance.now() - start;
  if (chars === 0) throw new Error('nothing streamed');
  return (ms * 1000) / n; // µs per item
}

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

interface Row {
  path: string;
  n: number;
  perItem: number;
  overhead: number | null;
}

const rows: Row[] = [];
const PATHS: [string, (n: number) => Promise<number>][] = [
  ['sluice streamResult (async generator)', sluice],
  ['sluice streamResult (sync generator)', sluiceSync],
  ['sluice streamResult + run subscriber', sluiceWithSubscriber],
];

for (const n of SIZES) {
  await time(raw, Math.min(n, 100_000));
  for (const [, fn] of PATHS) await time(fn, Math.min(n, 100_000));
  const rawRuns: number[] = [];
  const runs = new Map<string, { per: number[]; over: number[] }>(PATHS.map(([name]) => [name, { per: [], over: [] }]));
  for (let r = 0; r < RUNS; r++) {
    for (const [name, fn] of PATHS) {
      const base = await time(raw, n);
      rawRuns.push(base);
      const per = await time(fn, n);
      const entry = runs.get(name) as { per: number[]; over: number[] };
      entry.per.push(per);
      entry.over.push(per - base);
    }
  }
  rows.push({ path: 'raw async generator', n, perItem: median(rawRuns), overhead: null });
  for (const [name] of PATHS) {
    const entry = runs.get(name) as { per: number[]; over: number[] };
    rows.push({ path: name, n, perItem: median(entry.per), overhead: median(entry.over) });
  }
}

const LG_PATHS: [string, (n: number) => Promise<number>][] = [
  ['LangGraph.js custom mode, node writes in a sync loop', langgraph(syncWriterGraph)],
  ['LangGraph.js custom mode, node reads an async source', langgraph(asyncSourceGraph)],
];
for (const n of LG_SIZES) {
  for (const [name, fn] of LG_PATHS) {
    await time(fn, Math.min(n, 10_000));
    const per: number[] = [];
    for (let r = 0; r < RUNS; r++) per.push(await time(fn, n));
    rows.push({ path: name, n, perItem: median(per), overhead: null });
  }
}

// ── report ───────────────────────────────────────────────────────────────────────────────────

const fmt = (x: number | null | undefined, digits = 3): string => (x === null || x === undefined ? '—' : x.toFixed(digits));
const lg = (kind: 'sync loop' | 'async source', n: number): number | undefined => {
  const exact = rows.find((r) => r.path.startsWith('LangGraph') && r.path.includes(kind) && r.n === n);
  return (exact ?? rows.find((r) => r.path.startsWith('LangGraph') && r.path.includes(kind)))?.perItem;
};
const ratio = (row: Row, kind: 'sync loop' | 'async source'): string => {
  const other = lg(kind, row.n);
  return other === undefined || row.path.startsWith('LangGraph') ? '—' : `${(other / row.perItem).toFixed(1)}×`;
};

console.log(`Node ${process.version}, ${RUNS} runs per figure (medians), µs per item`);
console.log('');
console.log('| path | N | µs/item | overhead vs raw (µs/item) | LangGraph sync-loop ÷ this | LangGraph async-source ÷ this |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const row of rows) {
  console.log(
    `| ${row.path} | ${row.n.toLocaleString('en-US')} | ${fmt(row.perItem)} | ${fmt(row.overhead)} | ${ratio(row, 'sync loop')} | ${ratio(row, 'async source')} |`,
  );
}
const target = rows.filter((r) => r.path === 'sluice streamResult (async generator)');
console.log('');
console.log(`Target ≤ 1 µs/item overhead, flat in N: ${target.map((r) => `N=${r.n.toLocaleString('en-US')}: ${fmt(r.overhead)}`).join(', ')}`);
if (LG_SIZES.length > 0) {
  console.log(
    `Target ≥ 20× faster than LangGraph custom mode (async source / sync loop): ${target
      .map((r) => `N=${r.n.toLocaleString('en-US')}: ${ratio(r, 'async source')} / ${ratio(r, 'sync loop')}`)
      .join(', ')}`,
  );
}
