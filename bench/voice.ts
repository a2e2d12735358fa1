/**
 * Voice benchmark (not a test): how soon a sentence is heard, and how fast the embedded TTS is.
 *
 * 1. End to end over a real WebSocket on 127.0.0.1: an action streams sentences token by token
 *    (TOKEN_MS apart, a fast hosted model), the voice channel segments them and synthesizes each
 *    with the embedded Flite engine; the client times the first audio frame of every sentence.
 *    Reported: time from the sentence's last token (yielded by the action) to its first audio
 *    frame at the client — it includes the segmenter's wait for the next token, which confirms
 *    the boundary — and from the `sentence` frame to the first audio frame (synthesis + framing).
 * 2. Real-time factor of the engine alone (synthesis time / audio duration) per voice, in the
 *    worker thread (the default) and on the calling thread.
 * 3. Pause / resume on the socket (audio paced 300 ms ahead): `pause` sent → `paused` received,
 *    `resume` sent → `resumed` received, beside a bare `ws` echo round trip (the floor of any
 *    command and its answer), measured in the same run; and `resume` → the next audio frame,
 *    which follows the pacing (the client still holds 300 ms of audio: at most one chunk later).
 *    Checks that no audio arrives while paused.
 *
 *   node bench/voice.ts                        kal16 and slt, 8 turns × 10 sentences
 *   BENCH_VOICES=kal16 BENCH_TURNS=5 node bench/voice.ts
 */

import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import websocket from '@fastify/websocket';
import Fastify from 'fastify';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import { VoiceChannel } from '../src/channels/voice/channel.ts';
import { FliteTts } from '../src/channels/voice/flite.ts';
import type { FliteVoice } from '../src/channels/voice/flite-wasi.ts';
import { decodeAudioFrame } from '../src/channels/voice/session.ts';
import { voiceWsRoutes } from '../src/channels/voice/ws-routes.ts';
import { defineAction } from '../src/runtime/action.ts';
import { ActionExecutor } from '../src/runtime/executor.ts';
import { silentLogger } from '../src/runtime/logger.ts';

const TOKEN_MS = Number(process.env.BENCH_TOKEN_MS ?? 20);
const TURNS = Number(process.env.BENCH_TURNS ?? 8);
const VOICES = (process.env.BENCH_VOICES ?? 'kal16,slt').split(',') as FliteVoice[];

const CORPUS = [
  'Sure, I can help with that.',
  'The weather in Paris will be light rain in the morning, clearing by noon.',
  'Temperatures stay around fourteen degrees.',
  'Bring an umbrella if you go out early.',
  'In Berlin it is cloudy with a cold east wind.',
  'Lisbon is sunny and mild all day, around twenty one degrees.',
  'Our store is open Monday to Friday from nine to six.',
  'On Saturdays we open at ten and close at four.',
  'We are closed on Sundays and public holidays.',
  'Is there anything else I can do for you today?',
  'Once upon a time, a small stream ran down a hill, in a hurry to reach the sea.',
  'Halfway down it met a sluice.',
  'Wait your turn, said the sluice, and the stream, grumbling, waited.',
  'Below, the mill wheel turned at just the right speed.',
  'The stream reached the sea a little later than it wanted, but whole.',
];

function tokensOf(text: string): string[] {
  return text.split(/(?<=\s)(?=\S)/);
}

function stats(values: number[]): { median: number; p95: number; mean: number; min: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { median: q(0.5), p95: q(0.95), mean: s.reduce((a, b) => a + b, 0) / s.length, min: s[0]!, max: s[s.length - 1]! };
}

const fmt = (n: number): string => n.toFixed(1).padStart(7);

async function endToEnd(voice: FliteVoice): Promise<{ fromToken: number[]; fromSentence: number[] }> {
  // Per turn: the tokens' yield times and, for each sentence, the index of its last token.
  const turns: { tokenAt: number[]; lastToken: number[] }[] = [];
  const action = defineAction({
    name: 'action_bench',
    async *stream({ signal, tracker }) {
      const turn = Number(tracker.getSlot('turn'));
      const sentences = Array.from({ length: 10 }, (_, i) => CORPUS[(turn * 7 + i) % CORPUS.length]!);
      const record = { tokenAt: [] as number[], lastToken: [] as number[] };
      turns[turn] = record;
      let n = 0;
      for (const sentence of sentences) {
        for (const token of tokensOf(`${sentence} `)) {
          await sleep(TOKEN_MS, undefined, { signal });
          record.tokenAt[n++] = performance.now();
          yield token;
        }
        record.lastToken.push(n - 1);
      }
    },
  });
  const executor = new ActionExecutor({ logger: silentLogger, actions: [action] });
  const tts = new FliteTts({ voice });
  await tts.warmup();
  const channel = new VoiceChannel({ executor, tts, audioLeadMs: Infinity, logger: silentLogger });
  const app = Fastify({ logger: false });
  await app.register(websocket, { options: { perMessageDeflate: false } });
  await app.register(voiceWsRoutes, { channel });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const socket = new WebSocket(`${url.replace('http', 'ws')}/voice/ws`);
  await new Promise((resolve) => socket.once('open', resolve));

  const fromToken: number[] = [];
  const fromSentence: number[] = [];
  for (let turn = 0; turn < TURNS; turn++) {
    const sentenceAt = new Map<number, number>();
    const firstAudio = new Map<number, number>();
    await new Promise<void>((resolve) => {
      const onMessage = (data: Buffer, isBinary: boolean): void => {
        const at = performance.now();
        if (isBinary) {
          const frame = decodeAudioFrame(new Uint8Array(data));
          if (!firstAudio.has(frame.index)) firstAudio.set(frame.index, at);
          return;
        }
        const m = JSON.parse(data.toString('utf8')) as { type: string; index?: number };
        if (m.type === 'sentence') sentenceAt.set(m.index!, at);
        if (m.type === 'turn-end') {
          socket.off('message', onMessage);
          resolve();
        }
      };
      socket.on('message', onMessage);
      socket.send(
        JSON.stringify({
          type: 'start',
          call: { next_action: 'action_bench', sender_id: 'bench', tracker: { sender_id: 'bench', slots: { turn }, latest_message: { text: 'go' }, events: [] }, domain: { slots: {} } },
        }),
      );
    });
    const record = turns[turn]!;
    record.lastToken.forEach((tokenIndex, index) => {
      const audio = firstAudio.get(index);
      if (audio === undefined) throw new Error(`turn ${turn}: no audio for sentence ${index}`);
      fromToken.push(audio - record.tokenAt[tokenIndex]!);
      fromSentence.push(audio - sentenceAt.get(index)!);
    });
  }
  socket.close();
  await channel.close();
  await tts.close();
  await executor.close();
  await app.close();
  return { fromToken, fromSentence };
}

async function realTimeFactor(voice: FliteVoice, worker: boolean): Promise<{ rtf: number; perSentenceMs: number; audioS: number }> {
  const tts = new FliteTts({ voice, worker });
  await tts.warmup();
  let audioMs = 0;
  const started = performance.now();
  for (let round = 0; round < 3; round++) {
    for (const sentence of CORPUS) {
      for await (const chunk of tts.synthesize(sentence, { signal: new AbortController().signal })) audioMs += chunk.durationMs;
    }
  }
  const wall = performance.now() - started;
  await tts.close();
  return { rtf: wall / audioMs, perSentenceMs: wall / (3 * CORPUS.length), audioS: audioMs / 1000 };
}

async function pauseResume(rounds: number): Promise<{ pause: number[]; resume: number[]; audio: number[]; echo: number[] }> {
  const executor = new ActionExecutor({ logger: silentLogger, actions: [] });
  const tts = new FliteTts();
  await tts.warmup();
  const channel = new VoiceChannel({ executor, tts, audioLeadMs: 300, logger: silentLogger });
  const app = Fastify({ logger: false });
  await app.register(websocket, { options: { perMessageDeflate: false } });
  await app.register(voiceWsRoutes, { channel });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const echo = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  echo.on('connection', (s) => s.on('message', (d) => s.send(d)));
  await once(echo, 'listening');
  const echoSocket = new WebSocket(`ws://127.0.0.1:${(echo.address() as { port: number }).port}`);
  await once(echoSocket, 'open');
  const socket = new WebSocket(`${url.replace('http', 'ws')}/voice/ws`);
  await once(socket, 'open');
  const out = { pause: [] as number[], resume: [] as number[], audio: [] as number[], echo: [] as number[] };
  let wait: ((m: { type: string } | 'audio') => void) | null = null;
  let pausedFrames = 0;
  let paused = false;
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary && paused) pausedFrames++;
    wait?.(isBinary ? 'audio' : (JSON.parse(data.toString('utf8')) as { type: string }));
  });
  const until = (predicate: (m: { type: string } | 'audio') => boolean): Promise<number> =>
    new Promise((resolve) => {
      wait = (m) => {
        if (!predicate(m)) return;
        wait = null;
        resolve(performance.now());
      };
    });
  for (let round = 0; round < rounds; round++) {
    const started = until((m) => m === 'audio');
    socket.send(JSON.stringify({ type: 'say', text: CORPUS.slice(0, 4).join(' ') }));
    await started;
    await sleep(150);
    let at = performance.now();
    const ack = until((m) => m !== 'audio' && m.type === 'paused');
    socket.send(JSON.stringify({ type: 'pause' }));
    out.pause.push((await ack) - at);
    paused = true;
    await sleep(100);
    paused = false;
    at = performance.now();
    const resumed = until((m) => m !== 'audio' && m.type === 'resumed');
    socket.send(JSON.stringify({ type: 'resume' }));
    out.resume.push((await resumed) - at);
    out.audio.push((await until((m) => m === 'audio')) - at);
    const ended = until((m) => m !== 'audio' && m.type === 'turn-end');
    socket.send(JSON.stringify({ type: 'interrupt' }));
    await ended;
    at = performance.now();
    const back = new Promise<number>((resolve) => echoSocket.once('message', () => resolve(performance.now())));
    echoSocket.send(JSON.stringify({ type: 'pause' }));
    out.echo.push((await back) - at);
  }
  if (pausedFrames > 0) throw new Error(`${pausedFrames} audio frames arrived while paused`);
  socket.close();
  echoSocket.close();
  echo.close();
  await channel.close();
  await tts.close();
  await executor.close();
  await app.close();
  return out;
}

console.log(`# Voice benchmark — Node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}`);
console.log(`Tokens every ${TOKEN_MS} ms; ${TURNS} turns × 10 sentences = ${TURNS * 10} sentences per voice; audio not paced.\n`);
console.log('## Last token → first audio frame at the client (ms)\n');
console.log('| voice | measured from | median | p95 | mean | min | max |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const voice of VOICES) {
  const { fromToken, fromSentence } = await endToEnd(voice);
  const a = stats(fromToken);
  const b = stats(fromSentence);
  console.log(`| ${voice} | sentence's last token | ${fmt(a.median)} | ${fmt(a.p95)} | ${fmt(a.mean)} | ${fmt(a.min)} | ${fmt(a.max)} |`);
  console.log(`| ${voice} | \`sentence\` frame | ${fmt(b.median)} | ${fmt(b.p95)} | ${fmt(b.mean)} | ${fmt(b.min)} | ${fmt(b.max)} |`);
}
console.log('\n## TTS real-time factor (synthesis time / audio duration; lower is faster)\n');
console.log('| voice | thread | RTF | ms per sentence | audio synthesized |');
console.log('|---|---|---:|---:|---:|');
for (const voice of VOICES) {
  for (const worker of [true, false]) {
    const r = await realTimeFactor(voice, worker);
    console.log(`| ${voice} | ${worker ? 'worker' : 'caller'} | ${r.rtf.toFixed(4)} | ${r.perSentenceMs.toFixed(1)} | ${r.audioS.toFixed(1)} s |`);
  }
}

console.log('\n## Pause / resume on the voice socket (ms; audio paced 300 ms ahead)\n');
const pr = await pauseResume(Number(process.env.BENCH_PAUSES ?? 15));
const echoMedian = stats(pr.echo).median;
console.log('| measured | median | p95 | ratio to a bare ws echo round trip |');
console.log('|---|---:|---:|---:|');
console.log(`| bare ws echo round trip | ${fmt(echoMedian)} | ${fmt(stats(pr.echo).p95)} | 1.00× |`);
console.log(`| \`pause\` → \`paused\` | ${fmt(stats(pr.pause).median)} | ${fmt(stats(pr.pause).p95)} | ${(stats(pr.pause).median / echoMedian).toFixed(2)}× |`);
console.log(`| \`resume\` → \`resumed\` | ${fmt(stats(pr.resume).median)} | ${fmt(stats(pr.resume).p95)} | ${(stats(pr.resume).median / echoMedian).toFixed(2)}× |`);
console.log(`| \`resume\` → next audio frame (paced) | ${fmt(stats(pr.audio).median)} | ${fmt(stats(pr.audio).p95)} | — |`);
