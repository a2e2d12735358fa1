/**
 * Time from a tool call to the first audio on the voice socket: an action says one sentence, then
 * calls a tool that runs TOOL_MS; the sentence before the tool must be spoken while the tool runs.
 * Measured on `/voice/ws` with the embedded Flite engine (in process, client and server on the
 * main thread: the thread is idle while the tool runs), from the moment the action yields
 * `tool-start` to the first `sentence` frame and the first audio frame at the client. The raw
 * floor, measured in the same run: a bare `ws` server that, at the same point, sends the sentence
 * and the first chunk the same Flite engine synthesizes for it (no run, no segmenter, no pacing).
 *
 * Used by `bench/sentences.ts` (PATHS=voice); alone: `node bench/tool-pause.ts`.
 * @module
 */

import { once } from 'node:events';
import websocket from '@fastify/websocket';
import Fastify from 'fastify';
import { WebSocket, WebSocketServer } from 'ws';
import { FliteTts } from '../src/channels/voice/flite.ts';
import { encodeAudioFrame } from '../src/channels/voice/session.ts';
import { voiceWsRoutes } from '../src/channels/voice/ws-routes.ts';
import { defineAction } from '../src/runtime/action.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { benchCall, median } from './http-lib.ts';

const SENTENCE = 'Let me check the weather in Paris for you. ';
const AFTER = 'It is sunny and warm there today.';

/** Medians in ms of one tool-pause measurement. */
export interface ToolPauseResult {
  runs: number;
  toolMs: number;
  /** tool-start → first `sentence` frame on /voice/ws. */
  sentenceMs: number;
  /** tool-start → first audio frame on /voice/ws. */
  audioMs: number;
  /** The raw floor: sentence in hand → first audio frame from a bare ws server with the same engine. */
  rawAudioMs: number;
  samples: { sentence: number[]; audio: number[]; raw: number[] };
}

/** Measures `runs` turns after `warmup`, interleaving Sluice and the raw floor. */
export async function measureToolPause({ runs, warmup, toolMs }: { runs: number; warmup: number; toolMs: number }): Promise<ToolPauseResult> {
  const tts = new FliteTts();
  await tts.warmup();
  let toolStartAt = 0;
  const executor = new ActionExecutor({
    logger: silentLogger,
    actions: [
      defineAction({
        name: 'bench_tool',
        async *stream({ signal }) {
          for (const token of SENTENCE.split(/(?<= )/)) yield token;
          toolStartAt = performance.now();
          yield { type: 'tool-start', toolCallId: 'call_1', name: 'weather' };
          await new Promise((resolve) => setTimeout(resolve, toolMs)).then(() => signal.throwIfAborted());
          yield { type: 'tool-result', toolCallId: 'call_1', name: 'weather', output: 'sunny' };
          yield AFTER;
        },
      }),
    ],
  });
  const app = Fastify({ logger: false });
  await app.register(websocket, { options: { perMessageDeflate: false } });
  await app.register(voiceWsRoutes, { executor, tts, logger: silentLogger });
  const url = `${(await app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')}/voice/ws`;

  // The floor: the sentence and its first synthesized chunk, sent as soon as they exist.
  let rawStartAt = 0;
  const raw = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  raw.on('connection', (socket) => {
    socket.on('message', async () => {
      rawStartAt = performance.now();
      socket.send(JSON.stringify({ type: 'sentence', index: 0, text: SENTENCE }));
      const signal = new AbortController();
      for await (const chunk of tts.synthesize(SENTENCE, { signal: signal.signal })) {
        socket.send(encodeAudioFrame(1, 0, 0, chunk), { binary: true });
        signal.abort();
        break;
      }
    });
  });
  await once(raw, 'listening');
  const rawUrl = `ws://127.0.0.1:${(raw.address() as { port: number }).port}`;

  const sluiceOnce = async (): Promise<{ sentence: number; audio: number }> => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    await once(socket, 'open');
    let sentenceAt = -1;
    let audioAt = -1;
    const ended = new Promise<void>((resolve) => {
      socket.on('message', (data, isBinary) => {
        const now = performance.now();
        if (isBinary) {
          if (audioAt < 0) {
            audioAt = now;
            // Measured: barge in so the turn ends without playing out.
            socket.send(JSON.stringify({ type: 'interrupt' }));
          }
          return;
        }
        const message = JSON.parse(String(data)) as { type: string };
        if (message.type === 'sentence' && sentenceAt < 0) sentenceAt = now;
        if (message.type === 'turn-end') resolve();
      });
    });
    socket.send(JSON.stringify({ type: 'start', call: { ...benchCall, next_action: 'bench_tool' } }));
    await ended;
    socket.close();
    if (sentenceAt < 0 || audioAt < 0) throw new Error('tool pause: no sentence or no audio');
    return { sentence: sentenceAt - toolStartAt, audio: audioAt - toolStartAt };
  };
  const rawOnce = async (): Promise<number> => {
    const socket = new WebSocket(rawUrl, { perMessageDeflate: false });
    await once(socket, 'open');
    const audio = new Promise<number>((resolve) => socket.on('message', (_data, isBinary) => isBinary && resolve(performance.now())));
    socket.send('go');
    const at = await audio;
    socket.close();
    return at - rawStartAt;
  };

  const samples = { sentence: [] as number[], audio: [] as number[], raw: [] as number[] };
  for (let i = 0; i < warmup + runs; i++) {
    const s = await sluiceOnce();
    const r = await rawOnce();
    if (i < warmup) continue;
    samples.sentence.push(s.sentence);
    samples.audio.push(s.audio);
    samples.raw.push(r);
  }
  raw.close();
  await app.close();
  await executor.close();
  await tts.close();
  return { runs, toolMs, sentenceMs: median(samples.sentence), audioMs: median(samples.audio), rawAudioMs: median(samples.raw), samples };
}

/** The report lines. */
export function toolPauseReport(r: ToolPauseResult): string[] {
  const list = (values: number[]) => values.map((v) => v.toFixed(1)).join(' ');
  return [
    `Voice /voice/ws, a sentence then a ${r.toolMs} ms tool call (embedded Flite), median of ${r.runs} runs:`,
    `  tool-start → first sentence    ${r.sentenceMs.toFixed(1).padStart(7)} ms`,
    `  tool-start → first audio       ${r.audioMs.toFixed(1).padStart(7)} ms   (target ≤ 50 ms; before the pause flush it waited for the tool: ≥ ${r.toolMs} ms)`,
    `  raw ws + same engine floor     ${r.rawAudioMs.toFixed(1).padStart(7)} ms`,
    `  ratio sluice / raw             ${(r.audioMs / r.rawAudioMs).toFixed(2)}×`,
    `  runs (ms) sentence ${list(r.samples.sentence)} | audio ${list(r.samples.audio)} | raw ${list(r.samples.raw)}`,
  ];
}

if (import.meta.main) {
  const runs = Number(process.env.RUNS ?? 15);
  const result = await measureToolPause({ runs, warmup: Number(process.env.WARMUP ?? 3), toolMs: Number(process.env.TOOL_MS ?? 500) });
  for (const l of toolPauseReport(result)) console.log(l);
}
