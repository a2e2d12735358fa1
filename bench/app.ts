/**
 * Per-item overhead of `Application.streamResult` against a raw async generator in the same
 * process, and against LangGraph.js's `custom` stream mode for the same one-node graph.
 *
 *   node_modules/.bin/node bench/app.ts [--runs 7] [--n 100000,1000000] [--lg-n 100000,1000000]
 *
 * Each path streams N short string tokens and then its final result; the consumer reads every
 * item. Every figure comes from its own fresh process (one path's garbage or type feedback never
 * lands on another's clock): 3 warm-up runs, then the measured run. A round runs every path once,
 * so a slow phase of the machine (they come and go on a shared VM) hits a whole round alike;
 * figures are medians over the rounds, overhead is the median of the same-round differences from
 * the raw baseline (the raw generator; for `source`, the same action code run without Sluice),
 * and the LangGraph ratios are medians of the same-round ratios. LangGraph runs
 * the same one-node graph two ways: the node writing in a tight synchronous loop, and the node
 * consuming an async token source (the shape of a real model stream). Like for like: the sync
 * generator action against the sync loop, and the action reading the same async source
 * (`source`) against the async-source node; the plain async generator (`async`, which awaits
 * nothing) sits between them. `--lg-n 0` skips LangGraph; `--paths floor,async,source,sync,subscriber`
 * picks the paths besides the raw baselines.
 *
 * `floor` runs two yardsticks for the async path, no framework in them: the cheapest wrapper that
 * hands on an async generator's `[token, null]` items as tokens (`it.next().then(unwrap)`), and
 * the same with a promise the wrapper settles itself (needed to release a reader blocked in
 * `next()` when a cancelled generator ignores its signal). What Sluice costs above the second is
 * its own bookkeeping: the run's event log, the partial text kept for an interrupted commit, the
 * item count.
 *
 * Then the cold protocol of the reference measurement (`../shared/reference/burr-and-langgraph.md`
 * §3.8: one run of N = 20,000 in a fresh process, no warm-up, so the figure includes the JIT
 * warming up), `--cold-runs` rounds (default 7; 0 skips it).
 * @module
 */

import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Annotation, END, type LangGraphRunnableConfig, START, StateGraph } from '@langchain/langgraph';
import { ApplicationBuilder, streamingAction } from '../src/app/index.ts';
import { median } from './http-lib.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    n: { type: 'string', default: '100000,1000000' },
    'lg-n': { type: 'string', default: '100000,1000000' },
    'cold-runs': { type: 'string', default: '7' },
    /** Paths to run besides the raw baselines: any of floor, async, source, sync, subscriber. */
    paths: { type: 'string', default: 'floor,async,source,sync,subscriber' },
    help: { type: 'boolean', short: 'h', default: false },
    'cold-n': { type: 'string', default: '20000' },
    /** Internal: time one path in this (fresh) process and print µs/item. */
    child: { type: 'string' },
    'child-n': { type: 'string', default: '0' },
    warm: { type: 'string', default: '0' },
  },
});
if (values.help) {
  console.log('node_modules/.bin/node bench/app.ts [--runs 7] [--n 100000,1000000] [--lg-n 100000,1000000 | 0]');
  console.log('  [--cold-runs 7 | 0] [--cold-n 20000] [--paths floor,async,source,sync,subscriber]');
  process.exit(0);
}
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

/** The `source` action's own code without Sluice: an async generator reading an async source. */
async function* rawSourceGenerator(n: number): AsyncGenerator<readonly [string, null]> {
  for await (const token of rawGenerator(n)) yield [token, null];
}

/** What the Sluice actions yield: `[token, null]` tuples, counting characters as they go. */
async function* tupleGenerator(n: number): AsyncGenerator<readonly [string, null]> {
  for (let i = 0; i < n; i++) yield [TOKENS[i & 7] as string, null];
}

const unwrap = (r: IteratorResult<readonly [string, null]>): IteratorResult<string, undefined> =>
  r.done === true ? { value: undefined, done: true } : { value: r.value[0], done: false };

/** Reads every token from `next` with `for await`. */
async function readAll(next: () => Promise<IteratorResult<string, undefined>>): Promise<number> {
  let chars = 0;
  for await (const token of { [Symbol.asyncIterator]: () => ({ next }) }) chars += token.length;
  return chars;
}

/**
 * Floor 1: the least any framework pays to hand on an async generator's items transformed
 * (`[token, null]` → token): `it.next().then(unwrap)`, one more microtask per item than the raw loop.
 */
function floorWrapper(n: number): Promise<number> {
  const it = tupleGenerator(n);
  return readAll(() => it.next().then(unwrap));
}

/**
 * Floor 2: floor 1 plus a promise the framework can settle itself, which releasing a reader blocked
 * in `next()` after the grace period needs (a derived promise cannot be settled from outside).
 */
function floorResolvable(n: number): Promise<number> {
  const it = tupleGenerator(n);
  let settle: ((r: IteratorResult<string, undefined>) => void) | null = null;
  const capture = (resolve: (r: IteratorResult<string, undefined>) => void): void => {
    settle = resolve;
  };
  const onResult = (r: IteratorResult<readonly [string, null]>): void => {
    const resolve = settle as (r: IteratorResult<string, undefined>) => void;
    settle = null;
    resolve(unwrap(r));
  };
  return readAll(() => {
    const promise = new Promise(capture);
    void it.next().then(onResult);
    return promise;
  });
}

async function rawSource(n: number): Promise<number> {
  let chars = 0;
  for await (const [token] of rawSourceGenerator(n)) chars += token.length;
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

/** What LangGraph's async-source node does: read an async token source, pass each token on. */
const sourceAction = streamingAction({ reads: [], writes: ['chars'] }, async function* (state, inputs) {
  let chars = 0;
  for await (const token of rawGenerator(inputs.n as number)) {
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

/** A one-action app that loops on `name`, so every `streamResult` runs that action once. */
function oneActionApp(name: string, action: typeof asyncAction) {
  return new ApplicationBuilder()
    .withActions({ [name]: action })
    .withTransitions([name, name])
    .withState({ chars: 0 })
    .withEntrypoint(name)
    .build();
}

const app = await oneActionApp('asyncAction', asyncAction);
const sourceApp = await oneActionApp('sourceAction', sourceAction);
const syncApp = await oneActionApp('syncAction', syncAction);

/** Streams one step of `target` and reads every item; checks the committed result when `check`. */
async function readStep(application: typeof app, target: string, n: number, check = false): Promise<number> {
  const [, container] = await application.streamResult({ haltAfter: [target], inputs: { n } });
  let chars = 0;
  for await (const token of container) chars += (token as string).length;
  if (check) {
    const [result] = await container.get();
    if ((result as { chars: number }).chars !== chars) throw new Error('lost items');
  }
  return chars;
}

const sluice = (n: number): Promise<number> => readStep(app, 'asyncAction', n, true);
const sluiceSource = (n: number): Promise<number> => readStep(sourceApp, 'sourceAction', n);
const sluiceSync = (n: number): Promise<number> => readStep(syncApp, 'syncAction', n);

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

const RAW = 'raw async generator';
const RAW_SOURCE = 'raw async generator reading an async source';
const FLOOR = 'floor: it.next().then(unwrap)';
const FLOOR_RESOLVABLE = 'floor + a promise the framework settles';
const SOURCE = 'sluice streamResult (async generator reading an async source)';
const LG_SYNC = 'LangGraph.js custom mode, node writes in a sync loop';
const LG_ASYNC = 'LangGraph.js custom mode, node reads an async source';
const ALL_PATHS: Record<string, { fn: (n: number) => Promise<number>; id: string }> = {
  [RAW]: { fn: raw, id: 'raw' },
  [RAW_SOURCE]: { fn: rawSource, id: 'raw-source' },
  [FLOOR]: { fn: floorWrapper, id: 'floor' },
  [FLOOR_RESOLVABLE]: { fn: floorResolvable, id: 'floor' },
  'sluice streamResult (async generator)': { fn: sluice, id: 'async' },
  [SOURCE]: { fn: sluiceSource, id: 'source' },
  'sluice streamResult (sync generator)': { fn: sluiceSync, id: 'sync' },
  'sluice streamResult + run subscriber': { fn: sluiceWithSubscriber, id: 'subscriber' },
  [LG_SYNC]: { fn: langgraph(syncWriterGraph), id: 'lg' },
  [LG_ASYNC]: { fn: langgraph(asyncSourceGraph), id: 'lg' },
};

if (values.child !== undefined) {
  const path = ALL_PATHS[values.child];
  if (path === undefined) throw new Error(`unknown path ${values.child}`);
  const n = Number(values['child-n']);
  // Warm-up: the optimizing compiler settles over the first few hundred thousand items.
  const warm = Number(values.warm);
  for (let w = 0; w < warm; w++) await time(path.fn, Math.min(n, path.id === 'lg' ? 20_000 : 100_000));
  console.log(JSON.stringify(await time(path.fn, n)));
  process.exit(0);
}

/** One figure: `name` timed once over `n` items in a fresh process, after `warm` warm-up runs. */
function inChild(name: string, n: number, warm: number): number {
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, process.argv[1] as string, '--child', name, '--child-n', String(n), '--warm', String(warm)],
    { encoding: 'utf8' },
  );
  return Number(out.trim());
}

const sluicePaths = Object.keys(ALL_PATHS).filter((name) => values.paths.split(',').includes(ALL_PATHS[name]?.id as string));
/** The raw baselines: the plain generator, and (for the `source` path) the same action code without Sluice. */
const rawPaths = sluicePaths.includes(SOURCE) ? [RAW, RAW_SOURCE] : [RAW];
/** What a path's overhead is measured against. */
const baselineOf = (name: string): string => (name === SOURCE || name === RAW_SOURCE ? RAW_SOURCE : RAW);
const lgPaths = [LG_SYNC, LG_ASYNC];

/**
 * Rounds: each runs every path once, each in its own process (one path's garbage or type feedback
 * never lands on another's clock), so a slow phase of the machine (they come and go on a shared VM)
 * hits a whole round alike and ratios within a round stay comparable.
 */
function measure(sizes: number[], lgSizes: number[], rounds: number, warm: number): Map<string, number[]> {
  const runs = new Map<string, number[]>();
  const add = (name: string, n: number, x: number): void => {
    const key = `${name}@${n}`;
    runs.set(key, [...(runs.get(key) ?? []), x]);
  };
  for (let r = 0; r < rounds; r++) {
    for (const n of sizes) for (const name of [...rawPaths, ...sluicePaths]) add(name, n, inChild(name, n, warm));
    for (const n of lgSizes) for (const name of lgPaths) add(name, n, inChild(name, n, warm));
  }
  return runs;
}

// ── report ───────────────────────────────────────────────────────────────────────────────────

const fmt = (x: number | null | undefined, digits = 3): string => (x === null || x === undefined ? '—' : x.toFixed(digits));
const pairedMedian = (a: number[], b: number[], f: (x: number, y: number) => number): number => median(a.map((x, i) => f(x, b[i] as number)));

function report(title: string, runs: Map<string, number[]>, sizes: number[], lgSizes: number[]): string[] {
  const lgAt = (name: string, n: number): number[] | undefined => runs.get(`${name}@${n}`) ?? runs.get(`${name}@${lgSizes[0]}`);
  const ratio = (xs: number[], name: string, n: number): string => {
    const other = lgAt(name, n);
    return other === undefined ? '—' : `${pairedMedian(other, xs, (lg, x) => lg / x).toFixed(1)}×`;
  };
  const lines = [title, '', '| path | N | µs/item | overhead vs its raw baseline (µs/item) | LangGraph sync-loop ÷ this | LangGraph async-source ÷ this |', '|---|---:|---:|---:|---:|---:|'];
  const targets: string[] = [];
  for (const n of sizes) {
    for (const name of [...rawPaths, ...sluicePaths]) {
      const xs = runs.get(`${name}@${n}`) as number[];
      const over = rawPaths.includes(name) ? null : pairedMedian(xs, runs.get(`${baselineOf(name)}@${n}`) as number[], (x, b) => x - b);
      lines.push(`| ${name} | ${n.toLocaleString('en-US')} | ${fmt(median(xs))} | ${fmt(over)} | ${ratio(xs, LG_SYNC, n)} | ${ratio(xs, LG_ASYNC, n)} |`);
      if (name === 'sluice streamResult (async generator)') {
        const floor = runs.get(`${FLOOR_RESOLVABLE}@${n}`);
        const aboveFloor = floor === undefined ? '' : `, ${fmt(pairedMedian(xs, floor, (x, f) => x - f))} above floor 2`;
        targets.push(`N=${n.toLocaleString('en-US')}: overhead ${fmt(over)} µs/item${aboveFloor}; vs LangGraph async source ${ratio(xs, LG_ASYNC, n)}, sync loop ${ratio(xs, LG_SYNC, n)}`);
      }
    }
  }
  for (const n of lgSizes) for (const name of lgPaths) lines.push(`| ${name} | ${n.toLocaleString('en-US')} | ${fmt(median(runs.get(`${name}@${n}`) as number[]))} | — | — | — |`);
  lines.push('', `Targets (overhead ≤ 1 µs/item flat in N; ≥ 20× LangGraph): ${targets.join(' · ')}`);
  return lines;
}

console.log(`Node ${process.version}, µs per item; medians over rounds, each figure from its own process; ratios are medians of same-round ratios`);
console.log('');
console.log(report(`Warm (${RUNS} rounds; each process does 3 warm-up runs, then the measured one)`, measure(SIZES, LG_SIZES, RUNS, 3), SIZES, LG_SIZES).join('\n'));

const COLD_RUNS = Number(values['cold-runs']);
if (COLD_RUNS > 0) {
  const coldN = Number(values['cold-n']);
  const coldLg = LG_SIZES.length > 0 ? [coldN] : [];
  console.log('');
  console.log(report(`Cold (the reference's protocol: one run of N = ${coldN.toLocaleString('en-US')} in a fresh process, no warm-up; ${COLD_RUNS} rounds)`, measure([coldN], coldLg, COLD_RUNS, 0), [coldN], coldLg).join('\n'));
}
