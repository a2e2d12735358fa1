/**
 * Sentence streaming throughput: one action streams N short sentences (WORDS words each, yielded
 * one word token at a time, so the segmenter does its real work) to one client on 127.0.0.1,
 * over each of Sluice's three sentence paths, each beside a raw server of the same transport that
 * sends the same sentences with no Sluice in between, measured in the same run:
 *
 * - SSE `GET /runs/:runId/sentences` (`sentenceRoutes` on the HTTP server) vs a raw `node:http`
 *   SSE writer: one JSON.stringify and one write per sentence frame (`id/event: sentence/data`),
 *   honouring `drain`, then the `event: end` frame. The run is started in process just before the
 *   client's GET; its action waits for its first subscriber (the GET) before yielding, so the run
 *   streams live rather than being replayed from its log.
 * - WebSocket `/ws` with `{type:'start', call, view:'sentences'}` vs a raw `ws` server sending the
 *   same `{type:'sentence', runId, index, text, responseId}` messages (one JSON.stringify and one
 *   `send` per sentence, waiting when `bufferedAmount` passes 1 MiB, as Sluice does), uncorked and
 *   corked (Sluice corks per burst); a socket per run, timed from `open`.
 * - gRPC `sluice.v1.VoiceService/StreamSentences` (Connect's server in Sluice) vs a raw
 *   `@grpc/grpc-js` server streaming the same `sentence{index,text,response_id}` messages, then
 *   `final_result` and `run_end`, honouring backpressure; both read by the same `@grpc/grpc-js`
 *   client (proto-loader over proto/sluice_voice.proto) on a connected channel.
 *
 * Time: from the start (request sent / start message sent / call started) to the last sentence
 * received by the client, which runs in a worker thread (servers on the main thread). Reported:
 * µs/sentence, sentences/s (medians over RUNS runs after WARMUP warm-up, interleaved) and Sluice /
 * raw per transport. For where the time goes, also in process on the main thread: the segmenter
 * alone (`SentenceStream` over the same tokens) and action → run → `sentencesOf` (no transport).
 *
 * - `voice` (see `tool-pause.ts`): latency, not throughput: on `/voice/ws`, the time from a
 *   `tool-start` to the first sentence and the first audio of the sentence said before it, beside a
 *   bare `ws` server sending the first chunk of the same Flite engine (TOOL_RUNS runs, tool TOOL_MS).
 *
 *   node bench/sentences.ts          (N=20000 WORDS=8 RUNS=7 WARMUP=2 PATHS=sse,ws,grpc,voice by default)
 *
 * Settings (environment): `N` sentences per run, `WORDS` words per sentence, `RUNS` measured runs,
 * `WARMUP` warm-up runs, `PATHS` the paths to measure (any of sse, ws, grpc, voice), `TOOL_RUNS`
 * (default 15) and `TOOL_MS` (default 500) for `voice`.
 */

import http from 'node:http';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { WebSocket, WebSocketServer } from 'ws';
import { sentenceRoutes } from '../src/channels/voice/routes.ts';
import { sentencesOf } from '../src/channels/voice/sentences.ts';
import { defineAction } from '../src/runtime/action.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { SentenceStream } from '../src/text/index.ts';
import { createGrpcServer } from '../src/transports/grpc/index.ts';
import { SSE_HEADERS, createHttpServer } from '../src/transports/http/index.ts';
import { benchCall, envInt, line, median } from './http-lib.ts';
import { measureToolPause, toolPauseReport } from './tool-pause.ts';

const PROTO_DIR = new URL('../proto/', import.meta.url).pathname;
const ACTION = 'bench_sentences';
const HWM = 1024 * 1024;

type Job =
  /** Counts `\n\n`: `frames` in all (sentences, then `end`); the time is taken at frame `frames - 1`. */
  | { kind: 'sse'; url: string; frames: number; lastIndex: number }
  /** Counts messages; the time is taken at message `timeAt` (the last sentence), the socket closed at `total`. */
  | { kind: 'ws'; url: string; start: string; timeAt: number; total: number; lastIndex: number }
  /** Counts `sentence` messages; the time is taken at the `sentences`-th. */
  | { kind: 'grpc'; address: string; sentences: number };

interface JobResult {
  ms: number;
  error?: string;
}

/** `sluice.v1.VoiceService` through @grpc/proto-loader (keepCase: snake_case fields, oneofs named). */
function loadVoiceService(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(`${PROTO_DIR}sluice_voice.proto`, {
    keepCase: true,
    defaults: false,
    oneofs: true,
    includeDirs: [PROTO_DIR],
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { sluice: { v1: { VoiceService: grpc.ServiceClientConstructor } } };
  return pkg.sluice.v1.VoiceService;
}

interface GrpcSentenceEvent {
  sentence?: { index?: number; text?: string; response_id?: string } | null;
  run_end?: { reason?: string } | null;
}
type VoiceClient = grpc.Client & { StreamSentences(request: unknown): grpc.ClientReadableStream<GrpcSentenceEvent> };

if (!isMainThread) {
  // Client: one job at a time; reports the time to the last sentence, or what went wrong.
  const VoiceService = loadVoiceService();
  const grpcClients = new Map<string, VoiceClient>();
  const grpcRequest = { call: { next_action: ACTION, sender_id: 'bench', tracker: { sender_id: 'bench' } } };
  const reply = (result: JobResult): void => parentPort!.postMessage(result);

  const sse = (job: Extract<Job, { kind: 'sse' }>): void => {
    const started = performance.now();
    let ms = 0;
    let frames = 0;
    let lastWasLf = false;
    const tail: Buffer[] = [];
    const req = http.request(job.url, { agent: false });
    req.on('error', (error) => reply({ ms: 0, error: String(error) }));
    req.on('response', (res) => {
      res.on('data', (chunk: Buffer) => {
        if (lastWasLf && chunk[0] === 10) frames++;
        for (let i = chunk.indexOf('\n\n'); i !== -1; i = chunk.indexOf('\n\n', i + 2)) frames++;
        lastWasLf = chunk[chunk.length - 1] === 10;
        if (ms === 0 && frames >= job.frames - 1) ms = performance.now() - started;
        tail.push(chunk);
        if (tail.length > 3) tail.shift();
      });
      res.on('end', () => {
        const end = Buffer.concat(tail).toString('utf8');
        if (frames !== job.frames) return reply({ ms, error: `expected ${job.frames} frames, got ${frames}` });
        if (!end.includes(`id: ${job.lastIndex}\nevent: sentence\n`) || !end.includes('event: end\n')) {
          return reply({ ms, error: `the stream did not end with sentence ${job.lastIndex} then an end frame: ${JSON.stringify(end.slice(-300))}` });
        }
        reply({ ms });
      });
    });
    req.end();
  };

  const ws = (job: Extract<Job, { kind: 'ws' }>): void => {
    const socket = new WebSocket(job.url, { perMessageDeflate: false });
    let count = 0;
    let started = 0;
    let ms = 0;
    socket.on('error', (error) => reply({ ms: 0, error: String(error) }));
    socket.on('open', () => {
      started = performance.now();
      socket.send(job.start);
    });
    socket.on('message', (data) => {
      count++;
      if (count === job.timeAt) {
        ms = performance.now() - started;
        const last = JSON.parse(String(data)) as { type?: string; index?: number };
        if (last.type !== 'sentence' || last.index !== job.lastIndex) {
          socket.close();
          return reply({ ms, error: `message ${count} is not sentence ${job.lastIndex}: ${String(data).slice(0, 200)}` });
        }
      }
      if (count !== job.total) return;
      socket.close();
      reply({ ms });
    });
  };

  const grpcCall = (job: Extract<Job, { kind: 'grpc' }>): void => {
    let client = grpcClients.get(job.address);
    if (client === undefined) {
      client = new VoiceService(job.address, grpc.credentials.createInsecure()) as unknown as VoiceClient;
      grpcClients.set(job.address, client);
    }
    const started = performance.now();
    let ms = 0;
    let sentences = 0;
    let lastIndex = -1;
    let runEnd = '';
    const call = client.StreamSentences(grpcRequest);
    call.on('data', (message: GrpcSentenceEvent) => {
      if (message.sentence != null) {
        lastIndex = message.sentence.index ?? 0;
        if (++sentences === job.sentences) ms = performance.now() - started;
      } else if (message.run_end != null) runEnd = message.run_end.reason ?? '';
    });
    call.on('error', () => {}); // reported with the status below
    call.on('status', (status: grpc.StatusObject) => {
      if (status.code !== grpc.status.OK) return reply({ ms, error: `status ${status.code}: ${status.details}` });
      if (sentences !== job.sentences || lastIndex !== job.sentences - 1 || runEnd !== 'completed') {
        return reply({ ms, error: `expected ${job.sentences} sentences then run_end completed, got ${sentences} (last index ${lastIndex}), run_end '${runEnd}'` });
      }
      reply({ ms });
    });
  };

  parentPort!.on('message', (job: Job) => {
    if (job.kind === 'sse') sse(job);
    else if (job.kind === 'ws') ws(job);
    else grpcCall(job);
  });
} else {
  const N = envInt('N', 20_000);
  const WORDS = envInt('WORDS', 8);
  const RUNS = envInt('RUNS', 7);
  const WARMUP = envInt('WARMUP', 2);
  const PATHS = (process.env.PATHS ?? 'sse,ws,grpc,voice').split(',').map((p) => p.trim());
  for (const p of PATHS) if (!['sse', 'ws', 'grpc', 'voice'].includes(p)) throw new Error(`PATHS: unknown path '${p}' (sse, ws, grpc, voice)`);

  // The text: N sentences of WORDS plain lower-case words (no abbreviation, number or initial the
  // segmenter could hesitate over), as word tokens ("word ") that join back to the text.
  const VOCABULARY = [
    'river', 'stream', 'water', 'mill', 'wheel', 'turns', 'slowly', 'under', 'bridge', 'morning',
    'light', 'falls', 'across', 'green', 'fields', 'where', 'farmers', 'walk', 'quietly', 'toward',
    'village', 'market', 'bread', 'warm', 'stone', 'house', 'garden', 'bright', 'flowers', 'open',
    'every', 'spring', 'children', 'laugh', 'near', 'old', 'tree', 'birds', 'sing', 'softly', 'evening', 'comes', 'again',
  ];
  const tokens: string[] = [];
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < WORDS; j++) {
      let word = VOCABULARY[(i * 7 + j * 13 + ((i * j) % 5)) % VOCABULARY.length]!;
      if (j === 0) word = word[0]!.toUpperCase() + word.slice(1);
      if (j === WORDS - 1) word += i % 10 === 4 ? '!' : i % 10 === 9 ? '?' : '.';
      tokens.push(`${word} `);
    }
  }
  const text = tokens.join('');

  /** The segmenter alone, as the voice channel runs it: one SentenceStream, every token pushed, then flush. */
  const segment = (): string[] => {
    const stream = new SentenceStream();
    const out: string[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const ready = stream.push(tokens[i]!);
      for (let k = 0; k < ready.length; k++) out.push(ready[k]!);
    }
    for (const s of stream.flush()) out.push(s);
    return out;
  };
  // What every path must deliver; the raw servers send exactly these texts.
  const SENTENCES = segment();
  if (SENTENCES.length !== N || SENTENCES.join('') !== text) {
    throw new Error(`the segmenter cut ${SENTENCES.length} sentences, expected ${N} that join back to the text`);
  }

  // Sluice: a generator action yielding the word tokens as fast as backpressure allows. It first
  // waits for a subscriber: `GET /runs/:runId/sentences` subscribes to a run already started (the
  // others subscribe when they start the run, so they never wait here).
  const executor: ActionExecutor = new ActionExecutor({
    logger: silentLogger,
    actions: [
      defineAction({
        name: ACTION,
        async *stream({ runId }) {
          const run = executor.getRun(runId);
          while (run !== undefined && run.subscribers.size === 0) await new Promise((resolve) => setImmediate(resolve));
          for (let i = 0; i < tokens.length; i++) yield tokens[i]!;
        },
      }),
    ],
  });
  const call = { ...benchCall, next_action: ACTION };
  const app = createHttpServer({ executor, ws: { highWaterMark: HWM } });
  await app.register(sentenceRoutes, { executor });
  const sluiceHttp = await app.listen({ port: 0, host: '127.0.0.1' });
  const sluiceGrpc = createGrpcServer({ executor, logger: silentLogger });
  const sluiceGrpcPort = (await sluiceGrpc.listen(0, '127.0.0.1')).port;

  const runId = '5f0c1d9e-2a43-4c1b-9f5e-1a2b3c4d5e6f';
  const responseId = '0123456789abcdef0123456789abcdef';

  // Raw SSE: the sentence frames of `GET /runs/:runId/sentences`, one JSON.stringify and one write each.
  const rawSse = http.createServer(async (_req, res) => {
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    for (let index = 0; index < N; index++) {
      const sentence = { type: 'sentence', runId, responseId, index, text: SENTENCES[index]!, source: 'stream', seq: (index + 1) * WORDS + 2 };
      if (!res.write(`id: ${index}\nevent: sentence\ndata: ${JSON.stringify(sentence)}\n\n`)) await once(res, 'drain');
    }
    res.end(`event: end\ndata: ${JSON.stringify({ runId, reason: 'completed' })}\n\n`);
  });
  rawSse.listen(0, '127.0.0.1');
  await once(rawSse, 'listening');
  const rawSseUrl = `http://127.0.0.1:${(rawSse.address() as { port: number }).port}/`;

  // Raw ws: the sentence messages of `/ws` (view 'sentences'), then a run-end; 'go-corked' as in bench/ws.ts.
  const rawWs = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await once(rawWs, 'listening');
  rawWs.on('connection', (socket) => {
    socket.once('message', async (data) => {
      const corked = String(data) === 'go-corked';
      const underlying = (socket as unknown as { _socket: Duplex })._socket;
      if (corked) underlying.cork();
      for (let index = 0; index < N; index++) {
        if (socket.bufferedAmount > HWM) {
          if (corked) underlying.uncork();
          await once(underlying, 'drain');
          if (corked) underlying.cork();
        }
        socket.send(JSON.stringify({ type: 'sentence', runId, index, text: SENTENCES[index]!, responseId }));
      }
      socket.send(JSON.stringify({ type: 'run-end', runId, reason: 'completed' }));
      if (corked) underlying.uncork();
    });
  });
  const rawWsUrl = `ws://127.0.0.1:${(rawWs.address() as { port: number }).port}`;

  // Raw gRPC: StreamSentences from a stock grpc-js server, honouring backpressure.
  const rawGrpc = new grpc.Server();
  rawGrpc.addService(loadVoiceService().service, {
    StreamSentences(stream: grpc.ServerWritableStream<unknown, unknown>) {
      let index = 0;
      const pump = (): void => {
        while (index < N) {
          const sentence = { index, text: SENTENCES[index]!, response_id: responseId };
          index++;
          if (!stream.write({ sentence })) {
            stream.once('drain', pump);
            return;
          }
        }
        stream.write({ final_result: { events: [], responses: [] } });
        stream.write({ run_end: { reason: 'completed' } });
        stream.end();
      };
      pump();
    },
  });
  const rawGrpcPort = await new Promise<number>((resolve, reject) =>
    rawGrpc.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
  );

  const worker = new Worker(new URL(import.meta.url));
  const measure = (job: Job): Promise<number> =>
    new Promise((resolve, reject) => {
      worker.once('message', (result: JobResult) => (result.error === undefined ? resolve(result.ms) : reject(new Error(`${job.kind}: ${result.error}`))));
      worker.postMessage(job);
    });
  const startMessage = JSON.stringify({ type: 'start', id: 'bench', call, view: 'sentences' });

  // Every case, as [name, measure once → ms]. Per transport the raw baseline(s) and Sluice.
  const cases: [string, () => Promise<number>][] = [];
  if (PATHS.includes('sse')) {
    cases.push(['sse raw', () => measure({ kind: 'sse', url: rawSseUrl, frames: N + 1, lastIndex: N - 1 })]);
    cases.push([
      'sse sluice',
      async () => {
        const run = executor.start(call);
        const ms = await measure({ kind: 'sse', url: `${sluiceHttp}/runs/${run.id}/sentences`, frames: N + 1, lastIndex: N - 1 });
        const end = await run.done;
        if (end.reason !== 'completed') throw new Error(`sse sluice: the run ended '${end.reason}'`);
        return ms;
      },
    ]);
  }
  if (PATHS.includes('ws')) {
    cases.push(['ws raw', () => measure({ kind: 'ws', url: rawWsUrl, start: 'go', timeAt: N, total: N + 1, lastIndex: N - 1 })]);
    cases.push(['ws corked', () => measure({ kind: 'ws', url: rawWsUrl, start: 'go-corked', timeAt: N, total: N + 1, lastIndex: N - 1 })]);
    // started, N sentences, result, run-end
    cases.push(['ws sluice', () => measure({ kind: 'ws', url: `${sluiceHttp.replace(/^http/, 'ws')}/ws`, start: startMessage, timeAt: N + 1, total: N + 3, lastIndex: N - 1 })]);
  }
  if (PATHS.includes('grpc')) {
    cases.push(['grpc raw', () => measure({ kind: 'grpc', address: `127.0.0.1:${rawGrpcPort}`, sentences: N })]);
    cases.push(['grpc sluice', () => measure({ kind: 'grpc', address: `127.0.0.1:${sluiceGrpcPort}`, sentences: N })]);
  }
  // In process, on this thread: where the time goes.
  cases.push([
    'segmenter',
    async () => {
      const started = performance.now();
      const n = segment().length;
      const ms = performance.now() - started;
      if (n !== N) throw new Error(`segmenter: ${n} sentences`);
      return ms;
    },
  ]);
  cases.push([
    'in-process',
    async () => {
      const started = performance.now();
      let n = 0;
      for await (const _ of sentencesOf(executor.start(call))) n++;
      const ms = performance.now() - started;
      if (n !== N) throw new Error(`in-process: ${n} sentences`);
      return ms;
    },
  ]);

  const times = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (let round = 0; round < WARMUP + RUNS; round++) {
    // Interleaved, and in reverse order every other round, so drift on the machine hits all alike.
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const [name, run] of order) {
      const ms = await run();
      if (round >= WARMUP) times.get(name)!.push(ms);
    }
  }
  const ms = (name: string): number => median(times.get(name)!);
  const ratio = (a: string, b: string): string => `${(ms(a) / ms(b)).toFixed(2)}×`;
  const unit = 'sentence';

  console.log(
    `Sentences: ${N.toLocaleString('en-US')} sentences × ${WORDS} words (${tokens.length.toLocaleString('en-US')} word tokens, ` +
      `${(Buffer.byteLength(text) / 1e6).toFixed(2)} MB) to one client on 127.0.0.1, median of ${RUNS} runs after ${WARMUP} warm-up (Node ${process.version})`,
  );
  console.log('In process (no transport):');
  console.log(`${line('segmenter only', ms('segmenter'), N, unit)}  ${((ms('segmenter') * 1e6) / tokens.length).toFixed(0)} ns/token`);
  console.log(line('action → run → sentencesOf', ms('in-process'), N, unit));
  const share = (name: string): string => `segmenter ${((ms('segmenter') / ms(name)) * 100).toFixed(0)}% of it`;
  if (PATHS.includes('sse')) {
    console.log('SSE:');
    console.log(line('raw node:http SSE', ms('sse raw'), N, unit));
    console.log(line('sluice /runs/:id/sentences', ms('sse sluice'), N, unit));
    console.log(`  ratio sluice / raw          ${ratio('sse sluice', 'sse raw')}  (${share('sse sluice')})`);
  }
  if (PATHS.includes('ws')) {
    console.log('WebSocket:');
    console.log(line('raw ws, 1 send/sentence', ms('ws raw'), N, unit));
    console.log(line('raw ws, corked sends', ms('ws corked'), N, unit));
    console.log(line("sluice /ws 'sentences'", ms('ws sluice'), N, unit));
    console.log(`  ratio sluice / raw          ${ratio('ws sluice', 'ws raw')}  (${share('ws sluice')})`);
    console.log(`  ratio sluice / raw corked   ${ratio('ws sluice', 'ws corked')}`);
  }
  if (PATHS.includes('grpc')) {
    console.log('gRPC (same @grpc/grpc-js client):');
    console.log(line('raw @grpc/grpc-js server', ms('grpc raw'), N, unit));
    console.log(line('sluice StreamSentences', ms('grpc sluice'), N, unit));
    console.log(`  ratio sluice / raw          ${ratio('grpc sluice', 'grpc raw')}  (${share('grpc sluice')})`);
  }
  for (const [name, list] of times) console.log(`  runs (ms) ${name.padEnd(11)} ${list.map((t) => t.toFixed(0)).join(' ')}`);
  if (PATHS.includes('voice')) {
    const pause = await measureToolPause({ runs: envInt('TOOL_RUNS', 15), warmup: 3, toolMs: envInt('TOOL_MS', 500) });
    for (const l of toolPauseReport(pause)) console.log(l);
  }

  await worker.terminate();
  rawSse.close();
  rawWs.close();
  rawGrpc.forceShutdown();
  await sluiceGrpc.close();
  await app.close();
  await executor.close();
}
